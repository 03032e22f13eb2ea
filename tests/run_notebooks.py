"""Test every chapter notebook as `nbdev_test` does, but each in its own Python process.

`nbdev_test --n_workers N` runs notebooks in a pool of worker processes that are reused, so module state one notebook
leaves behind (for example a model registration made by re-executing a library cell in the notebook) is seen by the
next notebook of the same worker, and a result can depend on the order the pool hands notebooks out. Here each
notebook runs in a fresh `nbdev_test --path NOTEBOOK` process, `--workers` at a time; the selection is nbdev's own
(the same glob, `.notest` folders skipped, the same `tst_flags`).

    python tests/run_notebooks.py [--path nbs] [--workers 2]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from nbdev.doclinks import nbglob
from nbdev.test import _keep_file


def notebooks(path: str) -> list[Path]:
    "The notebooks `nbdev_test --path PATH` would test."
    files = nbglob(path, as_path=True)
    return [f.absolute() for f in sorted(files) if _keep_file(f, ".notest")]


def run_one(notebook: Path) -> tuple[Path, int, float, str]:
    start = time.perf_counter()
    nbdev_test = Path(sys.executable).with_name("nbdev_test")
    proc = subprocess.run([str(nbdev_test), "--path", str(notebook), "--n_workers", "0"], capture_output=True,
                          text=True)
    return notebook, proc.returncode, time.perf_counter() - start, proc.stdout + proc.stderr


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--path", default="nbs", help="a notebook or a folder of notebooks (default: nbs)")
    parser.add_argument("--workers", type=int, default=2, help="notebooks run at once (default: 2)")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    files = notebooks(args.path)
    if not files:
        print(f"no notebooks to test under {args.path}")
        return 1
    failed, times = [], []
    with ThreadPoolExecutor(args.workers) as pool:
        for notebook, code, seconds, output in pool.map(run_one, files):
            times.append((seconds, notebook.name))
            status = "ok" if code == 0 else f"FAILED (exit {code})"
            print(f"{notebook.name}: {status} in {seconds:.0f} s", flush=True)
            if code != 0:
                failed.append(notebook.name)
                print(output[-8000:], flush=True)
    print("\nslowest: " + ", ".join(f"{name} {s:.0f} s" for s, name in sorted(times, reverse=True)[:5]))
    if failed:
        print(f"\nnotebooks that failed ({len(failed)} of {len(files)}): {', '.join(failed)}", file=sys.stderr)
        return 1
    print(f"all {len(files)} notebooks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
