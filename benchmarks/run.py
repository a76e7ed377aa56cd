"""Time what the course asks of a learner's machine, and print a Markdown table for the README.

    .venv/bin/python benchmarks/run.py            # every notebook, the book build (3 runs each)
    .venv/bin/python benchmarks/run.py --runs 5 --test   # also time a full `make test`
    .venv/bin/python benchmarks/run.py notebooks/03_*.ipynb   # only these notebooks (and the build)

Each figure is the median wall time of whole processes, as a learner would experience them:
executing a notebook from a fresh kernel (its stored outputs are not touched) and a
clean book build from stored outputs. Timings are reported, never asserted in tests: shared
machines are noisy, and a test that fails on a busy day teaches nobody anything.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def wall(cmd: list[str], *, cwd: Path = ROOT) -> float:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def median_of(runs: int, make_cmd) -> tuple[float, float, float]:
    times = sorted(make_cmd() for _ in range(runs))
    return times[0], statistics.median(times), times[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--test", action="store_true", help="also time `make test` once")
    parser.add_argument("notebooks", nargs="*", type=Path,
                        help="notebooks to time (default: every notebooks/*.ipynb)")
    args = parser.parse_args()
    notebooks = [p.resolve() for p in args.notebooks]
    notebooks = notebooks or sorted((ROOT / "notebooks").glob("*.ipynb"))

    rows: list[tuple[str, tuple[float, float, float]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for nb in notebooks:
            # Without --inplace/--output, jupyter-execute writes nothing back: the stored outputs
            # stay as they are, and the kernel starts in notebooks/ as a learner's would.
            def run(nb=nb) -> float:
                return wall([str(BIN / "jupyter-execute"), "--kernel_name=python3", str(nb)])
            rows.append((f"execute {nb.name}", median_of(args.runs, run)))
            print(f"{rows[-1][0]}: {rows[-1][1][1]:.1f} s", file=sys.stderr, flush=True)

        def build() -> float:
            out = Path(tmp) / "build"
            shutil.rmtree(out, ignore_errors=True)
            return wall([str(BIN / "jupyter-book"), "build", ".", "--toc", "book/_toc.yml",
                         "--path-output", str(out), "-W", "--keep-going"])
        rows.append(("clean book build (stored outputs)", median_of(args.runs, build)))

    if args.test:
        make_test = median_of(1, lambda: wall(["make", "test"]))
        rows.append(("make test (set-up already done)", make_test))

    print(f"{os.cpu_count()} CPU cores, {args.runs} runs each (median, min–max):\n")
    print("| what | median (s) | min–max (s) |")
    print("|---|---:|---:|")
    for name, (lo, med, hi) in rows:
        print(f"| {name} | {med:.1f} | {lo:.1f}–{hi:.1f} |")


if __name__ == "__main__":
    main()
