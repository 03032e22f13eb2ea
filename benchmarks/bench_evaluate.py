"""Faces per second of the stages of `g2d evaluate` on the same images: decoding the source photo, the model's own
crop (dlib's 150-pixel chip from g2d's 68 landmarks), the embedding (the dlib teacher port, batched), and all three.

Images: LFW photos with g2d's landmarks from the LFW face cache when it exists under the cache root ($G2D_CACHE,
built by `g2d.facecache.dataset_face_cache`), else synthetic 250-pixel faces (with their drawn landmarks) written
as JPEG files. Run: PYTHONPATH=. G2D_DATA=../shared/data G2D_CACHE=... python benchmarks/bench_evaluate.py
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from tabulate import tabulate

from g2d.align import load_rgb
from g2d.evaluate import DlibChipEmbedder
from g2d.teacher import DlibResNetTeacher


def benchmark_images(count: int, folder: Path) -> tuple[list[tuple[str, np.ndarray]], str]:
    "(file, 68 source landmarks) of `count` images: LFW from its face cache when there is one, else synthetic."
    from g2d.core import cache_root
    from g2d.facecache import INDEX_FILE, dataset_align_config, face_cache_dir, FaceCache

    cache = face_cache_dir(cache_root(), "lfw", dataset_align_config("lfw"))
    if (cache / INDEX_FILE).is_file():
        faces = FaceCache(cache)
        landmarks = faces.array("source_landmarks")
        rows = [i for i in range(0, len(faces), max(1, len(faces) // count)) if np.isfinite(landmarks[i]).all()]
        return [(faces.sources[i], landmarks[i]) for i in rows[:count]], "LFW photos (g2d face cache landmarks)"
    from g2d.synthetic import SyntheticFaces

    synthetic = SyntheticFaces(n_identities=count, images_per_identity=1, size=250)
    items = []
    for i in range(count):
        image, landmarks = synthetic.render(i)
        path = folder / f"{i:04d}.jpg"
        cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        items.append((str(path), np.asarray(landmarks, np.float64)))
    return items, "synthetic faces (JPEG)"


def _rate(count: int, run) -> float:
    start = time.perf_counter()
    run()
    return count / (time.perf_counter() - start)


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=int, default=64, help="number of images (default 64)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as folder:
        items, source = benchmark_images(args.faces, Path(folder))
        model = DlibChipEmbedder(DlibResNetTeacher(batch_size=32))
        images = [load_rgb(path) for path, _ in items]
        chips = np.stack([model.crop(image, landmarks)[0] for image, (_, landmarks) in zip(images, items)])
        model.embed(chips[:2])  # warm-up

        def everything():
            for start in range(0, len(items), model.batch_size):
                batch = items[start:start + model.batch_size]
                model.embed(np.stack([model.crop(load_rgb(path), landmarks)[0] for path, landmarks in batch]))

        n = len(items)
        rows = [dict(stage="decode (cv2)", faces_per_s=_rate(n, lambda: [load_rgb(p) for p, _ in items])),
                dict(stage="crop (dlib 68-point chip, numpy)",
                     faces_per_s=_rate(n, lambda: [model.crop(im, lm) for im, (_, lm) in zip(images, items)])),
                dict(stage=f"embed (dlib port, cpu, batch 32, {args.threads} threads)",
                     faces_per_s=_rate(n, lambda: model.embed(chips))),
                dict(stage="all three", faces_per_s=_rate(n, everything))]
    print(f"{n} {source}")
    print(tabulate(rows, headers="keys", floatfmt=".1f"))
    return rows


if __name__ == "__main__":
    main()
