"""FlashAttention's forward pass as a Triton kernel.

See the chapter "The cost of attention and how to cut it".

:func:`triton_flash_attention` runs the algorithm of :func:`attnlib.efficient.flash_attention`
(tiles of queries and keys, an online softmax with a running maximum and a running sum) as one
Triton program per block of queries. Each program keeps its block of queries, its running
statistics and its output accumulator in fast on-chip memory and streams the keys and values past
them, so the ``(L, S)`` score matrix never reaches main memory (Dao et al. 2022; 2023).

**Where it runs.** On a machine with a CUDA GPU the kernel is compiled, autotuned over a few tile
shapes, and takes CUDA tensors in float16, bfloat16 or float32 (products accumulate in float32).
On a machine without one, this module sets ``TRITON_INTERPRET=1`` *before it imports Triton*, and
Triton's interpreter executes the same kernel on CPU tensors with NumPy, one program at a time. The
interpreter is slow (keep sizes small: a few hundred positions at most) but it checks the very code
a GPU would compile. Triton reads the variable twice: when it is
imported (for its own library functions, such as ``tl.max``) and when a kernel is decorated with
``triton.jit``. Both must see it, so ``attnlib.efficient`` sets it as soon as it is imported on a
machine without a GPU (PyTorch itself may import Triton behind the scenes); if Triton was imported
earlier without it, importing this module raises an ImportError that says what to do. To force the
interpreter on a GPU machine, start Python with ``TRITON_INTERPRET=1`` in the environment.

Forward only: the output carries no gradient.

Shapes as in book/notation.md; the kernel sees the batch and head dimensions folded into one,
B = N * H, and its tiles are BLOCK_M queries by BLOCK_N keys.
"""

from __future__ import annotations

import os

import torch

if not torch.cuda.is_available():  # no GPU to compile for: run kernels in Triton's interpreter
    os.environ.setdefault("TRITON_INTERPRET", "1")

import triton  # noqa: E402 - must come after TRITON_INTERPRET is decided
import triton.language as tl  # noqa: E402

from .._checks import resolve_scale  # noqa: E402
from ..attention import check_attention_inputs  # noqa: E402
from .flash import flatten_batch  # noqa: E402

__all__ = ["triton_flash_attention", "INTERPRETED", "AUTOTUNE_CONFIGS"]

INTERPRETED: bool = os.environ.get("TRITON_INTERPRET", "0") == "1"
"""True when this process runs the kernel in Triton's interpreter (on CPU tensors)."""

if INTERPRETED and isinstance(getattr(tl.standard, "zeros", None), triton.runtime.jit.JITFunction):
    raise ImportError(
        "Triton was imported before TRITON_INTERPRET=1 was set, so its library functions were "
        "prepared for a GPU compiler this machine cannot use. Import attnlib.efficient (or set "
        "TRITON_INTERPRET=1) before anything imports Triton (PyTorch does, e.g. when a dispatch "
        "mode runs), or restart Python with TRITON_INTERPRET=1 in the environment."
    )


