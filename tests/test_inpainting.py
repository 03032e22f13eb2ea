"""The generative encoder (g2d.inpainting) and its training (g2d.inpainting_training)."""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from g2d.core import ConfigError
from g2d.inpainting import (AppearancePrior, ColourPalette, GenerativeEncoder, GuidedUpsampler, InpaintingError,
                            PatchCritic, gradient_penalty)
from g2d.inpainting_training import (InpaintingConfig, evaluate_inpainting, load_faces, load_generative_encoder,
                                     make_mask_sampler, masked_batch, masked_metrics, opencv_inpainter,
                                     save_generative_encoder, train_inpainter)
from g2d.masks import RandomMasker, write_test_templates
from g2d.training import TrainingDiverged

TINY = dict(n_colours=16, grid=8, prior_dim=16, prior_layers=1, prior_heads=2, widths=(4, 8, 8))


def tiny_config(**changes):
    return InpaintingConfig.from_profile("smoke", synthetic_identities=8, synthetic_images_per_identity=4,
                                         batch_size=4, pretrain_steps=6, finetune_steps=4, checkpoint_every=2,
                                         **{**TINY, **changes})


@pytest.fixture(scope="module")
def faces():
    return load_faces(tiny_config())


@pytest.fixture(scope="module")
def batch(faces):
    return masked_batch(faces[1], range(4), make_mask_sampler("mixed"), np.random.default_rng(0))


def fitted(encoder, x):
    if encoder.prior is not None:
        encoder.prior.palette.fit(x.permute(0, 2, 3, 1).numpy(), seed=0)
    return encoder


@pytest.mark.parametrize("variant,channels,size", [("g2d", 8, 8), ("cnn", 8, 8), ("lr", 3, 8)])
def test_encoder_shapes(variant, channels, size, batch):
    x, m = batch
    encoder = fitted(GenerativeEncoder(variant, **TINY), x)
    features = encoder(x, m)
    assert features.shape == (4, channels, size, size)
    assert encoder.feature_channels == channels and encoder.feature_size(32) == size
    completed = encoder.inpaint(x, m)
    assert completed.shape == x.shape
    assert torch.equal(completed * (1 - m), x * (1 - m))


def test_feature_block_selects_the_residual_block(batch):
    x, m = batch
    encoder = fitted(GenerativeEncoder(**TINY, feature_block=2), x)
    inputs = encoder.upsampler_inputs(x, m)
    assert torch.equal(encoder(x, m), encoder.upsampler.features(inputs, 2))
    assert not torch.equal(encoder(x, m), encoder.upsampler.features(inputs, 3))
    with pytest.raises(ConfigError):
        GenerativeEncoder(**TINY, feature_block=9)


def test_bad_inputs_and_unfitted_palette_are_clear_errors(batch):
    x, m = batch
    with pytest.raises(InpaintingError, match="not fitted"):
        GenerativeEncoder(**TINY)(x, m)
    with pytest.raises(InpaintingError, match="N x 1 x S x S"):
        fitted(GenerativeEncoder(**TINY), x)(x, m[:, :, :16])
    with pytest.raises(InpaintingError):
        GuidedUpsampler(6, (4, 8, 8))(torch.zeros(1, 6, 30, 30))


def test_prior_loss_only_on_masked_tokens(batch):
    x, m = batch
    prior = AppearancePrior(16, 8, 16, 1, 2)
    prior.palette.fit(x.permute(0, 2, 3, 1).numpy(), seed=0)
    tokens, token_mask = prior.tokenise(x, m)
    logits = prior(tokens, token_mask)
    expected = nn.functional.cross_entropy(logits[token_mask], tokens[token_mask])
    assert torch.isclose(prior.prior_loss(x, m), expected)
    with pytest.raises(InpaintingError, match="no masked token"):
        prior.prior_loss(x, torch.zeros_like(m))


def test_palette_round_trip_of_its_own_colours():
    palette = ColourPalette(8).fit(np.random.default_rng(0).random((5000, 3)))
    image = palette.colours[torch.arange(8)].T.reshape(1, 3, 2, 4)
    assert torch.equal(palette.encode(image), torch.arange(8).reshape(1, 2, 4))
    assert torch.allclose(palette.decode(palette.encode(image)), image)


@pytest.mark.parametrize("scale", [0.01, 1 / math.sqrt(3 * 8 * 8), 0.5])
def test_gradient_penalty_of_a_linear_critic(scale):
    # f(x) = <w, x>: the input gradient is w everywhere, so the penalty is weight * (||w|| - 1)^2
    critic = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 1, bias=False))
    with torch.no_grad():
        critic[1].weight.fill_(scale)
    real, fake = torch.rand(5, 3, 8, 8), torch.rand(5, 3, 8, 8)
    norm = scale * math.sqrt(3 * 8 * 8)
    assert torch.isclose(gradient_penalty(critic, real, fake, 10.0), torch.tensor(10 * (norm - 1) ** 2),
                         rtol=1e-5, atol=1e-7)


