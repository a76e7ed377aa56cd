"""Throughput of attnlib's Triton FlashAttention kernel against each of PyTorch's SDPA backends.

Needs a CUDA GPU (the kernel is compiled there; on a CPU it would only run in Triton's
interpreter, which measures nothing useful). Forward pass only, as in the chapter "The cost of
attention and how to cut it":

    .venv/bin/python benchmarks/gpu_flash.py                     # n = 4096, d = 64, float16
    .venv/bin/python benchmarks/gpu_flash.py --n 1024 4096 16384 --causal both
    .venv/bin/python benchmarks/gpu_flash.py --json benchmarks/results/gpu_flash.json

The shape follows the FlashAttention-2 paper's benchmark: batch x length = 16k tokens and a model
width of 2048, so at n = 4096 and head size 64 that is batch 4 with 32 heads. Throughput counts
4 * N * H * L * S * E floating-point operations (two matrix products of 2 * L * S * E each), halved
for causal attention, divided by the median time from ``triton.testing.do_bench``. The SDPA
backends are chosen with ``torch.nn.attention.sdpa_kernel``; a backend that refuses the inputs
is reported as unavailable, with its reason. Before timing, every output is compared with the
math backend's (computed in float32), so a fast wrong kernel cannot win.

Published H100 figures for reference (forward, d = 64, non-causal): FlashAttention-2 about
324 TFLOP/s, cuDNN about 413, FlashAttention-3 about 497. Our kernel targets at least 70 % of the
FlashAttention-2 backend.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def runner(backend, q, k, v, causal: bool):
    """A no-argument function that runs one implementation (backend None: attnlib's kernel)."""
    from torch.nn.attention import sdpa_kernel

    from attnlib.efficient.triton_flash import triton_flash_attention

    if backend is None:
        return lambda: triton_flash_attention(q, k, v, is_causal=causal)

    def run():
        with sdpa_kernel(backend):
            return F.scaled_dot_product_attention(q, k, v, is_causal=causal)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[4096], help="sequence lengths")
    parser.add_argument("--head-dim", type=int, default=64)
    parser.add_argument("--tokens", type=int, default=16384, help="batch x length")
    parser.add_argument("--width", type=int, default=2048, help="model width = heads x head size")
    parser.add_argument("--dtype", choices=["float16", "bfloat16"], default="float16")
    parser.add_argument("--causal", choices=["no", "yes", "both"], default="no")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    if not torch.cuda.is_available():
        sys.exit("gpu_flash.py needs a CUDA GPU: the Triton kernel only compiles there.")

    import triton
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from attnlib.efficient import triton_flash

    if triton_flash.INTERPRETED:
        sys.exit("TRITON_INTERPRET=1 is set: unset it to time the compiled kernel.")

    dtype = getattr(torch, args.dtype)
    d = args.head_dim
    heads = args.width // d
    backends = {
        "sdpa flash (FlashAttention-2)": SDPBackend.FLASH_ATTENTION,
        "sdpa efficient (xFormers)": SDPBackend.EFFICIENT_ATTENTION,
        "sdpa cudnn": SDPBackend.CUDNN_ATTENTION,
        "sdpa math": SDPBackend.MATH,
    }
    gpu = torch.cuda.get_device_name()
    header = {
        "gpu": gpu,
        "torch": torch.__version__,
        "triton": triton.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "dtype": args.dtype,
        "head_dim": d,
        "heads": heads,
    }
    print(" | ".join(f"{k}: {v}" for k, v in header.items()))
    causal_modes = {"no": [False], "yes": [True], "both": [False, True]}[args.causal]
    rows = []
    for n in args.n:
        batch = max(1, args.tokens // n)
        gen = torch.Generator().manual_seed(0)  # drawn on the CPU, as everywhere in the course
        q, k, v = (
            torch.randn(batch, heads, n, d, generator=gen).to("cuda", dtype) for _ in range(3)
        )
        for causal in causal_modes:
            flops = 4 * batch * heads * n * n * d * (0.5 if causal else 1.0)
            with sdpa_kernel(SDPBackend.MATH):
                reference = F.scaled_dot_product_attention(
                    q.float(), k.float(), v.float(), is_causal=causal
                )
            candidates = {"attnlib triton_flash_attention": None, **backends}
            results = {}
            for name, backend in candidates.items():
                run = runner(backend, q, k, v, causal)
                try:
                    out = run()  # compiles / autotunes on the first call
                    torch.cuda.synchronize()
                except RuntimeError as err:
                    results[name] = {"error": str(err).splitlines()[0][:120]}
                    continue
                err = (out.float() - reference).abs().max().item()
                ms = triton.testing.do_bench(run, warmup=25, rep=200)
                results[name] = {"ms": ms, "tflops": flops / ms / 1e9, "max_abs_error": err}
            fa2 = results.get("sdpa flash (FlashAttention-2)", {}).get("tflops")
            print(f"\nn = {n}, batch {batch}, {heads} heads, d = {d}, causal = {causal}")
            print(f"{'implementation':34s} {'ms':>9s} {'TFLOP/s':>9s} {'vs FA2':>8s} "
                  f"{'max |err|':>10s}")
            for name, r in results.items():
                if "error" in r:
                    print(f"{name:34s} unavailable: {r['error']}")
                    continue
                rel = f"{100 * r['tflops'] / fa2:7.1f}%" if fa2 else "     n/a"
                print(f"{name:34s} {r['ms']:9.3f} {r['tflops']:9.1f} {rel:>8s} "
                      f"{r['max_abs_error']:10.2e}")
                rows.append({"n": n, "batch": batch, "causal": causal, "implementation": name,
                             **r})
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({**header, "rows": rows}, indent=1) + "\n")
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