@triton.jit
def _tile_update(
    acc, l_i, m_i, q,
    k_base, v_base, stride_ks, stride_ke, stride_vs, stride_ve,
    offs_m, offs_e, offs_ev, start, stop, S, E, EV, qk_scale,
    BLOCK_N: tl.constexpr, MASK_KEYS: tl.constexpr, IS_CAUSAL: tl.constexpr,
    EVEN_E: tl.constexpr, PRECISION: tl.constexpr, DOT_F32: tl.constexpr,
):
    """Fold the key tiles [start, stop) into (acc, l_i, m_i). MASK_KEYS: tiles that may pass the
    end of the keys or cross the causal diagonal, so each score is checked."""
    offs_n = tl.arange(0, BLOCK_N)
    for start_n in range(start, stop, BLOCK_N):
        cols = start_n + offs_n  # (BLOCK_N,)
        k_ptrs = k_base + cols[:, None] * stride_ks + offs_e[None, :] * stride_ke
        v_ptrs = v_base + cols[:, None] * stride_vs + offs_ev[None, :] * stride_ve
        if MASK_KEYS:
            k = tl.load(k_ptrs, mask=(cols[:, None] < S) & (offs_e[None, :] < E), other=0.0)
            v = tl.load(v_ptrs, mask=(cols[:, None] < S) & (offs_ev[None, :] < EV), other=0.0)
        elif EVEN_E:
            k = tl.load(k_ptrs)  # (BLOCK_N, BLOCK_E)
            v = tl.load(v_ptrs)  # (BLOCK_N, BLOCK_EV)
        else:
            k = tl.load(k_ptrs, mask=offs_e[None, :] < E, other=0.0)
            v = tl.load(v_ptrs, mask=offs_ev[None, :] < EV, other=0.0)
        if DOT_F32:  # see triton_flash_attention: bfloat16 products in the interpreter
            s = tl.dot(q.to(tl.float32), tl.trans(k.to(tl.float32)), input_precision="ieee")
        else:
            s = tl.dot(q, tl.trans(k), input_precision=PRECISION)  # (BLOCK_M, BLOCK_N)
        s = s * qk_scale
        if MASK_KEYS:
            keep = cols[None, :] < S
            if IS_CAUSAL:
                keep = keep & (cols[None, :] <= offs_m[:, None])
            s = tl.where(keep, s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, 1))  # (BLOCK_M,) running maximum (base-2 units)
        alpha = tl.math.exp2(m_i - m_new)  # (BLOCK_M,) moves the old sums to the new maximum
        p = tl.math.exp2(s - m_new[:, None])  # (BLOCK_M, BLOCK_N)
        l_i = l_i * alpha + tl.sum(p, 1)
        if DOT_F32:
            pv = tl.dot(p, v.to(tl.float32), input_precision="ieee")
        else:
            pv = tl.dot(p.to(v.dtype), v, input_precision=PRECISION)  # (BLOCK_M, BLOCK_EV)
        acc = acc * alpha[:, None] + pv
        m_i = m_new
    return acc, l_i, m_i


