"""`g2d evaluate`: the pipeline on the tiny example layout with a fast stand-in model, the JSON, errors, the
model registry, the masking hook; the real teacher on a few dozen LFW pairs when the data is there."""
import io
import json
import subprocess
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import g2d_command
from g2d.align import draw_lower_face_occluder
from g2d.core import ConfigError, G2DError
from g2d.datasets import write_example_layout
from g2d.evaluate import (DlibChipEmbedder, EvaluateError, FaceEmbedder, TemplateEmbedder,
                          dlib_chip_points, evaluate, load_model, normalize_settings, register_model,
                          registered_models, unregister_model)
from g2d.metrics import METRIC_COLUMNS
from g2d.teacher import TorchModuleTeacher


class ColourEmbedder(TemplateEmbedder):
    "A fast stand-in model: mean colours of a 4x4 grid of a 32-pixel template crop."

    def __init__(self, name="fake"):
        module = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(4), torch.nn.Flatten())
        super().__init__(TorchModuleTeacher(module, input_size=32, batch_size=4), name, size=32)
        self.seen_occlusions = []

    def embed(self, faces, occlusions=None):
        self.seen_occlusions.append(None if occlusions is None else np.asarray(occlusions).copy())
        return super().embed(faces, occlusions)


@pytest.fixture()
def example_root(tmp_path):
    write_example_layout("lfw", tmp_path / "data")
    return tmp_path


@pytest.fixture()
def fake_model():
    model = ColourEmbedder()
    register_model("fake-test-model", lambda spec, config: model, replace=True)
    yield model
    unregister_model("fake-test-model")


def run_cli(*args):
    from g2d.cli import main

    out = io.StringIO()
    with redirect_stdout(out):
        code = main(["evaluate", *args])
    return code, out.getvalue()


def test_cli_json_on_the_example_layout(example_root, fake_model):
    code, out = run_cli("--model", "fake-test-model", "--dataset", "lfw", "--root", str(example_root / "data"),
                        "--cache", str(example_root / "cache"), "--no-progress", "--json")
    assert code == 0
    report = json.loads(out)
    assert {"model", "dataset", "settings", "lfw_10fold_acc", "counts", "seconds"} <= set(report)
    assert report["model"] == "fake" and report["dataset"] == "lfw" and list(report["settings"]) == ["UMR-UMP"]
    metrics = report["settings"]["UMR-UMP"]
    assert set(METRIC_COLUMNS) <= set(metrics) and {"lfw_10fold_acc", "n_genuine", "n_impostor"} <= set(metrics)
    assert metrics["n_genuine"] == 2 and metrics["n_impostor"] == 2 and 0 <= metrics["ACC"] <= 1
    assert report["counts"]["pairs"] == 4 and report["counts"]["images"] == 7
    assert report["counts"]["images_not_aligned"] == 0  # the cpu cascade's box step fits landmarks on every image
    assert report["faces_embedded_now"] == 7 and report["seconds"]["total"] > 0
    # a rerun scores from the embedding cache
    code, out = run_cli("--model", "fake-test-model", "--dataset", "lfw", "--root", str(example_root / "data"),
                        "--cache", str(example_root / "cache"), "--no-progress", "--json")
    again = json.loads(out)
    assert again["faces_embedded_now"] == 0 and again["settings"] == report["settings"]


def test_cli_text_output(example_root, fake_model):
    code, out = run_cli("--model", "fake-test-model", "--dataset", "lfw", "--root", str(example_root / "data"),
                        "--cache", str(example_root / "cache"), "--no-progress")
    assert code == 0 and "UMR-UMP" in out and "fake on lfw" in out


@pytest.mark.parametrize("args, message", [
    (["--dataset", "no-such-set"], "unknown dataset"),
    (["--dataset", "mfr2"], "no mfr2 dataset"),
    (["--dataset", "lfw", "--setting", "umr-xx"], "unknown setting"),
    (["--dataset", "lfw", "--model", "no-such-model"], "unknown model"),
])
def test_cli_errors_exit_1_with_a_clear_message(example_root, args, message):
    from g2d.cli import main

    err = io.StringIO()
    with redirect_stderr(err):
        code = main(["evaluate", "--root", str(example_root / "data"), "--cache", str(example_root / "cache"),
                     "--no-progress", *args])
    assert code == 1 and message in err.getvalue(), err.getvalue()


