"""A product a newcomer can use: one model vocabulary across commands (`g2d models`, verify, embed, export,
`load_model`), `verify`'s stated default, one data-root flag, no abbreviated options, a quiet OpenCV, and the small
things (data check counts, real masked photos in info, `g2d embed DIR`, `make lab` as root, the licence). Every
command runs through `g2d.cli.main`."""
import contextlib
import io
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from g2d.cli import SUBCOMMANDS, load_configure, main
from g2d.model import RELEASED_SPECS


def run(*argv, capsys=None) -> tuple[int, str, str]:
    "(exit code, stdout, stderr) of `g2d ARGV` in this process."
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in argv])
        except SystemExit as e:  # argparse's usage errors
            code = e.code
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> list[Path]:
    "Two photos of one synthetic person (the second masked), 160 px JPEGs: any clone has them."
    from g2d.masks import MaskSpec, apply_mask
    from g2d.synthetic import SyntheticFaces

    folder = tmp_path_factory.mktemp("photos")
    faces = SyntheticFaces(2, 2, size=160, seed=0)
    paths = []
    for index in (0, 1):
        image, landmarks = faces.render(index)
        if index:
            image = apply_mask(image, landmarks, MaskSpec("surgical", colour=(140, 190, 225))).image
        paths.append(folder / f"face{index + 1}.jpg")
        Image.fromarray(image).save(paths[-1], quality=95)
    return paths


# 1. one model vocabulary
def test_models_lists_every_released_name_teacher_sface_and_form():
    code, out, _ = run("models", "--json")
    catalog = json.loads(out)
    rows = {r["name"]: r for r in catalog["models"]}
    assert code == 0 and list(rows)[:len(RELEASED_SPECS)] == list(RELEASED_SPECS)  # a new released name appears here
    assert {"teacher", "teacher-flip", "sface", "sface-flip", "FOLDER", "FILE.onnx", "baseline:NAME[@PROFILE]"} <= set(rows)
    for name in ("teacher", "teacher-flip", "teacher-5pt", "teacher-5pt-flip", "sface", "sface-flip"):
        assert rows[name]["verify"] == ["0.01", "0.001"], name  # they ship calibrated thresholds
    assert rows["pretrained"]["export"] and not rows["sface"]["export"] and rows["teacher-jitter"]["verify"] == []
    assert {r["name"] for r in catalog["prefixes"]} == {"flip:M", "noflip:M", "learned:M", "segment:M"}
    code, text, _ = run("models")
    assert code == 0 and "g2d verify those with calibrated thresholds" in text


@pytest.mark.parametrize("name", ["sface", "teacher"])
def test_verify_decides_with_a_recognizer_and_its_shipped_thresholds(photos, name):
    from g2d.evaluate import load_model

    code, out, err = run("verify", *photos, "--model", name, "--json")
    assert code == 0, err
    result = json.loads(out)
    threshold = load_model(name).thresholds["0.01"]["threshold"]  # the same name in Python
    assert result["model"] == name and result["fmr"] == 0.01 and result["threshold"] == threshold
    assert result["same_person"] == (result["similarity"] >= threshold) and result["estimator"] == "none"


def test_the_same_names_everywhere_refused_in_one_form(photos, tmp_path):
    code, _, err = run("verify", *photos, "--model", "teacher-jitter")
    assert code == 1 and "teacher-jitter has no threshold for FMR 0.01" in err and "g2d models" in err
    code, _, err = run("export", "--onnx", tmp_path / "t.onnx", "--model", "teacher")
    assert code == 1 and "g2d export does not take the model 'teacher'" in err and "g2d models" in err
    code, _, err = run("verify", *photos, "--model", "no-such-model")
    assert code == 1 and "unknown model 'no-such-model'" in err and "sface" in err
    code, out, err = run("embed", photos[0], "--model", "noflip:pretrained", "--json")
    assert code == 0 and json.loads(out)["embedded"] == 1, err  # every form embeds
    code, _, err = run("verify", *photos, "--model", "segment:pretrained", "--estimator", "learned")
    assert code == 1 and "choose one" in err  # a contradiction is an error, not a silent choice


# 2. verify's default, stated
def test_verify_default_fmr_is_one_percent_and_says_so(photos):
    code, out, _ = run("verify", "--help")
    assert code == 0 and "0.01 (the default" in " ".join(out.split())
    code, out, err = run("verify", *photos)
    assert code == 0 and "(FMR 0.01, the default)" in out, err
    code, out, _ = run("verify", *photos, "--fmr", "0.001")
    assert code == 0 and "(FMR 0.001)" in out


