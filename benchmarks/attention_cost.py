"""Time and peak memory of exact and approximate attention against the length n, on the CPU.

    .venv/bin/python benchmarks/attention_cost.py                 # the full sweep, ~10 minutes
    .venv/bin/python benchmarks/attention_cost.py --n 128 1024 --methods sdpa flash --repeats 3
    .venv/bin/python benchmarks/attention_cost.py --point flash 4096   # one point, as JSON

Writes benchmarks/results/attention_cost.json, the data the chapter "The cost of attention and
how to cut it" plots. Every point runs in a fresh Python process, so that one point's memory
cannot hide in another's:

* **time** is the best of ``--repeats`` calls after a first, untimed one, with
  ``torch.set_num_threads(--threads)`` (the median is stored too). On a shared machine other
  jobs only ever add time, so the fastest call is the closest to what the method itself costs.
* **memory** is measured, not estimated, in a second fresh process. Before anything large is
  allocated, glibc is told to return freed memory to the kernel at once (``mallopt``: a fixed
  mmap threshold, no trim slack), so resident memory follows the live tensors. The method runs
  once (loading its code), then the kernel's high-water mark of resident memory is reset
  (``echo 5 > /proc/self/clear_refs``), the method runs again, and the new high-water mark is
  read (``VmHWM`` in ``/proc/self/status``). The figure is that peak minus the resident memory
  just before the call: everything the method holds at once, output included, inputs excluded.
  (Python's tracemalloc would miss it: PyTorch allocates outside Python's allocator.) Linux and
  glibc only.
* **error** is each method's largest and mean absolute difference from SDPA's output on the same
  inputs (random queries, keys and values with one batch entry, 8 heads and head size 64), and
  the relative error ``||out - exact|| / ||exact||``.

The machine this course was built on is shared: its timings carry the noise of other jobs, which
the JSON records next to the numbers (the load average before and after).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULT = ROOT / "benchmarks" / "results" / "attention_cost.json"
N_BATCH, HEADS, HEAD_DIM = 1, 8, 64
LENGTHS = [128, 256, 512, 1024, 2048, 4096, 8192]

# Each method: a label for the plots, and its knob (fixed across n, so the approximations' cost
# grows linearly while exact attention's grows quadratically).
METHODS = {
    "naive": ("naive (materialises L x S)", {}),
    "sdpa": ("torch SDPA (a CPU flash kernel)", {}),
    "flash": ("attnlib flash_attention", {}),
    "linformer": ("Linformer, k = min(256, n)", {"k": 256}),
    "longformer": ("Longformer, window 128 + 1 global", {"window": 128, "global_tokens": (0,)}),
    "bigbird": ("BigBird, blocks of 64: 3 window + 1 global + 2 random",
                {"block_size": 64, "window": 1, "num_global": 1, "num_random": 2}),
    "performer": ("Performer, m = 256 features", {"m": 256}),
}


def _kib(field: str) -> int:
    text = Path("/proc/self/status").read_text()
    return int(re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE).group(1))


def _function(method: str, n: int):
    import torch.nn.functional as F

    from attnlib import efficient

    knob = dict(METHODS[method][1])
    if method == "linformer":
        knob["k"] = min(knob["k"], n)  # k = n is exact attention (and the most there can be)
    if method == "naive":
        def naive(q, k, v):
            scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))  # (N, H, L, S)
            return scores.softmax(dim=-1) @ v  # (N, H, L, Ev)
        return naive
    if method == "sdpa":
        return F.scaled_dot_product_attention
    fn = {
        "flash": efficient.flash_attention,
        "linformer": efficient.linformer_attention,
        "longformer": efficient.longformer_attention,
        "bigbird": efficient.bigbird_attention,
        "performer": efficient.performer_attention,
    }[method]
    return lambda q, k, v: fn(q, k, v, **knob)


def _malloc_returns_memory() -> None:
    """Make glibc give freed blocks back to the kernel at once, so that resident memory follows
    the live tensors: a fixed mmap threshold (no dynamic raise) and no trim slack."""
    import ctypes

    libc = ctypes.CDLL("libc.so.6")
    m_trim_threshold, m_mmap_threshold = -1, -3  # from malloc.h
    libc.mallopt(m_mmap_threshold, 64 * 1024)
    libc.mallopt(m_trim_threshold, 0)
    libc.malloc_trim(0)


def _inputs(n: int):
    import torch

    gen = torch.Generator().manual_seed(0)
    return tuple(torch.randn(N_BATCH, HEADS, n, HEAD_DIM, generator=gen) for _ in range(3))


def measure_time(method: str, n: int, repeats: int, threads: int) -> dict:
    """In a fresh process: the median time of a few calls, and the error against SDPA."""
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(threads)
    q, k, v = _inputs(n)
    fn = _function(method, n)
    out = fn(q, k, v)  # first call: loads code, warms caches; not timed
    errors = {}
    if method != "sdpa":
        reference = F.scaled_dot_product_attention(q, k, v)
        diff = (out - reference).abs()
        errors = {"max_abs_error": diff.max().item(), "mean_abs_error": diff.mean().item(),
                  "relative_error": ((out - reference).norm() / reference.norm()).item()}
    del out
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(q, k, v)
        times.append(time.perf_counter() - start)
    return {"time_s": min(times), "time_median_s": statistics.median(times),
            "times_s": [round(t, 5) for t in times], **errors}


def measure_memory(method: str, n: int, threads: int) -> dict:
    """In a fresh process: the peak resident memory one call adds to its inputs."""
    _malloc_returns_memory()  # before any large allocation, so no freed block lingers
    import torch

    torch.set_num_threads(threads)
    q, k, v = _inputs(n)
    fn = _function(method, n)
    fn(q, k, v)  # first call: loads code pages, which would otherwise count as memory
    before = _kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset the high-water mark to the current RSS
    fn(q, k, v)
    return {"peak_mib": round(max(0, _kib("VmHWM") - before) / 1024, 2)}


def run_point(method: str, n: int, repeats: int, threads: int) -> dict:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": str(threads)}
    point = {"method": method, "n": n}
    for what in ("time", "memory"):
        cmd = [sys.executable, str(Path(__file__).resolve()), "--point", method, str(n), what,
               "--repeats", str(repeats), "--threads", str(threads)]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            return {**point, "error": done.stderr.strip().splitlines()[-1][:200]}
        point.update(json.loads(done.stdout.strip().splitlines()[-1]))
    return point


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=LENGTHS)
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS))
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per point")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1 is stable on a shared machine)")
    parser.add_argument("--out", type=Path, default=RESULT)
    parser.add_argument("--note", default="", help="recorded in the JSON, e.g. the machine's load")
    parser.add_argument("--point", nargs=3, metavar=("METHOD", "N", "WHAT"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT / "src"))
    if args.point:
        method, n, what = args.point
        if what == "time":
            print(json.dumps(measure_time(method, int(n), args.repeats, args.threads)))
        else:
            print(json.dumps(measure_memory(method, int(n), args.threads)))
        return

    import torch

    load_before = os.getloadavg()
    started = time.time()
    points = []
    for n in args.n:
        for method in args.methods:
            point = run_point(method, n, args.repeats, args.threads)
            points.append(point)
            shown = (f"{point['time_s'] * 1e3:9.1f} ms {point['peak_mib']:9.1f} MiB"
                     if "time_s" in point else f"failed: {point['error']}")
            print(f"n = {n:5d}  {method:10s} {shown}", flush=True)
    result = {
        "description": "time and peak extra resident memory of one attention call, CPU",
        "shape": {"N": N_BATCH, "H": HEADS, "E": HEAD_DIM, "Ev": HEAD_DIM},
        "methods": {m: {"label": METHODS[m][0], "knob": {k: list(v) if isinstance(v, tuple) else v
                                                         for k, v in METHODS[m][1].items()}}
                    for m in args.methods},
        "memory": "VmHWM - VmRSS around one warm call in a fresh process (high-water mark reset "
                  "first, glibc returning freed memory at once); output included, inputs not",
        "time": f"best of {args.repeats} calls after a first, untimed one (median also stored)",
        "machine": {
            "cpu": cpu_model(),
            "cores": os.cpu_count(),
            "threads": args.threads,
            "torch": torch.__version__,
            "python": platform.python_version(),
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
            "minutes": round((time.time() - started) / 60, 1),
            "note": args.note,
        },
        "points": points,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")


if __name__ == "__main__":
    main()
