"""Faces per second of the generative encoder's forward pass (features) and of `inpaint`, per profile's sizes.

Untrained weights with a random palette (speed does not depend on the weights). The paper reports 42.8 ms per
256x256 face for the whole G2D model on an RTX 3090; here: the encoder alone, at each profile's image size.

Run: PYTHONPATH=. python benchmarks/bench_inpainting.py [--faces 16] [--profiles smoke cpu gpu] [--threads 1]
"""
from __future__ import annotations

import argparse
import time

import torch
from tabulate import tabulate

from g2d.core import pick_device
from g2d.inpainting_training import InpaintingConfig


def _best(run, repeats: int) -> float:
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=int, default=16)
    parser.add_argument("--profiles", nargs="+", default=["smoke", "cpu", "gpu"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    rows = []
    for profile in args.profiles:
        cfg = InpaintingConfig.from_profile(profile)
        encoder = cfg.build_encoder()
        encoder.prior.palette.colours.copy_(torch.rand(cfg.n_colours, 3))
        encoder.to(device).eval()
        x = torch.rand(args.faces, 3, cfg.image_size, cfg.image_size, device=device)
        m = torch.zeros(args.faces, 1, cfg.image_size, cfg.image_size, device=device)
        m[:, :, cfg.image_size // 2:] = 1

        def sync(f):
            def run():
                with torch.no_grad():
                    f(x, m)
                if device.type == "cuda":
                    torch.cuda.synchronize()
            return run

        parameters = sum(p.numel() for p in encoder.parameters()) / 1e6
        features = _best(sync(encoder), args.repeats)
        inpaint = _best(sync(encoder.inpaint), args.repeats)
        rows.append({"profile": profile, "size": cfg.image_size, "params_M": round(parameters, 2),
                     "features_ms_per_face": round(1000 * features / args.faces, 2),
                     "inpaint_ms_per_face": round(1000 * inpaint / args.faces, 2)})
    print(f"device {device}, {args.threads} thread(s), batch {args.faces}")
    print(tabulate(rows, headers="keys"))
    return rows


if __name__ == "__main__":
    main()
