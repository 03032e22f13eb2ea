"""Train baselines by name in a profile and verify them on LFW: unmasked pairs and synthetic masked pairs.

Each baseline of `g2d.baselines.BASELINES` is trained with `BaselineConfig.from_profile(profile)` (checkpoints under
the cache root, so an interrupted run resumes), its training time is printed, then it embeds the aligned LFW faces
of the face cache and is scored on the 6,000 LFW pairs in the three settings of `g2d.protocols` (UMR-UMP = the
plain unmasked LFW protocol, UMR-MP, MR-MP), the masked faces made by the training masker of the configuration
(`g2d.recognizers.training_masker`: g2d.masks' synthetic masks, MaskTheFace templates from the data root when it has
them, one draw per image seeded by its index). Scores are cosine similarities;
metrics from `g2d.metrics` (10-fold LFW accuracy; ACC/EER/FDR/FMR100/FMR1000 and thresholds transferred from
UMR-UMP). Training uses CelebA only; no LFW identity is seen in training (CelebA and LFW may share a few
celebrities by name; g2d does not check this).

Run: PYTHONPATH=. G2D_DATA=../shared/data G2D_CACHE=/path/to/cache OMP_NUM_THREADS=1 \
     python benchmarks/bench_baselines.py --profile cpu --baselines arcface [--steps N] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from g2d.baselines import BASELINES, embed_faces, train_baseline
from g2d.core import cache_root, machine_info
from g2d.datasets import open_dataset
from g2d.facecache import dataset_align_config, dataset_face_cache
from g2d.metrics import kfold_accuracy, verification_metrics
from g2d.protocols import SETTINGS, build_protocols, protocol_folds, protocol_images, protocol_labels
from g2d.recognizers import BaselineConfig, training_masker


def lfw_faces(cfg: BaselineConfig):
    "The LFW dataset (pairs) and its aligned face cache at the recognizer's size, rows in the dataset's sample order."
    lfw = open_dataset("lfw", cfg.data_root)
    profile = cfg.profile if cfg.profile != "smoke" else "cpu"
    cache = dataset_face_cache("lfw", cfg.data_root, dataset_align_config("lfw", profile, size=cfg.image_size),
                               cache_dir=cfg.cache_dir, progress=cfg.progress)
    if [str(p) for p, _ in lfw.samples] != list(cache.sources):
        raise SystemExit(f"the LFW cache {cache.path} does not list the dataset's images in order")
    return lfw, cache


def side_images(cache, lfw, sides, masker, seed: int = 0):
    "Faces (N x H x W x 3 uint8) and occlusion maps (N x 1 x H x W) of (ImageRef, masked) sides."
    faces, masks = [], []
    for ref, masked in sides:
        row = lfw.index_of(ref)
        image, landmarks = cache.row(row, "images"), cache.row(row, "landmarks")
        if masked:
            out = masker(image, landmarks, np.random.default_rng([seed, row]))
            faces.append(out.image)
            masks.append(out.occlusion[None].astype(np.float32))
        else:
            faces.append(image)
            masks.append(np.zeros((1,) + image.shape[:2], np.float32))
    return np.stack(faces), torch.from_numpy(np.stack(masks))


def evaluate(name: str, model, cfg: BaselineConfig, lfw, cache) -> dict:
    protocols = build_protocols(lfw.pairs)
    sides = sorted({side for trials in protocols.values() for side in protocol_images(trials)})
    masker = training_masker(cfg)
    faces, masks = side_images(cache, lfw, sides, masker, cfg.seed)
    began = time.perf_counter()
    embeddings = embed_faces(name, model, faces, masks, batch_size=128)
    embed_seconds = time.perf_counter() - began
    index = {side: i for i, side in enumerate(sides)}
    results, reference = {}, None
    for setting in SETTINGS:
        trials = protocols[setting]
        a = embeddings[[index[(t.reference, t.reference_masked)] for t in trials]]
        b = embeddings[[index[(t.probe, t.probe_masked)] for t in trials]]
        scores = (a * b).sum(1).numpy()
        labels = protocol_labels(trials)
        if setting == "UMR-UMP":
            reference = (scores, labels)
        kfold = kfold_accuracy(scores, labels, protocol_folds(trials))
        metrics = verification_metrics(scores, labels, *(reference if setting != "UMR-UMP" else (None, None)))
        results[setting] = {"lfw_10fold_accuracy": kfold["mean"], "lfw_10fold_std": kfold["std"], **metrics}
    return {"settings": results, "embed_seconds": embed_seconds, "faces_embedded": len(sides),
            "faces_left_unmasked": masker.failures}  # masked sides whose landmarks could not carry a mask


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="cpu", choices=["smoke", "cpu", "gpu"])
    parser.add_argument("--baselines", nargs="+", default=["arcface"], choices=sorted(BASELINES))
    parser.add_argument("--steps", type=int, default=None, help="override the profile's recognizer steps")
    parser.add_argument("--finetune-steps", type=int, default=None)
    parser.add_argument("--run-dir", default=None, help="checkpoints (default: <cache root>/baselines-<profile>)")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)
    overrides = {"run_dir": args.run_dir or str(cache_root() / f"baselines-{args.profile}")}
    if args.steps is not None:
        overrides["steps"] = args.steps
    if args.finetune_steps is not None:
        overrides["finetune_steps"] = args.finetune_steps
    cfg = BaselineConfig.from_profile(args.profile, **overrides)
    lfw, cache = lfw_faces(cfg)
    report = {"config": cfg.to_params(), "machine": machine_info(), "torch_threads": torch.get_num_threads(),
              "baselines": {}}
    for name in args.baselines:
        model = train_baseline(name, cfg)
        result = {"train_seconds": model.train_seconds, **evaluate(name, model, cfg, lfw, cache)}
        report["baselines"][name] = result
        print(f"{name}: training took {model.train_seconds:.0f} s "
              "(finished checkpoints are reused and pretrained models only loaded)")
        for setting, m in result["settings"].items():
            print(f"  {setting}: LFW 10-fold accuracy {100 * m['lfw_10fold_accuracy']:.2f}% "
                  f"(+- {100 * m['lfw_10fold_std']:.2f}), EER {100 * m['EER']:.2f}%, FDR {m['FDR']:.3f}")
        if args.json:  # after each baseline, so a long run keeps what it finished
            with open(args.json, "w") as f:
                json.dump(report, f, indent=1, default=str)
    return report


if __name__ == "__main__":
    main()
