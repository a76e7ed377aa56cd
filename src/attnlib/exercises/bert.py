"""Self-checks for the chapter "BERT: attention in both directions".

Three exercises, each with a reference solution and a check:

* :func:`solution_mean_pool`, :func:`check_mean_pool` -- a sentence vector: the average of the
  real tokens' vectors, padding left out;
* :func:`solution_previous_token_score`, :func:`check_previous_token_score` -- how much each head
  attends from every token to the token just before it (the measure that finds MiniLM's
  previous-token head);
* :func:`solution_factorised_embedding_parameters`, :func:`check_factorised_embedding_parameters`
  -- how many parameters ALBERT's factorised embedding holds.

Each check runs the answer on a few cases and prints ``Correct: ...``, or raises
:class:`~attnlib.exercises.ExerciseError` saying what was expected and what came back (shape first,
then values).

Shape legend (see the notation page): N batch, H heads, L length, D model size.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from . import call_answer, cases_generator, passed
from ._compare import ExerciseError, expect_close

__all__ = [
    "solution_mean_pool",
    "check_mean_pool",
    "solution_previous_token_score",
    "check_previous_token_score",
    "solution_factorised_embedding_parameters",
    "check_factorised_embedding_parameters",
]


# --- Exercise 1: mean pooling with a padding mask ------------------------------------------------


def solution_mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Exercise 1's reference solution: each sentence's mean over its real tokens.

    Args:
        hidden: ``(N, L, D)`` token vectors.
        mask: boolean ``(N, L)``, True for a real token; every sentence has at least one.

    Returns:
        ``(N, D)`` sentence vectors; padding never enters the sum or the count.
    """
    m = mask[..., None].to(hidden.dtype)  # (N, L, 1): 1 for a real token, 0 for padding
    return (hidden * m).sum(dim=1) / m.sum(dim=1)  # (N, D)


