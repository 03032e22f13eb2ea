"""Opening the real datasets (scan + annotations) and decoding their images, where the data root has them."""
import time

from tabulate import tabulate

from g2d.core import DataRootError
from g2d.datasets import face_datasets_found, open_dataset


def main(decode: int = 500) -> list[dict]:
    try:
        names = face_datasets_found()
    except DataRootError as e:
        print(f"no data root ({e}): nothing to measure")
        return []
    rows = []
    for name in names:
        start = time.perf_counter()
        dataset = open_dataset(name)
        opened = time.perf_counter() - start
        count = min(decode, len(dataset))
        start = time.perf_counter()
        for index in range(count):
            dataset[index]
        rows.append({"dataset": name, "images": len(dataset), "open_seconds": round(opened, 2),
                     "decoded_per_second": round(count / (time.perf_counter() - start))})
    print(tabulate(rows, headers="keys"))
    return rows


if __name__ == "__main__":
    main()
