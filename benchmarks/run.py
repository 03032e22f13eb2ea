"""`make bench`: run every benchmarks/bench_*.py (each has a `main()` that prints its measurements).

Speed and memory targets live here, never in timed tests. Usage: python benchmarks/run.py [NAME ...]
(NAME filters by substring, e.g. `python benchmarks/run.py metrics`)."""
import importlib.util
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv=None) -> int:
    names = sys.argv[1:] if argv is None else argv
    files = sorted(HERE.glob("bench_*.py"))
    if names:
        files = [f for f in files if any(n in f.stem for n in names)]
    if not files:
        print("no benchmarks matched" if names else "no benchmarks yet")
        return 1 if names else 0
    print(f"benchmarks on {platform.node()} ({platform.processor() or platform.machine()}, python {platform.python_version()})")
    failed = []
    for file in files:
        print(f"\n== {file.stem} ==", flush=True)
        spec = importlib.util.spec_from_file_location(file.stem, file)
        module = importlib.util.module_from_spec(spec)
        start = time.perf_counter()
        try:
            spec.loader.exec_module(module)
            sys.argv = [str(file)]  # each benchmark runs with its defaults, not run.py's filter arguments
            module.main()
        except Exception as e:  # report every benchmark, then fail
            failed.append(file.stem)
            print(f"{file.stem} failed: {type(e).__name__}: {e}")
        print(f"({file.stem}: {time.perf_counter() - start:.1f} s)")
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
