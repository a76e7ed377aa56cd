"""Scaled dot-product attention, written out so every step can be read.

The function below has the semantics of :func:`torch.nn.functional.scaled_dot_product_attention`
(same argument names, same boolean-mask polarity, same batch-first layout) and one addition a course
needs: it also returns the attention weights, so they can be printed and plotted.

Shape legend (see book/notation.md): N batch, H heads, L query length, S key length,
E query/key size, Ev value size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from . import _checks
from ._checks import shape
from .masks import causal_mask

__all__ = [
    "scaled_dot_product_attention",
    "masked_softmax",
    "check_attention_inputs",
    "repeat_kv_heads",
]


def check_attention_inputs(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attn_mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    *,
    enable_gqa: bool = False,
    where: str | None = None,
) -> tuple[int, ...]:
    """Validate the inputs of :func:`scaled_dot_product_attention`.

    Every error names the argument at fault and the shapes involved, so that a learner can see
    what went wrong without reading this file.

    Returns:
        The shape of the score matrix, ``(N, ..., L, S)`` (with the query's H heads when
        ``enable_gqa`` lets the key and value have fewer).
    """
    for name, t in (("query", query), ("key", key), ("value", value)):
        _checks.floating_tensor(t, name, where)
        if t.dim() < 2:
            raise ValueError(
                f"{_checks.prefix(where)}{name} must have at least 2 dimensions "
                f"(..., length, features), got shape {shape(t)}"
            )
    if not (query.dtype == key.dtype == value.dtype):
        raise TypeError(
            f"{_checks.prefix(where)}query, key and value must share one dtype, got "
            f"{query.dtype}, {key.dtype}, {value.dtype}"
        )
    if query.size(-1) != key.size(-1):
        raise ValueError(
            f"{_checks.prefix(where)}query and key must have the same last dimension E "
            f"(dot-product scores need d_q = d_k), got query {shape(query)} and key {shape(key)}"
        )
    if key.size(-2) != value.size(-2):
        raise ValueError(
            f"{_checks.prefix(where)}key and value must have the same length S (one value per "
            f"key), got key {shape(key)} and value {shape(value)}"
        )
    if enable_gqa:
        _check_groups(query, key, value, where)
    lead = [query.shape[:-2], key.shape[:-2], value.shape[:-2]]
    if enable_gqa:  # key and value count H_kv heads; the scores have the query's H
        lead[1] = lead[2] = (*key.shape[:-3], query.size(-3))
    try:
        batch = torch.broadcast_shapes(*lead)
    except RuntimeError:
        raise ValueError(
            f"{_checks.prefix(where)}the leading (batch, head) dimensions of query "
            f"{shape(query)}, key {shape(key)} and value {shape(value)} do not broadcast together"
        ) from None
    score_shape = (*batch, query.size(-2), key.size(-2))
    _checks.probability(dropout_p, "dropout_p", where)
    if attn_mask is not None:
        if is_causal:
            raise ValueError(
                f"{_checks.prefix(where)}pass either attn_mask or is_causal=True, not both (as in "
                f"PyTorch); to combine a causal mask with another, use "
                f"attnlib.masks.combine(causal_mask(L, S), mask)"
            )
        _checks.broadcastable_mask(
            attn_mask, score_shape, "attn_mask", where,
            target_text=f"(N, ..., L, S) of query {shape(query)} and key {shape(key)}",
        )
    return score_shape


def _check_groups(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, where) -> None:
    """With ``enable_gqa``: heads in dimension -3, and H a multiple of H_kv."""
    if min(query.dim(), key.dim(), value.dim()) < 3:
        raise ValueError(
            f"{_checks.prefix(where)}enable_gqa=True needs heads in dimension -3: query "
            f"(..., H, L, E), key and value (..., H_kv, S, E); got query {shape(query)}, key "
            f"{shape(key)}, value {shape(value)}"
        )
    H, H_kv = query.size(-3), key.size(-3)
    if value.size(-3) != H_kv or H % H_kv:
        raise ValueError(
            f"{_checks.prefix(where)}enable_gqa=True needs key and value with the same number "
            f"of heads H_kv, and H_kv dividing the query's H; got H={H}, key {shape(key)}, value "
            f"{shape(value)}"
        )


def repeat_kv_heads(x: torch.Tensor, groups: int) -> torch.Tensor:
    """``(..., H_kv, S, E) -> (..., H_kv * groups, S, E)``: each key/value head serves ``groups``
    consecutive query heads (grouped-query attention; ``groups = H`` is multi-query attention).

    The same as ``x.repeat_interleave(groups, dim=-3)``, written as a broadcast view.
    """
    if groups == 1:
        return x
    *lead, H_kv, S, E = x.shape
    x = x.unsqueeze(-3).expand(*lead, H_kv, groups, S, E)  # (..., H_kv, groups, S, E)
    return x.reshape(*lead, H_kv * groups, S, E)  # (..., H, S, E)


def masked_softmax(
    scores: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    sink: torch.Tensor | float | None = None,
) -> torch.Tensor:
    r"""Softmax over the keys, with attnlib's mask conventions: the one place attnlib does it.

    Args:
        scores: ``(..., L, S)``.
        mask: boolean, **True = may attend**, broadcastable to ``scores`` (for a padded batch of
            keys, ``attnlib.masks.padding_mask(lengths)[:, 0]`` gives ``(N, 1, S)``); or
            floating, added to the scores. ``None``: every key is allowed.
        sink: an extra logit :math:`z` in each row's denominator that belongs to no key,
            :math:`w_j = e^{s_j} / (e^{z} + \sum_k e^{s_k})`, so a row may give less than 1 to
            its keys ("attending to nothing"). A number, or a tensor broadcastable to
            ``(..., L)`` (``(H, 1)``: one learned logit per head, as in gpt-oss). ``0.0`` is
            Miller's softmax-off-by-one. ``None``: the plain softmax.

    Returns:
        Weights ``(..., L, S)``: each row sums to 1 over its allowed keys (to less than 1 with a
        ``sink``), forbidden keys get exactly 0, and a row with no allowed key is all zeros (not
        NaN). Computed in at least float32 and returned in the scores' dtype.
    """
    _checks.floating_tensor(scores, "scores", "masked_softmax")
    if scores.dim() < 2:
        raise ValueError(f"masked_softmax: scores must be (..., L, S), got shape {shape(scores)}")
    acc = torch.promote_types(scores.dtype, torch.float32)
    s = scores.to(acc)
    if mask is not None:
        _check_softmax_mask(mask, scores)
        if mask.dtype == torch.bool:
            s = s.masked_fill(~mask, float("-inf"))  # (..., L, S)
        else:
            s = s + mask.to(acc)  # (..., L, S)
    if sink is not None:  # one more logit per row, for "nothing": its weight is dropped below
        sink = _checks.sink_logit(sink, s.shape[:-1], "masked_softmax")
        z = torch.as_tensor(sink, dtype=acc, device=s.device).expand(s.shape[:-1])  # (..., L)
        s = torch.cat([s, z[..., None]], dim=-1)  # (..., L, S + 1)
    # A row whose every score is -inf has no key to attend to: zeros, not NaN.
    dead = torch.isneginf(s).all(dim=-1, keepdim=True)  # (..., L, 1)
    weights = torch.softmax(s.masked_fill(dead, 0.0), dim=-1).masked_fill(dead, 0.0)
    if sink is not None:
        weights = weights[..., :-1]  # (..., L, S): the share of "nothing" goes nowhere
    return weights.to(scores.dtype)  # (..., L, S)


def _check_softmax_mask(mask, scores: torch.Tensor) -> None:
    """A mask for :func:`masked_softmax`, with a hint for the commonest mix-up of shapes."""
    _checks.tensor(mask, "mask", "masked_softmax")
    try:
        _checks.broadcastable_mask(mask, scores.shape, "mask", "masked_softmax")
    except ValueError as err:
        if mask.dim() == 4 and mask.shape[1:3] == (1, 1):
            raise ValueError(
                f"{err}; a padding_mask (N, 1, 1, S) is shaped for (N, H, L, S) scores: take "
                f"mask[:, 0] for scores (N, L, S)"
            ) from None
        raise


def scaled_dot_product_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attn_mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    *,
    scale: float | None = None,
    enable_gqa: bool = False,
    sink: torch.Tensor | float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Scaled dot-product attention that also returns its weights.

    .. math:: \mathrm{Attention}(Q, K, V) = \mathrm{softmax}\!\left(\frac{QK^\top}{\sqrt{E}}
              + M\right) V

    Same semantics as :func:`torch.nn.functional.scaled_dot_product_attention`, including the
    mask: here, as in that function, a boolean ``attn_mask`` says True = **may attend**.

    Args:
        query: ``(N, ..., L, E)``; ``(N, H, L, E)`` with ``enable_gqa``.
        key: ``(N, ..., S, E)``; the leading dimensions broadcast with the query's.
            ``(N, H_kv, S, E)`` with ``enable_gqa``.
        value: ``(N, ..., S, Ev)``; ``(N, H_kv, S, Ev)`` with ``enable_gqa``.
        attn_mask: boolean, True where a query **may** attend to a key; or floating, added to the
            scores (use ``-inf`` to forbid). Must broadcast to ``(N, ..., L, S)``.
        dropout_p: probability of zeroing an attention weight (training only; 0.0 keeps results
            deterministic).
        is_causal: apply :func:`attnlib.masks.causal_mask` (query ``i`` sees keys ``j <= i``,
            aligned top-left as in PyTorch). Not together with ``attn_mask``.
        scale: multiplies the scores; defaults to ``1 / sqrt(E)``. Note: E, the key size,
            not the sequence length.
        enable_gqa: grouped-query attention: key and value have ``H_kv`` heads in dimension -3,
            ``H_kv`` divides the query's ``H``, and each group of ``H / H_kv`` consecutive query
            heads shares one key/value head (Llama's attention; see the chapter "GPT:
            decoder-only Transformers").
        sink: an extra logit in each row's softmax denominator that belongs to no key (see
            :func:`masked_softmax`): a number (``0.0`` is softmax-off-by-one) or a tensor
            broadcastable to ``(N, ..., L)``, e.g. ``(H, 1)`` for one logit per head. The weights
            of a row then sum to less than 1 and its output shrinks towards zero. Not in
            PyTorch's function; ``None`` (the default) is PyTorch's softmax.

    Returns:
        ``(output, weights)``: output ``(N, ..., L, Ev)`` and weights ``(N, ..., L, S)`` (with
        the query's H heads). The weights are the softmax probabilities *before* dropout (the
        distribution you plot); a query row with no allowed key gets all-zero weights and a zero
        output, never NaN. Softmax runs in at least float32 and the weights are cast back to the
        input dtype.

    See the chapter "Self-attention and scaled dot-product attention".
    """
    where = "scaled_dot_product_attention"
    score_shape = check_attention_inputs(
        query, key, value, attn_mask, dropout_p, is_causal, enable_gqa=enable_gqa, where=where
    )
    L, S = score_shape[-2], score_shape[-1]
    scale = _checks.resolve_scale(scale, query.size(-1), where)
    if sink is not None:
        _checks.sink_logit(sink, score_shape[:-1], where)  # one logit per row (N, ..., L)
    if enable_gqa:
        groups = query.size(-3) // key.size(-3)
        key = repeat_kv_heads(key, groups)  # (N, H, S, E)
        value = repeat_kv_heads(value, groups)  # (N, H, S, Ev)

    acc = torch.promote_types(query.dtype, torch.float32)  # float16/bfloat16 -> float32
    scores = (query @ key.transpose(-2, -1)).to(acc) * scale  # (N, ..., L, S)
    if is_causal:
        attn_mask = causal_mask(L, S, device=query.device)  # (L, S)
    weights = masked_softmax(scores, attn_mask, sink=sink).to(query.dtype)  # (N, ..., L, S)

    dropped = F.dropout(weights, p=dropout_p) if dropout_p > 0.0 else weights
    output = dropped @ value  # (N, ..., L, Ev)
    return output, weights
