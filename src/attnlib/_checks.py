"""The checks every attnlib function runs on its arguments, in one place.

Each check raises an error that names the function (``where``), the argument at fault and the
shapes or values involved, so that a learner sees what went wrong without reading attnlib's code.
Every module imports these instead of writing its own; the messages stay the same everywhere.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

__all__ = [
    "shape",
    "prefix",
    "positive_int",
    "probability",
    "tensor",
    "floating_tensor",
    "broadcastable_mask",
    "resolve_scale",
    "sink_logit",
]


def shape(x) -> str:
    """The shape of a tensor (or a tensor-like object, or a shape itself) as text: ``(2, 3, 4)``.

    Anything without a shape is described by its type name, so the message stays readable.
    """
    if isinstance(x, torch.Size) or (isinstance(x, tuple) and all(isinstance(n, int) for n in x)):
        return str(tuple(x))
    if isinstance(x, Sequence) and not isinstance(x, str) and all(isinstance(n, int) for n in x):
        return str(tuple(x))
    if hasattr(x, "shape"):
        return str(tuple(x.shape))
    return type(x).__name__


def prefix(where: str | None) -> str:
    """``"fn: "`` for a message that starts with the function's name, or ``""``."""
    return f"{where}: " if where else ""


def positive_int(value, name: str, where: str | None = None, *, minimum: int = 1) -> int:
    """``value`` if it is an int (not a bool) of at least ``minimum``, else a ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        what = "a positive int" if minimum == 1 else f"an int >= {minimum}"
        raise ValueError(f"{prefix(where)}{name} must be {what}, got {value!r}")
    return value


def probability(value, name: str, where: str | None = None, *, closed: bool = False) -> float:
    """``value`` as a float in ``[0, 1)`` (or ``[0, 1]`` with ``closed``), else a ``ValueError``."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = ok and (0.0 <= value <= 1.0 if closed else 0.0 <= value < 1.0)
    if not ok:
        interval = "[0, 1]" if closed else "[0, 1)"
        raise ValueError(f"{prefix(where)}{name} must be in {interval}, got {value!r}")
    return float(value)


def tensor(t, name: str, where: str | None = None) -> torch.Tensor:
    """``t`` if it is a ``torch.Tensor``, else a ``TypeError`` naming the argument."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{prefix(where)}{name} must be a torch.Tensor, got {type(t).__name__}")
    return t


def floating_tensor(t, name: str, where: str | None = None) -> torch.Tensor:
    """``t`` if it is a floating-point tensor, else a ``TypeError`` naming its dtype."""
    tensor(t, name, where)
    if not t.is_floating_point():
        raise TypeError(
            f"{prefix(where)}{name} must be a floating-point tensor, got dtype {t.dtype}; "
            f"convert it with {name}.float()"
        )
    return t


def broadcastable_mask(
    mask, target: Sequence[int], name: str, where: str | None = None, *, target_text: str = ""
) -> torch.Tensor:
    """``mask`` if it is a boolean or floating tensor that broadcasts to ``target``.

    Broadcasting must give ``target`` itself: a mask ``(3, 2, 4, 5)`` broadcasts *with* scores
    ``(2, 4, 5)`` but would add a dimension, so it is refused like one that does not broadcast.

    ``target_text`` names the target's letters in the message, e.g. ``"(N, H, L, S)"``.
    """
    tensor(mask, name, where)
    if mask.dtype != torch.bool and not mask.is_floating_point():
        raise TypeError(
            f"{prefix(where)}{name} must be a boolean mask (True = may attend) or a float mask "
            f"added to the scores, got dtype {mask.dtype}"
        )
    try:
        grows = torch.broadcast_shapes(mask.shape, tuple(target)) != torch.Size(target)
    except RuntimeError:
        grows = True
    if grows:  # it does not broadcast, or broadcasting would add or widen a dimension
        letters = f" {target_text}" if target_text else ""
        raise ValueError(
            f"{prefix(where)}{name} of shape {shape(mask)} does not broadcast to the scores' "
            f"shape{letters} = {shape(tuple(target))}"
        )
    return mask


def resolve_scale(scale, E: int, where: str | None = None) -> float:
    """The score scale: ``1 / sqrt(E)`` when ``scale`` is None, else ``scale`` if finite."""
    if scale is None:
        return 1.0 / math.sqrt(E) if E > 0 else 1.0
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale):
        raise ValueError(f"{prefix(where)}scale must be a finite number (or None), got {scale!r}")
    return float(scale)


def sink_logit(sink, rows: Sequence[int], where: str | None = None) -> torch.Tensor | float:
    """``sink`` if it is a real number or a floating tensor that broadcasts to ``rows``.

    ``rows`` is the scores' shape without the key dimension, ``(..., L)``: one extra logit per
    row of weights. A tensor that would add or widen a dimension is refused.
    """
    if isinstance(sink, (int, float)) and not isinstance(sink, bool):
        if math.isnan(sink):
            raise ValueError(f"{prefix(where)}sink must not be NaN")
        return float(sink)
    if not isinstance(sink, torch.Tensor):
        raise TypeError(
            f"{prefix(where)}sink must be a number or a floating-point tensor broadcastable to "
            f"the scores without their key dimension, {shape(tuple(rows))}; got "
            f"{type(sink).__name__}"
        )
    floating_tensor(sink, "sink", where)
    try:
        grows = torch.broadcast_shapes(sink.shape, tuple(rows)) != torch.Size(rows)
    except RuntimeError:
        grows = True
    if grows:
        raise ValueError(
            f"{prefix(where)}sink of shape {shape(sink)} does not broadcast to the scores' shape "
            f"without the key dimension, (..., L) = {shape(tuple(rows))}; one logit per head of "
            f"(N, H, L, S) scores has shape (H, 1)"
        )
    return sink
