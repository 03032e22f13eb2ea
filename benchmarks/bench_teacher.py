"""Faces per second of the teacher: dlib's own recognizer vs the PyTorch port, on the same 150x150 chips.

dlib runs one chip per call (`compute_face_descriptor`), as g2d would call it; the port runs batched on the CPU at
batch sizes 1, 16 and 64 (and on the GPU when there is one). Also with 10 jitters (dlib's `num_jitters`, the port's
`JitterAveragedTeacher`), where a face costs ten network passes. Chips are real LFW faces when G2D_DATA points at the
data (dlib HOG + 5-point chips), else random images (speed does not depend on content).

Run: PYTHONPATH=. G2D_DATA=../shared/data python benchmarks/bench_teacher.py [--faces 64]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from tabulate import tabulate

from g2d.core import DataRootError, dlib_model_file, find_datasets
from g2d.dlib_port import dlib_five_point_landmarks, face_chip
from g2d.teacher import DlibResNetTeacher, JitterAveragedTeacher


def benchmark_chips(count: int) -> tuple[np.ndarray, str]:
    "`count` chips: real LFW chips when the data root has LFW, else random ones."
    try:
        lfw = find_datasets().get("lfw")
    except DataRootError:
        lfw = None
    if lfw is not None:
        import dlib

        chips = []
        for path in sorted(lfw.glob("*/*.jpg"))[::37]:
            image = dlib.load_rgb_image(str(path))
            faces = dlib_five_point_landmarks(image)
            if faces:
                chips.append(face_chip(image, faces[0]))
            if len(chips) == count:
                return np.stack(chips), "LFW chips"
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (count, 150, 150, 3), dtype=np.uint8), "random chips"


def faces_per_second(run, count: int, repeats: int = 2) -> float:
    "Best of `repeats` timed runs (after one warm-up run) of `run()` over `count` faces."
    run()
    best = min(_timed(run) for _ in range(repeats))
    return count / best


def _timed(run) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=int, default=64, help="number of chips (default 64)")
    parser.add_argument("--threads", type=int, nargs="+", default=None,
                        help="torch CPU thread counts to try (default: 1 and torch's default)")
    args = parser.parse_args(argv)
    thread_counts = args.threads or sorted({1, torch.get_num_threads()})
    import dlib

    chips, source = benchmark_chips(args.faces)
    recognizer = dlib.face_recognition_model_v1(str(dlib_model_file("recognizer")))
    teacher = DlibResNetTeacher()
    rows = [dict(model="dlib compute_face_descriptor", device="cpu", threads=1, batch=1,
                 faces_per_s=faces_per_second(lambda: [recognizer.compute_face_descriptor(c) for c in chips], len(chips))),
            dict(model="dlib compute_face_descriptor, 10 jitters", device="cpu", threads=1, batch=1,
                 faces_per_s=faces_per_second(lambda: [recognizer.compute_face_descriptor(c, 10) for c in chips],
                                              len(chips), repeats=1))]
    jittered = JitterAveragedTeacher(teacher, jitters=10)
    settings = [(torch.device("cpu"), n) for n in thread_counts]
    if torch.cuda.is_available():
        settings.append((torch.device("cuda"), max(thread_counts)))
    for device, threads in settings:
        torch.set_num_threads(threads)
        teacher.to(device)
        for batch in (1, 16, 64):
            def run():
                out = teacher.embed(chips, batch_size=batch)
                if device.type == "cuda":
                    torch.cuda.synchronize()
            rows.append(dict(model="g2d DlibResNetTeacher (port)", device=str(device), threads=threads, batch=batch,
                             faces_per_s=faces_per_second(run, len(chips))))
        jittered.to(device)

        def run_jittered():
            out = jittered.embed(chips, batch_size=64)
            if device.type == "cuda":
                torch.cuda.synchronize()
        rows.append(dict(model="g2d JitterAveragedTeacher (port), 10 jitters", device=str(device), threads=threads,
                         batch=64, faces_per_s=faces_per_second(run_jittered, len(chips), repeats=1)))
    base = rows[0]["faces_per_s"]
    for row in rows:
        row["vs_dlib"] = row["faces_per_s"] / base
    print(f"teacher throughput on {len(chips)} {source}")
    print(tabulate(rows, headers="keys", floatfmt=".2f"))
    return rows


if __name__ == "__main__":
    main()
