"""Diagnostics behind two statements of `nbs/10c_baselines.ipynb` ("Measured"), on CelebA faces only (never LFW):

- `srt-dlib-gap`: on CelebA training faces cut as dlib chips and masked as in training, the mean squared distance
  of unit embeddings between a masked face and the same face unmasked, for dlib alone and through `srt-dlib`'s
  trained unmasking module, and between unmasked faces of different identities (impostors).
- `framed-inpainting`: L1 inside the mask of g2d's learned inpainters on held-out CelebA faces (G2D's encoder
  split) cut as dlib chips: the chip warped into the model's template frame (`template_frame`, the default) vs
  the chip resized to the model's size.

Both use the `cpu` profile's trained models under the cache root (trained there first when missing, as
`g2d reproduce --profile cpu` would). Run:
  PYTHONPATH=. python benchmarks/diagnose_baselines.py srt-dlib-gap --data ../shared/data --cache runs/cache
  PYTHONPATH=. python benchmarks/diagnose_baselines.py framed-inpainting --data ../shared/data --cache runs/cache
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
import torch.nn.functional as F

from g2d.baselines import GenerativeInpainter, baseline_run_dir, crop_geometry, generative_inpainter, train_baseline
from g2d.recognizers import BaselineConfig


def srt_dlib_gap(cfg: BaselineConfig, batches: int = 4) -> dict:
    "Mean squared distances of unit embeddings on `batches` training batches of dlib chips (see the module doc)."
    from g2d.finetuned import batch_negatives
    from g2d.recognizers import masked_face_batches

    model = train_baseline("srt-dlib", cfg)
    stream = masked_face_batches(cfg, crop_geometry=crop_geometry("dlib_chip", cfg.image_size))(0)
    distance = lambda a, b: (F.normalize(a, dim=1) - F.normalize(b, dim=1)).pow(2).sum(1).mean().item()
    rows = []
    for _, batch in zip(range(batches), stream):
        with torch.no_grad():
            masked, clean = model.recognizer(batch["masked"]), model.recognizer(batch["clean"])
            unmasked = model.unmasking(masked)
        impostors = clean[batch_negatives(batch["label"], torch.Generator().manual_seed(0))]
        rows.append((distance(masked, clean), distance(unmasked, clean), distance(clean, impostors)))
    dlib_alone, through_module, impostor = np.mean(rows, 0)
    return {"faces": batches * cfg.batch_size, "d_dlib_masked_clean": round(float(dlib_alone), 4),
            "d_unmasking_module_clean": round(float(through_module), 4), "d_clean_impostor": round(float(impostor), 4)}


def framed_inpainting(cfg: BaselineConfig, count: int = 500, seed: int = 0) -> dict:
    "L1 inside the mask, framed vs resized, of each learned inpainter on `count` held-out CelebA chips."
    from g2d.align import load_rgb
    from g2d.evaluate import crop_by_geometry
    from g2d.model import G2DConfig, training_faces as g2d_training_faces
    from g2d.recognizers import training_masker

    chip = crop_geometry("dlib_chip", cfg.image_size)
    held = g2d_training_faces(G2DConfig.from_profile(cfg.profile, data_root=cfg.data_root,
                                                     cache_dir=cfg.cache_dir)).held_sources
    if not held:
        raise SystemExit("framed-inpainting needs CelebA photos (a data root with celeba), not synthetic faces")
    picked = np.random.default_rng(seed).choice(len(held), min(count, len(held)), replace=False)
    masker = training_masker(cfg)
    clean, masked, holes = [], [], []
    for i in picked:
        _, photo, landmarks = held[i]
        image = load_rgb(photo)
        drawn = masker(image, landmarks, np.random.default_rng([seed + 7, int(i)]))
        clean.append(crop_by_geometry(chip, image, landmarks)[0])
        face, hole = crop_by_geometry(chip, drawn.image, landmarks, drawn.occlusion)
        masked.append(face)
        holes.append(hole)
    as_batch = lambda a: torch.from_numpy(np.stack(a)).permute(0, 3, 1, 2).float() / 255
    clean, masked = as_batch(clean), as_batch(masked)
    holes = torch.from_numpy(np.stack(holes))[:, None].float()
    inside = lambda y: (((y - clean).abs() * holes).sum() / holes.sum() / 3).item()
    result = {"faces": len(picked), "occluded_share": round(holes.mean().item(), 4),
              "l1_masked_not_inpainted": round(inside(masked), 4)}
    for variant in ("g2d", "cnn"):
        framed = generative_inpainter(cfg, variant, chip)
        for way, fill in (("framed", framed), ("resized", GenerativeInpainter(framed.encoder, framed.image_size))):
            began = time.perf_counter()
            out = torch.cat([fill(masked[s:s + 50], holes[s:s + 50]) for s in range(0, len(masked), 50)])
            result[f"l1_{variant}_{way}"] = round(inside(out), 4)
            result[f"seconds_{variant}_{way}"] = round(time.perf_counter() - began, 1)
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=["srt-dlib-gap", "framed-inpainting"])
    parser.add_argument("--data", required=True, help="data root with celeba")
    parser.add_argument("--cache", default=None, help="cache root (default: $G2D_CACHE, else ./runs/cache)")
    parser.add_argument("--profile", default="cpu", choices=["smoke", "cpu", "gpu"])
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    cfg = BaselineConfig.from_profile(args.profile, data_root=args.data, cache_dir=args.cache, progress=False,
                                      run_dir=str(baseline_run_dir(args.profile, args.cache)))
    result = srt_dlib_gap(cfg) if args.what == "srt-dlib-gap" else framed_inpainting(cfg)
    print(json.dumps({"what": args.what, "profile": args.profile, **result}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
