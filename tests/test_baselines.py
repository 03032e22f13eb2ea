"""The baselines (g2d.recognizers, g2d.finetuned, g2d.baselines): losses against direct formulas, every registered
baseline trained in the smoke profile and embedding masked and unmasked faces, resume, registry behaviour, g2d's
learned inpainters (G2D's own encoders) in kind II, baselines as `g2d evaluate` models."""
import numpy as np
import pytest
import torch

from g2d.baselines import (BASELINES, LEARNED_INPAINTERS, RECOGNIZERS, BaselineEmbedder, GenerativeInpainter,
                           InpaintThenRecognize, OpenCVInpainter, build_inpainter, embed_faces, get_baseline,
                           register_inpainter, train_baseline)
from g2d.core import ConfigError, G2DError
from g2d.evaluate import EvaluateConfig, FaceEmbedder, dlib_chip_crop, evaluate, load_model
from g2d.finetuned import batch_negatives, maskinv_loss, self_restrained_triplet_loss, triplet_loss
from g2d.masks import MaskedFace, write_test_templates
from g2d.recognizers import (ArcFaceHead, BaselineConfig, ElasticArcFaceHead, MaskedFaceDataset, train_recognizer,
                             training_faces, training_masker)

torch.set_num_threads(1)


def _unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _cosines(emb, weight):
    return _unit(emb) @ _unit(weight).T


@pytest.fixture(scope="module")
def faces():
    "Eight synthetic faces: clean, masked (g2d.masks' built-in masks) and their occlusion maps."
    cfg = BaselineConfig.from_profile("smoke", n_identities=4, images_per_identity=2, mask_templates="builtin")
    items = [MaskedFaceDataset(training_faces(cfg), training_masker(cfg), flip=False)[i] for i in range(8)]
    return {k: torch.stack([it[k] for it in items]) for k in ("clean", "masked", "mask")}


def test_arcface_logits_match_the_formula():
    torch.manual_seed(0)
    emb, labels = torch.randn(7, 6, dtype=torch.float64), torch.tensor([0, 1, 2, 3, 0, 1, 2])
    head = ArcFaceHead(6, 4, scale=30.0, margin=0.5).double()
    cos = _cosines(emb.numpy(), head.weight.detach().numpy())
    expected = 30.0 * cos
    rows = np.arange(7)
    expected[rows, labels.numpy()] = 30.0 * np.cos(np.arccos(cos[rows, labels.numpy()]) + 0.5)
    assert np.allclose(head(emb, labels).detach().numpy(), expected, atol=1e-6)
    assert np.allclose(head(emb).detach().numpy(), 30.0 * cos, atol=1e-6)


def test_elasticface_draws_normal_margins_per_sample():
    torch.manual_seed(0)
    emb, labels = torch.randn(5, 6, dtype=torch.float64), torch.tensor([0, 1, 2, 0, 1])
    head = ElasticArcFaceHead(6, 3, scale=64.0, margin=0.5, std=0.05).double()
    margins = torch.tensor([0.41, 0.5, 0.62, 0.55, 0.47], dtype=torch.float64)
    cos = _cosines(emb.numpy(), head.weight.detach().numpy())
    expected = 64.0 * cos
    rows = np.arange(5)
    expected[rows, labels.numpy()] = 64.0 * np.cos(np.arccos(cos[rows, labels.numpy()]) + margins.numpy())
    assert np.allclose(head(emb, labels, margins).detach().numpy(), expected, atol=1e-6)
    drawn = head.margins(torch.zeros(200_000, dtype=torch.long), torch.zeros(200_000, 3))
    assert abs(drawn.mean().item() - 0.5) < 1e-3 and abs(drawn.std().item() - 0.05) < 1e-3
    # sigma = 0 is ArcFace
    arc = ArcFaceHead(6, 3, 64.0, 0.5).double()
    arc.load_state_dict(head.state_dict())
    zero = ElasticArcFaceHead(6, 3, 64.0, 0.5, std=0.0).double()
    zero.load_state_dict(head.state_dict())
    assert torch.allclose(zero(emb, labels), arc(emb, labels))


