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