def check_mean_pool(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    """Check mean pooling: each sentence's vector is the mean of its real tokens' vectors.

    The answer is called as ``fn(hidden, mask)`` on batches whose sentences have different
    lengths, so the padding positions hold large numbers that must not leak into the average.

    Args:
        fn: takes ``hidden`` ``(N, L, D)`` and ``mask`` ``(N, L)`` boolean (True = a real token;
            every sentence has at least one) and returns ``(N, D)``.

    Raises:
        ExerciseError: on a wrong type, shape or value, or when the function crashes.

    See the chapter\'s section "Sentence similarity".
    """
    g = cases_generator(8)
    hidden = torch.randn(3, 5, 4, generator=g)  # (N, L, D) = (3, 5, 4)
    mask = torch.tensor(
        [[True, True, True, True, True], [True, True, False, False, False],
         [True, False, False, False, False]]
    )
    hidden = hidden.masked_fill(~mask[..., None], 100.0)  # loud padding: forgetting it shows
    cases = [
        ("hidden (3, 5, 4) with lengths 5, 2 and 1", hidden, mask),
        ("one sentence (1, 3, 2) without padding", torch.randn(1, 3, 2, generator=g),
         torch.ones(1, 3, dtype=torch.bool)),
        ("hidden (2, 4, 6) with lengths 3 and 4", torch.randn(2, 4, 6, generator=g),
         torch.tensor([[True, True, True, False], [True, True, True, True]])),
    ]
    for what, h, m in cases:
        got = call_answer(fn, f"mean pooling of {what}", h, m)
        expect_close(got, solution_mean_pool(h, m), what=f"mean pooling of {what}")
    passed(
        f"mean pooling matches on {len(cases)} batches; padding never enters the average."
    )


# --- Exercise 2: find the previous-token head ---------------------------------------------------


def solution_previous_token_score(weights: torch.Tensor) -> torch.Tensor:
    """Exercise 2's reference solution: each head's mean weight from token ``i`` to ``i - 1``.

    Args:
        weights: ``(H, L, L)``, each row a distribution over the keys.

    Returns:
        ``(H,)``: the average over the queries ``i = 1 .. L-1`` (query 0 has no previous token);
        a perfect previous-token head scores 1.
    """
    L = weights.size(-1)
    i = torch.arange(1, L)  # (L - 1,): the queries that have a previous token
    return weights[:, i, i - 1].mean(dim=-1)  # (H,)


def check_previous_token_score(fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
    """Check a previous-token score: for each head, the mean weight from token ``i`` to ``i - 1``.

    The score of head ``h`` is the average, over the queries ``i = 1 .. L-1``, of
    ``weights[h, i, i - 1]`` (query 0 has no previous token and is left out). A perfect
    previous-token head scores 1.

    Args:
        fn: takes ``weights`` ``(H, L, L)`` (each row a distribution over keys) and returns
            ``(H,)``.

    Raises:
        ExerciseError: on a wrong type, shape or value, or when the function crashes.

    See the chapter\'s section "Heads with a job".
    """
    g = cases_generator(80)
    L = 6
    previous = torch.zeros(L, L)
    previous[0, 0] = 1.0
    previous[torch.arange(1, L), torch.arange(L - 1)] = 1.0  # (L, L): a perfect previous-token head
    nxt = torch.zeros(L, L)
    nxt[torch.arange(L - 1), torch.arange(1, L)] = 1.0
    nxt[L - 1, L - 1] = 1.0  # (L, L): a next-token head
    diagonal = torch.eye(L)
    uniform = torch.full((L, L), 1 / L)
    random = torch.softmax(3 * torch.randn(4, 7, 7, generator=g), dim=-1)  # (4, 7, 7)
    cases = [
        ("4 hand-made heads (previous, next, self, uniform) of L = 6",
         torch.stack([previous, nxt, diagonal, uniform])),
        ("4 random heads of L = 7", random),
        ("one previous-token head of L = 6", previous[None]),
    ]
    for what, w in cases:
        got = call_answer(fn, f"the scores of {what}", w)
        expect_close(got, solution_previous_token_score(w), what=f"the scores of {what}")
    passed(
        f"previous-token scores match on {len(cases)} cases: the perfect head scores 1, the "
        "next-token and self heads 0, the uniform head 1/L."
    )


# --- Exercise 3: the factorised embedding -------------------------------------------------------


def solution_factorised_embedding_parameters(vocab_size: int, embed_size: int, d_model: int) -> int:
    """Exercise 3's reference solution: the parameters of ALBERT's factorised embedding.

    Args:
        vocab_size: the number of vocabulary entries.
        embed_size: the size of each entry's vector in the table.
        d_model: the model width the table is projected to.

    Returns:
        The table's ``vocab_size * embed_size`` numbers plus the projection's matrix and bias.
    """
    table = vocab_size * embed_size  # one embed_size-vector per vocabulary entry
    projection = embed_size * d_model + d_model  # the embed_size -> d_model matrix and its bias
    return table + projection


def check_factorised_embedding_parameters(fn: Callable[[int, int, int], int]) -> None:
    """Check a count of the parameters of a factorised embedding.

    The answer is called as ``fn(vocab_size, embed_size, d_model)``: a table of ``vocab_size``
    vectors of size ``embed_size``, followed by a linear projection from ``embed_size`` to
    ``d_model`` *with* a bias (as :class:`torch.nn.Linear` has).

    Raises:
        ExerciseError: when the answer is not an integer or differs on one of the cases.

    See the chapter\'s section "ALBERT: fewer parameters, the same work".
    """
    cases = [(30_000, 128, 768), (30_000, 64, 256), (10, 2, 3)]
    for vocab_size, embed_size, d_model in cases:
        what = f"vocab_size = {vocab_size:,}, embed_size = {embed_size}, d_model = {d_model}"
        try:
            got = fn(vocab_size, embed_size, d_model)
        except Exception as err:
            raise ExerciseError(
                f"{what}: your function raised {type(err).__name__}: {err}"
            ) from err
        if isinstance(got, torch.Tensor) and got.numel() == 1 and not got.is_floating_point():
            got = int(got.item())
        if isinstance(got, bool) or not isinstance(got, int):
            raise ExerciseError(
                f"{what}: expected an int (a number of parameters), got {type(got).__name__} "
                f"{got!r}"
            )
        expected = solution_factorised_embedding_parameters(vocab_size, embed_size, d_model)
        if got != expected:
            hint = ""
            if got == vocab_size * d_model:
                hint = " (that is the unfactorised vocab_size x d_model table)"
            elif got == vocab_size * embed_size + embed_size * d_model:
                hint = " (the projection's bias is missing)"
            raise ExerciseError(f"{what}: expected {expected:,} parameters, got {got:,}{hint}")
    vocab_size, embed_size, d_model = cases[0]
    count = solution_factorised_embedding_parameters(vocab_size, embed_size, d_model)
    passed(
        f"a factorised embedding with vocab_size = {vocab_size:,}, embed_size = {embed_size}, "
        f"d_model = {d_model} holds {count:,} parameters instead of {vocab_size * d_model:,}."
    )
