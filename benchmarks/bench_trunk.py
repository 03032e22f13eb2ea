"""Speed of the students on a pretrained trunk (chapter 09d): SFace in PyTorch against onnxruntime, the student's
embedding of aligned faces, and photo in, embedding out (`g2d embed`'s path) with the released student.

Rows: SFaceNet alone (batch 64) in PyTorch and in onnxruntime (the exported graph of the same layers); the released
student's `embed` on aligned 112 px faces with maps given (its frozen layers in onnxruntime on a CPU, the trained
part and E in PyTorch), once per face and with the test-time flip; then the whole path from a photo as `g2d embed`
runs it (`embed_photo_batches`: detection and alignment, the learned occlusion estimator, the embedding). Models are
loaded first (their one-off cost in its own row). Photos: `real_masked/with_mask` under $G2D_DATA, else LFW, else
skipped with a message. Target (2 cores): at least 60 photos/s end to end for the released model.

Run: PYTHONPATH=. G2D_DATA=../shared/data python benchmarks/bench_trunk.py [--photos 300] [--threads 2]
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch
from tabulate import tabulate


def photos(count: int) -> list[Path]:
    root = os.environ.get("G2D_DATA")
    for folder in ("real_masked/with_mask", "lfw"):
        if root and (Path(root) / folder).is_dir():
            return sorted(p for p in (Path(root) / folder).rglob("*.jpg"))[:count]
    return []


def rate(call, items: int, repeats: int = 3) -> float:
    "Items per second of `call` (one warm-up call, then the best of `repeats`)."
    call()
    best = min(_timed(call) for _ in range(repeats))
    return items / best


def _timed(call) -> float:
    began = time.perf_counter()
    call()
    return time.perf_counter() - began


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=300)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    from g2d.export import DEFAULT_OPSET, _to_onnx, onnx_session
    from g2d.model import embed_photo_batches, load_pretrained, released_estimator
    from g2d.sface_port import load_sface_net

    rows = []
    net = load_sface_net().eval()
    x = torch.rand(64, 3, 112, 112) * 255
    with torch.no_grad():
        rows.append({"what": "SFaceNet, PyTorch, batch 64", "per second": rate(lambda: net(x), 64), "unit": "faces"})
    session = onnx_session(_to_onnx(net, (x[:1],), ["faces"], ["embedding"], DEFAULT_OPSET, {}, "SFace"))
    rows.append({"what": "SFaceNet, onnxruntime, batch 64",
                 "per second": rate(lambda: session.run(None, {"faces": x.numpy()}), 64), "unit": "faces"})
    began = time.perf_counter()
    student = load_pretrained()
    released_estimator()
    rows.append({"what": f"load the released model ({type(student).__name__}) and the estimator",
                 "per second": None, "unit": f"{time.perf_counter() - began:.2f} s"})
    size = student.image_size
    faces = np.random.default_rng(0).integers(0, 256, (64, size, size, 3), dtype=np.uint8)
    maps = np.zeros((64, size, size), np.uint8)
    maps[:, size // 2:] = 1
    rows.append({"what": "released model, embed 64 aligned faces (maps given), once each",
                 "per second": rate(lambda: student.embed(faces, maps, flip_average=False), 64), "unit": "faces"})
    rows.append({"what": "released model, embed 64 aligned faces (maps given), test-time flip",
                 "per second": rate(lambda: student.embed(faces, maps, flip_average=True), 64), "unit": "faces"})
    paths = photos(args.photos)
    if not paths:
        print("no photos under $G2D_DATA (real_masked/with_mask or lfw): the photo rows are skipped")
    else:
        found, seconds = [], []
        for _ in range(2):  # the second pass is the measurement (the first loads the detectors and warms caches)
            began = time.perf_counter()
            faces_found, embeddings, _ = embed_photo_batches(student, paths)
            seconds.append(time.perf_counter() - began)
            found.append(len(embeddings))
        rows.append({"what": f"photo in, embedding out ({len(paths)} photos, {found[-1]} faces; g2d embed's path)",
                     "per second": len(paths) / seconds[-1], "unit": "photos"})
    for row in rows:
        if row["per second"] is not None:
            row["per second"] = round(row["per second"], 1)
    print(f"torch threads: {torch.get_num_threads()}")
    print(tabulate(rows, headers="keys"))
    return rows


if __name__ == "__main__":
    main()
