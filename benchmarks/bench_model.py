"""Faces per second of `G2D.embed` per profile's sizes: occlusion maps given (the network, with and without the test-time
flip) and estimated by GrabCut.

Untrained weights with a random palette (speed does not depend on the weights), aligned faces of each profile's
image size. The paper reports 42.8 ms per 256x256 face (23.35 faces/s) for the whole G2D model on an RTX 3090.
A trained model can be timed instead with --model FOLDER.

Run: PYTHONPATH=. python benchmarks/bench_model.py [--faces 64] [--profiles smoke cpu gpu] [--threads 1] [--device cpu]
"""
from __future__ import annotations

import argparse

import numpy as np
import torch
from tabulate import tabulate

from g2d.core import pick_device
from g2d.classifier import FeatureClassifier
from g2d.model import G2D, G2DConfig, load_g2d
from g2d.reformer import Reformer

from bench_teacher import faces_per_second  # benchmarks/ is on sys.path when run directly or by run.py


def untrained(profile: str) -> G2D:
    "A G2D model of `profile`'s sizes with random weights (a random palette where the encoder has a prior)."
    cfg = G2DConfig.from_profile(profile)
    ecfg, rcfg = cfg.encoder_config(), cfg.reformer_config()
    encoder = ecfg.build_encoder()
    if encoder.prior is not None:
        encoder.prior.palette.colours.copy_(torch.rand(ecfg.n_colours, 3))
    reformer = Reformer(encoder.feature_channels, rcfg.width, rcfg.embedding_dim)
    return G2D(encoder, reformer, FeatureClassifier(rcfg.embedding_dim, 10), ecfg.image_size)


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=int, default=64)
    parser.add_argument("--profiles", nargs="+", default=["smoke", "cpu", "gpu"])
    parser.add_argument("--model", help="time a saved G2D model folder instead of untrained profiles")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    models = {args.model: load_g2d(args.model, device)} if args.model else {p: untrained(p).to(device) for p in args.profiles}
    rng = np.random.default_rng(0)
    rows = []
    for name, model in models.items():
        size = model.image_size
        faces = rng.integers(0, 256, (args.faces, size, size, 3), dtype=np.uint8)
        masks = np.zeros((args.faces, size, size), np.uint8)
        masks[:, size // 2:] = 1
        given = faces_per_second(lambda: model.embed(faces, masks, flip_average=False), args.faces, args.repeats)
        flipped = faces_per_second(lambda: model.embed(faces, masks, flip_average=True), args.faces, args.repeats)
        few = min(args.faces, 16)
        segmented = faces_per_second(lambda: model.embed(faces[:few], flip_average=False), few, 1)
        rows.append({"model": name, "image px": size, "parameters (M)": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
                     "device": str(device), "threads": torch.get_num_threads(), "flips by default": model.flip_average,
                     "faces/s (maps given)": round(given, 1), "faces/s (maps given, test-time flip)": round(flipped, 1),
                     "faces/s (GrabCut maps)": round(segmented, 1)})
    print(tabulate(rows, headers="keys"))
    return rows


if __name__ == "__main__":
    main()
