"G2D assembly: greedy training (smoke), frozen modules, save/load/embed round trips, clear errors, evaluate and CLI."
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from g2d.core import ConfigError, G2DError
from g2d.evaluate import EvaluateError, load_model
from g2d.model import (G2D, G2DCheckpointError, G2DConfig, G2DEmbedder, G2DInputError, MaskedTriplets, STAGES,
                       calibration_pairs, load_g2d, save_g2d, train_g2d, training_faces, verify_decision)

# a smoke profile made smaller still: every stage runs, in seconds
TINY = dict(encoder=dict(pretrain_steps=6, finetune_steps=3, checkpoint_every=4), reformer=dict(steps=8),
            classifier=dict(steps=6), calibration_pairs=300)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    cfg = G2DConfig(cache_dir=str(cache), mask_templates="builtin", **TINY)
    run = tmp_path_factory.mktemp("run")
    return cfg, run, train_g2d(cfg, run, progress=False)


def test_stages_write_manifests_and_model(trained):
    cfg, run, model = trained
    for stage in STAGES:
        manifest = json.loads((run / stage / "manifest.json").read_text())
        assert manifest["config"]["g2d"] == cfg.to_params() and "seconds" in manifest["timings"]
    assert (run / "model" / "model.safetensors").is_file() and (run / "model" / "g2d.json").is_file()
    thresholds = model.metadata["thresholds"]
    assert set(thresholds) >= {"0.01", "0.001", "pairs", "held_out"}
    assert thresholds["0.01"]["threshold"] <= thresholds["0.001"]["threshold"]  # a stricter FMR, a higher threshold
    assert thresholds["0.01"]["UMR-UMP"]["fmr"] <= 0.01


def test_held_out_identities_never_trained(trained):
    cfg, _, _ = trained
    faces = training_faces(cfg)
    assert not set(faces.train_identities) & set(faces.held.labels)
    assert faces.train.labels.max() + 1 == faces.num_identities


def test_encoder_frozen_through_reformer_and_classifier(trained, tmp_path):
    cfg, run, model = trained
    from g2d.inpainting_training import load_generative_encoder
    from g2d.model import encoder_folder

    trained_encoder = load_generative_encoder(encoder_folder(cfg, training_faces(cfg)) / "encoder")
    for name, tensor in trained_encoder.state_dict().items():
        assert torch.equal(tensor, model.encoder.state_dict()[name]), name
    assert not any(p.requires_grad for p in model.parameters())
    # the classifier stage leaves the reformer it trained on untouched
    student = torch.load(next((run / "reformer" / "checkpoints").glob("step_*.pt")), weights_only=False)
    reformer_state = {k.removeprefix("reformer."): v for k, v in student["state"]["model"].items() if k.startswith("reformer.")}
    for name, tensor in model.reformer.state_dict().items():
        assert torch.equal(tensor, reformer_state[name]), name


def test_resume_returns_the_same_model(trained):
    cfg, run, model = trained
    again = train_g2d(cfg, run, progress=False)
    faces = training_faces(cfg).held.images[:5]
    zeros = np.zeros((5, model.image_size, model.image_size))
    assert torch.allclose(again.embed(faces, zeros), model.embed(faces, zeros), atol=1e-6)


def test_earlier_stages_again_keep_the_finished_classifier(trained):
    cfg, run, model = trained
    again = train_g2d(cfg, run, ("encoder", "teacher", "reformer"), progress=False)
    assert again.classifier is not None and again.metadata["thresholds"] == model.metadata["thresholds"]
    for name, tensor in model.classifier.state_dict().items():
        assert torch.equal(tensor, again.classifier.state_dict()[name]), name
    assert load_g2d(run / "model").classifier is not None

def test_save_load_embed_round_trip(trained, tmp_path):
    cfg, _, model = trained
    save_g2d(model, tmp_path / "m", cfg, model.metadata["thresholds"])
    loaded = load_g2d(tmp_path / "m")
    faces = training_faces(cfg).held
    masks = np.stack([MaskedTriplets(faces, None, 1.0, "exact", False, 0.0, 3).masked_face(i)[1] for i in range(4)])
    e1, e2 = model.embed(faces.images[:4], masks), loaded.embed(faces.images[:4], masks)
    assert e1.shape == (4, model.embedding_dim)
    assert torch.allclose(e1, e2, atol=1e-6) and torch.allclose(e1.norm(dim=1), torch.ones(4), atol=1e-5)
    # no masks given: estimated by segmentation, still unit vectors
    estimated = loaded.embed(faces.images[:2])
    assert torch.allclose(estimated.norm(dim=1), torch.ones(2), atol=1e-5)
    assert loaded.classify(torch.rand(2, 3, 32, 32), torch.zeros(2, 1, 32, 32)).shape[0] == 2


