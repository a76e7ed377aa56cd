"""Approximate attention: four ways to avoid scoring every query against every key.

Each method trades exactness for work that grows linearly with the length ``n``, and each has a
knob that, turned up, brings it back to exact attention:

* **Linformer** (Wang et al. 2020): project the ``S`` keys and values down to ``k`` summaries,
  then attend to those. Knob ``k``; ``k = S`` with the identity projection is exact.
* **Longformer** (Beltagy et al. 2020): a sliding window plus a few global tokens. Knob
  ``window``; a window of ``n - 1`` or more is exact.
* **BigBird** (Zaheer et al. 2020): blocks of a sliding window, global blocks and random blocks.
  Knobs ``window`` and ``num_random`` (in blocks); covering every block is exact.
* **Performer** (Choromanski et al. 2021): FAVOR+, positive orthogonal random features whose dot
  products estimate ``exp(q . k)`` without bias. Knob ``m``, the number of features; the error
  falls like ``1 / sqrt(m)``.

Longformer and BigBird compute a *sparse pattern* of query-key pairs exactly; their
``*_pattern`` functions return that pattern as a boolean ``(L, L)`` matrix (True = computed), and
their attention equals dense attention masked by it. The sparse computations here gather, for each
block of queries, only the keys it may see, so time and memory grow like ``n * (keys per query)``.

All of them are bidirectional (encoder) attention: they take no causal mask. Randomness (BigBird's
random blocks, Linformer's random projection, Performer's features) is drawn on the CPU from a
seeded generator and then moved, so every device sees the same numbers.

Shapes as in book/notation.md (N, H, L, S, E, Ev); each method folds the leading dimensions into
one batch B with :func:`attnlib.efficient.flash.flatten_batch`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from .._checks import positive_int, resolve_scale, shape
from ..attention import check_attention_inputs
from .flash import flatten_batch

__all__ = [
    "linformer_projection",
    "linformer_attention",
    "longformer_pattern",
    "longformer_attention",
    "bigbird_blocks",
    "bigbird_pattern",
    "bigbird_attention",
    "performer_random_features",
    "performer_features",
    "performer_attention",
]

_NEG_INF = float("-inf")


# ------------------------------------------------------------------------------------------------
# Shared checks and helpers
# ------------------------------------------------------------------------------------------------


def _check_inputs(query, key, value, fn: str, *, self_attention: bool = False):
    check_attention_inputs(query, key, value, where=fn)
    if self_attention and query.size(-2) != key.size(-2):
        raise ValueError(
            f"{fn}: the pattern is defined for self-attention, L = S; got query "
            f"{shape(query)} and key {shape(key)}"
        )
    return flatten_batch(query, key, value)  # batch, (B, L, E), (B, S, E), (B, S, Ev)


def _global_positions(global_tokens: Sequence[int], L: int, fn: str) -> list[int]:
    if isinstance(global_tokens, (str, bytes)) or not isinstance(global_tokens, Sequence):
        raise ValueError(
            f"{fn}: global_tokens must be a sequence of positions, got {global_tokens!r}"
        )
    out = []
    for g in global_tokens:
        if isinstance(g, bool) or not isinstance(g, int) or not -L <= g < L:
            raise ValueError(
                f"{fn}: every global token must be a position in [0, L={L}), got {g!r} in "
                f"global_tokens={list(global_tokens)}"
            )
        out.append(g % L)
    return sorted(set(out))


def _gathered_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    idx: torch.Tensor,
    valid: torch.Tensor,
    block: int,
    scale: float,
) -> torch.Tensor:
    """Attention where each block of queries sees only its own list of keys.

    Args:
        q: ``(B, L, E)``; k: ``(B, S, E)``; v: ``(B, S, Ev)``.
        idx: ``(nb, m)`` key positions per query block, ``S`` marking padding.
        valid: ``(nb, block, m)`` True where query (row of the block) may use key ``idx``.
        block: queries per block; ``nb = ceil(L / block)``.

    Returns:
        ``(B, L, Ev)``. Every query must have at least one valid key.
    """
    B, L, E = q.shape
    nb = idx.size(0)
    pad = nb * block - L
    q_pad = torch.cat([q, q.new_zeros(B, pad, E)], dim=1) if pad else q  # (B, nb*block, E)
    k_pad = torch.cat([k, k.new_zeros(B, 1, E)], dim=1)  # (B, S+1, E): position S is padding
    v_pad = torch.cat([v, v.new_zeros(B, 1, v.size(-1))], dim=1)  # (B, S+1, Ev)
    q_blocks = q_pad.view(B, nb, block, E)  # (B, nb, block, E)
    k_sel = k_pad[:, idx]  # (B, nb, m, E)
    v_sel = v_pad[:, idx]  # (B, nb, m, Ev)
    scores = q_blocks @ k_sel.transpose(-2, -1) * scale  # (B, nb, block, m)
    scores = scores.masked_fill(~valid, _NEG_INF)
    weights = torch.softmax(scores, dim=-1)  # (B, nb, block, m)
    out = weights @ v_sel  # (B, nb, block, Ev)
    return out.reshape(B, nb * block, -1)[:, :L]  # (B, L, Ev)


def _dense_rows(q, k, v, rows: torch.Tensor, scale: float) -> torch.Tensor:
    """Full attention for a few query positions (the global tokens): ``(B, len(rows), Ev)``."""
    scores = q[:, rows] @ k.transpose(-2, -1) * scale  # (B, g, S)
    return torch.softmax(scores, dim=-1) @ v  # (B, g, Ev)


# ------------------------------------------------------------------------------------------------
# Linformer
# ------------------------------------------------------------------------------------------------


def _segments(S: int, k: int) -> torch.Tensor:
    """Boundaries of k nearly equal, non-empty segments of range(S): ``(k + 1,)``."""
    return torch.div(torch.arange(k + 1) * S, k, rounding_mode="floor")


def linformer_projection(
    S: int,
    k: int,
    kind: str = "mean",
    *,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """The ``(k, S)`` matrix that compresses ``S`` keys (and values) into ``k`` rows.

    Args:
        S: the number of keys.
        k: the number of summaries, ``1 <= k``; for ``"mean"`` also ``k <= S``.
        kind: ``"mean"``: row ``c`` averages the ``c``-th of ``k`` consecutive, nearly equal
            segments of keys (with ``k = S`` this is the identity); ``"random"``: Gaussian entries
            with variance ``1 / k`` (the Johnson-Lindenstrauss projection of Wang et al.'s
            analysis). A trained Linformer learns this matrix instead.
        seed: seeds the CPU generator of ``"random"``.

    Returns:
        ``(k, S)``.
    """
    fn = "linformer_projection"
    positive_int(S, "S", fn, minimum=0)
    positive_int(k, "k", fn)
    if kind == "mean":
        if k > S:
            raise ValueError(f"{fn}: mean pooling needs k <= S, got k = {k} and S = {S}")
        bounds = _segments(S, k)  # (k + 1,)
        owner = torch.bucketize(torch.arange(S), bounds[1:], right=True)  # (S,) segment of key j
        proj = torch.zeros(k, S, dtype=torch.float64)
        proj[owner, torch.arange(S)] = 1.0
        proj = proj / proj.sum(dim=1, keepdim=True)  # (k, S): each row averages its segment
    elif kind == "random":
        gen = torch.Generator().manual_seed(seed)
        proj = torch.randn(k, S, generator=gen, dtype=torch.float64) / math.sqrt(k)  # (k, S)
    else:
        raise ValueError(f"{fn}: kind must be 'mean' or 'random', got {kind!r}")
    return proj.to(dtype=dtype, device=device)


def linformer_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    k: int,
    *,
    projection: str | torch.Tensor = "mean",
    seed: int = 0,
    scale: float | None = None,
) -> torch.Tensor:
    r"""Linformer attention: attend to ``k`` projected keys and values instead of ``S``.

    .. math:: \mathrm{softmax}\!\left(\frac{Q (P K)^\top}{\sqrt{E}}\right) (P V)

    with one ``(k, S)`` projection ``P`` shared by keys and values (one of the paper's options).
    Cost: ``O(S k)`` to project, ``O(L k)`` to attend; with ``k`` fixed, linear in the length.

    With ``projection="mean"`` each summary averages a segment of about ``S / k`` keys, and its
    score gets ``+ log(segment size)`` so that a summary stands for as many keys as it covers
    (``exp`` of the mean score, times the count, estimates the segment's total weight). With
    ``k = S`` the segments are single keys and the result is exact.

    Args:
        query: ``(N, ..., L, E)``; key: ``(N, ..., S, E)``; value: ``(N, ..., S, Ev)``.
        k: the number of projected keys, the knob.
        projection: ``"mean"``, ``"random"`` (see :func:`linformer_projection`), or a ``(k, S)``
            tensor (for example a trained one, or the identity).
        seed: for ``"random"``.
        scale: defaults to ``1 / sqrt(E)``.

    Returns:
        ``(N, ..., L, Ev)``.

    See the section "Approximate and cheap" of the chapter
    "The cost of attention and how to cut it".
    """
    fn = "linformer_attention"
    batch, q, kk, v = _check_inputs(query, key, value, fn)
    S = kk.size(1)
    positive_int(k, "k", fn)
    scale = resolve_scale(scale, q.size(-1), fn)
    bias = None
    if isinstance(projection, torch.Tensor):
        if projection.shape != (k, S):
            raise ValueError(
                f"{fn}: projection must have shape (k, S) = ({k}, {S}), got "
                f"{shape(projection)}"
            )
        proj = projection.to(dtype=q.dtype, device=q.device)
    else:
        if projection == "mean" and k > S:
            raise ValueError(
                f"{fn}: k = {k} summaries of S = {S} keys: k must be <= S for mean pooling"
            )
        proj = linformer_projection(S, k, projection, seed=seed, dtype=q.dtype, device=q.device)
        if projection == "mean":
            sizes = _segments(S, k).diff().to(dtype=q.dtype, device=q.device)  # (k,)
            bias = sizes.log()  # a summary of c keys carries c times the weight of one
    k_low = proj @ kk  # (B, k, E)
    v_low = proj @ v  # (B, k, Ev)
    scores = q @ k_low.transpose(-2, -1) * scale  # (B, L, k)
    if bias is not None:
        scores = scores + bias
    out = torch.softmax(scores, dim=-1) @ v_low  # (B, L, Ev)
    return out.reshape(*batch, *out.shape[-2:])


# ------------------------------------------------------------------------------------------------
# Longformer
# ------------------------------------------------------------------------------------------------


def longformer_pattern(
    L: int,
    window: int,
    global_tokens: Sequence[int] = (0,),
    *,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Which query-key pairs Longformer computes: a band of half-width ``window`` plus globals.

    Query ``i`` sees key ``j`` when ``|i - j| <= window``; a global token sees every key and is
    seen by every query (Longformer uses it for [CLS] or the question tokens).

    Args:
        L: the sequence length (self-attention: ``S = L``).
        window: how far each query looks to either side. The paper's window size ``w`` is
            ``2 * window`` (plus the token itself); ``window >= L - 1`` covers every pair.
        global_tokens: positions of the global tokens.

    Returns:
        ``(L, L)`` boolean, True = computed (may attend).
    """
    fn = "longformer_pattern"
    positive_int(L, "L", fn, minimum=0)
    positive_int(window, "window", fn, minimum=0)
    glob = _global_positions(global_tokens, L, fn) if L else []
    pos = torch.arange(L, device=device)
    allowed = (pos[:, None] - pos[None, :]).abs() <= window  # (L, L) the band
    if glob:
        g = torch.tensor(glob, device=device)
        allowed[g, :] = True  # global queries see everything
        allowed[:, g] = True  # every query sees the global keys
    return allowed


def longformer_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    window: int,
    global_tokens: Sequence[int] = (0,),
    *,
    scale: float | None = None,
) -> torch.Tensor:
    """Longformer attention: sliding window plus global tokens, computed sparsely.

    Equals dense attention masked by :func:`longformer_pattern`, but each block of ``window``
    queries gathers only its ``3 * window`` neighbouring keys and the global keys, so time and
    memory grow like ``L * (window + len(global_tokens))``.

    Args:
        query: ``(N, ..., L, E)``; key: ``(N, ..., L, E)``; value: ``(N, ..., L, Ev)``
            (self-attention: ``S = L``).
        window: how far each query looks to either side (``>= L - 1`` is exact attention).
        global_tokens: positions that see and are seen by everything.
        scale: defaults to ``1 / sqrt(E)``.

    Returns:
        ``(N, ..., L, Ev)``.

    See the section "Approximate and cheap" of the chapter
    "The cost of attention and how to cut it".
    """
    fn = "longformer_attention"
    batch, q, k, v = _check_inputs(query, key, value, fn, self_attention=True)
    positive_int(window, "window", fn, minimum=0)
    L = q.size(1)
    scale = resolve_scale(scale, q.size(-1), fn)
    glob = _global_positions(global_tokens, L, fn) if L else []
    if L == 0:
        return v.new_zeros(*batch, 0, v.size(-1))
    window = min(window, L - 1)
    dev = q.device
    block = max(window, 1)
    nb = -(-L // block)
    # Query block b holds rows [b*block, (b+1)*block); its keys lie in [b*block - window,
    # (b+1)*block + window), followed by the global keys.
    starts = torch.arange(nb, device=dev)[:, None] * block  # (nb, 1)
    band = starts - window + torch.arange(block + 2 * window, device=dev)  # (nb, block + 2w)
    rows = starts[:, :, None] + torch.arange(block, device=dev)[None, :, None]  # (nb, block, 1)
    is_global = torch.zeros(L + 1, dtype=torch.bool, device=dev)  # +1: the padding position
    if glob:
        is_global[glob] = True
    in_range = (band >= 0) & (band < L)  # (nb, block + 2w)
    band = torch.where(in_range, band, L)  # out-of-range positions point at the padding key
    # A global key is reached through the global columns; leave it out of the band.
    band_ok = in_range[:, None, :] & ~is_global[band][:, None, :]  # (nb, 1, block + 2w)
    band_ok = band_ok & ((rows - band[:, None, :]).abs() <= window)  # (nb, block, block + 2w)
    g = torch.tensor(glob, dtype=torch.long, device=dev)  # (G,)
    idx = torch.cat([band, g.expand(nb, -1)], dim=1)  # (nb, m)
    valid = torch.cat([band_ok, band_ok.new_ones(nb, block, len(glob))], dim=2)  # (nb, block, m)
    valid = valid | (rows >= L)  # padded query rows: anything, they are dropped
    out = _gathered_attention(q, k, v, idx, valid, block, scale)  # (B, L, Ev)
    if glob:
        out[:, g] = _dense_rows(q, k, v, g, scale)  # global queries see every key
    return out.reshape(*batch, L, -1)


# ------------------------------------------------------------------------------------------------
# BigBird
# ------------------------------------------------------------------------------------------------


def bigbird_blocks(
    num_blocks: int,
    window: int = 1,
    num_global: int = 1,
    num_random: int = 1,
    *,
    seed: int = 0,
) -> list[list[int]]:
    """For each query block, the sorted key blocks BigBird lets it see.

    Args:
        num_blocks: ``nb``, the number of blocks in the sequence.
        window: sliding window in blocks to either side (1 gives BigBird's three blocks).
        num_global: the first ``num_global`` blocks are global: they see and are seen by all.
        num_random: extra key blocks per query block, drawn at random (seeded, on the CPU)
            among those the window and the globals do not already cover.
        seed: seeds the random blocks.

    Returns:
        ``nb`` lists of key-block indices; a global query block lists every block.
    """
    fn = "bigbird_blocks"
    positive_int(num_blocks, "num_blocks", fn, minimum=0)
    positive_int(window, "window", fn, minimum=0)
    positive_int(num_global, "num_global", fn, minimum=0)
    positive_int(num_random, "num_random", fn, minimum=0)
    gen = torch.Generator().manual_seed(seed)
    globals_ = set(range(min(num_global, num_blocks)))
    out = []
    for a in range(num_blocks):
        if a in globals_:
            out.append(list(range(num_blocks)))
            continue
        seen = {b for b in range(a - window, a + window + 1) if 0 <= b < num_blocks} | globals_
        others = sorted(set(range(num_blocks)) - seen)
        pick = torch.randperm(len(others), generator=gen)[:num_random].tolist()
        out.append(sorted(seen | {others[p] for p in pick}))
    return out


def bigbird_pattern(
    L: int,
    block_size: int,
    window: int = 1,
    num_global: int = 1,
    num_random: int = 1,
    *,
    seed: int = 0,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Which query-key pairs BigBird computes, at token level.

    The sequence is cut into blocks of ``block_size`` tokens (the last may be shorter); block
    ``a`` of queries sees the key blocks :func:`bigbird_blocks` lists for it.

    Args:
        L: the sequence length (self-attention).
        block_size: tokens per block.
        window, num_global, num_random, seed: see :func:`bigbird_blocks`.

    Returns:
        ``(L, L)`` boolean, True = computed (may attend).
    """
    fn = "bigbird_pattern"
    positive_int(L, "L", fn, minimum=0)
    positive_int(block_size, "block_size", fn)
    nb = -(-L // block_size)
    lists = bigbird_blocks(nb, window, num_global, num_random, seed=seed)
    blocks = torch.zeros(nb, nb, dtype=torch.bool)
    for a, seen in enumerate(lists):
        blocks[a, seen] = True
    owner = torch.arange(L) // block_size  # (L,) block of each position
    return blocks[owner][:, owner].to(device)  # (L, L)


def bigbird_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    block_size: int,
    window: int = 1,
    num_global: int = 1,
    num_random: int = 1,
    *,
    seed: int = 0,
    scale: float | None = None,
) -> torch.Tensor:
    """BigBird attention: window, global and random key blocks per query block, computed sparsely.

    Equals dense attention masked by :func:`bigbird_pattern` with the same arguments, but each
    query block gathers only its ``2 * window + 1 + num_global + num_random`` key blocks, so the
    cost is linear in the length. Covering every block (a large ``window`` or ``num_random``) is
    exact attention.

    Args:
        query: ``(N, ..., L, E)``; key: ``(N, ..., L, E)``; value: ``(N, ..., L, Ev)``
            (self-attention).
        block_size: tokens per block.
        window: sliding window in blocks to either side.
        num_global: the first ``num_global`` blocks are global.
        num_random: random key blocks per query block (seeded, drawn on the CPU).
        seed: seeds the random blocks.
        scale: defaults to ``1 / sqrt(E)``.

    Returns:
        ``(N, ..., L, Ev)``.

    See the section "Approximate and cheap" of the chapter
    "The cost of attention and how to cut it".
    """
    fn = "bigbird_attention"
    batch, q, k, v = _check_inputs(query, key, value, fn, self_attention=True)
    positive_int(block_size, "block_size", fn)
    L = q.size(1)
    scale = resolve_scale(scale, q.size(-1), fn)
    nb = -(-L // block_size)
    lists = bigbird_blocks(nb, window, num_global, num_random, seed=seed)
    if L == 0:
        return v.new_zeros(*batch, 0, v.size(-1))
    dev = q.device
    sparse = [a for a, seen in enumerate(lists) if len(seen) < nb]  # the rest see every block
    out = q.new_zeros(q.size(0), L, v.size(-1))  # (B, L, Ev)
    owner = torch.arange(L, device=dev) // block_size  # (L,)
    dense_rows = torch.nonzero(~torch.isin(owner, torch.tensor(sparse, device=dev)))[:, 0]
    if sparse:
        width = max(len(lists[a]) for a in sparse)  # key blocks per query block, padded
        table = torch.full((nb, width), nb, dtype=torch.long)  # nb marks a padding block
        for a in sparse:
            table[a, : len(lists[a])] = torch.tensor(lists[a])
        table = table.to(dev)
        offsets = torch.arange(block_size, device=dev)  # (block,)
        idx = (table[:, :, None] * block_size + offsets).reshape(nb, -1)  # (nb, width * block)
        idx = torch.where(idx < L, idx, L)  # past the end (and padding blocks): the padding key
        dense_block = torch.ones(nb, dtype=torch.bool)
        dense_block[sparse] = False
        valid = (idx < L)[:, None, :].expand(nb, block_size, -1)  # (nb, block, m)
        valid = valid | dense_block.to(dev)[:, None, None]  # dense blocks' rows: replaced below
        out = _gathered_attention(q, k, v, idx, valid, block_size, scale)  # (B, L, Ev)
    if dense_rows.numel():
        out[:, dense_rows] = _dense_rows(q, k, v, dense_rows, scale)
    return out.reshape(*batch, L, -1)


# ------------------------------------------------------------------------------------------------
# Performer (FAVOR+)
# ------------------------------------------------------------------------------------------------


def performer_random_features(
    E: int,
    m: int,
    *,
    orthogonal: bool = True,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """The ``(m, E)`` random directions ``omega`` of FAVOR+, drawn on the CPU.

    Each row is distributed like a standard Gaussian vector. With ``orthogonal=True`` the rows
    come in blocks of ``E`` mutually orthogonal directions (QR of a Gaussian matrix), each rescaled
    to the length of an independent Gaussian vector: the estimate stays unbiased and its variance
    drops (Choromanski et al. 2021, "positive orthogonal random features").

    Returns:
        ``(m, E)``.
    """
    fn = "performer_random_features"
    positive_int(E, "E", fn)
    positive_int(m, "m", fn)
    gen = torch.Generator().manual_seed(seed)
    if not orthogonal:
        return torch.randn(m, E, generator=gen, dtype=torch.float64).to(dtype=dtype, device=device)
    g = torch.randn(-(-m // E), E, E, generator=gen, dtype=torch.float64)  # (blocks, E, E)
    q_mat, r_mat = torch.linalg.qr(g)  # orthogonal columns
    q_mat = q_mat * torch.sign(torch.diagonal(r_mat, dim1=-2, dim2=-1))[:, None, :]  # uniform
    blocks = q_mat.transpose(-2, -1)  # (blocks, E, E): rows are orthonormal directions
    omega = blocks.reshape(-1, E)[:m]  # (m, E), unit rows
    lengths = torch.randn(m, E, generator=gen, dtype=torch.float64).norm(dim=1)  # (m,) chi(E)
    return (omega * lengths[:, None]).to(dtype=dtype, device=device)


def performer_features(x: torch.Tensor, omega: torch.Tensor, *, stabilize: str = "row"):
    r"""Positive random features ``phi(x)`` with ``E[phi(q) . phi(k)] = exp(q . k)``.

    .. math:: \phi(x) = \frac{1}{\sqrt{m}}\,\exp\!\left(\omega x - \tfrac{\lVert x\rVert^2}{2}
              - c\right)

    The constant ``c`` keeps ``exp`` from overflowing and cancels in attention's normalisation:
    ``"row"`` subtracts each row's largest exponent (right for queries), ``"all"`` one maximum
    over every row (right for keys, which share one normaliser per query); ``"none"`` gives the
    unbiased estimate itself.

    Args:
        x: ``(..., n, E)``, already multiplied by ``sqrt(scale)``.
        omega: ``(m, E)`` from :func:`performer_random_features`.

    Returns:
        ``(..., n, m)``, every entry positive.
    """
    if stabilize not in ("row", "all", "none"):
        raise ValueError(
            f"performer_features: stabilize must be 'row', 'all' or 'none', got {stabilize!r}"
        )
    if x.size(-1) != omega.size(-1):
        raise ValueError(
            f"performer_features: x {shape(x)} and omega {shape(omega)} must share "
            f"their last size E"
        )
    m = omega.size(0)
    logits = x @ omega.T - (x * x).sum(dim=-1, keepdim=True) / 2  # (..., n, m)
    if stabilize == "row":
        logits = logits - logits.amax(dim=-1, keepdim=True)
    elif stabilize == "all":
        logits = logits - logits.amax(dim=(-2, -1), keepdim=True)
    return torch.exp(logits) / math.sqrt(m)  # (..., n, m)


def performer_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    m: int = 256,
    *,
    orthogonal: bool = True,
    seed: int = 0,
    scale: float | None = None,
) -> torch.Tensor:
    r"""Performer attention (FAVOR+): softmax attention estimated with ``m`` random features.

    Writing ``exp(scale * q . k)`` as ``E[phi(q) . phi(k)]`` lets the product be regrouped:

    .. math:: \mathrm{out}_i = \frac{\phi(q_i)^\top \sum_j \phi(k_j) v_j^\top}
              {\phi(q_i)^\top \sum_j \phi(k_j)}

    The sums over keys are computed once, ``(m, Ev)`` and ``(m,)``, so the cost is
    ``O((L + S) m E)``: linear in the length, and no ``(L, S)`` matrix exists. The estimate's
    error falls like ``1 / sqrt(m)``.

    Args:
        query: ``(N, ..., L, E)``; key: ``(N, ..., S, E)``; value: ``(N, ..., S, Ev)``.
        m: the number of random features, the knob.
        orthogonal: use orthogonal random features (lower variance).
        seed: seeds the features (drawn on the CPU, the same on every device).
        scale: defaults to ``1 / sqrt(E)``.

    Returns:
        ``(N, ..., L, Ev)``.

    See the section "Approximate and cheap" of the chapter
    "The cost of attention and how to cut it".
    """
    fn = "performer_attention"
    batch, q, k, v = _check_inputs(query, key, value, fn)
    positive_int(m, "m", fn)
    E = q.size(-1)
    scale = resolve_scale(scale, E, fn)
    acc = torch.promote_types(q.dtype, torch.float32)
    omega = performer_random_features(E, m, orthogonal=orthogonal, seed=seed, dtype=acc,
                                      device=q.device)  # (m, E)
    root = math.sqrt(scale)  # exp(scale q.k) = exp((root q) . (root k))
    phi_q = performer_features(q.to(acc) * root, omega, stabilize="row")  # (B, L, m)
    phi_k = performer_features(k.to(acc) * root, omega, stabilize="all")  # (B, S, m)
    kv = phi_k.transpose(-2, -1) @ v.to(acc)  # (B, m, Ev): sum_j phi(k_j) v_j^T
    k_sum = phi_k.sum(dim=-2)  # (B, m): sum_j phi(k_j)
    num = phi_q @ kv  # (B, L, Ev)
    den = (phi_q @ k_sum[..., None]).clamp_min(torch.finfo(acc).tiny)  # (B, L, 1)
    out = (num / den).to(query.dtype)  # (B, L, Ev)
    return out.reshape(*batch, *out.shape[-2:])
