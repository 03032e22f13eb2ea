"""Photos per second from a raw photo to a G2D embedding (`g2d embed`'s path), by stage, with the released model.

Stages: detect and align (`g2d.model.find_faces`: YuNet then HOG, 68 landmarks, template warp), estimate the
occlusion map (the learned estimator of chapter 06c, or GrabCut), embed (`G2D.embed` with the maps given); then
the whole path as `g2d embed` runs it (`embed_photo_batches`: estimation and embedding of one chunk overlapped
with the detection of the next). The models are loaded first (a one-off cost, reported in its own rows: dlib's
landmark model alone takes about 0.5 s), so the rates are a batch's throughput. The 112 px rows run
two architectures with untrained weights, for their speed, not their accuracy (no 112 px model has been
trained): the `cpu` profile's reading 112 px faces, and the `gpu` profile's (the paper's sizes; 30 photos). Photos: `real_masked/with_mask` under $G2D_DATA
(real masked photos), else LFW, else skipped with a message. Issue targets (2 cores): at least 150 photos/s at
64 px and 60 photos/s at 112 px, end to end.

Run: PYTHONPATH=. G2D_DATA=../shared/data python benchmarks/bench_photos.py [--photos 300] [--threads 1]
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch
from tabulate import tabulate

from g2d.align import photo_aligner
from g2d.model import G2D, embed_photo_batches, estimate_occlusion, find_faces, load_pretrained, released_estimator


def photos(count: int) -> list[Path]:
    root = os.environ.get("G2D_DATA")
    for folder in ("real_masked/with_mask", "lfw"):
        if root and (Path(root) / folder).is_dir():
            return sorted(p for p in (Path(root) / folder).rglob("*.jpg"))[:count]
    return []


def untrained_architecture(profile: str, size: int) -> G2D:
    "G2D of `profile`'s architecture reading `size` px faces, randomly initialised (for its speed only)."
    from g2d.model import G2DConfig
    from g2d.reformer import Reformer

    cfg = G2DConfig.from_profile(profile, mask_templates="builtin", encoder={"image_size": size})
    encoder = cfg.encoder_config().build_encoder()
    encoder.prior.palette.fit(torch.rand(4096, 3).numpy())  # a palette of random colours: the cost of a fitted one
    reformer = Reformer(encoder.feature_channels, cfg.reformer_config().width, cfg.reformer_config().embedding_dim)
    return G2D(encoder, reformer, None, size).eval()


def timed(call):
    began = time.perf_counter()
    result = call()
    return result, time.perf_counter() - began


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=300)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest with the stages overlapped)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    files = photos(args.photos)
    if not files:
        print("skipped: no real_masked or lfw under $G2D_DATA (this benchmark needs real photos)")
        return []
    model, load_model = timed(load_pretrained)
    _, load_aligner = timed(lambda: photo_aligner(model.image_size))
    _, load_estimator = timed(released_estimator)
    print(tabulate([{"load": "released model", "seconds": round(load_model, 2)},
                    {"load": "aligner (YuNet, dlib's HOG and 68-point model)", "seconds": round(load_aligner, 2)},
                    {"load": "occlusion estimator", "seconds": round(load_estimator, 2)}], headers="keys"))
    warm = find_faces(files[:8], model.image_size)
    model.embed(warm.crops, estimate_occlusion(warm.crops, warm.landmarks))
    faces, detect = timed(lambda: find_faces(files, model.image_size))
    rows = []
    for estimator in ("learned", "grabcut"):
        maps, estimate = timed(lambda: estimate_occlusion(faces.crops, faces.landmarks, estimator))
        _, embed = timed(lambda: model.embed(faces.crops, maps))
        rows.append({"photos": len(files), "faces": len(faces), "estimator": estimator, "px": model.image_size,
                     "model": "released", "threads": torch.get_num_threads(), "detect+align photos/s": round(len(files) / detect, 1),
                     "estimate faces/s": round(len(faces) / max(estimate, 1e-9), 1),
                     "embed faces/s": round(len(faces) / max(embed, 1e-9), 1),
                     "end to end photos/s": round(len(files) / (detect + estimate + embed), 1)})
    runs = [("learned", model, files, "released"), ("grabcut", model, files, "released"),
            ("learned", untrained_architecture("cpu", 112), files, "cpu profile, untrained"),
            ("learned", untrained_architecture("gpu", 112), files[:30], "gpu profile, untrained")]
    for estimator, net, batch, weights in runs:
        warm = find_faces(files[:8], net.image_size)  # loads the aligner at this size
        net.embed(warm.crops, estimate_occlusion(warm.crops, warm.landmarks))
        (found, _, _), total = timed(lambda: embed_photo_batches(net, batch, estimator))
        rows.append({"photos": len(batch), "faces": len(found), "estimator": f"{estimator}, overlapped",
                     "px": net.image_size, "model": weights, "threads": torch.get_num_threads(),
                     "end to end photos/s": round(len(batch) / total, 1)})
    print(tabulate(rows, headers="keys"))
    return rows


if __name__ == "__main__":
    main()
