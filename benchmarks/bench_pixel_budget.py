"""Pixel bombs and large photos through the command line: wall time and peak memory of whole `g2d` processes.

Rows: `g2d verify` on a 20000x20000 all-black PNG (a few hundred kilobytes that decode to 1.2 GB; before the pixel
budget it ran 5 min 18 s and peaked at 19.8 GB), refused from its header (`g2d.core.image_header`); `g2d embed`
on the same; `g2d embed` on a 12000x12000 PNG (144 megapixels: also over the default budget of 100 million);
and `g2d embed` on an 8000x6000 JPEG photo (48 megapixels, under the budget: decoded at a quarter of its size by
the JPEG decoder and searched at 2048x2048 at most, `g2d.core.read_photo`). Each row is a fresh process (imports
and the released model's loading included), its peak resident memory read from the kernel (ru_maxrss of the
child). Issue targets: the 20000x20000 PNG through `g2d verify` in under 5 s and under 1 GB.

Run: PYTHONPATH=. python benchmarks/bench_pixel_budget.py
"""
from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

from tabulate import tabulate


def black_png(path: Path, width: int, height: int) -> Path:
    "An all-black 8-bit RGB PNG of `width` x `height`, compressed row by row (never held in memory)."
    def chunk(kind: bytes, body: bytes) -> bytes:
        return len(body).to_bytes(4, "big") + kind + body + zlib.crc32(kind + body).to_bytes(4, "big")

    compressor, row, parts = zlib.compressobj(9), bytes(1 + 3 * width), []
    for _ in range(height):
        parts.append(compressor.compress(row))
    parts.append(compressor.flush())
    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b""))
    return path


def smooth_jpeg(path: Path, width: int, height: int) -> Path:
    "A `width` x `height` JPEG of smooth gradients (a photo's size, made quickly)."
    import numpy as np
    from PIL import Image

    small = np.random.default_rng(0).integers(0, 256, (height // 100, width // 100, 3), np.uint8)
    Image.fromarray(small).resize((width, height), Image.BILINEAR).save(path, quality=85)
    return path


def measured(command: list[str]) -> dict:
    "Run `command`; its wall time, exit code, peak resident memory (MB) and the last line it printed on stderr."
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    began = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - began
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KB on Linux: the largest child so far
    lines = (done.stderr or done.stdout).strip().splitlines()
    return {"seconds": round(seconds, 2), "exit": done.returncode,
            "peak MB": round(peak / 1024, 1) if peak > before else f"<= {before / 1024:.0f}",
            "said": (lines[-1] if lines else "")[:110]}


def main(argv=None) -> list[dict]:
    g2d = [sys.executable, "-m", "g2d.cli"]
    rows = []
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        began = time.perf_counter()
        bomb = black_png(d / "bomb.png", 20000, 20000)
        large = black_png(d / "large.png", 12000, 12000)
        photo = smooth_jpeg(d / "photo.jpg", 8000, 6000)
        print(f"files made in {time.perf_counter() - began:.1f} s: {bomb.stat().st_size / 1e3:.0f} KB, "
              f"{large.stat().st_size / 1e3:.0f} KB, {photo.stat().st_size / 1e6:.1f} MB")
        # smallest first: ru_maxrss is the peak of the largest child so far, so a row only shows its own peak
        # when it is the largest yet; the bomb rows come before the legal photo for that reason
        for what, command in (
                ("g2d verify, 20000x20000 PNG (refused)", g2d + ["verify", str(bomb), str(bomb)]),
                ("g2d embed, 20000x20000 PNG (refused)", g2d + ["embed", str(bomb)]),
                ("g2d embed, 12000x12000 PNG (refused)", g2d + ["embed", str(large)]),
                ("g2d embed, 8000x6000 JPEG (downscaled)", g2d + ["embed", str(photo), "--json"])):
            rows.append({"row": what, **measured(command)})
            print(rows[-1], flush=True)
    print(tabulate(rows, headers="keys"))
    verify = rows[0]
    target = verify["seconds"] < 5 and isinstance(verify["peak MB"], float) and verify["peak MB"] < 1024
    print(f"target (verify on the 20000x20000 PNG: < 5 s, < 1 GB): {'met' if target else 'NOT met'}")
    return rows


if __name__ == "__main__":
    main()