def test_cards_state_rates_on_held_out_and_lfw_at_every_shipped_threshold():
    "Each released model's card: per shipped threshold, its FMR / FNMR on held-out CelebA and on LFW."
    from g2d.model import G2D_METADATA, pretrained_folder

    for folder in dict.fromkeys(RELEASED_SPECS.values()):
        card = (pretrained_folder(folder) / "README.md").read_text(encoding="utf-8")
        section = card[card.index("**Decision thresholds**"):card.index("**Limitations.**")]
        for column in ("held-out UMR-UMP: FMR / FNMR", "LFW UMR-UMP: FMR / FNMR", "LFW UMR-MP: FMR / FNMR",
                       "LFW MR-MP: FMR / FNMR"):
            assert column in section, (folder, column)
        thresholds = json.loads((pretrained_folder(folder) / G2D_METADATA).read_text())["thresholds"]
        for fmr, entry in thresholds.items():
            if isinstance(entry, dict) and "threshold" in entry:
                assert f"{entry['threshold']:.4f}" in section, (folder, fmr)


def test_threshold_rates_counts_errors_at_the_shipped_threshold(tmp_path, monkeypatch):
    "On g2d's tiny LFW layout with a stand-in model: the rates are those of the scores at the threshold."
    import torch
    from g2d.catalog import threshold_rates
    from g2d.datasets import write_example_layout
    from g2d.evaluate import TemplateEmbedder, evaluate, register_model, unregister_model
    from g2d.metrics import error_rates_at
    from g2d.teacher import TorchModuleTeacher

    write_example_layout("lfw", tmp_path / "data")
    monkeypatch.setenv("G2D_CACHE", str(tmp_path / "cache"))
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 8))
    register_model("tiny-test-model", lambda spec, config: TemplateEmbedder(
        TorchModuleTeacher(net, input_size=32, embedding_dim=8), spec, size=32), replace=True)
    try:
        thresholds = {"0.01": {"threshold": 0.5}, "0.001": {"threshold": 0.9}}
        rates = threshold_rates("tiny-test-model", "lfw", tmp_path / "data", "umr-ump", "smoke", thresholds)
        scores = evaluate("tiny-test-model", "lfw", tmp_path / "data", "umr-ump", "smoke", keep_scores=True,
                          progress=False)["scores"]["UMR-UMP"]
    finally:
        unregister_model("tiny-test-model")
    for fmr, entry in thresholds.items():
        expected = error_rates_at(scores["scores"], scores["labels"], entry["threshold"])
        assert (rates["rates"][fmr]["UMR-UMP"]["fmr"], rates["rates"][fmr]["UMR-UMP"]["fnmr"]) == expected


# 4. one data-root flag, options only as spelled, a quiet OpenCV
def _every_parser():
    from g2d.cli import _add_common_options, _one_spelling, _parsers
    import argparse

    for name, (_, spec) in SUBCOMMANDS.items():
        parser = argparse.ArgumentParser(prog=f"g2d {name}", allow_abbrev=False)
        load_configure(spec)(parser)
        _add_common_options(parser)
        _one_spelling(parser)
        yield from ((name, p) for p in _parsers(parser))


def test_every_parser_reads_options_as_spelled_and_takes_root_where_it_takes_data():
    seen = 0
    for name, parser in _every_parser():
        options = parser._option_string_actions
        assert not parser.allow_abbrev, name
        assert "--data" not in options or "--root" in options, f"g2d {name}: --data without --root"
        if "--root" in options:
            seen += 1
            assert options["--data"].dest == options["--root"].dest, name
    assert seen >= 6  # info, data check, evaluate, train, mask, reproduce, release pack, trunk ...


def test_data_is_a_deprecated_alias_and_abbreviations_are_refused(tmp_path):
    from g2d.datasets import write_example_layout

    write_example_layout("lfw", tmp_path)
    code, out, err = run("data", "check", "--data", tmp_path, "--json")
    assert code == 0 and json.loads(out)["data_root"] == str(tmp_path.resolve())
    assert "g2d data: warning: --data is deprecated: use --root" in err
    code, _, err = run("data", "check", "--dat", tmp_path)  # once read as --datasets, or as --data
    assert code == 2 and "unrecognized arguments: --dat" in err
    code, _, err = run("info", "--js")
    assert code == 2


def test_standard_error_holds_only_g2ds_lines(photos, capfd):
    "OpenCV's own warnings (YuNet's 'setPreferableTarget ...') are not printed: its log level is set."
    assert main(["verify", str(photos[0]), str(photos[1]), "--json"]) == 0
    err = capfd.readouterr().err
    assert "WARN" not in err and "setPreferableTarget" not in err, err