@triton.jit
def _flash_forward(
    Q, K, V, Out, qk_scale, L, S, E, EV,
    stride_qb, stride_ql, stride_qe,
    stride_kb, stride_ks, stride_ke,
    stride_vb, stride_vs, stride_ve,
    stride_ob, stride_ol, stride_oe,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    BLOCK_E: tl.constexpr, BLOCK_EV: tl.constexpr,
    IS_CAUSAL: tl.constexpr, EVEN_E: tl.constexpr, PRECISION: tl.constexpr,
    DOT_F32: tl.constexpr,
):
    """One program: queries [start_m, start_m + BLOCK_M) of batch entry b, against all keys."""
    pid = tl.program_id(0)
    num_m_blocks = tl.cdiv(L, BLOCK_M)
    b = pid // num_m_blocks  # neighbouring programs share b, so K and V stay in the L2 cache
    start_m = (pid % num_m_blocks) * BLOCK_M
    offs_m = start_m + tl.arange(0, BLOCK_M)  # (BLOCK_M,)
    offs_e = tl.arange(0, BLOCK_E)  # (BLOCK_E,) E padded to a power of two
    offs_ev = tl.arange(0, BLOCK_EV)  # (BLOCK_EV,)

    q_ptrs = Q + b * stride_qb + offs_m[:, None] * stride_ql + offs_e[None, :] * stride_qe
    q = tl.load(q_ptrs, mask=(offs_m[:, None] < L) & (offs_e[None, :] < E), other=0.0)

    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)  # running maximum
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)  # running sum of exp(s - m)
    acc = tl.zeros([BLOCK_M, BLOCK_EV], dtype=tl.float32)  # running sum of exp(s - m) v
    qk_scale = qk_scale * 1.4426950408889634  # scores in base 2: exp(x) = exp2(x log2 e)
    k_base = K + b * stride_kb
    v_base = V + b * stride_vb

    # Stage 1: whole tiles that need no check (before the diagonal, before the end of the keys).
    full = (S // BLOCK_N) * BLOCK_N
    if IS_CAUSAL:
        full = tl.minimum(full, start_m)  # tiles left of this block's first query
        stop = tl.minimum(S, start_m + BLOCK_M)  # keys after the block's last query are unseen
    else:
        stop = S
    acc, l_i, m_i = _tile_update(
        acc, l_i, m_i, q, k_base, v_base, stride_ks, stride_ke, stride_vs, stride_ve,
        offs_m, offs_e, offs_ev, 0, full, S, E, EV, qk_scale,
        BLOCK_N, False, IS_CAUSAL, EVEN_E, PRECISION, DOT_F32,
    )
    # Stage 2: the diagonal tiles and a ragged last tile, checked score by score.
    acc, l_i, m_i = _tile_update(
        acc, l_i, m_i, q, k_base, v_base, stride_ks, stride_ke, stride_vs, stride_ve,
        offs_m, offs_e, offs_ev, full, stop, S, E, EV, qk_scale,
        BLOCK_N, True, IS_CAUSAL, EVEN_E, PRECISION, DOT_F32,
    )

    out = acc / l_i[:, None]  # (BLOCK_M, BLOCK_EV)
    o_ptrs = Out + b * stride_ob + offs_m[:, None] * stride_ol + offs_ev[None, :] * stride_oe
    o_mask = (offs_m[:, None] < L) & (offs_ev[None, :] < EV)
    tl.store(o_ptrs, out.to(Out.dtype.element_ty), mask=o_mask)


# Tile shapes tried on a GPU, chosen for head sizes up to 128 on an H100 (228 KiB of shared memory
# per SM): 128 x 64 or 128 x 128 tiles with 4 or 8 warps and 2-4 pipeline stages are where
# FlashAttention-2 and Triton's own tutorial land. BLOCK_M is a multiple of BLOCK_N, which the
# causal split into stages 1 and 2 relies on.
AUTOTUNE_CONFIGS = [
    triton.Config({"BLOCK_M": bm, "BLOCK_N": bn}, num_warps=w, num_stages=s)
    for bm, bn, w, s in [
        (128, 64, 4, 3),
        (128, 64, 8, 3),
        (128, 128, 8, 3),
        (128, 64, 4, 4),
        (128, 32, 4, 4),
        (64, 64, 4, 3),
        (64, 32, 4, 4),
        (128, 128, 8, 2),
    ]
]

_flash_forward_tuned = (
    None
    if INTERPRETED
    else triton.autotune(
        configs=AUTOTUNE_CONFIGS,
        key=["L", "S", "E", "EV", "IS_CAUSAL", "PRECISION", "DOT_F32"],
    )(_flash_forward)
)

INTERPRETER_BLOCKS = (16, 16)  # (BLOCK_M, BLOCK_N) in the interpreter: small tiles, no autotuning
SMALL_BLOCKS = (64, 32)  # compiled, for small problems: one compilation, no autotuning
SMALL_PROBLEM = 512 * 512  # L * S below which tuning would cost more than it could save


def triton_flash_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    is_causal: bool = False,
    *,
    scale: float | None = None,
) -> torch.Tensor:
    """Exact scaled dot-product attention by a Triton FlashAttention kernel (forward only).

    Same result as ``torch.nn.functional.scaled_dot_product_attention(query, key, value,
    is_causal=is_causal, scale=scale)`` up to rounding: float32 inputs are multiplied exactly
    (no TF32), float16 and bfloat16 inputs are multiplied on tensor cores and accumulated in
    float32, and the output has the input's dtype.

    Args:
        query: ``(N, ..., L, E)``.
        key: ``(N, ..., S, E)``; the leading dimensions broadcast with the query's.
        value: ``(N, ..., S, Ev)``.
        is_causal: query ``i`` sees keys ``j <= i`` (aligned top-left, as in PyTorch).
        scale: multiplies the scores; defaults to ``1 / sqrt(E)``.

    Returns:
        ``(N, ..., L, Ev)``.

    Raises:
        TypeError, ValueError: for bad shapes or dtypes (float64 is not supported by Triton's
            matrix products), for tensors on the wrong device (CPU tensors in the interpreter,
            CUDA tensors when compiled), or for E or Ev above 256.

    See the section "The same algorithm as a GPU kernel" of the chapter
    "The cost of attention and how to cut it".
    """
    fn = "triton_flash_attention"
    check_attention_inputs(query, key, value, None, 0.0, is_causal, where=fn)
    if query.dtype not in (torch.float16, torch.bfloat16, torch.float32):
        raise TypeError(
            f"{fn}: supports float16, bfloat16 and float32 inputs, got {query.dtype}"
        )
    devices = {t.device.type for t in (query, key, value)}
    want = "cpu" if INTERPRETED else "cuda"
    if devices != {want}:
        where = (
            "Triton's interpreter (no CUDA GPU here, TRITON_INTERPRET=1) needs CPU tensors"
            if INTERPRETED
            else "the compiled kernel needs CUDA tensors"
        )
        raise ValueError(
            f"{fn}: {where}; got query on {query.device}, key on {key.device}, value on "
            f"{value.device}"
        )
    E, EV = query.size(-1), value.size(-1)
    if max(E, EV) > 256:
        raise ValueError(f"{fn}: head sizes up to 256 are supported, got E = {E}, Ev = {EV}")
    scale = resolve_scale(scale, E, fn)

    batch, q, k, v = flatten_batch(query, key, value)  # (B, L, E), (B, S, E), (B, S, Ev)
    B, L, S = q.size(0), q.size(1), k.size(1)
    out = torch.zeros(B, L, EV, dtype=query.dtype, device=query.device)  # (B, L, Ev)
    if B == 0 or L == 0 or S == 0 or EV == 0:
        return out.reshape(*batch, L, EV)  # no keys: zero output, as in attnlib

    block_e = max(16, triton.next_power_of_2(E))  # tl.dot needs sizes >= 16
    block_ev = max(16, triton.next_power_of_2(EV))
    common = dict(
        BLOCK_E=block_e,
        BLOCK_EV=block_ev,
        IS_CAUSAL=bool(is_causal),
        EVEN_E=E == block_e and EV == block_ev,  # no feature padding: loads skip their masks
        PRECISION="ieee" if query.dtype == torch.float32 else "tf32",  # ignored for 16-bit inputs
        # Triton 3.9's interpreter multiplies bfloat16 blocks wrongly in tl.dot (seen: errors of
        # 1e10 on a 16 x 16 product); there, the products run in float32 instead.
        DOT_F32=INTERPRETED and query.dtype == torch.bfloat16,
    )
    args = (q, k, v, out, float(scale), L, S, E, EV)
    strides = (*q.stride(), *k.stride(), *v.stride(), *out.stride())
    if INTERPRETED:
        block_m, block_n = INTERPRETER_BLOCKS
        grid = (B * triton.cdiv(L, block_m),)
        _flash_forward[grid](*args, *strides, BLOCK_M=block_m, BLOCK_N=block_n, **common)
    elif L * S <= SMALL_PROBLEM:  # autotuning compiles every config for every new (L, S)
        block_m, block_n = SMALL_BLOCKS
        grid = (B * triton.cdiv(L, block_m),)
        _flash_forward[grid](*args, *strides, BLOCK_M=block_m, BLOCK_N=block_n, num_warps=4,
                             num_stages=2, **common)
    else:
        def grid(meta):
            return (B * triton.cdiv(L, meta["BLOCK_M"]),)  # one program per block of queries

        _flash_forward_tuned[grid](*args, *strides, **common)
    return out.reshape(*batch, L, EV)
