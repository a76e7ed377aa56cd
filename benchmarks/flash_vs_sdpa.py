"""flash_attention against PyTorch's SDPA on the CPU: time ratios at one length, in one run.

    .venv/bin/python benchmarks/flash_vs_sdpa.py                   # n = 4096, 1 and 2 threads
    .venv/bin/python benchmarks/flash_vs_sdpa.py --n 2048 --runs 11 --threads 1

For each thread count and for causal and non-causal attention, the two functions are called in
turn (flash, SDPA, flash, SDPA, ...) on the same inputs (B = 1, H = 8, E = 64, float32 by
default), after one untimed call each; the figures are the medians of ``--runs`` calls and the
ratio of the medians. Alternating the calls means a burst of load from another job falls on both.
Each case also checks that the outputs agree (the largest absolute difference is printed), so
the speed is never bought with an error.

Writes benchmarks/results/flash_vs_sdpa.json (``--out`` to change) with the load average before
and after: the machine this course is built on is shared, so a figure taken under load says so.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from attnlib.efficient import flash_attention

RESULTS = Path(__file__).parent / "results"


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def compare(n: int, heads: int, size: int, causal: bool, runs: int) -> dict:
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, heads, n, size, generator=g) for _ in range(3))
    flash = lambda: flash_attention(q, k, v, is_causal=causal)  # noqa: E731
    sdpa = lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal)  # noqa: E731
    error = (flash() - sdpa()).abs().max().item()  # also the untimed first calls
    times = {"flash": [], "sdpa": []}
    for _ in range(runs):
        times["flash"].append(timed(flash))
        times["sdpa"].append(timed(sdpa))
    med = {name: statistics.median(t) for name, t in times.items()}
    return {
        "causal": causal,
        "flash_ms": round(med["flash"] * 1e3, 1),
        "sdpa_ms": round(med["sdpa"] * 1e3, 1),
        "ratio": round(med["flash"] / med["sdpa"], 3),
        "max_abs_error": error,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4096, help="sequence length L = S")
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--size", type=int, default=64, help="head size E")
    parser.add_argument("--runs", type=int, default=9, help="timed calls per function and case")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--out", type=Path, default=RESULTS / "flash_vs_sdpa.json")
    args = parser.parse_args()

    load_before = os.getloadavg()
    results = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        for causal in (False, True):
            row = {"threads": threads, **compare(args.n, args.heads, args.size, causal, args.runs)}
            results.append(row)
            print(f"threads {threads}  causal {causal!s:5}  flash {row['flash_ms']:8.1f} ms  "
                  f"sdpa {row['sdpa_ms']:8.1f} ms  ratio {row['ratio']:.2f}  "
                  f"max |diff| {row['max_abs_error']:.1e}")
    report = {
        "what": f"flash_attention / SDPA, B=1 H={args.heads} L=S={args.n} E={args.size} float32, "
                f"medians of {args.runs} alternating calls",
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    print(f"load average before {report['load_average_before']}, "
          f"after {report['load_average_after']}; wrote {args.out}")


if __name__ == "__main__":
    main()