def test_gradient_penalty_reaches_the_critic_parameters():
    critic = PatchCritic((4, 8, 8, 8))
    penalty = gradient_penalty(critic, torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32))
    penalty.backward()
    # every weight gets a gradient (biases of the last layer do not change input gradients)
    weights = [p for name, p in critic.named_parameters() if name.endswith("weight")]
    assert penalty.item() > 0 and all(p.grad is not None and p.grad.abs().sum() > 0 for p in weights)


def test_masks_are_binary_deterministic_and_pluggable(faces, tmp_path):
    train, _ = faces
    folder = write_test_templates(tmp_path / "templates")
    for name in ("strokes", "masks", "mixed"):
        for templates in ("builtin", folder):
            sampler = make_mask_sampler(name, templates)
            a = sampler(train.images[0], train.landmarks[0], np.random.default_rng(3))
            b = sampler(train.images[0], train.landmarks[0], np.random.default_rng(3))
            assert a.shape == (32, 32) and np.array_equal(a, b) and set(np.unique(a)) <= {0.0, 1.0} and a.any()
    with pytest.raises(ConfigError):
        make_mask_sampler("paint")
    with pytest.raises(ConfigError):
        tiny_config(mask_kinds=["scarf"])


def test_face_masks_come_from_g2d_masks_also_on_flipped_faces(faces, tmp_path):
    train, _ = faces
    cfg = tiny_config(mask_templates=str(write_test_templates(tmp_path / "templates")), mask_kinds=["cloth"])
    assert InpaintingConfig.from_params(json.loads(json.dumps(cfg.to_params()))) == cfg
    sampler = cfg.build_mask_sampler("masks")
    assert sampler.templates is not None and sampler.masker.kinds == ("cloth",)
    image, landmarks = train.images[0], train.landmarks[0]
    expected = RandomMasker(sampler.templates, ("cloth",))(image, landmarks, np.random.default_rng(5)).occlusion
    assert np.array_equal(sampler(image, landmarks, np.random.default_rng(5)), expected.astype(np.float32))
    x, m = masked_batch(train, range(16), sampler, np.random.default_rng(0), flip=True)
    assert sampler.masker.failures == 0 and (m.flatten(1).sum(1) > 0).all()
    # a face whose landmarks cannot carry a mask gets strokes instead of stopping the run
    collapsed = np.repeat(landmarks[:1], 68, 0)
    assert sampler(image, collapsed, np.random.default_rng(0)).any() and sampler.masker.failures == 1
    # the evaluation helpers take a sampler as well as a name
    table = evaluate_inpainting({"copy": lambda x, m: x}, faces[1], sampler, n_faces=2)
    assert table.loc["copy", "l1_mean"] == 0


def test_faces_split_by_identity(faces):
    train, held = faces
    assert len(train) + len(held) == 32 and not set(train.labels) & set(held.labels)


def test_masked_metrics_known_values():
    target = np.full((16, 16, 3), 0.5)
    mask = np.zeros((16, 16)); mask[4:8, 4:8] = 1
    predicted = target.copy(); predicted[mask > 0] += 0.1
    scores = masked_metrics(predicted, target, mask)
    assert math.isclose(scores["l1"], 0.1) and math.isclose(scores["psnr"], 20.0)
    assert masked_metrics(target, target, mask)["ssim"] == pytest.approx(1.0)


def test_opencv_inpainting_keeps_known_pixels(batch):
    x, m = batch
    for method in ("telea", "ns"):
        done = opencv_inpainter(method)(x, m)
        assert done.shape == x.shape
        assert (done - x).abs()[(m > 0).expand_as(x) == 0].max() <= 1 / 255 + 1e-6


