"""Attention masks. Polarity everywhere in attnlib: **True = this query may attend to this key**.

That is the convention of :func:`torch.nn.functional.scaled_dot_product_attention`. PyTorch's
:class:`torch.nn.MultiheadAttention` and its Transformer layers use the opposite one (True =
*ignore* this key) for ``key_padding_mask`` and a boolean ``attn_mask`` / ``src_mask`` /
``tgt_mask`` / ``memory_mask``. Mixing the two polarities is the most common masking bug there is,
so attnlib's modules name their own masks after what True means:

- ``attend_mask``: boolean True = may attend (or a float mask added to the scores);
- ``token_mask``: ``(N, S)`` boolean, True = a real token (not padding).

The modules still accept PyTorch's names, with PyTorch's meaning, and convert them once at the
boundary with the functions here: :func:`from_key_padding_mask`, :func:`from_mha_attn_mask`, and
back with :func:`to_key_padding_mask` and :func:`to_mha_attn_mask`. Every function here says its
polarity in its name or docstring.

Shapes (see book/notation.md): N batch, L query length, S key length.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ._checks import positive_int, shape, tensor

__all__ = [
    "causal_mask",
    "padding_mask",
    "from_key_padding_mask",
    "to_key_padding_mask",
    "from_mha_attn_mask",
    "to_mha_attn_mask",
    "combine",
]


def causal_mask(
    L: int,
    S: int | None = None,
    *,
    past_length: int = 0,
    window: int | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Allowed-mask of a decoder: each query may attend to its own position and the ones before.

    With ``past_length = 0`` (the default) the mask is aligned top-left, exactly like
    ``is_causal=True`` in PyTorch: row ``i`` allows keys ``0 .. i`` even when ``S != L``.

    With a KV cache the ``L`` new queries come after ``past_length`` cached positions: query ``i``
    sits at position ``past_length + i`` and may attend to keys ``0 .. past_length + i``, so the
    mask is aligned bottom-right and ``S`` defaults to ``past_length + L``. This is the one causal
    builder in attnlib; every model's mask comes from here.

    Args:
        L: number of queries.
        S: number of keys (defaults to ``past_length + L``).
        past_length: positions already in the cache before the first query.
        window: if given, query at position ``p`` sees only keys ``p - window < j <= p`` (a sliding
            window, as in Longformer and Mistral); ``None`` sees every earlier key.
        device: where to build the mask.

    Returns:
        A boolean tensor ``(L, S)``, True = may attend.

    See the chapters on self-attention, masking and GPT (the KV cache).
    """
    positive_int(L, "L", "causal_mask", minimum=0)
    positive_int(past_length, "past_length", "causal_mask", minimum=0)
    S = past_length + L if S is None else S
    positive_int(S, "S", "causal_mask", minimum=0)
    if window is not None:
        positive_int(window, "window (a positive int or None)", "causal_mask")
    mask = torch.ones(L, S, dtype=torch.bool, device=device).tril(diagonal=past_length)  # (L, S)
    if window is not None:
        mask = mask.triu(diagonal=past_length - window + 1)  # drop keys at or beyond the window
    return mask