@pytest.mark.parametrize("near", [False, True])
def test_self_restrained_triplet_loss_matches_the_formula(near):
    rng = np.random.default_rng(3)
    p, n = rng.normal(size=(10, 8)), rng.normal(size=(10, 8))
    a = (n if near else -n) + 0.2 * rng.normal(size=(10, 8))
    loss, parts = self_restrained_triplet_loss(*(torch.tensor(t) for t in (a, p, n)), margin=2.0)
    a, p, n = _unit(a), _unit(p), _unit(n)
    d_ap, d_an, d_pn = ((a - p) ** 2).sum(1), ((a - n) ** 2).sum(1), ((p - n) ** 2).sum(1)
    restrained = d_an.mean() >= d_pn.mean()
    expected = np.maximum(d_ap + 2.0 - (d_pn.mean() if restrained else d_an), 0).mean()
    assert restrained == (not near) and parts["restrained"] == float(restrained)
    assert np.isclose(loss.item(), expected)
    assert np.isclose(parts["d_ap"], d_ap.mean()) and np.isclose(parts["d_pn"], d_pn.mean())
    plain = np.maximum(d_ap - d_an + 2.0, 0).mean()
    assert np.isclose(triplet_loss(*(torch.tensor(t) for t in (a, p, n))).item(), plain)


def test_maskinv_loss_matches_the_formula():
    torch.manual_seed(1)
    s, t, logits, y = torch.randn(6, 8), torch.randn(6, 8), torch.randn(6, 5), torch.tensor([0, 4, 2, 2, 1, 3])
    loss, parts = maskinv_loss(s, t, logits, y, weight=100.0)
    lg = logits.numpy().astype(np.float64)
    ce = np.mean(np.log(np.exp(lg).sum(1)) - lg[np.arange(6), y.numpy()])
    kd = ((_unit(s.numpy()) - _unit(t.numpy())) ** 2).mean()
    assert np.isclose(loss.item(), ce + 100.0 * kd, atol=1e-5)
    assert np.isclose(parts["ce"], ce, atol=1e-5) and np.isclose(parts["kd"], kd, atol=1e-7)


def test_batch_negatives_pick_another_identity():
    labels = torch.tensor([3, 3, 1, 1, 1, 7])
    for seed in range(5):
        assert (labels[batch_negatives(labels, torch.Generator().manual_seed(seed))] != labels).all()


@pytest.mark.parametrize("templates", ["builtin", "folder"])
def test_training_masker_draws_g2d_masks_deterministically(templates, tmp_path):
    folder = str(write_test_templates(tmp_path / "templates")) if templates == "folder" else "builtin"
    cfg = BaselineConfig.from_profile("smoke", n_identities=2, images_per_identity=2, mask_templates=folder,
                                      mask_kinds=["surgical", "cloth"])
    assert BaselineConfig.from_params(cfg.to_params()) == cfg and cfg.mask_kinds == ("surgical", "cloth")
    masker = training_masker(cfg)
    assert (masker.templates is None) == (templates == "builtin") and masker.kinds == ("surgical", "cloth")
    faces = training_faces(cfg)
    image, landmarks, _ = faces[0]
    drawn = masker(image, landmarks, np.random.default_rng([0, 1, 2]))
    again = masker(image, landmarks, np.random.default_rng([0, 1, 2]))
    assert isinstance(drawn, MaskedFace) and drawn.spec.kind in ("surgical", "cloth") and drawn.occlusion.any()
    assert np.array_equal(drawn.image, again.image) and np.array_equal(drawn.occlusion, again.occlusion)
    assert (templates == "folder") == (drawn.template is not None and not drawn.template.startswith("builtin:"))
    changed = (drawn.image != image).any(-1)
    assert not changed[drawn.alpha == 0].any() and changed[drawn.occlusion > 0].mean() > 0.9
    # dataset items: the same for the same (seed, epoch, index), new masks in another epoch
    item = lambda epoch, i: MaskedFaceDataset(faces, masker, seed=3, epoch=epoch, flip=False)[i]["masked"]
    assert all(torch.equal(item(0, i), item(0, i)) for i in range(len(faces)))
    assert any(not torch.equal(item(0, i), item(1, i)) for i in range(len(faces)))
    # a face whose landmarks cannot carry a mask stays unmasked instead of stopping the run
    left = masker(image, np.repeat(landmarks[:1], 68, 0), np.random.default_rng(0))
    assert not left.occlusion.any() and np.array_equal(left.image, image) and masker.failures == 1


