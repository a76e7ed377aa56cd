"""T5's pre-training objective, span corruption, on a list of tokens (Raffel et al. 2020).

Some spans of the text are dropped. In the encoder's input each dropped span is replaced by one
sentinel token, ``<extra_id_0>``, ``<extra_id_1>``, ... in order; the decoder's target lists each
sentinel followed by the tokens it replaced, and ends with one more sentinel. With the paper's
example (its Figure 2)::

    tokens:  Thank you for inviting me to your party last week .
    input:   Thank you <extra_id_0> me to your party <extra_id_1> week .
    target:  <extra_id_0> for inviting <extra_id_1> last <extra_id_2>

The counts follow T5's preprocessing code: ``round(noise_density * n)`` tokens are dropped (at
least one, and at least one is kept) in ``round(dropped / mean_span_length)`` spans (at least one).
Which tokens form the spans is drawn at random: the span lengths are a uniformly random split of
the dropped tokens into that many non-empty parts, and the gaps between spans a random split of
the kept ones (non-empty between two spans, possibly empty before the first and after the last).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from .._checks import prefix

__all__ = ["sentinel", "span_corrupt", "span_restore"]

_SENTINEL_PREFIX = "<extra_id_"


def sentinel(k: int) -> str:
    """The ``k``-th sentinel token as T5 spells it: ``sentinel(0)`` is ``<extra_id_0>``.

    Raises a ``ValueError`` unless ``k`` is an int >= 0.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise ValueError(f"sentinel: k must be an int >= 0, got {k!r}")
    return f"{_SENTINEL_PREFIX}{k}>"


def _is_sentinel(token: str) -> bool:
    return token.startswith(_SENTINEL_PREFIX) and token.endswith(">")


def _check_tokens(tokens, name: str, where: str) -> list[str]:
    if isinstance(tokens, str) or not isinstance(tokens, Sequence):
        raise TypeError(
            f"{prefix(where)}{name} must be a list of token strings (split the text first), "
            f"got {type(tokens).__name__}"
        )
    bad = [t for t in tokens if not isinstance(t, str)]
    if bad:
        raise TypeError(
            f"{prefix(where)}{name} must hold strings only, "
            f"got a {type(bad[0]).__name__}: {bad[0]!r}"
        )
    return list(tokens)


def _composition(total: int, parts: int, generator: torch.Generator | None) -> list[int]:
    # A uniformly random split of `total` items into `parts` non-empty runs (total >= parts).
    cuts = torch.randperm(total - 1, generator=generator)[: parts - 1] + 1
    edges = [0, *sorted(cuts.tolist()), total]
    return [b - a for a, b in zip(edges[:-1], edges[1:], strict=True)]


def span_corrupt(
    tokens: Sequence[str],
    noise_density: float = 0.15,
    mean_span_length: float = 3.0,
    generator: torch.Generator | None = None,
) -> tuple[list[str], list[str]]:
    """Corrupt ``tokens`` as T5's pre-training does; returns ``(encoder input, decoder target)``.

    Args:
        tokens: the text as a list of token strings, at least two; none may look like a sentinel
            (``<extra_id_k>``), since the output could not be told apart from it.
        noise_density: the share of tokens to drop, in (0, 1); T5 uses 0.15.
        mean_span_length: the average length of a dropped span, at least 1; T5 uses 3.
        generator: a ``torch.Generator`` for the random choices (None: torch's global one).

    Returns:
        ``inputs``: the kept tokens, each dropped span replaced by one sentinel, numbered from 0 in
        order; ``targets``: each sentinel followed by the tokens it replaced, then one final
        sentinel. ``span_restore(inputs, targets)`` gives ``tokens`` back.
    """
    where = "span_corrupt"
    tokens = _check_tokens(tokens, "tokens", where)
    if len(tokens) < 2:
        raise ValueError(
            f"{where}: tokens must hold at least 2 tokens (one to drop, one to keep), "
            f"got {len(tokens)}"
        )
    clash = [t for t in tokens if _is_sentinel(t)]
    if clash:
        raise ValueError(f"{where}: tokens must not contain sentinel tokens, found {clash[0]!r}")
    ok = isinstance(noise_density, (int, float)) and not isinstance(noise_density, bool)
    if not ok or not 0.0 < noise_density < 1.0:
        raise ValueError(f"{where}: noise_density must be in (0, 1), got {noise_density!r}")
    ok = isinstance(mean_span_length, (int, float)) and not isinstance(mean_span_length, bool)
    if not ok or not math.isfinite(mean_span_length) or mean_span_length < 1.0:
        raise ValueError(
            f"{where}: mean_span_length must be a finite number >= 1, got {mean_span_length!r}"
        )
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(
            f"{where}: generator must be a torch.Generator or None, got {type(generator).__name__}"
        )

    n = len(tokens)
    num_noise = min(max(round(noise_density * n), 1), n - 1)
    num_kept = n - num_noise
    num_spans = max(round(num_noise / mean_span_length), 1)
    num_spans = min(num_spans, num_noise, num_kept + 1)  # spans are non-empty and kept apart
    span_lengths = _composition(num_noise, num_spans, generator)
    # The kept tokens fall into num_spans + 1 gaps: the first and last may be empty, the others
    # not. Split num_kept + 2 into non-empty parts, then take one back from each end.
    gaps = _composition(num_kept + 2, num_spans + 1, generator)
    gaps[0] -= 1
    gaps[-1] -= 1

    inputs, targets, i = [], [], 0
    for k, span in enumerate(span_lengths):
        inputs += tokens[i : i + gaps[k]]
        i += gaps[k]
        inputs.append(sentinel(k))
        targets += [sentinel(k), *tokens[i : i + span]]
        i += span
    inputs += tokens[i:]
    targets.append(sentinel(num_spans))
    return inputs, targets


def span_restore(inputs: Sequence[str], targets: Sequence[str]) -> list[str]:
    """Undo :func:`span_corrupt`: put each span of ``targets`` back in place of its sentinel.

    Raises a ``ValueError`` if the two do not fit together: a sentinel of ``inputs`` missing from
    ``targets``, out of order, or ``targets`` not starting with a sentinel.
    """
    where = "span_restore"
    inputs = _check_tokens(inputs, "inputs", where)
    targets = _check_tokens(targets, "targets", where)
    if not targets or not _is_sentinel(targets[0]):
        raise ValueError(f"{where}: targets must start with a sentinel, got {targets[:1]}")
    spans: dict[str, list[str]] = {}
    order: list[str] = []
    for t in targets:
        if _is_sentinel(t):
            order.append(t)
            spans[t] = []
        else:
            spans[order[-1]].append(t)
    used = [t for t in inputs if _is_sentinel(t)]
    if used != order[: len(used)]:
        raise ValueError(
            f"{where}: the sentinels of inputs {used} do not match those of targets {order}"
        )
    out: list[str] = []
    for t in inputs:
        out += spans[t] if _is_sentinel(t) else [t]
    return out
