r"""Score functions: how much a query matches each key, before the softmax.

Attention turns scores into weights with a softmax and averages the values with them. The
Transformer scores with a scaled dot product (:mod:`attnlib.attention`); the recurrent
encoder-decoders before it tried several functions, and this module holds them side by side:

===========  =====================================================  ================================
name         score of query :math:`q` and key :math:`k`             source
===========  =====================================================  ================================
additive     :math:`v^\top \tanh(W_q q + W_k k)`                    Bahdanau et al. (2015)
dot          :math:`q^\top k`                                       Luong et al. (2015)
general      :math:`q^\top W k`                                     Luong et al. (2015)
concat       :math:`v^\top \tanh(W [q; k])`                         Luong et al. (2015)
===========  =====================================================  ================================

Each comes twice: a function that takes its parameters as arguments (``additive_scores(query,
key, W_q, W_k, v)``: every symbol of the formula is visible), and an :class:`torch.nn.Module` that
owns them (:class:`AdditiveScore`, ...), as a model uses it. ``concat`` is ``additive`` with the two
matrices written side by side, :math:`W = [W_q \; W_k]`; the papers differ in *which* decoder
state is the query, not in this formula (the chapter "Attention in RNN encoder-decoders" checks
it). See also "Queries and keys of different sizes" in the chapter "Attention as a soft lookup".

Shapes (see book/notation.md): a query ``(N, L, Eq)`` and keys ``(N, S, Ek)`` give scores
``(N, L, S)``; leading dimensions may be absent (``(L, Eq)``) or more than one, and broadcast.
``Eq`` and ``Ek`` may differ except for ``dot``. ``h`` is the hidden size of ``additive`` and
``concat``.

:func:`masked_softmax` turns scores into weights with attnlib's conventions: a boolean mask with
**True = may attend** (:func:`attnlib.masks.padding_mask`), forbidden keys at ``-inf``, and a row
with no allowed key all zeros rather than NaN. :func:`attend` adds the weighted average of values.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from . import _checks
from ._checks import shape
from .attention import masked_softmax

__all__ = [
    "additive_scores",
    "dot_scores",
    "general_scores",
    "concat_scores",
    "masked_softmax",
    "attend",
    "Score",
    "AdditiveScore",
    "DotScore",
    "GeneralScore",
    "ConcatScore",
    "make_score",
    "SCORES",
]

#: The score names :func:`make_score` knows.
SCORES: tuple[str, ...] = ("additive", "dot", "general", "concat")


def _check_query_key(fn: str, query, key) -> None:
    for name, t in (("query", query), ("key", key)):
        _checks.floating_tensor(t, name, fn)
        if t.dim() < 2:
            raise ValueError(
                f"{fn}: {name} must have at least 2 dimensions (..., length, features), got "
                f"shape {shape(t)}"
            )
    try:
        torch.broadcast_shapes(query.shape[:-2], key.shape[:-2])
    except RuntimeError:
        raise ValueError(
            f"{fn}: the leading (batch) dimensions of query {shape(query)} and key {shape(key)} "
            f"do not broadcast together"
        ) from None


def _check_param(fn: str, name: str, t, expected: tuple[int, ...], meaning: str) -> None:
    _checks.tensor(t, name, fn)
    if tuple(t.shape) != expected:
        raise ValueError(f"{fn}: {name} must have shape {expected} {meaning}, got {shape(t)}")


def _check_v(fn: str, v) -> int:
    """The hidden size h of the vector ``v`` ``(h,)`` of the additive and concat scores."""
    if not isinstance(v, torch.Tensor) or v.dim() != 1:
        raise ValueError(f"{fn}: v must have shape (h,), got {shape(v)}")
    return v.size(0)


def _tanh_scores(q_h: torch.Tensor, k_h: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """:math:`v^\top \tanh(q_h + k_h)` for every (query, key) pair: the additive family's last step.

    Args:
        q_h: ``(..., L, h)`` projected queries; k_h: ``(..., S, h)`` projected keys; v: ``(h,)``.

    Returns:
        Scores ``(..., L, S)``.
    """
    hidden = torch.tanh(q_h[..., :, None, :] + k_h[..., None, :, :])  # (..., L, S, h)
    return hidden @ v  # (..., L, S)


def additive_scores(
    query: torch.Tensor,
    key: torch.Tensor,
    W_q: torch.Tensor,
    W_k: torch.Tensor,
    v: torch.Tensor,
) -> torch.Tensor:
    r"""Bahdanau's additive scores, :math:`s(q, k) = v^\top \tanh(W_q q + W_k k)`.

    Both sides are projected into a common hidden space of size ``h``, so ``Eq`` and ``Ek`` may
    differ. The price: a hidden vector for every (query, key) pair, a ``(..., L, S, h)`` tensor.

    Args:
        query: ``(..., L, Eq)``.
        key: ``(..., S, Ek)``; leading dimensions broadcast with the query's.
        W_q: ``(h, Eq)``.
        W_k: ``(h, Ek)``.
        v: ``(h,)``.

    Returns:
        Scores ``(..., L, S)``.

    See "Queries and keys of different sizes" in the chapter "Attention as a soft lookup", and the
    chapter "Attention in RNN encoder-decoders" (Bahdanau et al., 2015).
    """
    fn = "additive_scores"
    _check_query_key(fn, query, key)
    h = _check_v(fn, v)
    _check_param(fn, "W_q", W_q, (h, query.size(-1)), "(hidden size h of v, query size Eq)")
    _check_param(fn, "W_k", W_k, (h, key.size(-1)), "(hidden size h of v, key size Ek)")
    return _tanh_scores(query @ W_q.T, key @ W_k.T, v)  # (..., L, h), (..., S, h) -> (..., L, S)


def dot_scores(query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
    r"""Luong's dot scores, :math:`s(q, k) = q^\top k` (no scale: that came with the Transformer).

    Args:
        query: ``(..., L, E)``.
        key: ``(..., S, E)``: the same size ``E`` as the query.

    Returns:
        Scores ``(..., L, S)``.

    See the chapter "Attention in RNN encoder-decoders" (Luong et al., 2015).
    """
    _check_query_key("dot_scores", query, key)
    if query.size(-1) != key.size(-1):
        raise ValueError(
            f"dot_scores: query and key must have the same size E (a dot product pairs their "
            f"entries), got query {shape(query)} and key {shape(key)}; use general_scores or "
            f"additive_scores when the sizes differ"
        )
    return query @ key.transpose(-2, -1)  # (..., L, S)


def general_scores(query: torch.Tensor, key: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    r"""Luong's general (bilinear) scores, :math:`s(q, k) = q^\top W k`.

    A dot product after mapping the key into the query's space with ``W``; ``Eq`` and ``Ek`` may
    differ.

    Args:
        query: ``(..., L, Eq)``.
        key: ``(..., S, Ek)``.
        W: ``(Eq, Ek)``.

    Returns:
        Scores ``(..., L, S)``.

    See the chapter "Attention in RNN encoder-decoders" (Luong et al., 2015).
    """
    fn = "general_scores"
    _check_query_key(fn, query, key)
    _check_param(fn, "W", W, (query.size(-1), key.size(-1)), "(query size Eq, key size Ek)")
    k_in_q = key @ W.T  # (..., S, Eq): W k for every key
    return query @ k_in_q.transpose(-2, -1)  # (..., L, S)


def concat_scores(
    query: torch.Tensor, key: torch.Tensor, W: torch.Tensor, v: torch.Tensor
) -> torch.Tensor:
    r"""Luong's concat scores, :math:`s(q, k) = v^\top \tanh(W [q; k])`.

    ``[q; k]`` stacks the query on top of the key, so ``W`` has ``Eq + Ek`` columns. Splitting
    ``W`` into its first ``Eq`` and last ``Ek`` columns gives exactly :func:`additive_scores`.

    Args:
        query: ``(..., L, Eq)``.
        key: ``(..., S, Ek)``.
        W: ``(h, Eq + Ek)``.
        v: ``(h,)``.

    Returns:
        Scores ``(..., L, S)``.

    See the chapter "Attention in RNN encoder-decoders" (Luong et al., 2015).
    """
    fn = "concat_scores"
    _check_query_key(fn, query, key)
    _check_v(fn, v)
    Eq, Ek = query.size(-1), key.size(-1)
    _check_param(fn, "W", W, (v.size(0), Eq + Ek), "(hidden size h of v, Eq + Ek)")
    L, S = query.size(-2), key.size(-2)
    batch = torch.broadcast_shapes(query.shape[:-2], key.shape[:-2])
    q = query[..., :, None, :].expand(*batch, L, S, Eq)  # (..., L, S, Eq)
    k = key[..., None, :, :].expand(*batch, L, S, Ek)  # (..., L, S, Ek)
    pairs = torch.cat([q, k], dim=-1)  # (..., L, S, Eq + Ek): [q; k] for every pair
    return torch.tanh(pairs @ W.T) @ v  # (..., L, S)


def attend(
    scores: torch.Tensor, value: torch.Tensor, mask: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights from scores (:func:`masked_softmax`), then the weighted average of the values.

    Args:
        scores: ``(..., L, S)``.
        value: ``(..., S, Ev)``.
        mask: as in :func:`masked_softmax`.

    Returns:
        ``(context, weights)``: context ``(..., L, Ev)`` (the *context vector* of each query),
        weights ``(..., L, S)``.
    """
    weights = masked_softmax(scores, mask)  # (..., L, S)
    if not isinstance(value, torch.Tensor) or value.dim() < 2 or value.size(-2) != scores.size(-1):
        raise ValueError(
            f"attend: value must be (..., S, Ev) with S = {scores.size(-1)} keys as in the scores "
            f"{shape(scores)}, got {shape(value)}"
        )
    return weights @ value, weights  # (..., L, Ev), (..., L, S)