def test_training_keeps_the_transformer_frozen(tmp_path, faces):
    train_inpainter(tiny_config(), tmp_path, faces=faces, progress=False)
    before, after = load_generative_encoder(tmp_path / "pretrained"), load_generative_encoder(tmp_path / "encoder")
    for (name, a), b in zip(before.prior.state_dict().items(), after.prior.state_dict().values()):
        assert torch.equal(a, b), name
    assert not any(p.requires_grad for p in after.prior.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before.upsampler.parameters(), after.upsampler.parameters()))
    rows = [json.loads(line) for line in (tmp_path / "finetune_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 1, 2, 3] and all(r["gp"] >= 0 for r in rows)
    assert (tmp_path / "pretrain_losses.png").is_file() and (tmp_path / "summary.json").is_file()


def test_save_load_round_trip(tmp_path, batch):
    x, m = batch
    cfg = tiny_config(prior_mode="argmax")
    encoder = fitted(cfg.build_encoder(), x).eval()
    save_generative_encoder(encoder, tmp_path / "e", cfg)
    loaded = load_generative_encoder(tmp_path / "e")
    assert loaded.prior_mode == "argmax" and loaded.config == cfg
    assert torch.equal(loaded(x, m), encoder(x, m)) and torch.equal(loaded.inpaint(x, m), encoder.inpaint(x, m))
    assert load_generative_encoder(tmp_path / "e", prior_mode="expected").prior_mode == "expected"
    with pytest.raises(InpaintingError, match="no saved generative encoder"):
        load_generative_encoder(tmp_path / "missing")


def _final_state(folder):
    return load_generative_encoder(folder).state_dict()


def test_resume_equals_uninterrupted(tmp_path, faces):
    cfg = tiny_config()
    train_inpainter(cfg, tmp_path / "whole", faces=faces, progress=False)
    # interrupted in step 1, then in step 2
    train_inpainter(cfg.replace(pretrain_steps=3, finetune_steps=0), tmp_path / "parts", faces=faces, progress=False)
    train_inpainter(cfg.replace(finetune_steps=2), tmp_path / "parts", faces=faces, progress=False)
    train_inpainter(cfg, tmp_path / "parts", faces=faces, progress=False)
    whole, parts = _final_state(tmp_path / "whole" / "encoder"), _final_state(tmp_path / "parts" / "encoder")
    for name in whole:
        assert torch.equal(whole[name], parts[name]), name
    log = lambda run: [json.loads(l) for l in (tmp_path / run / "finetune_log.jsonl").read_text().splitlines()]
    assert [r["l1"] for r in log("whole")] == [r["l1"] for r in log("parts")]


def test_nan_stops_training_with_a_clear_error(tmp_path, faces):
    with pytest.raises(TrainingDiverged, match=r"step 2: loss '\w+' = nan at step 0"):
        train_inpainter(tiny_config(gp_weight=float("nan")), tmp_path / "nan", faces=faces, progress=False)
    assert load_generative_encoder(tmp_path / "nan" / "pretrained")  # step 1 was kept
    with pytest.raises(TrainingDiverged, match="max_loss"):
        train_inpainter(tiny_config(max_loss=1e-6), tmp_path / "explode", faces=faces, progress=False)


@pytest.mark.parametrize("variant", ["cnn", "lr"])
def test_ablation_variants_train(tmp_path, faces, variant):
    summary = train_inpainter(tiny_config(variant=variant), tmp_path, faces=faces, progress=False)
    encoder = load_generative_encoder(tmp_path / "encoder")
    assert encoder.variant == variant and (encoder.prior is None) == (variant == "cnn")
    assert (summary["final"]["finetune"] is None) == (variant == "lr")


def test_evaluation_table(faces):
    table = evaluate_inpainting({"telea": opencv_inpainter("telea"), "copy": lambda x, m: x}, faces[1], n_faces=3)
    assert list(table.index) == ["telea", "copy"] and table.loc["copy", "l1_mean"] == 0
    assert table.loc["telea", "l1_mean"] > 0 and (table["faces"] == 3).all()


def test_cli_trains_and_evaluates(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-c", "import sys; from g2d.cli import main; sys.exit(main(sys.argv[1:]))", "inpainting"]
    sets = ["--set", "pretrain_steps=2", "finetune_steps=1", "synthetic_identities=8", "batch_size=4",
            *[f"{k}={json.dumps(v)}" for k, v in TINY.items()]]
    done = subprocess.run(command + ["train", "--out", str(tmp_path), "--json", *sets], capture_output=True,
                          text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["config"]["pretrain_steps"] == 2
    done = subprocess.run(command + ["evaluate", "--out", str(tmp_path), "--faces", "4", "--json"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "opencv telea" in json.loads(done.stdout) and (tmp_path / "evaluation.csv").is_file()


def test_cpu_profile_faces_are_celeba_split_by_identity(real_data_root):
    from g2d.facecache import INDEX_FILE, dataset_align_config, face_cache_dir
    from g2d.core import cache_root

    if not (face_cache_dir(cache_root(), "celeba", dataset_align_config("celeba")) / INDEX_FILE).is_file():
        pytest.skip("the CelebA face cache is not built under the cache root")
    train, held = load_faces(InpaintingConfig.from_profile("cpu"))
    assert train.images.shape[1:] == (64, 64, 3) and len(held) > 100
    assert not set(train.labels) & set(held.labels)


def test_iterative_completion_in_one_pass_is_argmax(batch):
    x, m = batch
    prior = AppearancePrior(16, 8, 16, 1, 2)
    prior.palette.fit(x.permute(0, 2, 3, 1).numpy(), seed=0)
    assert torch.equal(prior.complete_iteratively(x, m, tokens_per_step=64), prior.complete(x, m, "argmax"))
    slow = prior.complete_iteratively(x, m, tokens_per_step=1)
    tokens, token_mask = prior.tokenise(x, m)
    known = ~token_mask[:, None].expand_as(slow)
    assert torch.equal(slow[known], prior.palette.decode(tokens)[known])
