"""Exact attention in tiles, with an online softmax: the idea behind FlashAttention.

:func:`flash_attention` computes exactly what
:func:`torch.nn.functional.scaled_dot_product_attention` computes, but never holds the whole
``(L, S)`` score matrix. It walks over the keys one block at a time and keeps, for every query,
three running quantities (Milakov & Gimelshein 2018; Dao et al. 2022):

* ``m``, the largest score seen so far (for a numerically safe ``exp``);
* ``l``, the sum of ``exp(score - m)`` over the keys seen so far;
* ``acc``, the sum of ``exp(score - m) * value`` over the same keys.

When a block raises the maximum from ``m`` to ``m_new``, everything summed so far was computed
relative to the old maximum; multiplying ``l`` and ``acc`` by ``exp(m - m_new)`` moves them to the
new one. After the last block, ``acc / l`` is the softmax-weighted average of the values: the exact
attention output. Memory grows with the tile size and the output, linearly in the length, instead
of quadratically.

:func:`online_softmax_trace` runs the same loop on one small head and records every step, for the
chapter's printed example and for :class:`attnlib.widgets.tiles.OnlineSoftmaxTiles`.

Shapes as in book/notation.md: N batch and H heads (folded into B = N * H by the loop), L queries,
S keys, E query/key size, Ev value size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

import torch
import torch.nn.functional as F

from .._checks import positive_int, resolve_scale, shape
from ..attention import check_attention_inputs

__all__ = [
    "flash_attention",
    "online_softmax_trace",
    "TileStep",
    "check_block_size",
    "flatten_batch",
]

_NEG_INF = float("-inf")
QUERY_BLOCK = 256  # queries handled together (SDPA's CPU kernel also uses 256 for long inputs)
KEY_BLOCK = 256  # keys per tile; a tile of scores is QUERY_BLOCK x KEY_BLOCK per head
# A tile holds scores for every head at once: 8 heads x 256 x 256 float32s are 2 MiB, about one
# core's L2 cache, so exp, sum and the second product read it from cache, not memory.
_MAX_RISE = 40.0  # how far a score may exceed m: exp(40) ~ 2e17, far below float32's 3e38


def check_block_size(block_size, name: str = "block_size") -> tuple[int, int]:
    """``block_size`` as a pair ``(query_block, key_block)`` of positive ints, or a clear error."""
    pair = (block_size, block_size) if isinstance(block_size, int) else block_size
    ok = (
        isinstance(pair, (tuple, list))
        and len(pair) == 2
        and all(isinstance(b, int) and not isinstance(b, bool) and b > 0 for b in pair)
    )
    if not ok:
        raise ValueError(
            f"{name} must be a positive int or a pair (query_block, key_block) of positive ints, "
            f"got {block_size!r}"
        )
    return int(pair[0]), int(pair[1])


def flatten_batch(query, key, value):
    """Broadcast the leading dimensions and fold them into one batch dimension B.

    Returns:
        ``(batch, q, k, v)``: the broadcast leading shape, and ``q (B, L, E)``, ``k (B, S, E)``,
        ``v (B, S, Ev)`` with ``B = prod(batch)`` (views when possible). Every kernel in this
        package works on the folded tensors and unfolds its output with ``reshape(*batch, ...)``.
    """
    batch = torch.broadcast_shapes(query.shape[:-2], key.shape[:-2], value.shape[:-2])
    B = math.prod(batch)  # explicit: reshape(-1, ...) cannot infer it when a tensor is empty
    q = query.expand(*batch, *query.shape[-2:]).reshape(B, *query.shape[-2:])  # (B, L, E)
    k = key.expand(*batch, *key.shape[-2:]).reshape(B, *key.shape[-2:])  # (B, S, E)
    v = value.expand(*batch, *value.shape[-2:]).reshape(B, *value.shape[-2:])  # (B, S, Ev)
    return batch, q, k, v


def flash_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    is_causal: bool = False,
    *,
    scale: float | None = None,
    block_size: int | tuple[int, int] | None = None,
    window: int | None = None,
) -> torch.Tensor:
    r"""Exact scaled dot-product attention computed tile by tile, with an online softmax.

    The result equals ``torch.nn.functional.scaled_dot_product_attention(query, key, value,
    is_causal=is_causal, scale=scale)`` up to floating-point rounding, but the full score matrix
    ``(..., L, S)`` never exists: at any moment only one tile of ``query_block x key_block`` scores
    per batch entry does, so the extra memory is linear in the length, not quadratic.

    For each block of queries the loop visits the blocks of keys in order and keeps, per query,
    a reference maximum ``m``, the running sum ``l = sum exp(s - m)`` and the running weighted sum
    of values ``acc``. When ``m`` rises to ``m'``, the old sums are multiplied by ``exp(m - m')``:

    .. math:: l' = e^{m - m'} l + \sum_j e^{s_j - m'},\qquad
              acc' = e^{m - m'} acc + \sum_j e^{s_j - m'} v_j

    and ``acc / l`` is returned at the end. With ``is_causal=True`` the tiles that lie entirely
    above the diagonal are skipped, which halves the work. With a sliding ``window`` as well
    (Mistral's and Gemma's local layers), the tiles entirely before the window are skipped too, so
    the work grows like ``L * window`` instead of ``L * S / 2``.

    One refinement makes it faster on a CPU. The result does not depend on which ``m`` is used,
    only on ``exp(s - m)`` neither overflowing nor underflowing. So ``m`` starts as the score of
    one key the query certainly sees (its own position, or the last key when ``L > S``), which
    keeps ``l >= 1``, and is raised only when a tile *could* exceed it by more than ``40``
    (checked in advance with the bound ``s <= |q| max|k|``); for ordinary inputs that never
    happens. The
    subtraction of ``m`` then rides inside the matrix product (``[q, -m] . [k, 1] = q.k - m``),
    and each tile costs two matrix products, one ``exp`` and one sum, like PyTorch's own kernel.

    Args:
        query: ``(N, ..., L, E)``.
        key: ``(N, ..., S, E)``; the leading dimensions broadcast with the query's.
        value: ``(N, ..., S, Ev)``.
        is_causal: query ``i`` sees keys ``j <= i`` (aligned top-left, as in PyTorch).
        scale: multiplies the scores; defaults to ``1 / sqrt(E)``.
        block_size: keys per tile, or a pair ``(query_block, key_block)``. Larger tiles mean
            fewer, bigger matrix products (less Python overhead) and more memory per tile.
            ``None`` (the default) is ``(256, 256)``, or ``(128, 256)`` with a ``window``: a
            block of queries needs ``window + query_block - 1`` keys, so smaller query blocks
            waste less of the band.
        window: with ``is_causal=True``, query ``i`` sees only the keys ``i - window < j <= i``
            (the mask of :func:`attnlib.masks.causal_mask` with the same ``window``); a window
            longer than the sequence changes nothing. ``None`` (the default): every earlier key.

    Returns:
        The attention output ``(N, ..., L, Ev)``, in the dtype of ``query``. float16 and bfloat16
        inputs are computed in float32. A query with no key to attend to (when ``S = 0``, or
        with a ``window`` when ``L > S``) gets a zero output. Forward only: the output tracks no
        gradient (FlashAttention's backward pass is a second tiled loop that recomputes the
        scores; PyTorch's SDPA has it).

    Raises:
        TypeError, ValueError: for inputs that are not floating-point tensors, whose shapes do not
            fit together (the message names the argument and the shapes), or for a bad
            ``block_size``, ``scale`` or ``window`` (a positive int, and only with
            ``is_causal=True``).

    See the chapter "The cost of attention and how to cut it".
    """
    with torch.no_grad():  # the loop updates its tiles in place, which autograd cannot follow
        return _flash_forward(query, key, value, is_causal, scale, block_size, window)


def _check_window(window, is_causal: bool, where: str) -> int | None:
    if window is None:
        return None
    positive_int(window, "window (a positive int or None)", where)
    if not is_causal:
        raise ValueError(
            f"{where}: window={window} needs is_causal=True (query i sees keys i - window < j <= i)"
        )
    return window


def _reference_score(q1, k1, i0: int, i1: int, window: int) -> torch.Tensor:
    """``(B, bq, 1)``: for each query of the block, its score with one key it certainly sees,
    the reference ``m`` it starts from.

    Query ``i`` always sees key ``min(i, S - 1)`` (itself, or the last key when ``L > S``), with
    or without the causal mask; with a sliding ``window`` a query past the keys' end may see no
    key at all, and gets 0 (and, in the end, a zero output). ``q1`` is the block's
    ``(B, bq, E+1)`` with a last column of zeros, ``k1`` ``(B, S, E+1)``.
    """
    S = k1.size(1)
    rows = torch.arange(i0, i1, device=q1.device)  # (bq,)
    ref = rows.clamp(max=S - 1)  # (bq,) the key each query certainly sees
    score = (q1 * k1[:, ref]).sum(dim=-1, keepdim=True)  # (B, bq, 1)
    if window is None:
        return score
    sees_it = (ref > rows - window)[None, :, None]  # (1, bq, 1)
    return torch.where(sees_it, score, torch.zeros_like(score))


def _flash_forward(query, key, value, is_causal, scale, block_size, window) -> torch.Tensor:
    where = "flash_attention"
    check_attention_inputs(query, key, value, None, 0.0, is_causal, where=where)
    window = _check_window(window, is_causal, where)
    if block_size is None:
        block_size = (QUERY_BLOCK if window is None else QUERY_BLOCK // 2, KEY_BLOCK)
    block_q, block_k = check_block_size(block_size)
    scale = resolve_scale(scale, query.size(-1), where)
    batch, q, k, v = flatten_batch(query, key, value)
    B, L, E = q.shape
    S, Ev = k.size(1), v.size(-1)
    acc_dtype = torch.promote_types(query.dtype, torch.float32)  # float16/bfloat16 -> float32
    dev = q.device

    q = q.to(acc_dtype) * scale  # (B, L, E): scale the queries once, not every tile
    k1 = torch.cat([k.to(acc_dtype), k.new_ones(B, S, 1, dtype=acc_dtype)], dim=-1)  # (B, S, E+1)
    k1_t = k1.transpose(1, 2)  # (B, E+1, S): [k_j, 1] as columns
    v = v.to(acc_dtype)  # (B, S, Ev)
    out = torch.zeros(B, L, Ev, dtype=acc_dtype, device=dev)  # (B, L, Ev)
    if S == 0 or L == 0:
        return out.reshape(*batch, L, Ev).to(query.dtype)

    # Bound on any score a tile can hold: s_ij <= |q_i| * max_{j in tile} |k_j|.
    n_tiles = -(-S // block_k)
    k_norm = F.pad(k.to(acc_dtype).norm(dim=-1), (0, n_tiles * block_k - S))  # (B, tiles*bk)
    k_norm_max = k_norm.view(B, n_tiles, block_k).amax(dim=-1)  # (B, tiles)
    q_norm = q.norm(dim=-1)  # (B, L)

    @cache
    def hidden_keys(offset: int, bq: int, bk: int) -> torch.Tensor:
        """``(bq, bk)`` True where a query may not see a key, for a tile whose first key sits
        ``offset`` positions after its first query. Tiles repeat their offsets along the
        diagonal (and along a window's edge), so each mask is built once per call."""
        rows = torch.arange(bq, device=dev)[:, None]  # (bq, 1)
        cols = torch.arange(offset, offset + bk, device=dev)[None, :]  # (1, bk)
        hidden = cols > rows  # later keys
        return hidden | (cols <= rows - window) if window is not None else hidden

    for i0 in range(0, L, block_q):
        i1 = min(i0 + block_q, L)
        zeros = q.new_zeros(B, i1 - i0, 1)
        q1 = torch.cat([q[:, i0:i1], zeros], dim=-1)  # (B, bq, E+1): [q_i, -m_i]
        acc = torch.zeros(B, i1 - i0, Ev, dtype=acc_dtype, device=dev)  # (B, bq, Ev)
        ell = torch.zeros(B, i1 - i0, 1, dtype=acc_dtype, device=dev)  # (B, bq, 1) running sum
        s_end = min(S, i1) if is_causal else S  # causal: keys after the block's last query unseen
        # a window starts at the first key the block's first query sees
        j_start = 0 if window is None else max(0, i0 - window + 1)
        m = _reference_score(q1, k1, i0, i1, window)  # (B, bq, 1) the reference, a seen score
        q1[:, :, E:] = -m
        safe = _safe_tiles(q_norm[:, i0:i1, None], k_norm_max, m)
        for j0 in range(j_start, s_end, block_k):
            j1 = min(j0 + block_k, s_end)
            s = torch.bmm(q1, k1_t[:, :, j0:j1])  # (B, bq, bk): s_ij - m_i
            later = is_causal and j1 - 1 > i0  # the tile crosses the diagonal
            too_old = window is not None and j0 <= i1 - 1 - window  # ... or the window's start
            if later or too_old:  # hide the keys these queries may not see
                s.masked_fill_(hidden_keys(j0 - i0, i1 - i0, j1 - j0), _NEG_INF)
            if not (safe[j0 // block_k] and safe[(j1 - 1) // block_k]):
                # A tile (or with a window, the two bounded tiles it overlaps) whose scores might
                # rise far above m: the classic update.
                rise = s.amax(dim=-1, keepdim=True).clamp_(min=0.0)  # (B, bq, 1)
                if bool(rise.any()):
                    s.sub_(rise)
                    alpha = rise.neg().exp_()  # (B, bq, 1) = exp(m - m_new)
                    ell.mul_(alpha)
                    acc.mul_(alpha)
                    m = m + rise
                    q1[:, :, E:] = -m
            s.exp_()  # (B, bq, bk): p = exp(s - m), in place
            ell.add_(s.sum(dim=-1, keepdim=True))
            acc.baddbmm_(s, v[:, j0:j1])  # (B, bq, Ev): acc + p @ v
        if window is not None:  # a query past the keys' end may see none: zeros, not 0 / 0
            ell.masked_fill_(ell == 0, 1.0)
        out[:, i0:i1] = acc / ell  # (B, bq, Ev)
    return out.reshape(*batch, L, Ev).to(query.dtype)  # (N, ..., L, Ev)


def _safe_tiles(q_norm, k_norm_max, m) -> list[bool]:
    """Per key tile: can no score in it exceed ``m`` by more than ``_MAX_RISE``? From the bound
    ``s_ij <= |q_i| max_j |k_j|``; ``q_norm`` is ``(B, bq, 1)``, ``k_norm_max`` ``(B, tiles)``."""
    bound = q_norm * k_norm_max[:, None, :] - m  # (B, bq, tiles)
    return (bound.amax(dim=(0, 1)) <= _MAX_RISE).tolist()


# ------------------------------------------------------------------------------------------------
# A recorded run, for teaching
# ------------------------------------------------------------------------------------------------


@dataclass
class TileStep:
    """One step of the online softmax: the state after processing one tile.

    Attributes:
        query_block: ``(i0, i1)``, the queries of this tile.
        key_block: ``(j0, j1)``, the keys of this tile.
        scores: ``(i1 - i0, j1 - j0)`` the tile's scaled scores (``-inf`` where causal hides a key).
        m: ``(L,)`` running maximum of every query after this step (``-inf`` before its first tile).
        l: ``(L,)`` running sum of ``exp(score - m)``.
        output: ``(L, Ev)`` the running output ``acc / l`` (zeros before a query's first tile).
        rescale: ``(i1 - i0,)`` the factors ``exp(m_old - m_new)`` applied to the old sums.
    """

    query_block: tuple[int, int]
    key_block: tuple[int, int]
    scores: torch.Tensor
    m: torch.Tensor
    l: torch.Tensor  # noqa: E741 - the paper's name for the running sum
    output: torch.Tensor
    rescale: torch.Tensor


def online_softmax_trace(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    is_causal: bool = False,
    *,
    scale: float | None = None,
    block_size: int | tuple[int, int] = 2,
) -> list[TileStep]:
    """Run the tiled online softmax on one head and record the state after every tile.

    The loop is the one of :func:`flash_attention`, written for a single head and small sizes,
    in float64, so that each step can be printed or shown in the tile widget. The last step's
    ``output`` equals exact attention.

    Args:
        query: ``(L, E)``.
        key: ``(S, E)``.
        value: ``(S, Ev)``.
        is_causal: query ``i`` sees keys ``j <= i``; tiles above the diagonal are skipped.
        scale: defaults to ``1 / sqrt(E)``.
        block_size: keys per tile, or ``(query_block, key_block)``.

    Returns:
        A list of :class:`TileStep`, one per tile visited, in order (query blocks outer, key
        blocks inner). Tensors are float64 on the CPU.

    See the section "Exact and fast: tiles and an online softmax" of the chapter
    "The cost of attention and how to cut it".
    """
    where = "online_softmax_trace"
    check_attention_inputs(query, key, value, None, 0.0, is_causal, where=where)
    for name, t in (("query", query), ("key", key), ("value", value)):
        if t.dim() != 2:
            raise ValueError(f"{where}: {name} must be 2-D (one head), got shape {shape(t)}")
    block_q, block_k = check_block_size(block_size)
    scale = resolve_scale(scale, query.size(-1), where)
    q, k, v = (t.detach().to("cpu", torch.float64) for t in (query, key, value))
    L, S, Ev = q.size(0), k.size(0), v.size(1)
    m = torch.full((L,), _NEG_INF, dtype=torch.float64)  # (L,)
    ell = torch.zeros(L, dtype=torch.float64)  # (L,) the running sum (the papers' l)
    acc = torch.zeros(L, Ev, dtype=torch.float64)  # (L, Ev)
    steps: list[TileStep] = []
    for i0 in range(0, L, block_q):
        i1 = min(i0 + block_q, L)
        s_end = min(S, i1) if is_causal else S
        for j0 in range(0, s_end, block_k):
            j1 = min(j0 + block_k, s_end)
            s = q[i0:i1] @ k[j0:j1].T * scale  # (bq, bk)
            if is_causal:
                later = torch.arange(j0, j1)[None, :] > torch.arange(i0, i1)[:, None]  # (bq, bk)
                s = s.masked_fill(later, _NEG_INF)
            m_old = m[i0:i1]  # (bq,)
            m_new = torch.maximum(m_old, s.max(dim=1).values)  # (bq,)
            alpha = torch.exp(m_old - m_new)  # (bq,); exp(-inf) = 0 on a query's first tile
            p = torch.exp(s - m_new[:, None])  # (bq, bk)
            ell[i0:i1] = alpha * ell[i0:i1] + p.sum(dim=1)
            acc[i0:i1] = alpha[:, None] * acc[i0:i1] + p @ v[j0:j1]  # (bq, Ev)
            m[i0:i1] = m_new
            seen = ell > 0  # (L,)
            output = torch.zeros(L, Ev, dtype=torch.float64)  # (L, Ev)
            output[seen] = acc[seen] / ell[seen, None]
            steps.append(
                TileStep((i0, i1), (j0, j1), s.clone(), m.clone(), ell.clone(), output, alpha)
            )
    return steps
