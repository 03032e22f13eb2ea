"""Face alignment throughput (faces per second) on LFW: one and two worker processes, HOG and MMOD detectors."""
import random
import tempfile
import time
from pathlib import Path

from g2d.align import AlignConfig, FaceAligner, load_rgb
from g2d.datasets import dataset_image_files
from g2d.facecache import build_face_cache

SAMPLE = 160  # LFW images per build
MMOD_SAMPLE = 6


def _build_rate(items, config, workers):
    with tempfile.TemporaryDirectory() as d:
        start = time.perf_counter()
        cache = build_face_cache(items, Path(d) / "cache", config, workers=workers, shard_size=20, progress=False)
        seconds = time.perf_counter() - start
    return len(items) / seconds, cache.success_rate()


def main():
    files = dataset_image_files("lfw")
    if not files:
        print("align throughput: skipped: no LFW under the data root (set G2D_DATA)")
        return
    sample = random.Random(0).sample(files, SAMPLE)
    items = [(p, p.parent.name) for p in sample]
    rows = []
    for size in (64, 112):
        for workers in (1, 2):
            rate, success = _build_rate(items, AlignConfig(size=size), workers)
            rows.append((f"HOG (upsample 1) + 68 points, {size} px, cache build", f"{workers} process(es)",
                         f"{rate:.1f} faces/s", f"{success:.1%} aligned"))
    aligner = FaceAligner(AlignConfig(size=112, detectors=("mmod",)))
    images = [load_rgb(p) for p in sample[:MMOD_SAMPLE]]
    aligner(images[0])  # loads the network
    start = time.perf_counter()
    found = sum(aligner(image).aligned for image in images)
    rate = len(images) / (time.perf_counter() - start)
    rows.append(("MMOD CNN (upsample 0) + 68 points, 112 px, in process", "1 process", f"{rate:.2f} faces/s",
                 f"{found}/{len(images)} aligned"))
    headers = ("what", "workers", "throughput", "success")
    widths = [max(len(str(r[i])) for r in rows + [headers]) for i in range(4)]
    print(f"{SAMPLE} random LFW images (250x250)")
    for row in [headers] + rows:
        print("  ".join(f"{str(v):<{w}}" for v, w in zip(row, widths)))


if __name__ == "__main__":
    main()
