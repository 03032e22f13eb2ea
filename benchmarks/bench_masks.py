"""Masks per second given landmarks (g2d.masks.apply_mask) vs a plain per-image detect-landmarks-then-warp loop.

Faces are 112 px aligned crops. With LFW under the data root (G2D_DATA) they come from LFW's source photos
(every 50th image, aligned once with dlib HOG + 68 landmarks); the plain loop then runs dlib detection, the
landmark fit and the warp on each source photo before masking, as a script without the library's
separation would. Without data, SyntheticFaces at 112 px stand in (the detector may miss some; its time
still counts). Built-in masks and (with the data root's mask_templates) MaskTheFace templates are timed
separately, and so is the GrabCut segmentation.

`--quality N` also measures the coverage distribution per mask kind and GrabCut's IoU against the exact map
over N aligned LFW faces from the face cache (every 13th aligned face; needs G2D_DATA and a built cache under
G2D_CACHE), with templates when present, GrabCut on the first `--segment` faces of each kind.

Run: PYTHONPATH=. G2D_DATA=../shared/data G2D_CACHE=../cache python benchmarks/bench_masks.py [--faces 200] [--quality 1000]
"""
from __future__ import annotations

import argparse
import os
import time

import cv2
import numpy as np
from tabulate import tabulate

from g2d.core import DataRootError, find_datasets
from g2d.masks import MASK_KINDS, MaskTemplates, apply_mask, mask_statistics, random_mask_spec, segment_occlusion, summarize_statistics


def benchmark_faces(count: int, size: int):
    "(source images or None, aligned crops, crop landmarks, description)."
    from g2d.align import AlignConfig, FaceAligner, load_rgb

    try:
        lfw = find_datasets().get("lfw")
    except DataRootError:
        lfw = None
    aligner = FaceAligner(AlignConfig(size=size))
    if lfw is not None:
        sources, crops, points = [], [], []
        for path in sorted(lfw.glob("*/*.jpg"))[::50]:
            image = load_rgb(path)
            face = aligner(image)
            if face.aligned:
                sources.append(image); crops.append(face.image); points.append(face.landmarks)
            if len(crops) == count:
                break
        return sources, crops, points, f"LFW ({len(crops)} faces, {size} px crops)"
    from g2d.synthetic import SyntheticFaces

    faces = SyntheticFaces(n_identities=max(1, count // 8), images_per_identity=8, size=size)
    rendered = [faces.render(i) for i in range(min(count, len(faces)))]
    crops = [r[0] for r in rendered]
    return crops, crops, [r[1] for r in rendered], f"synthetic ({len(crops)} faces, {size} px)"


def rate(run, count: int, repeats: int = 2) -> float:
    "Best of `repeats` timed runs of `run()` over `count` items, per second."
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return count / best


def speed(count: int, size: int, templates) -> list[dict]:
    from g2d.align import AlignConfig, FaceAligner

    sources, crops, points, what = benchmark_faces(count, size)
    rows = []
    for label, folder in (("built-in", None), ("templates", templates)):
        if label == "templates" and folder is None:
            continue
        rng = np.random.default_rng(0)
        specs = [random_mask_spec(rng, MASK_KINDS, folder) for _ in crops]
        if folder is not None:  # read the template images once, outside the timing (a training run does too)
            for image, lm, spec in zip(crops[:50], points, specs):
                apply_mask(image, lm, spec, folder)
        run = lambda: [apply_mask(image, lm, spec, folder) for image, lm, spec in zip(crops, points, specs)]
        rows.append({"what": f"apply_mask given landmarks ({label})", "faces": len(crops), "per_second": rate(run, len(crops))})
    aligner = FaceAligner(AlignConfig(size=size))
    rng = np.random.default_rng(0)
    specs = [random_mask_spec(rng, MASK_KINDS, None) for _ in sources]

    def plain_loop():
        for image, spec in zip(sources, specs):
            face = aligner(image)  # HOG detection + 68 landmarks + warp, per image
            if face.aligned:
                apply_mask(face.image, face.landmarks, spec)

    rows.append({"what": "detect + landmarks + warp + mask, per image", "faces": len(sources), "per_second": rate(plain_loop, len(sources), 1)})
    masked = [apply_mask(image, lm, spec) for image, lm, spec in zip(crops, points, specs)]
    run = lambda: [segment_occlusion(m.image, lm) for m, lm in zip(masked, points)]
    rows.append({"what": "segment_occlusion (GrabCut)", "faces": len(crops), "per_second": rate(run, len(crops), 1)})
    print(f"faces: {what}; cv2 threads {cv2.getNumThreads()}, {os.cpu_count()} cpus (shared machine)")
    return rows


def quality(count: int, segment: int, templates, seed: int = 0):
    from g2d.core import cache_root
    from g2d.facecache import INDEX_FILE, FaceCache, dataset_align_config, face_cache_dir

    folder = face_cache_dir(cache_root(create=False), "lfw", dataset_align_config("lfw"))
    if not (folder / INDEX_FILE).is_file():
        print(f"--quality needs the LFW face cache ({folder}): build it with g2d.facecache.dataset_face_cache('lfw')")
        return None
    cache = FaceCache(folder)
    aligned = np.flatnonzero(np.isin(cache.statuses, ["hog", "mmod"]))[::13][:count]
    images = [cache.row(int(i), "images") for i in aligned]
    points = [cache.row(int(i), "landmarks") for i in aligned]
    start = time.perf_counter()
    table = mask_statistics(images, points, MASK_KINDS, templates, seed=seed, segment=segment, progress=True)
    summary = summarize_statistics(table)
    print(f"{len(images)} LFW faces ({cache.config.size} px) x {len(MASK_KINDS)} kinds, "
          f"templates: {templates.folder if templates else 'built-in'}, GrabCut on {segment} per kind, "
          f"{time.perf_counter() - start:.0f} s")
    print(summary.round(3).to_markdown())
    return summary


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=int, default=200, help="faces for the speed measurement (default 200)")
    parser.add_argument("--size", type=int, default=112, help="crop size (default 112)")
    parser.add_argument("--quality", type=int, default=0, metavar="N", help="also measure coverage / IoU over N LFW faces")
    parser.add_argument("--segment", type=int, default=200, help="faces per kind segmented by GrabCut in --quality")
    parser.add_argument("--builtin", action="store_true", help="ignore the data root's mask templates")
    args = parser.parse_args([] if argv is None and __name__ != "__main__" else argv)  # make bench: defaults
    try:
        folder = None if args.builtin else find_datasets().get("mask_templates")
    except DataRootError:
        folder = None
    templates = MaskTemplates.load(folder) if folder else None
    rows = speed(args.faces, args.size, templates)
    print(tabulate(rows, headers="keys", floatfmt=".1f"))
    if args.quality:
        quality(args.quality, args.segment, templates)
    return rows


if __name__ == "__main__":
    main()
