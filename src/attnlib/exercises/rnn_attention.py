"""Self-checks for the chapter "Attention in RNN encoder-decoders".

Three exercises, each with a reference solution and a check:

* :func:`solution_general_score`, :func:`check_general_score` -- Luong's general score
  :math:`q^\\top W k` for a batch of queries and keys of different sizes;
* :func:`solution_bahdanau_step`, :func:`check_bahdanau_step` -- one step of Bahdanau attention
  over a padded batch: additive scores, padding masked, softmax, context vector;
* :func:`solution_score_parameters`, :func:`check_score_parameters` -- predict how many parameters
  each of the four scores has, as a formula in the sizes; the check counts those of
  :func:`attnlib.scoring.make_score`.

Each check runs the answer on a few cases and prints ``Correct: ...``, or raises
:class:`~attnlib.exercises.ExerciseError` saying what was expected and what came back (shape first,
then values). Each is decorated with :func:`~attnlib.exercises.checks`: a template still to be
filled in (a body of ``...``) runs the reference solution instead.

Shape legend (see the notation page): N batch, L query length, S key (source) length, Eq query
size, Ek key size, D model size, h hidden size of the additive score.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..masks import padding_mask
from ..scoring import SCORES, make_score
from . import call_answer, cases_generator, checks, passed, unpack
from ._compare import ExerciseError, expect_close

__all__ = [
    "solution_general_score",
    "check_general_score",
    "solution_bahdanau_step",
    "check_bahdanau_step",
    "solution_score_parameters",
    "check_score_parameters",
]


def solution_general_score(query: torch.Tensor, key: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """Exercise 1's reference solution: Luong's general score for a batch.

    Args:
        query: ``(N, L, Eq)``.
        key: ``(N, S, Ek)``.
        W: ``(Eq, Ek)``.

    Returns:
        ``(N, L, S)``: ``scores[n, i, j] = query[n, i] @ W @ key[n, j]``.
    """
    key_in_query_space = key @ W.T  # (N, S, Eq): W k for every key
    return query @ key_in_query_space.transpose(-2, -1)  # (N, L, S)


@checks(solution_general_score)
def check_general_score(fn: Callable[..., torch.Tensor]) -> None:
    """Check Luong's general score, ``scores[n, i, j] = query[n, i] @ W @ key[n, j]``.

    The answer is called as ``fn(query, key, W)`` with ``Eq != Ek`` and ``L != S``, so a
    transposed ``W`` or a result of the wrong orientation fails.

    Args:
        fn: takes ``query`` ``(N, L, Eq)``, ``key`` ``(N, S, Ek)`` and ``W`` ``(Eq, Ek)`` and
            returns scores ``(N, L, S)``.

    Raises:
        ExerciseError: on a wrong type, shape or value, or when the function crashes.

    See the chapter\'s section "Luong's three scores".
    """
    g = cases_generator(3)
    cases = [
        (
            "query [[[1, 0]]], key [[[1, 2, 3], [0, 1, 0]]], W [[1, 0, 0], [0, 0, 2]]",
            torch.tensor([[[1.0, 0.0]]]),
            torch.tensor([[[1.0, 2.0, 3.0], [0.0, 1.0, 0.0]]]),
            torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 2.0]]),
        ),
        (
            "random query (2, 3, 4), key (2, 5, 6), W (4, 6)",
            torch.randn(2, 3, 4, generator=g),
            torch.randn(2, 5, 6, generator=g),
            torch.randn(4, 6, generator=g),
        ),
        (
            "W the identity (4, 4): the general score becomes the dot score",
            torch.randn(1, 2, 4, generator=g),
            torch.randn(1, 3, 4, generator=g),
            torch.eye(4),
        ),
    ]
    for what, query, key, W in cases:
        got = call_answer(fn, f"general score of {what}", query, key, W)
        expected = solution_general_score(query, key, W)
        expect_close(got, expected, what=f"general score of {what}")
    passed(
        f"the general score q^T W k matches on {len(cases)} cases, with queries and keys of "
        "different sizes, and reduces to the dot score when W is the identity."
    )


def solution_bahdanau_step(
    s_prev: torch.Tensor,
    memory: torch.Tensor,
    lengths: torch.Tensor,
    W_q: torch.Tensor,
    W_k: torch.Tensor,
    v: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exercise 2's reference solution: one step of Bahdanau attention over a padded batch.

    Args:
        s_prev: ``(N, D)``, the decoder's previous states.
        memory: ``(N, S, D)``, the encoder's vectors, padded to ``S``.
        lengths: ``(N,)``, the number of real positions of each source.
        W_q: ``(h, D)``.
        W_k: ``(h, D)``.
        v: ``(h,)``.

    Returns:
        ``(context, weights)``: ``(N, D)`` and ``(N, S)``, padding at weight exactly 0.
    """
    hidden = torch.tanh((s_prev @ W_q.T)[:, None, :] + memory @ W_k.T)  # (N, S, h)
    scores = hidden @ v  # (N, S)
    real = padding_mask(lengths, memory.size(1))[:, 0, 0]  # (N, S), True = a real position
    weights = torch.softmax(scores.masked_fill(~real, float("-inf")), dim=-1)  # (N, S)
    context = (weights[:, :, None] * memory).sum(dim=1)  # (N, D)
    return context, weights