def test_opencv_inpainters_change_only_the_occluded_pixels(faces):
    outside = 1 - faces["mask"]
    changed = ((faces["masked"] - faces["clean"]).abs().sum(1, keepdim=True) > 0).float()
    assert (changed * faces["mask"]).sum() > 0.9 * faces["mask"].sum() > 0
    for method in ("telea", "ns"):
        restored = OpenCVInpainter(method)(faces["masked"], faces["mask"])
        assert torch.equal(restored * outside, faces["masked"] * outside)
        inside = lambda y: ((y - faces["clean"]).abs() * faces["mask"]).sum()
        assert inside(restored) < inside(faces["masked"])


def test_config_profiles_and_errors():
    cpu = BaselineConfig.from_profile("cpu")
    assert BaselineConfig.from_params(cpu.to_params()) == cpu and cpu.dataset == "celeba"
    with pytest.raises(ConfigError):
        BaselineConfig.from_profile("smoke", head="softmax")
    with pytest.raises(ConfigError):
        get_baseline("no-such-baseline")
    with pytest.raises(ConfigError):
        BaselineConfig.from_profile("smoke", mask_kinds=["scarf"])


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    "The smoke configuration all baselines train with, sharing one run folder (kind I trained once)."
    return BaselineConfig.from_profile("smoke", n_identities=8, images_per_identity=4, steps=12, finetune_steps=6,
                                       run_dir=str(tmp_path_factory.mktemp("baselines")),
                                       cache_dir=str(tmp_path_factory.mktemp("cache")))  # G2D's encoders train here


@pytest.fixture(scope="module")
def chips(faces):
    "The same faces at dlib's chip size (150 px), for the baselines evaluated on dlib chips."
    return {k: torch.nn.functional.interpolate(v, size=(150, 150), mode="nearest") for k, v in faces.items()}


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_every_baseline_trains_in_smoke_and_embeds(name, smoke_run, faces, chips):
    model = train_baseline(name, smoke_run)
    assert model.train_seconds >= 0
    faces = chips if BASELINES[name].crop == "dlib_chip" else faces  # each baseline its evaluation crop's size
    clean = embed_faces(name, model, faces["clean"])
    masked = embed_faces(name, model, faces["masked"], faces["mask"])
    assert clean.shape == masked.shape and clean.shape[0] == 8
    assert torch.allclose(clean.norm(dim=1), torch.ones(8), atol=1e-4)
    assert torch.allclose(masked.norm(dim=1), torch.ones(8), atol=1e-4)
    # the same faces as uint8 H x W x 3 arrays give (nearly) the same embeddings
    as_uint8 = (faces["clean"].permute(0, 2, 3, 1) * 255).round().to(torch.uint8).numpy()
    assert (BaselineEmbedder(name, model).embed(as_uint8) * clean).sum(1).min() > 0.9


def test_recognizer_resumes_exactly(tmp_path):
    cfg = BaselineConfig.from_profile("smoke", n_identities=4, images_per_identity=4, batch_size=8, steps=6,
                                      checkpoint_every=3, run_dir=str(tmp_path))
    whole = train_recognizer(cfg)
    (final,) = list(tmp_path.glob("*/step_000006.pt"))
    final.unlink()
    resumed = train_recognizer(cfg)
    assert len(resumed.training_log.rows) == 6
    for a, b in zip(whole.state_dict().values(), resumed.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-6)


