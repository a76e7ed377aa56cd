"""Sliding-window attention: what skipping the tiles outside the band saves, on the CPU.

    .venv/bin/python benchmarks/sliding_window.py                     # n = 8192, W = 512
    .venv/bin/python benchmarks/sliding_window.py --n 4096 --window 256 --rounds 3 --threads 1

Times four ways of computing causal attention over one batch entry with 8 heads of size 64
(float32), in one process, interleaved round by round so that the machine's other jobs slow all
of them alike:

* ``flash causal``: :func:`attnlib.efficient.flash_attention` with ``is_causal=True``, every tile
  on or below the diagonal;
* ``flash window``: the same with ``window=W``, which visits only the tiles that meet the band
  ``i - W < j <= i``;
* ``sdpa causal`` and ``sdpa band``: PyTorch's SDPA with ``is_causal=True``, and with the band
  as a boolean ``attn_mask`` (which its CPU kernel applies tile by tile but does not skip).

Prints, and writes to benchmarks/results/sliding_window.json, the median of ``--rounds`` calls
(after one untimed call each) per thread count, and the ratios within each run. It checks first
that the windowed result equals SDPA with the band mask. Timings are never asserted in tests.
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
from attnlib.masks import causal_mask

ROOT = Path(__file__).resolve().parents[1]
RESULT = ROOT / "benchmarks" / "results" / "sliding_window.json"
HEADS, HEAD_DIM = 8, 64


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=8192)
    parser.add_argument("--window", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()

    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, HEADS, args.n, HEAD_DIM, generator=gen) for _ in range(3))
    band = causal_mask(args.n, args.n, window=args.window)  # (L, S), True = may attend
    methods = {
        "flash causal": lambda: flash_attention(q, k, v, is_causal=True),
        "flash window": lambda: flash_attention(q, k, v, is_causal=True, window=args.window),
        "sdpa causal": lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True),
        "sdpa band": lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=band),
    }
    err = (methods["flash window"]() - methods["sdpa band"]()).abs().max().item()
    print(f"n = {args.n}, window = {args.window}: flash window vs SDPA band, max |diff| {err:.2e}")

    runs = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        times: dict[str, list[float]] = {name: [] for name in methods}
        for fn in methods.values():
            fn()  # untimed: first-call costs
        for _ in range(args.rounds):
            for name, fn in methods.items():
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
        med = {name: statistics.median(ts) for name, ts in times.items()}
        ratios = {
            "flash causal / flash window": med["flash causal"] / med["flash window"],
            "flash window / sdpa band": med["flash window"] / med["sdpa band"],
            "flash window / sdpa causal": med["flash window"] / med["sdpa causal"],
        }
        runs.append({"threads": threads, "median_s": med, "ratios": ratios, "times_s": times})
        print(f"threads {threads}: " + ", ".join(f"{n} {t * 1e3:.0f} ms" for n, t in med.items()))
        print("  " + ", ".join(f"{n} {r:.2f}x" for n, r in ratios.items()))

    if not args.no_save:
        RESULT.parent.mkdir(parents=True, exist_ok=True)
        RESULT.write_text(json.dumps({
            "n": args.n, "window": args.window, "heads": HEADS, "head_dim": HEAD_DIM,
            "rounds": args.rounds, "max_abs_diff": err, "torch": torch.__version__,
            "machine": platform.machine(), "cpus": os.cpu_count(),
            "load_average": os.getloadavg(), "runs": runs,
        }, indent=1) + "\n")
        print(f"wrote {RESULT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