def test_wrong_checkpoints_are_clear_errors(trained, tmp_path):
    cfg, run, model = trained
    with pytest.raises(G2DCheckpointError, match="not a folder"):
        load_g2d(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(G2DCheckpointError, match="holds no saved G2D model"):
        load_g2d(tmp_path / "empty")
    save_g2d(model, tmp_path / "bad", cfg)
    meta = json.loads((tmp_path / "bad" / "g2d.json").read_text())
    (tmp_path / "bad" / "g2d.json").write_text(json.dumps({**meta, "format": "something-else"}))
    with pytest.raises(G2DCheckpointError, match="format"):
        load_g2d(tmp_path / "bad")
    (tmp_path / "bad" / "g2d.json").write_text(json.dumps({**meta, "reformer": {**meta["reformer"], "width": 4}}))
    with pytest.raises(G2DCheckpointError, match="do not fit"):
        load_g2d(tmp_path / "bad")
    (tmp_path / "bad" / "g2d.json").write_text(json.dumps(meta))
    data = (tmp_path / "bad" / "model.safetensors").read_bytes()
    (tmp_path / "bad" / "model.safetensors").write_bytes(data[: len(data) // 3])
    with pytest.raises(G2DCheckpointError):
        load_g2d(tmp_path / "bad")


def test_wrong_inputs_are_clear_errors(trained):
    _, _, model = trained
    with pytest.raises(G2DInputError, match="32x32"):
        model.embed(np.zeros((2, 48, 48, 3), np.uint8), np.zeros((2, 48, 48)))
    with pytest.raises(G2DInputError, match="occlusion maps"):
        model.embed(np.zeros((2, 32, 32, 3), np.uint8), np.zeros((3, 32, 32)))
    with pytest.raises(G2DInputError):
        model.embed(np.full((1, 32, 32, 3), 3.0, np.float32), np.zeros((1, 32, 32)))


def test_config_errors():
    with pytest.raises(ConfigError):
        G2DConfig(ablation="G2D[XX]")
    with pytest.raises(ConfigError):
        G2DConfig(mask_probability=1.5)
    with pytest.raises(ConfigError, match="stage"):
        train_g2d(G2DConfig(), "/nonexistent", stages=("reformer", "bogus"))
    assert G2DConfig(ablation="G2D[DIS]").reformer_config().weight_first == 0
    assert G2DConfig(first_order="regress").reformer_config().first_order == "regress"


def test_triplets_resume_exactly_and_change_per_epoch():
    faces = training_faces(G2DConfig()).train
    a, b = MaskedTriplets(faces, seed=5), MaskedTriplets(faces, seed=5)
    a.set_epoch(3); b.set_epoch(3)
    assert all(torch.equal(u, v) for u, v in zip(a[7][:2], b[7][:2]))
    b.set_epoch(4)
    assert not torch.equal(a[7][1], b[7][1]) or not torch.equal(a[7][0], b[7][0])
    x, m, label, index = a[7]
    assert x.shape == (3, 32, 32) and m.shape == (1, 32, 32) and index == 7 and 0 < float(m.mean()) < 0.6


def test_calibration_pairs():
    labels = np.array([0, 0, 1, 1, 1, 2])
    first, second, genuine = calibration_pairs(labels, 50, seed=0)
    assert genuine.sum() == 1 + 3  # every same-identity pair once
    assert (labels[first[genuine]] == labels[second[genuine]]).all()
    assert (labels[first[~genuine]] != labels[second[~genuine]]).all() and (~genuine).sum() == 50


def test_evaluate_registry_and_occlusion_policy(trained):
    _, run, _ = trained
    given, segment = load_model(str(run / "model")), load_model("segment:" + str(run / "model"))
    assert isinstance(given, G2DEmbedder) and given.requires_occlusion and not segment.requires_occlusion
    face, occlusion = given.crop(np.zeros((100, 100, 3), np.uint8), _frontal_landmarks(100), np.ones((100, 100)))
    assert face.shape == (32, 32, 3) and occlusion.shape == (32, 32)
    assert torch.allclose(given.embed(np.zeros((2, 32, 32, 3), np.uint8)),
                          given.embed(np.zeros((2, 32, 32, 3), np.uint8), np.zeros((2, 32, 32))))
    with pytest.raises(EvaluateError):
        load_model(str(run))  # the run folder is not a model folder


def test_flip_spec_embeds_a_face_and_its_mirror_alike(trained):
    "`flip:` embeds with the test-time flip: a face and its mirror image (map mirrored too) embed the same."
    _, run, _ = trained
    plain, flipped = load_model(str(run / "model")), load_model("flip:" + str(run / "model"))
    assert flipped.flip_average and not plain.flip_average and flipped.requires_occlusion
    assert flipped.fingerprint() != plain.fingerprint()
    rng = np.random.default_rng(0)
    faces = rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    maps = np.zeros((3, 32, 32), np.uint8)
    maps[:, 18:, 4:20] = 1  # a lopsided mask: the mirror image differs
    mirrored = flipped.embed(np.ascontiguousarray(faces[:, :, ::-1]), np.ascontiguousarray(maps[:, :, ::-1]))
    assert torch.allclose(flipped.embed(faces, maps), mirrored, atol=1e-5)
    assert not torch.allclose(plain.embed(faces, maps), plain.embed(np.ascontiguousarray(faces[:, :, ::-1]),
                                                                      np.ascontiguousarray(maps[:, :, ::-1])), atol=1e-5)


def test_test_time_flip_recalibrates_without_training(trained, tmp_path):
    "`test_time_flip` on a finished run: same run folder, nothing retrained, thresholds measured with the flip, flip by default."
    import shutil
    from g2d.model import calibrate_stage, run_folder

    cfg, run, model = trained
    flipping = cfg.replace(test_time_flip=True)
    assert run_folder(flipping) == run_folder(cfg)
    shutil.copytree(run, tmp_path / "run")
    flipped = train_g2d(flipping, tmp_path / "run", progress=False)
    assert flipped.flip_average and load_g2d(tmp_path / "run" / "model").flip_average and not model.flip_average
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, flipped.state_dict()[name]), name
    faces, zeros = training_faces(cfg).held.images[:4], np.zeros((4, 32, 32))
    assert torch.allclose(flipped.embed(faces, zeros), model.embed(faces, zeros, flip_average=True), atol=1e-6)
    assert torch.allclose(flipped.embed(faces, zeros, flip_average=False), model.embed(faces, zeros), atol=1e-6)
    thresholds = flipped.metadata["thresholds"]
    assert calibrate_stage(flipping, flipped, training_faces(cfg))["0.01"] == thresholds["0.01"]
    assert thresholds["0.01"] != model.metadata["thresholds"]["0.01"]
    # `noflip:` gives the model trained without the flip back, to the embedding cache's fingerprint
    assert load_model("noflip:" + str(tmp_path / "run" / "model")).fingerprint() == load_model(str(run / "model")).fingerprint()


def _frontal_landmarks(size):
    from g2d.synthetic import SyntheticFaces

    faces = SyntheticFaces(1, 1, size=size, seed=0)
    return faces.landmarks68(0)


def test_verify_decision(trained):
    _, _, model = trained
    threshold = model.metadata["thresholds"]["0.001"]["threshold"]
    assert verify_decision(model, threshold + 1e-6, 0.001)["same_person"]
    assert not verify_decision(model, threshold - 1e-3, 0.001)["same_person"]
    with pytest.raises(G2DError, match="no threshold"):
        verify_decision(model, 0.5, 0.2)


def _g2d(*args, env=None):
    return subprocess.run([sys.executable, "-c", "import sys; from g2d.cli import main; sys.exit(main(sys.argv[1:]))",
                           *args], capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=600)


def test_cli_train_then_verify_and_embed(tmp_path, lfw_photos):
    overrides = [f"{k}={json.dumps(v)}" for k, v in TINY.items()] + ['mask_templates="builtin"']
    done = _g2d("train", "--profile", "smoke", "--run-dir", str(tmp_path / "run"), "--json", "--set", *overrides,
                env={"G2D_CACHE": str(tmp_path / "cache")})
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["model"] == str(tmp_path / "run" / "model")
    a, b = lfw_photos
    verified = _g2d("verify", str(a), str(b), "--model", result["model"], "--fmr", "0.01", "--json")
    assert verified.returncode == 0, verified.stderr
    decision = json.loads(verified.stdout)
    assert -1 <= decision["similarity"] <= 1 and isinstance(decision["same_person"], bool)
    out = tmp_path / "e.npy"
    embedded = _g2d("embed", str(a), str(b), "--model", result["model"], "--out", str(out), "--unmasked")
    assert embedded.returncode == 0, embedded.stderr
    assert np.load(out).shape == (2, 64)
    blank = tmp_path / "blank.png"
    import cv2
    cv2.imwrite(str(blank), np.full((120, 120, 3), 200, np.uint8))
    failed = _g2d("verify", str(a), str(blank), "--model", result["model"])
    assert failed.returncode == 1 and "no face found in" in failed.stderr and "blank.png" in failed.stderr
    wrong = _g2d("verify", str(a), str(b), "--model", str(tmp_path))
    assert wrong.returncode == 1 and str(tmp_path) in wrong.stderr and "g2d models" in wrong.stderr  # not a model
    # the same run folder with another configuration (a bare-string --set) is refused before anything is written
    other = _g2d("train", "--profile", "smoke", "--run-dir", str(tmp_path / "run"), "--set", *overrides,
                 "ablation=G2D[CE]", env={"G2D_CACHE": str(tmp_path / "cache")})
    assert other.returncode == 1 and "ablation" in other.stderr and "--overwrite" in other.stderr, other.stderr
    assert json.loads((tmp_path / "run" / "g2d_config.json").read_text())["ablation"] == "G2D"


def test_train_cli_rejects_bad_arguments_before_training(tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    cases = {("--threads", "-1"): (2, "positive"), ("--threads", "0"): (2, "positive"),
             ("--run-dir", str(a_file)): (1, "is a file"), ("--set", "calibration_pairs=-5"): (1, "calibration_pairs"),
             ("--set", "steps"): (1, "NAME=VALUE")}
    for args, (code, text) in cases.items():
        done = _g2d("train", "--profile", "smoke", *args, env={"G2D_CACHE": str(tmp_path / "cache")})
        assert done.returncode == code and text in done.stderr, (args, done.returncode, done.stderr[-300:])
        assert "Traceback" not in done.stderr
    assert not (tmp_path / "cache").exists()  # nothing trained


def test_embed_reports_and_skips_photos_without_a_face(tmp_path, lfw_photos):
    "Raw photos in: the largest face or every face, crops and maps saved, bad photos reported, the batch goes on."
    import cv2

    a, b = lfw_photos
    blank, corrupt, pair = tmp_path / "blank.png", tmp_path / "corrupt.jpg", tmp_path / "two_people.png"
    cv2.imwrite(str(blank), np.full((120, 120, 3), 200, np.uint8))
    corrupt.write_bytes(b"\xff\xd8\xff" + b"0" * 100)
    cv2.imwrite(str(pair), np.concatenate([cv2.imread(str(a)), cv2.imread(str(b))], axis=1))
    out, crops = tmp_path / "e.npy", tmp_path / "crops"
    done = _g2d("embed", str(a), str(blank), str(corrupt), str(pair), "--all-faces", "--out", str(out),
                "--save-crops", str(crops), "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["photos"] == 4 and report["not_found"] == [str(blank)] and list(report["failed"]) == [str(corrupt)]
    assert [f["photo"] for f in report["faces"]] == [str(a), str(pair), str(pair)]
    assert report["embedded"] == 3 and report["detector"] == "yunet>hog" and report["estimator"] == "learned"
    from g2d.model import load_pretrained

    assert report["photos_per_second"] > 0 and np.load(out).shape == (3, load_pretrained().embedding_dim)
    assert len(list(crops.glob("*_crop.png"))) == 3 and len(list(crops.glob("*_map.png"))) == 3
    largest = json.loads(_g2d("embed", str(pair), "--json", "--unmasked", "--threads", "1").stdout)
    assert largest["embedded"] == 1 and largest["estimator"] == "none"
    bad_threads = _g2d("embed", str(pair), "--threads", "0")
    assert bad_threads.returncode == 2 and "--threads must be a positive integer" in bad_threads.stderr
    text = _g2d("embed", str(a), str(blank))
    assert text.returncode == 0 and "no face found in 1: " in text.stdout and "blank.png" in text.stdout
    assert _g2d("embed", str(blank)).returncode == 1  # nothing embedded at all
    folder_out = _g2d("embed", str(a), "--out", str(tmp_path))
    assert folder_out.returncode == 1 and "is a folder" in folder_out.stderr
    verified = _g2d("verify", str(a), str(b), "--fmr", "0.01")
    assert verified.returncode == 0 and "faces found by yunet and yunet" in verified.stdout, verified.stdout
    assert "occlusion estimator learned" in verified.stdout
    grabcut = json.loads(_g2d("verify", str(a), str(b), "--estimator", "grabcut", "--json").stdout)
    assert grabcut["estimator"] == "grabcut" and grabcut["detectors"] == ["yunet", "yunet"]


@pytest.fixture
def lfw_photos(real_data_root):
    lfw = real_data_root / "lfw"
    if not (lfw / "George_W_Bush").is_dir():
        pytest.skip(f"no LFW under {real_data_root}: the photo CLI test needs real face photos")
    return lfw / "George_W_Bush" / "George_W_Bush_0001.jpg", lfw / "George_W_Bush" / "George_W_Bush_0002.jpg"


def test_centred_teacher_targets():
    from g2d.model import centred

    g = torch.Generator().manual_seed(0)
    raw = torch.nn.functional.normalize(torch.randn(200, 16, generator=g) * 0.2 + 1.0, dim=1)  # one shared direction
    assert float((raw[:100] * raw[100:]).sum(1).mean()) > 0.9
    c = centred(raw)
    assert torch.allclose(c.norm(dim=1), torch.ones(200), atol=1e-5)
    assert float((c[:100] * c[100:]).sum(1).mean().abs()) < 0.1  # the common direction is gone
    assert G2DConfig().centre_teacher and G2DConfig.from_profile("cpu").first_order == "regress"
    assert G2DConfig.from_profile("gpu").first_order == "ce"


def test_run_folder_follows_the_stage_profiles(monkeypatch):
    from g2d.model import run_folder
    from g2d.reformer import ReformerConfig

    cfg = G2DConfig(mask_templates="builtin", **TINY)
    before = run_folder(cfg)
    assert run_folder(G2DConfig(mask_templates="builtin", **TINY)) == before
    monkeypatch.setitem(ReformerConfig.profiles, "smoke", {**ReformerConfig.profiles["smoke"], "lr_step": 7})
    assert run_folder(cfg) != before  # a changed profile default of a stage is a new run, never a stale resume


def test_loader_workers_give_the_same_batches_and_count_unmaskable_faces():
    "num_workers changes who draws the masks, not the batches; failures drawn in workers are counted here too."
    from g2d.reformer import _loader

    from g2d.inpainting_training import FaceArrays

    train = training_faces(G2DConfig()).train
    landmarks = train.landmarks.copy()
    landmarks[3] = landmarks[3][::-1]  # scrambled landmarks: face 3 cannot carry a mask
    faces = FaceArrays(train.images, landmarks, train.labels)
    runs = {}
    for workers in (0, 1):
        data = MaskedTriplets(faces, seed=2)
        batches = [b for epoch in (0, 1) for b in _loader(data, 8, 2, epoch, num_workers=workers)]
        runs[workers] = (batches, data.unmaskable)
    (plain, unmaskable), (parallel, unmaskable_in_workers) = runs[0], runs[1]
    assert len(plain) == len(parallel) > 0
    for a, b in zip(plain, parallel):
        assert all(torch.equal(u, v) for u, v in zip(a, b))
    assert unmaskable_in_workers == unmaskable >= 1


def test_released_model_embeds_real_masked_photos(real_data_root):
    "The released weights embed raw photos of masked people through the 'photos' detection preset (YuNet first)."
    from g2d.model import embed_photos, is_g2d_checkpoint, load_pretrained, pretrained_folder

    folder = real_data_root / "real_masked" / "with_mask"
    if not folder.is_dir() or not is_g2d_checkpoint(pretrained_folder()):
        pytest.skip("needs real_masked under the data root and the released weights")
    photos = [folder / "0129.jpg", folder / "0323.jpg"]  # HOG and MMOD find no face in the first
    model = load_pretrained()
    embeddings = embed_photos(model, photos)
    assert embeddings.shape == (2, model.embedding_dim) and torch.allclose(embeddings.norm(dim=1), torch.ones(2), atol=1e-5)


def test_overlapped_photo_batches_equal_find_then_embed(real_data_root, tmp_path):
    "`g2d embed`'s overlapped chunks give the faces, maps and embeddings of find_faces then embed_faces, in order."
    from g2d.model import embed_faces, embed_photo_batches, find_faces, load_pretrained

    folder = real_data_root / "real_masked" / "with_mask"
    if not folder.is_dir():
        pytest.skip("needs real_masked under the data root")
    photos = sorted(folder.glob("*.jpg"))[:20] + [tmp_path / "missing.jpg"]
    model = load_pretrained()
    faces = find_faces(photos, model.image_size)
    embeddings, maps = embed_faces(model, faces)
    chunked, chunked_embeddings, chunked_maps = embed_photo_batches(model, photos, chunk=6)
    assert chunked.sources == faces.sources and chunked.not_found == faces.not_found
    assert list(chunked.failed) == [str(tmp_path / "missing.jpg")] == list(faces.failed)
    assert np.array_equal(chunked_maps, maps) and torch.allclose(chunked_embeddings, embeddings, atol=1e-6)
