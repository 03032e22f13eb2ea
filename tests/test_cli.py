"""The `g2d` command: version, info, errors and the dispatcher."""
import json
import os
import subprocess

from conftest import g2d_command

import g2d


def run_g2d(*args, env=None):
    return subprocess.run(g2d_command() + list(args), capture_output=True, text=True, env=env, timeout=300)


def test_version():
    done = run_g2d("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"g2d {g2d.__version__}"


def test_help_lists_every_subcommand():
    from g2d.cli import SUBCOMMANDS
    done = run_g2d("--help")
    assert done.returncode == 0
    for name in SUBCOMMANDS:
        assert name in done.stdout


def test_unknown_command_is_a_usage_error():
    done = run_g2d("no-such-command")
    assert done.returncode == 2 and "invalid choice" in done.stderr


def test_info_json_reports_versions_device_and_datasets(tmp_path):
    (tmp_path / "lfw").mkdir()
    done = run_g2d("info", "--root", str(tmp_path), "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["g2d"] == g2d.__version__
    assert report["packages"]["torch"] and report["device"] in {"cpu", "cuda", "mps"}
    assert report["data_root"] == str(tmp_path.resolve())
    assert report["datasets"]["lfw"] == str(tmp_path.resolve() / "lfw") and report["datasets"]["celeba"] is None


def test_info_reads_the_environment_variable(tmp_path):
    env = {**os.environ, "G2D_DATA": str(tmp_path)}
    report = json.loads(run_g2d("info", "--json", env=env).stdout)
    assert report["data_root"] == str(tmp_path.resolve())


def test_info_on_a_missing_root_says_why(tmp_path):
    done = run_g2d("info", "--root", str(tmp_path / "nowhere"), "--json")
    report = json.loads(done.stdout)
    assert report["data_root"] is None and "is not a directory" in report["data_root_error"]


def test_info_finds_the_real_datasets(real_data_root):
    report = json.loads(run_g2d("info", "--root", str(real_data_root), "--json").stdout)
    assert report["datasets"]["lfw"] and report["datasets"]["celeba"]


def test_reproduce_cpu_without_data_is_a_clear_error():
    done = run_g2d("reproduce", "--profile", "cpu")
    assert done.returncode == 1
    assert "needs real data" in done.stderr and "Traceback" not in done.stderr


def test_reproduce_unknown_profile_is_a_clear_error():
    done = run_g2d("reproduce", "--profile", "huge")
    assert done.returncode == 1 and "unknown profile 'huge'" in done.stderr


# --- errors and exit codes (README "Errors and exit codes") ------------------------------------------------------

def _failing_subcommand(monkeypatch, raised):
    "Make `g2d info` run a handler that warns, then raises `raised`."
    import warnings

    import g2d.cli as cli
    from g2d.core import G2DWarning

    def configure(parser):
        def run(args):
            warnings.warn("a fallback was taken", G2DWarning)
            raise raised
        parser.set_defaults(func=run)

    monkeypatch.setattr(cli, "load_configure", lambda spec: configure)
    return cli


def test_interrupt_is_one_line_and_exit_130(monkeypatch, capsys):
    cli = _failing_subcommand(monkeypatch, KeyboardInterrupt())
    assert cli.main(["info"]) == 130
    err = capsys.readouterr().err
    assert err.splitlines() == ["g2d info: warning: a fallback was taken", "g2d info: interrupted"]


def test_unexpected_error_is_one_line_unless_debugging(monkeypatch, capsys):
    cli = _failing_subcommand(monkeypatch, ZeroDivisionError("division by zero"))
    monkeypatch.delenv("G2D_DEBUG", raising=False)
    assert cli.main(["info"]) == 1
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == ("g2d info: unexpected error: ZeroDivisionError: division by zero "
                                    "(run with G2D_DEBUG=1 for the traceback)")
    assert "Traceback" not in err
    monkeypatch.setenv("G2D_DEBUG", "1")
    assert cli.main(["info"]) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "ZeroDivisionError" in err


def test_named_error_is_one_line_and_exit_1(monkeypatch, capsys):
    from g2d.core import G2DError

    cli = _failing_subcommand(monkeypatch, G2DError("the input is bad; do this"))
    monkeypatch.delenv("G2D_DEBUG", raising=False)
    assert cli.main(["info"]) == 1
    assert capsys.readouterr().err.splitlines()[-1] == "g2d info: error: the input is bad; do this"


def test_a_subcommand_usage_error_exits_2(tmp_path):
    done = run_g2d("metrics", str(tmp_path / "scores.csv"), "--bootstrap", "many")
    assert done.returncode == 2 and "invalid int value" in done.stderr


def test_closed_pipe_is_quiet(tmp_path):
    "`g2d ... | head -1`: the reader has gone; no BrokenPipeError traceback, exit 141 (128 + SIGPIPE)."
    scores = tmp_path / "scores.csv"
    scores.write_text("score,label\n0.9,1\n0.8,1\n0.3,0\n0.1,0\n")
    process = subprocess.Popen(g2d_command() + ["metrics", str(scores)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    process.stdout.close()  # closed before g2d writes anything
    err = process.stderr.read()
    assert process.wait(timeout=300) == 141, err
    assert "Traceback" not in err and "BrokenPipeError" not in err and err == ""


def test_metrics_json_is_strict_and_bootstrap_needs_two(tmp_path):
    scores = tmp_path / "apart.csv"  # two separated constants: FDR is infinite
    scores.write_text("score,label\n0.9,1\n0.9,1\n0.1,0\n0.1,0\n")
    done = run_g2d("metrics", str(scores), "--json")
    assert done.returncode == 0, done.stderr
    assert "Infinity" not in done.stdout and json.loads(done.stdout)["FDR"] is None
    for n in ("0", "1"):
        done = run_g2d("metrics", str(scores), "--bootstrap", n)
        assert done.returncode == 1 and "--bootstrap N needs N >= 2" in done.stderr
    assert run_g2d("metrics", str(scores), "--bootstrap", "20", "--json").returncode == 0
    header = tmp_path / "header.csv"
    header.write_text("score,label\n")
    done = run_g2d("metrics", str(header))
    assert done.returncode == 1 and "has no rows" in done.stderr and "dtype" not in done.stderr


def test_mask_exits_1_on_failures_unless_allowed(tmp_path):
    source = tmp_path / "in"
    source.mkdir()
    (source / "broken.jpg").write_bytes(b"not an image")
    done = run_g2d("mask", str(source), str(tmp_path / "out"), "--builtin")
    assert done.returncode == 1 and "1 of 1 images failed" in done.stderr and "--allow-failures" in done.stderr
    assert "masked 0 of 1 images" in done.stdout  # the report is printed first
    assert not (tmp_path / "out" / "INCOMPLETE").exists()  # the run itself completed
    assert run_g2d("mask", str(source), str(tmp_path / "out"), "--builtin", "--allow-failures").returncode == 0
    (source / "broken.jpg").unlink()
    done = run_g2d("mask", str(source), str(tmp_path / "empty"), "--builtin")
    assert done.returncode == 1 and "no images" in done.stderr


def test_mask_refuses_colliding_outputs_and_a_file_as_output(tmp_path):
    source = tmp_path / "in"
    source.mkdir()
    for name in ("face.jpg", "face.png"):
        (source / name).write_bytes(b"x")
    done = run_g2d("mask", str(source), str(tmp_path / "out"), "--builtin")
    assert done.returncode == 1 and "face.jpg and face.png" in done.stderr and "Traceback" not in done.stderr
    (tmp_path / "file").write_text("x")
    done = run_g2d("mask", str(source), str(tmp_path / "file"), "--builtin")
    assert done.returncode == 1 and "is a file" in done.stderr and "Traceback" not in done.stderr


def test_mask_root_without_templates(tmp_path):
    "A named --root without mask templates is an error; an implicit one falls back to built-in masks with a warning."
    source, root = tmp_path / "in", tmp_path / "root"
    source.mkdir()
    root.mkdir()
    (source / "broken.jpg").write_bytes(b"not an image")
    done = run_g2d("mask", str(source), str(tmp_path / "out"), "--root", str(root), "--allow-failures")
    assert done.returncode == 1 and "has no mask_templates folder" in done.stderr
    env = {**os.environ, "G2D_DATA": str(root)}
    done = run_g2d("mask", str(source), str(tmp_path / "out"), "--allow-failures", env=env)
    assert done.returncode == 0, done.stderr
    assert "g2d mask: warning: no mask templates under the data root" in done.stderr