def test_registering_an_inpainter_adds_its_kind_two_baselines(faces):
    calls = []

    def grey(x, m):
        calls.append(len(x))
        return torch.where(m > 0.5, torch.full_like(x, 0.5), x)

    try:
        register_inpainter("grey-test", lambda cfg, geometry: grey)
        names = {f"grey-test+{r}" for r in RECOGNIZERS}
        assert names <= set(BASELINES) and all(BASELINES[n].kind == "II" for n in names)
        model = InpaintThenRecognize(grey, torch.nn.Identity(), lambda x: x.flatten(1))
        out = model.embed(faces["masked"], faces["mask"] * torch.tensor([1.0] * 4 + [0.0] * 4)[:, None, None, None])
        assert calls == [4]  # only the faces with occluded pixels are inpainted
        assert out.shape == (8, 3 * 64 * 64)
    finally:
        from g2d import baselines

        baselines.INPAINTERS.pop("grey-test", None)
        for name in [n for n in BASELINES if n.startswith("grey-test+")]:
            BASELINES.pop(name)


def _g2d(*args):
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    command = [sys.executable, "-c", "import sys; from g2d.cli import main; sys.exit(main())", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)


def test_cli_lists_and_trains_baselines(tmp_path):
    import json

    listing = _g2d("baselines", "--json")
    assert listing.returncode == 0, listing.stderr
    assert {row["name"] for row in json.loads(listing.stdout)} == set(BASELINES)
    done = _g2d("baselines", "arcface", "--steps", "2", "--run-dir", str(tmp_path), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["baseline"] == "arcface" and list(tmp_path.glob("recognizer-clean-*/step_000002.pt"))
    assert _g2d("baselines", "no-such-baseline").returncode == 1


@pytest.mark.parametrize("name", sorted(LEARNED_INPAINTERS))
def test_learned_inpainters_are_g2ds_encoders_in_kind_two(name, smoke_run, faces):
    from pathlib import Path

    from g2d.model import G2DConfig, encoder_folder, training_faces as g2d_training_faces

    assert {f"{name}+dlib", f"{name}+arcface"} <= set(BASELINES)
    assert all(BASELINES[f"{name}+{r}"].kind == "II" for r in ("dlib", "arcface"))
    fill = build_inpainter(name, smoke_run)
    assert isinstance(fill, GenerativeInpainter) and fill.image_size == 32  # smoke encoder; the faces are 64 px
    out = fill(faces["masked"], faces["mask"])
    assert out.shape == faces["masked"].shape and out.dtype == faces["masked"].dtype
    assert out.min() >= 0 and out.max() <= 1 and torch.isfinite(out).all()
    hole = faces["mask"].expand_as(out) > 0.5
    assert torch.equal(out[~hole], faces["masked"][~hole])  # known pixels: exactly kept
    assert (out[hole] != faces["masked"][hole]).float().mean() > 0.5  # masked pixels: filled by the model
    assert torch.equal(fill(faces["clean"], torch.zeros_like(faces["mask"])), faces["clean"])
    # the encoder is the one G2D trains for this profile and variant (cached by config hash), trained once
    g2d_cfg = G2DConfig.from_profile("smoke", variant=LEARNED_INPAINTERS[name], cache_dir=smoke_run.cache_dir)
    folder = encoder_folder(g2d_cfg, g2d_training_faces(g2d_cfg))
    variant = LEARNED_INPAINTERS[name]
    assert list((Path(smoke_run.cache_dir) / "encoders").glob(f"synthetic-{variant}-*")) == [folder]
    built = (folder / "summary.json").stat().st_mtime_ns
    again = build_inpainter(name, smoke_run)
    assert (folder / "summary.json").stat().st_mtime_ns == built
    assert all(torch.equal(a, b) for a, b in zip(fill.state_dict().values(), again.state_dict().values()))
    # as kind II: only the faces with occluded pixels are inpainted
    model = train_baseline(f"{name}+arcface", smoke_run)
    assert isinstance(model.inpainter, GenerativeInpainter)
    assert torch.allclose(embed_faces(f"{name}+arcface", model, faces["clean"], torch.zeros_like(faces["mask"])),
                          model.recognizer.embed(faces["clean"]), atol=1e-5)


@pytest.fixture(scope="module")
def eval_cache(tmp_path_factory):
    "A cache root for the evaluation tests: baselines, encoders, face caches and embeddings, never in the repo."
    return tmp_path_factory.mktemp("eval-cache")


def _synthetic_photo():
    from g2d.synthetic import SyntheticFaces

    photo = SyntheticFaces(1, 1, size=112, seed=0)
    image, landmarks = photo.render(0)[0], photo.landmarks68(0)
    occlusion = np.zeros(image.shape[:2], bool)
    occlusion[60:100, 20:92] = True
    return image, landmarks, occlusion


def test_load_model_gives_a_baseline_face_embedder(eval_cache):
    config = EvaluateConfig(cache_dir=str(eval_cache))
    model = load_model("baseline:arcface@smoke", config)
    assert isinstance(model, FaceEmbedder) and isinstance(model, BaselineEmbedder)
    assert model.name == "baseline:arcface@smoke" and not model.requires_occlusion
    assert list((eval_cache / "baselines-smoke").glob("recognizer-clean-*/step_000030.pt"))  # as g2d baselines does
    image, landmarks, occlusion = _synthetic_photo()
    face, occluded = model.crop(image, landmarks, occlusion)
    assert face.shape == (64, 64, 3) and face.dtype == np.uint8 and occluded.shape == (64, 64) and occluded.any()
    faces = np.stack([face, face[:, ::-1]])
    embeddings = model.embed(faces)
    assert embeddings.shape == (2, 128) and embeddings.device.type == "cpu"
    assert torch.allclose(embeddings.norm(dim=1), torch.ones(2), atol=1e-5)
    # a second load reuses the checkpoint: same weights, same fingerprint; changed weights, another fingerprint
    again = load_model("baseline:arcface@smoke", config)
    assert again.fingerprint() == model.fingerprint()
    with torch.no_grad():
        parameter = next(again.model.parameters())
        parameter.add_(0.01)
        assert again.fingerprint() != model.fingerprint()
        parameter.sub_(0.01)


def test_baseline_crops_and_occlusion_needs():
    image, landmarks, occlusion = _synthetic_photo()
    chip, chip_occlusion = dlib_chip_crop(image, landmarks, occlusion)
    for name in ("dlib", "telea+dlib", "ict+dlib", "srt-dlib"):
        face, occluded = BaselineEmbedder(name, None).crop(image, landmarks, occlusion)
        assert np.array_equal(face, chip) and np.array_equal(occluded, chip_occlusion), name
    for name, size in (("ict+arcface", 64), ("masked-trained", 64), ("maskinv", 112)):
        face, _ = BaselineEmbedder(name, None, image_size=size).crop(image, landmarks)
        assert face.shape == (size, size, 3), name
    reads = {name for name in BASELINES if BaselineEmbedder(name, None).requires_occlusion}
    assert reads == {n for n, b in BASELINES.items() if b.kind == "II"} | {"srt", "srt-dlib", "inpainted-trained"}


@pytest.mark.parametrize("spec, error", [("baseline:no-such-baseline", ConfigError),
                                         ("baseline:arcface@huge", ConfigError)])
def test_bad_baseline_specs_are_clear_errors(spec, error):
    with pytest.raises(error):
        load_model(spec)


def test_evaluate_a_baseline_on_real_lfw(real_data_root, eval_cache):
    if not (real_data_root / "lfw").is_dir():
        pytest.skip(f"needs LFW under {real_data_root} (G2D_DATA)")
    spec = "baseline:masked-trained@smoke"
    report = evaluate(spec, "lfw", real_data_root, "all", "smoke", max_pairs=20, cache_dir=eval_cache,
                      progress=False)
    assert report["model"] == spec and set(report["settings"]) == {"UMR-UMP", "UMR-MP", "MR-MP"}
    assert report["counts"]["pairs_evaluated"] == 20 and report["counts"]["pairs"] == 6000
    for metrics in report["settings"].values():
        assert metrics["n_genuine"] + metrics["n_impostor"] == 20 and 0 <= metrics["ACC"] <= 1
    assert list((eval_cache / "baselines-smoke").glob("recognizer-masked-*"))
    assert report["model_fingerprint"] == load_model(spec, EvaluateConfig(cache_dir=str(eval_cache))).fingerprint()


def test_cli_evaluates_a_baseline(tmp_path):
    import json

    from g2d.datasets import write_example_layout

    write_example_layout("lfw", tmp_path / "data")
    root, cache = str(tmp_path / "data"), str(tmp_path / "cache")
    done = _g2d("evaluate", "--model", "baseline:telea+arcface@smoke", "--dataset", "lfw", "--root", root,
                "--setting", "all", "--cache", cache, "--no-progress", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["model"] == "baseline:telea+arcface@smoke"
    assert set(report["settings"]) == {"UMR-UMP", "UMR-MP", "MR-MP"}
    assert list((tmp_path / "cache" / "baselines-smoke").glob("recognizer-clean-*"))  # trained under --cache
    failed = _g2d("evaluate", "--model", "baseline:no-such-baseline", "--dataset", "lfw", "--root", root,
                  "--cache", cache)
    assert failed.returncode == 1 and "no-such-baseline" in failed.stderr


def test_recognizer_batches_do_not_depend_on_loader_workers():
    "BaselineConfig.num_workers draws the masked faces in a forked worker: the same batches as without."
    from g2d.recognizers import masked_face_batches

    runs = {}
    for workers in (0, 1):
        cfg = BaselineConfig.from_profile("smoke", n_identities=4, images_per_identity=4, batch_size=4,
                                          num_workers=workers)
        stream = masked_face_batches(cfg)(2)  # from step 2: resuming skips the same batches
        runs[workers] = [next(stream) for _ in range(5)]
    for a, b in zip(runs[0], runs[1]):
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ConfigError, match="num_workers"):
        masked_face_batches(BaselineConfig.from_profile("smoke", num_workers=-1))(0).__next__()


def test_srt_dlib_trains_on_the_dlib_chips_it_is_evaluated_on(smoke_run):
    from g2d.baselines import crop_geometry
    from g2d.recognizers import masked_face_batches, run_folder

    chip = crop_geometry("dlib_chip", smoke_run.image_size)
    assert BaselineEmbedder("srt-dlib", None).geometry() == chip
    batch = next(masked_face_batches(smoke_run, crop_geometry=chip)(0))
    assert batch["clean"].shape[-2:] == (150, 150) and batch["mask"].shape[-2:] == (150, 150)
    assert (batch["mask"].flatten(1).mean(1) > 0.05).float().mean() > 0.5  # masks drawn on the photos, cropped alike
    model = train_baseline("srt-dlib", smoke_run)
    from g2d.finetuned import SRT_FIELDS
    folder = run_folder(smoke_run, "srt-dlib", SRT_FIELDS, chip)
    assert folder != run_folder(smoke_run, "srt-dlib", SRT_FIELDS)  # never resumes a template-trained module
    assert (folder / "log.jsonl").is_file() and len(model.training_log.rows) == smoke_run.finetune_steps


def test_learned_inpainters_frame_dlib_chips_into_their_template(smoke_run, chips):
    from g2d.baselines import crop_geometry

    framed = train_baseline("ict+dlib", smoke_run).inpainter
    resizing = train_baseline("ict+arcface", smoke_run).inpainter
    assert framed.frame is not None and resizing.frame is None
    assert "frame_matrix" in framed.state_dict() and "frame_matrix" not in resizing.state_dict()
    assert framed.geometry == crop_geometry("dlib_chip", smoke_run.image_size)
    out = framed(chips["masked"], chips["mask"])
    hole = chips["mask"].expand_as(out) > 0.5
    assert torch.equal(out[~hole], chips["masked"][~hole]) and (out[hole] != chips["masked"][hole]).float().mean() > 0.5
    with pytest.raises(G2DError):
        framed(torch.zeros(2, 3, 64, 64), torch.ones(2, 1, 64, 64))
