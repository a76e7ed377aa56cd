"""Scaled dot-product attention, written out so every step can be read (chapter 4).

The function below has the semantics of :func:`torch.nn.functional.scaled_dot_product_attention`
(same argument names, same boolean-mask polarity, same batch-first layout) and one addition a course
needs: it also returns the attention weights, so they can be printed and plotted.

Shape legend (see book/notation.md): N batch, H heads, L query length, S key length,
E query/key size, Ev value size.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .masks import causal_mask

__all__ = ["scaled_dot_product_attention", "masked_softmax", "check_attention_inputs"]


def _shape(t: torch.Tensor) -> str:
    return str(tuple(t.shape))


def check_attention_inputs(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attn_mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
) -> tuple[int, ...]:
    """Validate the inputs of :func:`scaled_dot_product_attention`.

    Every error names the argument at fault and the shapes involved, so that a learner can see
    what went wrong without reading this file.

    Returns:
        The shape of the score matrix, ``(N, ..., L, S)``.
    """
    for name, t in (("query", query), ("key", key), ("value", value)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if not t.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got dtype {t.dtype}")
        if t.dim() < 2:
            raise ValueError(
                f"{name} must have at least 2 dimensions (..., length, features), "
                f"got shape {_shape(t)}"
            )
    if not (query.dtype == key.dtype == value.dtype):
        raise TypeError(
            f"query, key and value must share one dtype, got {query.dtype}, {key.dtype}, "
            f"{value.dtype}"
        )
    if query.size(-1) != key.size(-1):
        raise ValueError(
            f"query and key must have the same last dimension E (dot-product scores need "
            f"d_q = d_k), got query {_shape(query)} and key {_shape(key)}"
        )
    if key.size(-2) != value.size(-2):
        raise ValueError(
            f"key and value must have the same length S (one value per key), got key "
            f"{_shape(key)} and value {_shape(value)}"
        )
    try:
        batch = torch.broadcast_shapes(query.shape[:-2], key.shape[:-2], value.shape[:-2])
    except RuntimeError:
        raise ValueError(
            f"the leading (batch, head) dimensions of query {_shape(query)}, key {_shape(key)} "
            f"and value {_shape(value)} do not broadcast together"
        ) from None
    score_shape = (*batch, query.size(-2), key.size(-2))
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"dropout_p must be in [0, 1), got {dropout_p}")
    if attn_mask is not None:
        if is_causal:
            raise ValueError(
                "pass either attn_mask or is_causal=True, not both (as in PyTorch); to combine a "
                "causal mask with another, use attnlib.masks.combine(causal_mask(L, S), mask)"
            )
        if not isinstance(attn_mask, torch.Tensor):
            raise TypeError(f"attn_mask must be a torch.Tensor, got {type(attn_mask).__name__}")
        if attn_mask.dtype != torch.bool and not attn_mask.is_floating_point():
            raise TypeError(
                f"attn_mask must be boolean (True = may attend) or floating (added to the "
                f"scores), got dtype {attn_mask.dtype}"
            )
        try:
            ok = torch.broadcast_shapes(attn_mask.shape, score_shape) == torch.Size(score_shape)
        except RuntimeError:
            ok = False
        if not ok:
            raise ValueError(
                f"attn_mask of shape {_shape(attn_mask)} does not broadcast to the scores' shape "
                f"(N, ..., L, S) = {score_shape} of query {_shape(query)} and key {_shape(key)}"
            )
    return score_shape


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Softmax over the keys, with attnlib's mask conventions: the one place attnlib does it.

    Args:
        scores: ``(..., L, S)``.
        mask: boolean, **True = may attend**, broadcastable to ``scores`` (for a padded batch of
            keys, ``attnlib.masks.padding_mask(lengths)[:, 0]`` gives ``(N, 1, S)``); or
            floating, added to the scores. ``None``: every key is allowed.

    Returns:
        Weights ``(..., L, S)``: each row sums to 1 over its allowed keys, forbidden keys get
        exactly 0, and a row with no allowed key is all zeros (not NaN). Computed in at least
        float32 and returned in the scores' dtype.
    """
    if not isinstance(scores, torch.Tensor) or not scores.is_floating_point():
        raise TypeError(
            f"masked_softmax: scores must be a floating-point tensor, got "
            f"{getattr(scores, 'dtype', type(scores).__name__)}"
        )
    if scores.dim() < 2:
        raise ValueError(f"masked_softmax: scores must be (..., L, S), got shape {_shape(scores)}")
    acc = torch.promote_types(scores.dtype, torch.float32)
    s = scores.to(acc)
    if mask is not None:
        if not isinstance(mask, torch.Tensor):
            raise TypeError(
                f"masked_softmax: mask must be a torch.Tensor, got {type(mask).__name__}"
            )
        try:
            ok = torch.broadcast_shapes(mask.shape, s.shape) == s.shape
        except RuntimeError:
            ok = False
        if not ok:
            hint = ""
            if mask.dim() == 4 and mask.shape[1:3] == (1, 1):
                hint = (
                    "; a padding_mask (N, 1, 1, S) is shaped for (N, H, L, S) scores: take "
                    "mask[:, 0] for scores (N, L, S)"
                )
            raise ValueError(
                f"masked_softmax: mask of shape {_shape(mask)} does not broadcast to the scores' "
                f"shape {_shape(scores)}{hint}"
            )
        if mask.dtype == torch.bool:
            s = s.masked_fill(~mask, float("-inf"))  # (..., L, S)
        elif mask.is_floating_point():
            s = s + mask.to(acc)  # (..., L, S)
        else:
            raise TypeError(
                f"masked_softmax: mask must be boolean (True = may attend) or floating, got dtype "
                f"{mask.dtype}"
            )
    # A row whose every score is -inf has no key to attend to: zeros, not NaN.
    dead = torch.isneginf(s).all(dim=-1, keepdim=True)  # (..., L, 1)
    weights = torch.softmax(s.masked_fill(dead, 0.0), dim=-1).masked_fill(dead, 0.0)
    return weights.to(scores.dtype)  # (..., L, S)


