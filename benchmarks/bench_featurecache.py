"""Reformer training steps per second: masked faces drawn and encoded every step (the loop before the feature
cache) against rows read from the encoder feature cache (g2d.featurecache), at equal width and batch.

The cpu profile's encoder (untrained, random palette: speed does not depend on the weights) and reformer sizes,
on g2d's embedded synthetic faces at 64 px masked with the built-in masks (MaskTheFace templates cost more to
warp, so this understates the loop's cost on real data). The cache build is timed too: it is paid once per
encoder, faces, mask protocol and K, and then every reformer of a learning curve reads it.

Run: PYTHONPATH=. python benchmarks/bench_featurecache.py [--steps 20] [--threads 1] [--faces 256] [--draws 2]
"""
from __future__ import annotations

import argparse
import tempfile
import time

import torch
from tabulate import tabulate

from g2d.featurecache import feature_cache
from g2d.model import G2DConfig, MaskedTriplets
from g2d.reformer import train_reformer
from g2d.training_faces import union_training_faces


def seconds_per_step(train, steps: int) -> float:
    "Seconds per step of `train(steps)` beyond its first two steps (start-up not counted)."
    began = time.perf_counter()
    train(2)
    warm = time.perf_counter()
    train(steps + 2)
    return (time.perf_counter() - warm - (warm - began)) / steps


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--faces", type=int, default=256)
    parser.add_argument("--draws", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = G2DConfig.from_profile("cpu", mask_templates="builtin")
    ecfg, rcfg = cfg.encoder_config(), cfg.reformer_config()
    faces = union_training_faces(["synthetic"], ecfg.image_size, synthetic=(args.faces // 4, 4))
    encoder = ecfg.build_encoder()
    encoder.prior.palette.colours.copy_(torch.rand(ecfg.n_colours, 3))
    targets = torch.nn.functional.normalize(torch.randn(len(faces.train), 128), dim=1)
    views = MaskedTriplets.from_config(faces.train, cfg)
    rows = []
    with tempfile.TemporaryDirectory() as d:
        began = time.perf_counter()
        cache = feature_cache(encoder, views, args.draws, faces.fingerprint, views.description(), d, progress=False)
        build = time.perf_counter() - began
        run = lambda encoder_or_none, data, tag: lambda steps: train_reformer(
            rcfg.replace(steps=steps, checkpoint_every=10 ** 6), encoder_or_none, data, targets, f"{d}/{tag}-{steps}",
            faces.num_identities, progress=False)
        loop = seconds_per_step(run(encoder, views, "loop"), args.steps)
        cached = seconds_per_step(run(None, cache, "cache"), args.steps)
    rows.append({"reformer width": rcfg.width, "batch": rcfg.batch_size, "threads": torch.get_num_threads(),
                 "s/step, draw + encode": round(loop, 4), "s/step, feature cache": round(cached, 4),
                 "speed-up": round(loop / cached, 1),
                 f"cache build ({len(views)} faces x {args.draws}), s": round(build, 1)})
    print(tabulate(rows, headers="keys"))
    return rows


if __name__ == "__main__":
    main()