@checks(solution_bahdanau_step)
def check_bahdanau_step(fn: Callable[..., tuple[torch.Tensor, torch.Tensor]]) -> None:
    """Check one step of Bahdanau attention over a padded batch of sources.

    ``scores[n, j] = v @ tanh(W_q @ s_prev[n] + W_k @ memory[n, j])`` for the real positions
    ``j < lengths[n]``; padding positions get weight exactly 0; the weights are the softmax of the
    scores over the real positions; the context is the weighted sum of the memory vectors.

    The answer is called as ``fn(s_prev, memory, lengths, W_q, W_k, v)``. The padding of the
    memory holds large numbers, so forgetting the mask shows in the weights and in the context.

    Args:
        fn: takes ``s_prev`` ``(N, D)``, ``memory`` ``(N, S, D)``, ``lengths`` ``(N,)`` (long),
            ``W_q`` ``(h, D)``, ``W_k`` ``(h, D)`` and ``v`` ``(h,)``, and returns
            ``(context (N, D), weights (N, S))``.

    Raises:
        ExerciseError: on a wrong type, shape or value, weight on padding, or a crash.

    See the chapter\'s section "Bahdanau attention, one step at a time".
    """
    g = cases_generator(4)
    cases = []
    for N, S, D, h, lengths in ((2, 4, 3, 5, [4, 2]), (3, 6, 4, 2, [1, 6, 3])):
        what = f"a batch of {N} sources of lengths {lengths} padded to {S}, D = {D}, h = {h}"
        memory = torch.randn(N, S, D, generator=g)
        lengths_t = torch.tensor(lengths)
        pad = torch.arange(S)[None, :] >= lengths_t[:, None]  # (N, S)
        memory[pad] = 50.0  # padding that must not matter
        cases.append(
            (
                what,
                torch.randn(N, D, generator=g),
                memory,
                lengths_t,
                torch.randn(h, D, generator=g),
                torch.randn(h, D, generator=g),
                torch.randn(h, generator=g),
            )
        )
    for what, s_prev, memory, lengths, W_q, W_k, v in cases:
        result = call_answer(fn, what, s_prev, memory, lengths, W_q, W_k, v)
        context, weights = unpack(result, ("context", "weights"), what)
        exp_context, exp_weights = solution_bahdanau_step(s_prev, memory, lengths, W_q, W_k, v)
        if not isinstance(weights, torch.Tensor) or weights.shape != exp_weights.shape:
            expect_close(weights, exp_weights, what=f"weights of {what}")  # type, shape first
        pad = torch.arange(memory.size(1))[None, :] >= lengths[:, None]  # (N, S)
        leaked = weights.detach().cpu().double()[pad].abs()
        if leaked.numel() and bool((leaked > 1e-6).any()):
            raise ExerciseError(
                f"weights of {what}: padding positions (j >= lengths[n]) must get weight exactly "
                f"0, got up to {leaked.max().item():.4f}; mask them with -inf before the softmax"
            )
        expect_close(weights, exp_weights, what=f"weights of {what}")
        expect_close(context, exp_context, what=f"context of {what}")
    passed(
        f"one Bahdanau step matches on {len(cases)} padded batches: additive scores, padding "
        "masked out, softmax over the real positions, and the weighted sum of the memory."
    )