def test_missing_root_is_an_error_exit_1(tmp_path):
    "Through the installed command: exit status 1, one line on stderr, no traceback."
    done = subprocess.run(g2d_command() + ["evaluate", "--dataset", "lfw", "--root", str(tmp_path / "absent")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and "is not a directory" in done.stderr and "Traceback" not in done.stderr


def test_detector_cascade_option(example_root, fake_model):
    from g2d.align import FRONT_END_DETECTORS
    from g2d.evaluate import EvaluateConfig
    assert EvaluateConfig.from_profile("cpu").detectors == FRONT_END_DETECTORS + ("box",)  # the one front end
    assert EvaluateConfig.from_profile("smoke").detectors is None
    code, out = run_cli("--model", "fake-test-model", "--dataset", "lfw", "--root", str(example_root / "data"),
                        "--cache", str(example_root / "cache"), "--no-progress", "--json", "--detectors", "hog", "box")
    report = json.loads(out)
    assert code == 0 and report["detectors"] == ["hog", "box"] and report["counts"]["face_cache_statuses"] == {"box": 8}
    code, out = run_cli("--model", "fake-test-model", "--dataset", "lfw", "--root", str(example_root / "data"),
                        "--cache", str(example_root / "cache"), "--no-progress", "--json", "--profile", "smoke",
                        "--detectors", "profile")
    assert code == 0 and json.loads(out)["detectors"] == ["hog"]


def test_setting_names():
    assert normalize_settings("umr-mp") == ("UMR-MP",)
    assert normalize_settings(["mr-mp", "UMR-UMP"]) == ("UMR-UMP", "MR-MP")
    assert normalize_settings(["all"]) == ("UMR-UMP", "UMR-MP", "MR-MP")
    with pytest.raises(G2DError, match="unknown setting"):
        normalize_settings(["umr"])


def test_registry_names_predicates_and_errors(tmp_path):
    assert {"teacher", "teacher-flip"} <= set(registered_models())
    with pytest.raises(ConfigError, match="already registered"):
        register_model("teacher", lambda spec, config: None)
    first, second = ColourEmbedder("first"), ColourEmbedder("second")
    accepts_ckpt = lambda spec: spec.endswith(".ckpt")
    also_ckpt = lambda spec: spec.endswith(".ckpt")
    register_model(accepts_ckpt, lambda spec, config: first)
    register_model(also_ckpt, lambda spec, config: second)
    try:
        assert load_model("model.ckpt") is second  # the latest predicate wins
        unregister_model(also_ckpt)
        assert load_model("model.ckpt") is first
    finally:
        unregister_model(accepts_ckpt), unregister_model(also_ckpt)
    existing = tmp_path / "weights.bin"
    existing.write_bytes(b"x")
    with pytest.raises(EvaluateError, match="no registered loader accepts the file"):
        load_model(str(existing))
    register_model("not-an-embedder", lambda spec, config: object())
    try:
        with pytest.raises(EvaluateError, match="not a FaceEmbedder"):
            load_model("not-an-embedder")
    finally:
        unregister_model("not-an-embedder")
    model = ColourEmbedder()
    assert load_model(model) is model


def test_masking_hook_reaches_the_model_and_masked_settings(example_root, fake_model):
    calls = []

    def occluder(key, image, landmarks):
        calls.append(key)
        painted = draw_lower_face_occluder(image, landmarks, color=(255, 255, 255))
        return painted, (painted != image).any(axis=2)
    occluder.fingerprint = "test-occluder"

    report = evaluate("fake-test-model", "lfw", example_root / "data", settings="all", masking_hook=occluder,
                      cache_dir=example_root / "cache", progress=False)
    assert list(report["settings"]) == ["UMR-UMP", "UMR-MP", "MR-MP"]
    assert sorted(calls) == sorted(set(calls)) and len(calls) == 7  # each image masked once
    masked_batches = [o for o in fake_model.seen_occlusions if o is not None]
    assert masked_batches and all(o.shape[1:] == (32, 32) and o.any() for o in masked_batches)
    # threshold transfer: masked settings carry the UMR-UMP thresholds, UMR-UMP none
    assert report["settings"]["UMR-UMP"]["FMR100_Th"] is None
    assert report["settings"]["MR-MP"]["FMR100_Th"] is not None
    assert report["masks"] == "test-occluder" and report["counts"]["images_embedded"] == {"unmasked": 7, "masked": 7}


def test_masked_settings_use_g2d_synthetic_masks(example_root, fake_model):
    "Without a hook of the caller's, UMR-MP draws g2d.masks' protocol masks (keyed by the hook's fingerprint)."
    from g2d.evaluate import SyntheticMaskingHook
    report = evaluate("fake-test-model", "lfw", example_root / "data", settings=["umr-mp"],
                      cache_dir=example_root / "cache", progress=False)
    assert "UMR-MP" in report["settings"] and report["masks"] == SyntheticMaskingHook(seed=0).fingerprint


def test_unaligned_images_follow_the_policy(example_root, fake_model):
    # the smoke alignment profile has no box fallback: noise images are not aligned
    rejected = evaluate("fake-test-model", "lfw", example_root / "data", profile="smoke",
                        cache_dir=example_root / "cache", progress=False)
    counts = rejected["counts"]
    assert counts["images_not_aligned"] == 7 and counts["trials_with_unaligned_image"]["UMR-UMP"] == 4
    assert counts["unaligned_policy"] == "reject" and counts["trials"]["UMR-UMP"] == 4
    assert rejected["settings"]["UMR-UMP"]["ACC"] == 0.5  # every trial a non-match
    from g2d.evaluate import EvaluateConfig
    with pytest.raises(EvaluateError, match="genuine and impostor"):
        evaluate("fake-test-model", "lfw", example_root / "data", profile="smoke",
                 config=EvaluateConfig.from_profile("smoke", unaligned="drop"), cache_dir=example_root / "cache",
                 progress=False)


def test_face_embedder_is_an_interface():
    with pytest.raises(NotImplementedError):
        FaceEmbedder().embed(np.zeros((1, 8, 8, 3), np.uint8))


def test_dlib68_chip_is_dlibs_own(real_data_root):
    dlib = pytest.importorskip("dlib")
    from g2d.core import dlib_model_file
    from g2d.dlib_port import face_chip

    files = sorted((real_data_root / "lfw").glob("*/*.jpg"))[::1300]
    if not files:
        pytest.skip(f"needs LFW under {real_data_root}")
    detector, predictor = dlib.get_frontal_face_detector(), dlib.shape_predictor(str(dlib_model_file("landmarks_68")))
    compared = 0
    for path in files:
        image = dlib.load_rgb_image(str(path))
        boxes = detector(image, 1)
        if not boxes:
            continue
        shape = predictor(image, boxes[0])
        landmarks = np.array([(p.x, p.y) for p in shape.parts()], float)
        reference = dlib.get_face_chip(image, shape, size=150, padding=0.25)
        ours = face_chip(image, dlib_chip_points(landmarks, "dlib68"))
        assert np.abs(reference.astype(int) - ours.astype(int)).max() <= 1
        compared += 1
    assert compared >= 5


def test_real_teacher_on_a_few_lfw_pairs(real_data_root, tmp_path):
    if not (real_data_root / "lfw").is_dir():
        pytest.skip(f"needs LFW under {real_data_root}")
    import os
    cache = os.environ.get("G2D_CACHE", tmp_path / "cache")
    report = evaluate("teacher", "lfw", real_data_root, max_pairs=24, cache_dir=cache, progress=False)
    metrics = report["settings"]["UMR-UMP"]
    assert report["counts"]["pairs_evaluated"] == 24 and report["counts"]["pairs"] == 6000
    assert metrics["n_genuine"] == 12 and metrics["n_impostor"] == 12
    assert report["counts"]["images_not_aligned"] == 0 and metrics["ACC"] >= 0.9


def test_face_cache_of_another_data_root_is_not_reused(tmp_path):
    "Two copies of a dataset under two data roots get two face caches (a cache is never read for the wrong files)."
    from g2d.datasets import write_example_layout
    from g2d.facecache import dataset_align_config, dataset_face_cache

    config = dataset_align_config("lfw", "smoke", detectors=("box",))
    caches = []
    for name in ("one", "two"):
        write_example_layout("lfw", tmp_path / name)
        caches.append(dataset_face_cache("lfw", tmp_path / name, config, cache_dir=tmp_path / "cache", workers=1,
                                         progress=False))
    assert caches[0].path != caches[1].path
    for cache, name in zip(caches, ("one", "two")):
        assert all(str(tmp_path / name) in source for source in cache.sources)
    again = dataset_face_cache("lfw", tmp_path / "one", config, cache_dir=tmp_path / "cache", progress=False)
    assert again.path == caches[0].path


def test_crop_cache_is_rebuilt_when_corrupt_and_keeps_the_hook_unmasked_list(example_root, fake_model):
    "A truncated crop cache warns and renders again; a loaded one still tells the hook which photos it left unmasked."
    from g2d.evaluate import SyntheticMaskingHook

    def run():
        hook = SyntheticMaskingHook(seed=0)
        report = evaluate(fake_model, "lfw", example_root / "data", "all", "cpu", cache_dir=example_root / "cache",
                          masking_hook=hook, progress=False)
        return report, hook

    first, hook = run()
    crops = sorted((example_root / "cache" / "crops").glob("*.npz"))
    assert len(crops) == 2  # unmasked and masked
    for embeddings in (example_root / "cache" / "embeddings").glob("*.npz"):
        embeddings.unlink()  # so the next run needs the crops again
    again, hook_again = run()
    assert again["faces_embedded_now"] > 0 and again["settings"] == first["settings"]
    assert sorted(hook_again.unmasked) == sorted(hook.unmasked)
    masked_crops = max(crops, key=lambda p: p.stat().st_size)
    masked_crops.write_bytes(masked_crops.read_bytes()[:100])
    for embeddings in (example_root / "cache" / "embeddings").glob("*.npz"):
        embeddings.unlink()
    with pytest.warns(UserWarning, match="crop cache .* unreadable"):
        rebuilt, _ = run()
    assert rebuilt["settings"] == first["settings"]


def test_text_output_names_unreadable_images(tmp_path, fake_model):
    "A corrupt image was counted as 'not aligned' and named only in --json; the text names it with the reason."
    write_example_layout("lfw", tmp_path / "data", corrupt=True)
    args = ["--model", "fake-test-model", "--dataset", "lfw", "--root", str(tmp_path / "data"), "--profile", "cpu",
            "--cache", str(tmp_path / "cache"), "--no-progress"]
    code, text = run_cli(*args)
    assert code == 0 and "1 images not aligned" in text
    assert "1 unreadable image(s), counted as not aligned: Ann_Lee/Ann_Lee_0001.jpg (cannot decode image file" in text
    code, out = run_cli(*args, "--json")
    counts = json.loads(out)["counts"]
    assert counts["images_unreadable"] == 1 and list(counts["unreadable"]) == ["Ann_Lee/Ann_Lee_0001.jpg"]
    routes = counts["alignment_routes"]  # the 7 images of the pairs, less the corrupt one
    assert sum(routes.values()) == 6 and set(routes) <= {"yunet", "hog", "box"}


def test_text_output_lists_at_most_ten_unreadable_images_and_a_count():
    from g2d.evaluate import _format_report

    unreadable = {f"p/img_{i:02d}.jpg": "corrupt" for i in range(20)}
    report = {"model": "m", "dataset": "d", "settings": {}, "faces_per_second": None, "seconds": {"total": 1.0},
              "counts": {"pairs": 10, "pairs_evaluated": 10, "images_not_aligned": 23, "unaligned_policy": "reject",
                         "images_unreadable": 25, "unreadable": unreadable, "not_aligned_examples": []}}
    text = _format_report(report)
    assert "25 unreadable image(s)" in text and "p/img_09.jpg (corrupt); ... (15 more, see --json)" in text
    assert "img_10" not in text


def test_rebuild_cache_aligns_again(example_root, fake_model):
    args = ["--model", "fake-test-model", "--dataset", "lfw", "--root", str(example_root / "data"), "--profile", "cpu",
            "--cache", str(example_root / "cache"), "--no-progress", "--json"]
    code, out = run_cli(*args)
    index = Path(json.loads(out)["face_cache"]) / "index.json"
    built = index.stat().st_mtime_ns
    assert run_cli(*args)[0] == 0 and index.stat().st_mtime_ns == built  # reused as it is
    code, out = run_cli(*args, "--rebuild-cache")
    assert code == 0 and index.stat().st_mtime_ns != built  # aligned and written again


def test_cfp_protocols_align_profiles_by_their_fiducials(tmp_path, fake_model):
    from PIL import Image

    folder = write_example_layout("cfp", tmp_path / "data")
    Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(folder / "Data" / "Images" / "001" / "profile" / "01.jpg")
    args = ["--model", "fake-test-model", "--root", str(tmp_path / "data"), "--profile", "cpu", "--cache",
            str(tmp_path / "cache"), "--no-progress", "--json"]
    code, out = run_cli("--dataset", "cfp-fp", *args)
    report = json.loads(out)
    assert code == 0 and report["counts"]["images_not_aligned"] == 0 and report["detectors"] == ["yunet", "hog"]
    routes = report["counts"]["alignment_routes"]
    assert routes["annotation"] >= 1 and sum(routes.values()) == report["counts"]["images"] == 6
    assert report["settings"]["UMR-UMP"]["n_folds"] == 2 and report["lfw_10fold_acc"]["UMR-UMP"] is not None
    code, out = run_cli("--dataset", "cfp-ff", *args)
    assert code == 0 and json.loads(out)["face_cache"] == report["face_cache"]  # one face cache for both protocols
    code, text = run_cli("--dataset", "cfp-fp", *args[:-1])
    assert "aligned by: annotation" in text


def test_annotation_policies(tmp_path, fake_model):
    "first: the fiducials align every image; fallback: only what the detectors miss; never: the detectors (and box)."
    from PIL import Image

    folder = write_example_layout("cfp", tmp_path / "data")
    Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(folder / "Data" / "Images" / "001" / "profile" / "01.jpg")
    args = ["--model", "fake-test-model", "--dataset", "cfp-fp", "--root", str(tmp_path / "data"), "--profile", "cpu",
            "--cache", str(tmp_path / "cache"), "--no-progress", "--json"]
    reports = {policy: json.loads(run_cli(*args, "--annotation", policy)[1]) for policy in ("first", "fallback", "never")}
    assert reports["first"]["counts"]["alignment_routes"] == {"annotation": 6}
    fallback = reports["fallback"]["counts"]["alignment_routes"]
    assert fallback["annotation"] == 1 and sum(fallback.values()) == 6 and "box" not in fallback
    assert reports["never"]["detectors"] == ["yunet", "hog", "box"] and "annotation" not in reports["never"]["counts"]["alignment_routes"]
    assert reports["first"]["counts"]["annotation_policy"] == "first"
    with pytest.raises(SystemExit):  # argparse refuses an unknown policy
        run_cli(*args, "--annotation", "sometimes")


def test_pretrained_on_a_set_without_exact_maps_says_which_estimator_makes_them(tmp_path):
    "`g2d evaluate --model pretrained` on real masked photos (RMFD's layout): the shipped learned estimator, named."
    write_example_layout("rmfd", tmp_path / "data")
    code, out = run_cli("--model", "pretrained", "--dataset", "rmfd", "--root", str(tmp_path / "data"), "--profile",
                        "smoke", "--setting", "umr-mp", "--cache", str(tmp_path / "cache"), "--no-progress")
    assert code == 0, out
    assert "occlusion maps: estimated by the learned estimator (g2d's released occlusion estimator)" in out


def test_pretrained_on_real_rmfd_estimates_the_masked_probes_maps(real_data_root, tmp_path, monkeypatch):
    "On real RMFD photos the learned estimator runs on every masked probe (and on no unmasked reference)."
    from g2d.datasets import face_datasets_found, open_dataset
    from g2d.evaluate import EstimatedOcclusionHook

    if "rmfd" not in face_datasets_found(real_data_root):
        pytest.skip("needs RMFD under the data root")
    seen, estimate = [], EstimatedOcclusionHook.__call__

    def spy(self, key, image, landmarks):
        image, occlusion = estimate(self, key, image, landmarks)
        seen.append((key, occlusion))
        return image, occlusion

    monkeypatch.setattr(EstimatedOcclusionHook, "__call__", spy)
    code, out = run_cli("--model", "pretrained", "--dataset", "rmfd", "--root", str(real_data_root), "--profile", "cpu",
                        "--setting", "umr-mp", "--max-pairs", "8", "--cache", str(tmp_path / "cache"), "--no-progress")
    assert code == 0, out
    assert "occlusion maps: estimated by the learned estimator" in out
    rmfd = open_dataset("rmfd", real_data_root)
    masked = {str(Path(rmfd.path_of(ref)).relative_to(rmfd.root)) for ref, m in rmfd.masked.items() if m}
    assert seen and all(key in masked for key, _ in seen), [key for key, _ in seen]  # the masked probes only
    assert sum(bool(occlusion.any()) for _, occlusion in seen) >= len(seen) - 1  # the estimator finds the masks