class Score(nn.Module):
    """Base class of the score modules. ``forward(query, key)`` gives scores ``(..., L, S)``.

    A decoder scores one query per step against the same keys, so the key-side work can be done
    once: ``prepare(key)`` returns what :meth:`score` needs, and ``forward`` is
    ``score(query, prepare(key))``.
    """

    def prepare(self, key: torch.Tensor) -> torch.Tensor:
        return key

    def score(self, query: torch.Tensor, prepared: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        _check_query_key(type(self).__name__, query, key)
        return self.score(query, self.prepare(key))


class AdditiveScore(Score):
    r"""Bahdanau's additive score :math:`v^\top \tanh(W_q q + W_k k)` as a module.

    Args:
        query_size: ``Eq``.
        key_size: ``Ek``.
        hidden_size: ``h``, the size of the common space.

    Shapes: ``forward(query (..., L, Eq), key (..., S, Ek)) -> (..., L, S)``. The parameters are
    ``W_q`` ``(h, Eq)``, ``W_k`` ``(h, Ek)`` and ``v`` ``(h,)``, with the names of the formula;
    :func:`additive_scores` with them gives the same numbers.
    """

    def __init__(self, query_size: int, key_size: int, hidden_size: int) -> None:
        super().__init__()
        self.W_q = nn.Parameter(_uniform(hidden_size, query_size))
        self.W_k = nn.Parameter(_uniform(hidden_size, key_size))
        self.v = nn.Parameter(_uniform(hidden_size, fan_in=hidden_size))

    def prepare(self, key: torch.Tensor) -> torch.Tensor:
        return key @ self.W_k.T  # (..., S, h)

    def score(self, query: torch.Tensor, prepared: torch.Tensor) -> torch.Tensor:
        return _tanh_scores(query @ self.W_q.T, prepared, self.v)  # (..., L, S)


class DotScore(Score):
    r"""Luong's dot score :math:`q^\top k` (no parameters; ``Eq`` must equal ``Ek``)."""

    def score(self, query: torch.Tensor, prepared: torch.Tensor) -> torch.Tensor:
        return dot_scores(query, prepared)  # (..., L, S)


class GeneralScore(Score):
    r"""Luong's general score :math:`q^\top W k` as a module; ``W`` is ``(Eq, Ek)``."""

    def __init__(self, query_size: int, key_size: int) -> None:
        super().__init__()
        self.W = nn.Parameter(_uniform(query_size, key_size))

    def prepare(self, key: torch.Tensor) -> torch.Tensor:
        return key @ self.W.T  # (..., S, Eq)

    def score(self, query: torch.Tensor, prepared: torch.Tensor) -> torch.Tensor:
        return query @ prepared.transpose(-2, -1)  # (..., L, S)


class ConcatScore(Score):
    r"""Luong's concat score :math:`v^\top \tanh(W [q; k])` as a module; ``W`` is ``(h, Eq + Ek)``.

    Computed without building ``[q; k]`` for every pair: ``W [q; k] = W[:, :Eq] q + W[:, Eq:] k``.
    """

    def __init__(self, query_size: int, key_size: int, hidden_size: int) -> None:
        super().__init__()
        self.query_size = query_size
        self.W = nn.Parameter(_uniform(hidden_size, query_size + key_size))
        self.v = nn.Parameter(_uniform(hidden_size, fan_in=hidden_size))

    def prepare(self, key: torch.Tensor) -> torch.Tensor:
        return key @ self.W[:, self.query_size :].T  # (..., S, h)

    def score(self, query: torch.Tensor, prepared: torch.Tensor) -> torch.Tensor:
        q_h = query @ self.W[:, : self.query_size].T  # (..., L, h)
        return _tanh_scores(q_h, prepared, self.v)  # (..., L, S)


def _uniform(*shape: int, fan_in: int | None = None) -> torch.Tensor:
    """nn.Linear's default initialisation: uniform in +-1/sqrt(fan_in)."""
    bound = 1.0 / math.sqrt(fan_in if fan_in is not None else shape[-1])
    return torch.empty(*shape).uniform_(-bound, bound)


def make_score(kind: str, query_size: int, key_size: int, hidden_size: int | None = None) -> Score:
    """The score module called ``kind``: ``"additive"``, ``"dot"``, ``"general"`` or ``"concat"``.

    Args:
        kind: one of :data:`SCORES`.
        query_size: ``Eq``.
        key_size: ``Ek`` (must equal ``Eq`` for ``"dot"``).
        hidden_size: ``h`` for ``"additive"`` and ``"concat"`` (defaults to ``key_size``).
    """
    _checks.positive_int(query_size, "query_size", "make_score")
    _checks.positive_int(key_size, "key_size", "make_score")
    h = key_size if hidden_size is None else hidden_size
    _checks.positive_int(h, "hidden_size", "make_score")
    if kind == "additive":
        return AdditiveScore(query_size, key_size, h)
    if kind == "dot":
        if query_size != key_size:
            raise ValueError(
                f"make_score: 'dot' needs query_size == key_size, got {query_size} and {key_size}"
            )
        return DotScore()
    if kind == "general":
        return GeneralScore(query_size, key_size)
    if kind == "concat":
        return ConcatScore(query_size, key_size, h)
    raise ValueError(f"make_score: kind must be one of {SCORES}, got {kind!r}")