def padding_mask(
    lengths: Sequence[int] | torch.Tensor,
    S: int | None = None,
    *,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Allowed-mask for a padded batch: key ``j`` of sequence ``n`` is real if ``j < lengths[n]``.

    Args:
        lengths: the true length of each of the N sequences.
        S: the padded length (defaults to ``max(lengths)``).
        device: where to build the mask (defaults to that of ``lengths`` if it is a tensor).

    Returns:
        A boolean tensor ``(N, 1, 1, S)``: it broadcasts over heads and queries against scores
        ``(N, H, L, S)``, and True marks real tokens.
    """
    if isinstance(lengths, torch.Tensor):
        device = lengths.device if device is None else device
        lengths = lengths.detach().to("cpu")
    lengths = torch.as_tensor(lengths)
    if lengths.dim() != 1 or lengths.is_floating_point() or lengths.dtype == torch.bool:
        raise ValueError(
            f"padding_mask: lengths must be a 1-D sequence of ints, got shape "
            f"{tuple(lengths.shape)} and dtype {lengths.dtype}"
        )
    longest = int(lengths.max()) if lengths.numel() else 0
    S = longest if S is None else S
    if (lengths < 0).any() or longest > S:
        raise ValueError(
            f"padding_mask: every length must be in [0, S={S}], got lengths {lengths.tolist()}"
        )
    positions = torch.arange(S)  # (S,)
    allowed = positions[None, :] < lengths[:, None]  # (N, S)
    return allowed[:, None, None, :].to(device)  # (N, 1, 1, S)


def from_key_padding_mask(key_padding_mask: torch.Tensor) -> torch.Tensor:
    """Convert PyTorch's ``key_padding_mask`` (True = padding) to an attnlib ``attend_mask``.

    Args:
        key_padding_mask: ``(N, S)``; boolean with True = *padding, ignore this key* (the polarity
            of ``nn.MultiheadAttention`` and ``nn.TransformerEncoderLayer``), or floating and
            added to the scores.

    Returns:
        ``(N, 1, 1, S)``: boolean with True = may attend, or the float mask reshaped; it
        broadcasts against scores ``(N, H, L, S)``. (``~key_padding_mask`` is the ``(N, S)``
        ``token_mask`` of the same batch.)
    """
    _two_dimensional(key_padding_mask, "key_padding_mask", "from_key_padding_mask", "(N, S)")
    if key_padding_mask.dtype == torch.bool:
        return ~key_padding_mask[:, None, None, :]  # (N, 1, 1, S)
    if key_padding_mask.is_floating_point():
        return key_padding_mask[:, None, None, :]  # (N, 1, 1, S)
    raise TypeError(
        f"from_key_padding_mask: key_padding_mask must be boolean (True = padding) or floating, "
        f"got dtype {key_padding_mask.dtype}"
    )


def to_key_padding_mask(token_mask: torch.Tensor) -> torch.Tensor:
    """Convert an attnlib ``token_mask`` (True = a real token) to PyTorch's ``key_padding_mask``.

    Args:
        token_mask: ``(N, S)`` boolean, True = a real token.

    Returns:
        ``(N, S)`` boolean, True = padding: what ``nn.MultiheadAttention`` and PyTorch's
        Transformer layers expect.
    """
    _two_dimensional(token_mask, "token_mask", "to_key_padding_mask", "(N, S)")
    if token_mask.dtype != torch.bool:
        raise TypeError(
            f"to_key_padding_mask: token_mask must be boolean (True = a real token), got dtype "
            f"{token_mask.dtype}"
        )
    return ~token_mask  # (N, S)


def from_mha_attn_mask(attn_mask: torch.Tensor) -> torch.Tensor:
    """Convert PyTorch's MHA ``attn_mask`` (boolean True = *not allowed*) to an ``attend_mask``.

    This is the polarity of ``nn.MultiheadAttention``'s ``attn_mask`` and of the Transformer
    layers' ``src_mask``, ``tgt_mask`` and ``memory_mask`` (not of
    ``F.scaled_dot_product_attention``, whose boolean ``attn_mask`` already says True = may
    attend).

    Args:
        attn_mask: ``(L, S)`` or ``(N * H, L, S)``; boolean in PyTorch's MHA polarity, or floating.

    Returns:
        The same shape, boolean True = may attend (floating masks are returned unchanged).
    """
    polarity = "True = not allowed, PyTorch's MHA polarity"
    return _flip(attn_mask, "attn_mask", "from_mha_attn_mask", polarity)


def to_mha_attn_mask(attend_mask: torch.Tensor) -> torch.Tensor:
    """Convert an attnlib ``attend_mask`` (True = may attend) to PyTorch's MHA ``attn_mask``.

    Args:
        attend_mask: ``(L, S)`` or ``(N * H, L, S)``; boolean True = may attend, or floating.

    Returns:
        The same shape, boolean True = *not allowed* (floating masks are returned unchanged).
    """
    return _flip(attend_mask, "attend_mask", "to_mha_attn_mask", "True = may attend")


def combine(*masks: torch.Tensor) -> torch.Tensor:
    """Put several masks together into one, broadcasting them (e.g. causal and padding).

    Boolean allowed-masks (True = may attend) are ANDed. If any mask is floating (a bias added to
    the scores, such as T5's or ALiBi's), each boolean mask becomes ``0`` where it allows and
    ``-inf`` where it forbids, and all of them are added up.

    Returns:
        A boolean mask, True where every input allows attending; or, when any input is floating,
        the float sum (in the floating inputs' promoted dtype).
    """
    if not masks:
        raise ValueError("combine: give at least one mask")
    for i, m in enumerate(masks):
        if not isinstance(m, torch.Tensor) or not (m.dtype == torch.bool or m.is_floating_point()):
            raise TypeError(
                f"combine: mask {i} must be a boolean (True = may attend) or floating tensor, "
                f"got {getattr(m, 'dtype', type(m).__name__)}"
            )
    try:
        torch.broadcast_shapes(*(m.shape for m in masks))
    except RuntimeError:
        shapes = ", ".join(shape(m) for m in masks)
        raise ValueError(f"combine: mask shapes {shapes} do not broadcast together") from None
    floats = [m for m in masks if m.dtype != torch.bool]
    if not floats:
        out = masks[0]
        for m in masks[1:]:
            out = out & m
        return out
    dtype = floats[0].dtype
    for m in floats[1:]:
        dtype = torch.promote_types(dtype, m.dtype)
    out = None
    for m in masks:
        if m.dtype == torch.bool:
            m = torch.zeros(m.shape, dtype=dtype, device=m.device).masked_fill(~m, float("-inf"))
        out = m if out is None else out + m
    return out


def _two_dimensional(mask, name: str, where: str, letters: str) -> None:
    tensor(mask, name, where)
    if mask.dim() != 2:
        raise ValueError(f"{where}: {name} must be a 2-D tensor {letters}, got shape {shape(mask)}")


def _flip(mask, name: str, where: str, polarity: str) -> torch.Tensor:
    """``~mask`` for a boolean ``(L, S)`` or ``(N*H, L, S)`` mask; a float mask unchanged."""
    tensor(mask, name, where)
    if mask.dim() not in (2, 3):
        raise ValueError(
            f"{where}: {name} must be a tensor (L, S) or (N*H, L, S), got shape {shape(mask)}"
        )
    if mask.dtype == torch.bool:
        return ~mask
    if mask.is_floating_point():
        return mask
    raise TypeError(
        f"{where}: {name} must be boolean ({polarity}) or floating (added to the "
        f"scores), got dtype {mask.dtype}"
    )