# 6. the smaller items
def test_embed_reads_folders_and_their_subfolders(photos, tmp_path):
    folder = tmp_path / "album"
    (folder / "more").mkdir(parents=True)
    (folder / photos[0].name).write_bytes(photos[0].read_bytes())
    (folder / "more" / photos[1].name).write_bytes(photos[1].read_bytes())
    (folder / "notes.txt").write_text("not a photo")
    code, out, err = run("embed", folder, "--json")
    assert code == 0 and json.loads(out)["photos"] == 1, err
    code, out, _ = run("embed", folder, "--recursive", "--json", "--out", tmp_path / "e.npy")
    result = json.loads(out)
    assert code == 0 and result["photos"] == result["embedded"] == 2 and np.load(tmp_path / "e.npy").shape[0] == 2
    (tmp_path / "empty").mkdir()
    code, _, err = run("embed", tmp_path / "empty")
    assert code == 1 and "no image files" in err and "--recursive" in err


def test_data_check_counts_sets_without_identities_and_real_masked_photos(tmp_path):
    from g2d.datasets import write_example_layout

    write_example_layout("utkface", tmp_path)
    write_example_layout("celeba", tmp_path)
    real = tmp_path / "real_masked" / "with_mask"
    real.mkdir(parents=True)
    for k in range(4):
        Image.fromarray(np.full((40, 40, 3), 60 * k, np.uint8)).save(real / f"m{k}.jpg")
    code, out, _ = run("data", "check", "--root", tmp_path, "--json")
    datasets = json.loads(out)["datasets"]
    assert code == 0 and datasets["utkface"]["identities"] is None and datasets["real_masked"]["images"] == 4
    code, text, _ = run("data", "check", "--root", tmp_path)
    utk = next(line for line in text.splitlines() if line.startswith("utkface"))
    assert "no identity labels" in utk and "identities" not in utk
    assert "identity-list rows whose image is not in this copy" in text  # CelebA's subset, explained
    code, out, _ = run("info", "--root", tmp_path, "--json")
    assert json.loads(out)["datasets"]["real_masked"] == str(real.resolve())


def test_the_embedding_progress_bar_names_the_model_that_embeds(tmp_path, capsys):
    "`g2d evaluate`'s bar said 'teacher features' whatever embedded: it names the model now."
    import torch
    from g2d.evaluate import TemplateEmbedder, embed_images
    from g2d.synthetic import SyntheticFaces
    from g2d.teacher import TorchModuleTeacher

    faces = SyntheticFaces(n_identities=2, images_per_identity=1, size=112, seed=0)
    images = []
    for i in range(2):
        path = tmp_path / f"face{i}.png"
        Image.fromarray(faces.render(i)[0]).save(path)
        images.append((f"face{i}", str(path), faces.landmarks68(i)))
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 8))
    model = TemplateEmbedder(TorchModuleTeacher(net, input_size=32, embedding_dim=8), "progress-test-model", size=32)
    embedded = embed_images(model, images, "demo", "fingerprint", None, tmp_path / "embeddings", progress=True)
    err = capsys.readouterr().err
    assert embedded.embeddings.shape == (2, 8) and "embedding (progress-test-model)" in err and "teacher features" not in err


def test_make_lab_runs_as_root(repo_root):
    done = subprocess.run(["make", "-n", "lab"], cwd=repo_root, capture_output=True, text=True, timeout=60)
    lab = [line for line in done.stdout.splitlines() if "jupyter lab" in line]
    assert done.returncode == 0 and len(lab) == 1
    assert ("--allow-root" in lab[0]) == (os.geteuid() == 0)


def test_the_licence_file_is_the_stated_one_and_cards_state_the_weights_licences(repo_root):
    from g2d.core import packaged_weights

    licence = (repo_root / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in licence and "Version 2.0, January 2004" in licence
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in licence and "END OF TERMS AND CONDITIONS" in licence
    assert "license = apache2" in (repo_root / "settings.ini").read_text()
    assert "include LICENSE" in (repo_root / "MANIFEST.in").read_text()
    cards = sorted(packaged_weights("").glob("*/README.md"))
    assert cards
    for card in cards:
        assert "Licence" in card.read_text(encoding="utf-8"), card


def test_commands_that_train_on_the_data_root_take_root(tmp_path, monkeypatch):
    "`g2d baselines NAME` and `g2d inpainting train` read the data root given by --root, for that command only."
    import g2d.baselines
    import g2d.inpainting_training

    seen = []

    def record(*args, **kwargs):
        seen.append(os.environ.get("G2D_DATA"))
        raise KeyboardInterrupt  # stop before any work; main answers 130

    monkeypatch.setattr(g2d.baselines, "train_baseline", record)
    monkeypatch.setattr(g2d.inpainting_training, "train_inpainter", record)
    monkeypatch.setenv("G2D_DATA", "/elsewhere")
    for command in (["baselines", "arcface", "--root", tmp_path], ["inpainting", "train", "--out", tmp_path / "run",
                                                                    "--root", tmp_path]):
        code, _, err = run(*command)
        assert code == 130, err
        assert os.environ["G2D_DATA"] == "/elsewhere"  # restored after the command
    assert seen == [str(tmp_path)] * 2