def scaled_dot_product_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attn_mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    *,
    scale: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Scaled dot-product attention that also returns its weights.

    .. math:: \mathrm{Attention}(Q, K, V) = \mathrm{softmax}\!\left(\frac{QK^\top}{\sqrt{E}}
              + M\right) V

    Same semantics as :func:`torch.nn.functional.scaled_dot_product_attention`.

    Args:
        query: ``(N, ..., L, E)``.
        key: ``(N, ..., S, E)``; the leading dimensions broadcast with the query's.
        value: ``(N, ..., S, Ev)``.
        attn_mask: boolean, True where a query **may** attend to a key; or floating, added to the
            scores (use ``-inf`` to forbid). Must broadcast to ``(N, ..., L, S)``.
        dropout_p: probability of zeroing an attention weight (training only; 0.0 keeps results
            deterministic).
        is_causal: apply :func:`attnlib.masks.causal_mask` (query ``i`` sees keys ``j <= i``,
            aligned top-left as in PyTorch). Not together with ``attn_mask``.
        scale: multiplies the scores; defaults to ``1 / sqrt(E)``. Note: E, the key size,
            not the sequence length.

    Returns:
        ``(output, weights)``: output ``(N, ..., L, Ev)`` and weights ``(N, ..., L, S)``. The
        weights are the softmax probabilities *before* dropout (the distribution you plot); a
        query row with no allowed key gets all-zero weights and a zero output, never NaN.
        Softmax runs in at least float32 and the weights are cast back to the
        input dtype.

    See chapter 4, "Self-attention and scaled dot-product attention".
    """
    score_shape = check_attention_inputs(query, key, value, attn_mask, dropout_p, is_causal)
    L, S = score_shape[-2], score_shape[-1]
    if scale is None:
        scale = 1.0 / math.sqrt(query.size(-1))

    acc = torch.promote_types(query.dtype, torch.float32)  # float16/bfloat16 -> float32
    scores = (query @ key.transpose(-2, -1)).to(acc) * scale  # (N, ..., L, S)
    if is_causal:
        attn_mask = causal_mask(L, S, device=query.device)  # (L, S)
    weights = masked_softmax(scores, attn_mask).to(query.dtype)  # (N, ..., L, S)

    dropped = F.dropout(weights, p=dropout_p) if dropout_p > 0.0 else weights
    output = dropped @ value  # (N, ..., L, Ev)
    return output, weights
