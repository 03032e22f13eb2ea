"""Rendering speed of the embedded synthetic faces (one process, this machine's CPU)."""
import time

from tabulate import tabulate

from g2d.synthetic import SyntheticFaces


def main(count: int = 400) -> list[dict]:
    rows = []
    for size in (64, 112):
        faces = SyntheticFaces(n_identities=count // 8, images_per_identity=8, size=size, seed=0)
        faces[0]  # warm up
        start = time.perf_counter()
        for index in range(len(faces)):
            faces[index]
        seconds = time.perf_counter() - start
        rows.append({"size": size, "faces": len(faces), "seconds": round(seconds, 2),
                     "faces_per_second": round(len(faces) / seconds)})
    print(tabulate(rows, headers="keys"))
    return rows


if __name__ == "__main__":
    main()