def solution_score_parameters(kind: str, query_size: int, key_size: int, hidden_size: int) -> int:
    """Exercise 3's reference solution: the number of learned parameters of a score.

    Args:
        kind: ``"additive"``, ``"dot"``, ``"general"`` or ``"concat"``.
        query_size: ``Eq``, the size of a query (the decoder state).
        key_size: ``Ek``, the size of a key (a memory vector).
        hidden_size: ``h``, the hidden size of the additive and concat scores.

    Returns:
        additive ``W_q (h, Eq)``, ``W_k (h, Ek)``, ``v (h,)``; dot nothing; general
        ``W (Eq, Ek)``; concat ``W (h, Eq + Ek)``, ``v (h,)``: the same count as additive.
    """
    counts = {
        "additive": hidden_size * query_size + hidden_size * key_size + hidden_size,
        "dot": 0,
        "general": query_size * key_size,
        "concat": hidden_size * (query_size + key_size) + hidden_size,
    }
    return counts[kind]


@checks(solution_score_parameters)
def check_score_parameters(fn: Callable[[str, int, int, int], int]) -> None:
    """Compare predicted parameter counts of the four scores with the library's modules.

    The answer is called as ``fn(kind, query_size, key_size, hidden_size)`` for every kind in
    :data:`attnlib.scoring.SCORES` and three sets of sizes (the chapter's 64, 64, 64 and two with
    ``Eq != Ek``; dot only where ``Eq == Ek``), and compared with the number of parameters of
    ``make_score(kind, query_size, key_size, hidden_size)``.

    Raises:
        ExerciseError: naming the first score and sizes whose count is wrong, with the true count.

    See the chapter\'s section "Luong's three scores".
    """
    sizes = [(64, 64, 64), (3, 5, 4), (32, 48, 16)]
    for query_size, key_size, hidden_size in sizes:
        for kind in SCORES:
            if kind == "dot" and query_size != key_size:
                continue
            what = f"{kind} with Eq = {query_size}, Ek = {key_size}, h = {hidden_size}"
            truth = sum(
                p.numel() for p in make_score(kind, query_size, key_size, hidden_size).parameters()
            )
            try:
                got = fn(kind, query_size, key_size, hidden_size)
            except Exception as err:  # the learner's code: report the case it failed on
                raise ExerciseError(
                    f"{what}: your function raised {type(err).__name__}: {err}"
                ) from err
            if isinstance(got, torch.Tensor) and got.numel() == 1:
                got = got.item()
            if isinstance(got, float) and got.is_integer():
                got = int(got)
            if isinstance(got, bool) or not isinstance(got, int):
                raise ExerciseError(f"{what}: expected a whole number, got {got!r}")
            if got != truth:
                raise ExerciseError(
                    f"{what}: predicted {got:,} parameters, the module has {truth:,} (count "
                    "every matrix and vector the formula uses; none of these scores has a bias)"
                )
    passed(
        "your formulas give every score's parameter count; with Eq = Ek = h = 64: "
        + ", ".join(f"{kind} {solution_score_parameters(kind, 64, 64, 64):,}" for kind in SCORES)
    )
