"""Photos per second from a raw photo to a G2D embedding (`g2d embed`'s path), by stage, with the released model.

Stages: detect and align (`g2d.model.find_faces`: YuNet then HOG, 68 landmarks, template warp), estimate the
occlusion map (the learned estimator of chapter 06c, or GrabCut), embed (`G2D.embed` with the maps given); then
the whole path as `g2d embed` runs it (`embed_photo_batches`: estimation and embedding of one chunk overlapped
with the detection of the next). Photos:
`real_masked/with_mask` under $G2D_DATA (real masked photos), else LFW, else skipped with a message. Issue targets
(2 cores): at least 150 photos/s at 64 px and 60 photos/s at 112 px, end to end.

Run: PYTHONPATH=. G2D_DATA=../shared/data python benchmarks/bench_photos.py [--photos 200] [--threads 2]
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch
from tabulate import tabulate

from g2d.model import embed_photo_batches, estimate_occlusion, find_faces, load_pretrained


def photos(count: int) -> list[Path]:
    root = os.environ.get("G2D_DATA")
    for folder in ("real_masked/with_mask", "lfw"):
        if root and (Path(root) / folder).is_dir():
            return sorted(p for p in (Path(root) / folder).rglob("*.jpg"))[:count]
    return []


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    files = photos(args.photos)
    if not files:
        print("skipped: no real_masked or lfw under $G2D_DATA (this benchmark needs real photos)")
        return []
    model = load_pretrained()
    find_faces(files[:4], model.image_size)  # load the detectors
    estimate_occlusion(find_faces(files[:2], model.image_size).crops, estimator="learned")  # load the estimator
    began = time.perf_counter()
    faces = find_faces(files, model.image_size)
    detect = time.perf_counter() - began
    rows = []
    for estimator in ("learned", "grabcut"):
        began = time.perf_counter()
        maps = estimate_occlusion(faces.crops, faces.landmarks, estimator)
        estimate = time.perf_counter() - began
        began = time.perf_counter()
        model.embed(faces.crops, maps)
        embed = time.perf_counter() - began
        total = detect + estimate + embed
        rows.append({"photos": len(files), "faces": len(faces), "estimator": estimator, "px": model.image_size,
                     "threads": torch.get_num_threads(), "detect+align photos/s": round(len(files) / detect, 1),
                     "estimate faces/s": round(len(faces) / max(estimate, 1e-9), 1),
                     "embed faces/s": round(len(faces) / max(embed, 1e-9), 1),
                     "end to end photos/s": round(len(files) / total, 1)})
    for estimator in ("learned", "grabcut"):  # the stages overlapped, as `g2d embed` runs them
        began = time.perf_counter()
        faces, _, _ = embed_photo_batches(model, files, estimator)
        total = time.perf_counter() - began
        rows.append({"photos": len(files), "faces": len(faces), "estimator": f"{estimator}, overlapped",
                     "px": model.image_size, "threads": torch.get_num_threads(),
                     "end to end photos/s": round(len(files) / total, 1)})
    print(tabulate(rows, headers="keys"))
    return rows


if __name__ == "__main__":
    main()
