"""Self-checks for the chapter "Self-attention and scaled dot-product attention".

Five exercises, each with a reference solution and a check:

* :func:`solution_softmax`, :func:`check_softmax` -- a numerically stable softmax over the last
  dimension, from ``exp``, ``sum`` and ``max`` (a library softmax is refused);
* :func:`solution_attention`, :func:`check_attention` -- scaled dot-product attention returning
  ``(output, weights)``;
* :func:`solution_self_attention`, :func:`check_self_attention` -- one self-attention head:
  project a sequence into queries, keys and values with three matrices, then attend;
* :func:`solution_scale_test`, :func:`check_scale_test` -- write the test of a claim: a function
  that says whether an attention function scales its scores by ``1/sqrt(E)``; the check hands it
  a correct attention and wrong ones, and the test must tell them apart;
* :func:`solution_qk_norm_scores`, :func:`check_qk_norm_scores` -- attention scores with
  RMSNorm on the queries and the keys (QK-norm), which do not grow when the inputs do.

Every check is decorated with :func:`~attnlib.exercises.checks`: handed the chapter's unfilled
template (a body of ``...``), it says so and checks the reference solution instead.

Each check runs the answer on a few cases and prints ``Correct: ...``, or raises
:class:`~attnlib.exercises.ExerciseError` saying what was expected and what came back (shape first,
then values). When a wrong answer matches a classic mistake (no scale, a scale by the sequence
length, the softmax over the wrong dimension, an inverted mask, keys used as values...), the
message names that mistake.

Shape legend (see the notation page): N batch, H heads, L query length, S key length,
E query/key size, Ev value size, D model size.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from .._checks import shape
from . import call_answer, cases_generator, checks, ops_called, passed, unpack
from ._compare import ExerciseError, diagnose, expect_close, expect_tensor

__all__ = [
    "solution_softmax",
    "check_softmax",
    "solution_attention",
    "check_attention",
    "solution_self_attention",
    "check_self_attention",
    "solution_scale_test",
    "check_scale_test",
    "solution_qk_norm_scores",
    "check_qk_norm_scores",
]

# The ATen operators of a library softmax: torch.softmax, Tensor.softmax and F.softmax run
# "_softmax", F.log_softmax runs "_log_softmax", torch.logsumexp "logsumexp".
_LIBRARY_SOFTMAX = {"_softmax", "softmax", "_log_softmax", "log_softmax", "_safe_softmax",
                    "logsumexp"}

# ------------------------------------------------------------------------------------------------
# Exercise 1: a softmax that does not overflow
# ------------------------------------------------------------------------------------------------


def solution_softmax(scores: torch.Tensor) -> torch.Tensor:
    """Exercise 1's reference solution: a softmax over the last dimension that cannot overflow.

    Subtracting each row's maximum changes no weight (a softmax ignores a constant added to a
    row) and keeps every ``exp`` in ``[0, 1]``; a masked score of ``-inf`` still gets weight 0.

    Args:
        scores: ``(..., S)``; every row has at least one finite entry.

    Returns:
        ``(..., S)``: each row's softmax; every row sums to 1.
    """
    shifted = scores - scores.max(dim=-1, keepdim=True).values  # (..., S), largest entry 0
    e = shifted.exp()  # (..., S), every entry in [0, 1], at least one equal to 1
    return e / e.sum(dim=-1, keepdim=True)  # (..., S), each row sums to 1


@checks(solution_softmax)
def check_softmax(fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
    """Check a numerically stable softmax over the last dimension, from ``exp``, ``sum``, ``max``.

    The answer is called as ``fn(scores)`` on rows like ``[1000, 1001, 1002]``, where ``exp``
    overflows to ``inf`` in float32 unless the row maximum is subtracted first, on rows like
    ``[-1000, -1001, -1002]``, where every ``exp`` underflows to 0, on a row holding ``-inf`` (a
    masked key, whose weight must be exactly 0), and on batches of rows in 2 and 4 dimensions.
    The exercise asks for the softmax from ``exp``, ``sum`` and ``max``, so an answer that runs a
    library softmax (``torch.softmax``, ``F.softmax``, ``F.log_softmax``, ``torch.logsumexp``),
    seen in the log of the operators it runs, is refused even when its numbers are right.

    Args:
        fn: takes ``scores`` ``(..., S)`` (float32) and returns ``(..., S)``: each row's softmax
            along the last dimension, without changing ``scores`` in place.

    Raises:
        ExerciseError: on a wrong type, shape or value, on NaN or inf, when the function
            crashes or modifies its input, or when it calls a library softmax.

    See the chapter's exercises.
    """
    g = cases_generator(3)
    cases = [
        ("softmax of [1, 2, 3]", torch.tensor([1.0, 2.0, 3.0])),
        ("softmax of [1000, 1001, 1002]", torch.tensor([1000.0, 1001.0, 1002.0])),
        ("softmax of [-1000, -1001, -1002]", torch.tensor([-1000.0, -1001.0, -1002.0])),
        ("softmax of [0, -inf, 2] (a masked key)", torch.tensor([0.0, float("-inf"), 2.0])),
        ("softmax of a batch of rows (3, 5)", 3.0 * torch.randn(3, 5, generator=g)),
        ("softmax of scores (2, 3, 4, 6) with heads", 3.0 * torch.randn(2, 3, 4, 6, generator=g)),
    ]
    used: set[str] = set()  # the operators the answer ran, over all cases
    for what, scores in cases:
        got, ops = ops_called(call_answer, fn, what, scores)
        expected = solution_softmax(scores)
        if isinstance(got, torch.Tensor) and got.shape == expected.shape:
            if not torch.isfinite(got).all():
                bad = "NaN" if torch.isnan(got).any() else "inf"
                raise ExerciseError(
                    f"{what}: your result contains {bad}. exp(1000) overflows to inf in float32 "
                    "(and inf / inf is NaN), exp(-1000) underflows to 0 (and 0 / 0 is NaN): "
                    "subtract each row's maximum before exp; the softmax does not change"
                )
            mistakes = [(torch.exp(scores), "these are exp(scores): divide by each row's sum")]
            if scores.dim() > 1:  # for a single row these would be right
                mistakes += [
                    (
                        torch.softmax(scores, dim=0),
                        "the softmax ran over the first dimension; it must run over the last "
                        "one (dim=-1), so that each row sums to 1",
                    ),
                    (
                        torch.exp(scores) / torch.exp(scores).sum(),
                        "you normalised over the whole tensor; normalise each row over the "
                        "last dimension (sum(dim=-1, keepdim=True))",
                    ),
                ]
            diagnose(got, mistakes, what, expected=expected)
        expect_close(got, expected, what=what)
        used |= ops
    library = sorted(used & _LIBRARY_SOFTMAX)  # checked once every case is right
    if library:
        raise ExerciseError(
            f"the numbers are right, but your function runs a library softmax (the operator "
            f"log shows {', '.join(library)}: torch.softmax, F.softmax, F.log_softmax or "
            "torch.logsumexp). The exercise asks you to build it from exp, sum and max: "
            "subtract each row's max, exponentiate, divide by the row's sum"
        )
    passed(
        f"the softmax matches on {len(cases)} cases, including [1000, 1001, 1002] and "
        "[-1000, -1001, -1002] without NaN, and a masked key at weight 0."
    )


# ------------------------------------------------------------------------------------------------
# Exercise 2: scaled dot-product attention
# ------------------------------------------------------------------------------------------------


def solution_attention(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exercise 2's reference solution: scaled dot-product attention, with its weights.

    Args:
        query: ``(..., L, E)``.
        key: ``(..., S, E)``.
        value: ``(..., S, Ev)``.
        mask: optional boolean, broadcastable to ``(..., L, S)``, True = may attend.

    Returns:
        ``(output, weights)``: ``(..., L, Ev)`` and ``(..., L, S)``, the weights being
        ``softmax(query @ key^T / sqrt(E))`` over the keys, 0 where the mask is False.
    """
    scores = query @ key.transpose(-2, -1) / math.sqrt(query.size(-1))  # (..., L, S)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))  # (..., L, S)
    weights = torch.softmax(scores, dim=-1)  # (..., L, S)
    return weights @ value, weights  # (..., L, Ev), (..., L, S)


def _weights(
    query: torch.Tensor,
    key: torch.Tensor,
    mask: torch.Tensor | None,
    scale: float,
    dim: int = -1,
) -> torch.Tensor:
    """Softmax weights at any ``scale`` and over any ``dim``: what the classic mistakes give."""
    scores = (query.double() @ key.double().transpose(-2, -1)) * scale  # (..., L, S)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=dim).float()  # (..., L, S)


def _attention_mistakes(
    query: torch.Tensor, key: torch.Tensor, mask: torch.Tensor | None
) -> list[tuple[torch.Tensor, str]]:
    """The weights that classic mistakes produce, each with the message that names it."""
    E, L, S = query.size(-1), query.size(-2), key.size(-2)
    right = 1.0 / math.sqrt(E)
    mistakes = [
        (
            _weights(query, key, mask, 1.0),
            f"the weights match softmax(q . k) without the scale: multiply the scores by "
            f"1/sqrt(E) = 1/sqrt({E}), E being the size of the query and key vectors",
        ),
        (
            _weights(query, key, mask, 1.0 / math.sqrt(S)),
            f"the weights match a scale of 1/sqrt(S) = 1/sqrt({S}), S being the number of "
            f"keys (the sequence length n): the scale is 1/sqrt(E) = 1/sqrt({E}), the key size, "
            "because Var(q . k) grows with E, not with the length",
        ),
        (
            _weights(query, key, mask, 1.0 / E),
            f"the weights match a scale of 1/E = 1/{E}: divide by sqrt(E), not by E",
        ),
        (
            _weights(query, key, mask, right, dim=-2),
            "the softmax ran over the queries (dim=-2), so each column sums to 1: run it over "
            "the keys (dim=-1), so that each query's row is a distribution over the keys",
        ),
    ]
    if L != S:
        mistakes.append((
            _weights(query, key, mask, 1.0 / math.sqrt(L)),
            f"the weights match a scale of 1/sqrt(L) = 1/sqrt({L}), L being the number of "
            f"queries (a sequence length): the scale is 1/sqrt(E) = 1/sqrt({E}), the key size",
        ))
    if mask is not None:
        unmasked = _weights(query, key, None, right)
        mistakes += [
            (
                unmasked,
                "the weights ignore the mask: fill the scores where the mask is False with "
                "-inf before the softmax",
            ),
            (
                unmasked * mask,
                "masked weights were zeroed after the softmax, so the rows no longer sum to 1: "
                "fill the scores with -inf where the mask is False, before the softmax",
            ),
        ]
        if (~mask).any(dim=-1).all():  # every row has a False, so the inverse mask is usable
            mistakes.append((
                _weights(query, key, ~mask, right),
                "the mask's polarity is inverted: True means the query MAY attend to that key "
                "(as in torch.nn.functional.scaled_dot_product_attention); fill with -inf where "
                "the mask is False, e.g. scores.masked_fill(~mask, float('-inf'))",
            ))
    return mistakes


def _check_pair(
    output: torch.Tensor,
    weights: torch.Tensor,
    expected_output: torch.Tensor,
    expected_weights: torch.Tensor,
    weight_mistakes: list[tuple[torch.Tensor, str]],
    output_mistakes: list[tuple[torch.Tensor, str]],
    what: str,
) -> None:
    for name, got, exp in (
        ("weights", weights, expected_weights),
        ("output", output, expected_output),
    ):
        if not isinstance(got, torch.Tensor):
            raise ExerciseError(
                f"{what}, {name}: expected a torch.Tensor of shape {shape(exp)}, "
                f"got {type(got).__name__}"
            )
        if got.shape != exp.shape:
            hint = ""
            if name == "weights" and got.shape[:-2] == exp.shape[:-2] and (
                tuple(got.shape[-2:]) == tuple(exp.shape[-2:])[::-1]
            ):
                hint = (
                    ": the last two dimensions are swapped; rows are queries (L) and columns "
                    "are keys (S), so compute query @ key.transpose(-2, -1)"
                )
            if name == "output" and got.shape[:-1] == exp.shape[:-1]:
                hint = (
                    f": one output row per query is right, but each must have the value size "
                    f"Ev = {exp.size(-1)}; the output is weights @ value"
                )
            raise ExerciseError(
                f"{what}, {name}: expected shape {shape(exp)}, "
                f"got shape {shape(got)}{hint}"
            )
    diagnose(weights, weight_mistakes, f"{what}, weights", expected=expected_weights)
    expect_close(weights, expected_weights, what=f"{what}, weights")
    diagnose(output, output_mistakes, f"{what}, output", expected=expected_output)
    expect_close(output, expected_output, what=f"{what}, output")


@checks(solution_attention)
def check_attention(fn: Callable[..., tuple[torch.Tensor, torch.Tensor]]) -> None:
    """Check scaled dot-product attention that returns its output and its weights.

    The answer is called as ``fn(query, key, value)`` and ``fn(query, key, value, mask)`` on a
    plain pair of sequences, on a batch with heads, with a boolean mask and with a causal mask.
    The query and key length differ from each other and from the key size, so a scale by a
    sequence length, a missing scale and a softmax over the wrong dimension each give different
    numbers, and the message names the mistake it recognises.

    Args:
        fn: takes ``query`` ``(..., L, E)``, ``key`` ``(..., S, E)``, ``value`` ``(..., S, Ev)``
            and an optional boolean ``mask`` broadcastable to ``(..., L, S)`` (True = may attend;
            every query has at least one allowed key) and returns ``(output, weights)``: output
            ``(..., L, Ev)`` = weights @ value, and weights ``(..., L, S)`` =
            ``softmax(query @ key^T / sqrt(E))`` over the keys, masked entries 0.

    Raises:
        ExerciseError: on a wrong type, shape or value, or when the function crashes.

    See the chapter\'s section "Scaled dot-product attention from scratch".
    """
    g = cases_generator(3)
    E, Ev = 16, 5
    mask = torch.tensor([
        [True, False, True, True, False, True],
        [False, True, True, False, True, False],
        [True, True, False, False, False, True],
        [False, False, False, True, True, True],
    ])  # (L, S) = (4, 6); every row allows some keys and forbids others
    x = torch.randn(2, 5, E, generator=g)  # (N, L, E) one sequence attends to itself
    cases = [
        (
            "query (4, 16), key (6, 16), value (6, 5)",
            torch.randn(4, E, generator=g),
            torch.randn(6, E, generator=g),
            torch.randn(6, Ev, generator=g),
            None,
        ),
        (
            "a batch with heads: query (2, 3, 4, 16), key (2, 3, 6, 16), value (2, 3, 6, 5)",
            torch.randn(2, 3, 4, E, generator=g),
            torch.randn(2, 3, 6, E, generator=g),
            torch.randn(2, 3, 6, Ev, generator=g),
            None,
        ),
        (
            "query (2, 3, 4, 16), key (2, 3, 6, 16), value (2, 3, 6, 5) with a mask (4, 6)",
            torch.randn(2, 3, 4, E, generator=g),
            torch.randn(2, 3, 6, E, generator=g),
            torch.randn(2, 3, 6, Ev, generator=g),
            mask,
        ),
        (
            "self-attention query = key = value (2, 5, 16) with a causal mask (5, 5)",
            x,
            x,
            x,
            torch.ones(5, 5, dtype=torch.bool).tril(),
        ),
    ]
    for what, query, key, value, m in cases:
        args = (query, key, value) if m is None else (query, key, value, m)
        output, weights = unpack(call_answer(fn, what, *args), ("output", "weights"), what)
        expected_output, expected_weights = solution_attention(query, key, value, m)
        output_mistakes = []
        if key.shape == value.shape and not torch.equal(key, value):
            output_mistakes.append((
                (expected_weights @ key),
                "the output averages the keys; it must average the values (weights @ value)",
            ))
        _check_pair(
            output, weights, expected_output, expected_weights,
            _attention_mistakes(query, key, m), output_mistakes, what,
        )
    passed(
        f"attention matches on {len(cases)} cases: plain, with heads (N, H, L, E), with a "
        "boolean mask and with a causal mask."
    )


# ------------------------------------------------------------------------------------------------
# Exercise 3: one self-attention head
# ------------------------------------------------------------------------------------------------


def solution_self_attention(
    x: torch.Tensor,
    w_q: torch.Tensor,
    w_k: torch.Tensor,
    w_v: torch.Tensor,
    mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exercise 3's reference solution: one self-attention head.

    Args:
        x: ``(N, L, D)``.
        w_q: ``(D, E)``, applied as ``x @ w_q`` (``nn.Linear`` stores the transpose).
        w_k: ``(D, E)``.
        w_v: ``(D, Ev)``.
        mask: optional boolean ``(L, L)``, True = may attend.

    Returns:
        ``(output, weights)``: ``(N, L, Ev)`` and ``(N, L, L)``, scaled by ``1/sqrt(E)``, the
        size of the projected keys, not of ``x``.
    """
    q, k, v = x @ w_q, x @ w_k, x @ w_v  # (N, L, E), (N, L, E), (N, L, Ev)
    return solution_attention(q, k, v, mask)  # scaled by 1/sqrt(E), the size of the keys


@checks(solution_self_attention)
def check_self_attention(fn: Callable[..., tuple[torch.Tensor, torch.Tensor]]) -> None:
    """Check one self-attention head: three projections of one sequence, then attention.

    The answer is called as ``fn(x, w_q, w_k, w_v)`` and ``fn(x, w_q, w_k, w_v, mask)``. The
    projection matrices are plain ``(D, E)`` and ``(D, Ev)`` tensors, so queries are
    ``x @ w_q`` (note: ``nn.Linear`` stores the transpose, ``(E, D)``). The model size D, the key
    size E and the value size Ev all differ, so a scale by sqrt(D), values taken from the wrong
    projection and forgotten projections each give a recognisable shape or value.

    Args:
        fn: takes ``x`` ``(N, L, D)``, ``w_q`` ``(D, E)``, ``w_k`` ``(D, E)``, ``w_v``
            ``(D, Ev)`` and an optional boolean ``mask`` ``(L, L)`` (True = may attend) and
            returns ``(output, weights)``: output ``(N, L, Ev)`` and weights ``(N, L, L)``.

    Raises:
        ExerciseError: on a wrong type, shape or value, or when the function crashes.

    See the chapter\'s section "Queries, keys and values: three projections of one sequence".
    """
    g = cases_generator(3)
    N, L, D, E, Ev = 2, 6, 12, 4, 3
    x = torch.randn(N, L, D, generator=g)  # (N, L, D)
    w_q = torch.randn(D, E, generator=g) / math.sqrt(D)  # (D, E)
    w_k = torch.randn(D, E, generator=g) / math.sqrt(D)  # (D, E)
    w_v = torch.randn(D, Ev, generator=g) / math.sqrt(D)  # (D, Ev)
    w_v_square = torch.randn(D, E, generator=g) / math.sqrt(D)  # (D, E): Ev = E
    causal = torch.ones(L, L, dtype=torch.bool).tril()  # (L, L)
    cases = [
        ("x (2, 6, 12), w_q (12, 4), w_k (12, 4), w_v (12, 3)", w_v, None),
        ("x (2, 6, 12), w_q (12, 4), w_k (12, 4), w_v (12, 3) with a causal mask", w_v, causal),
        ("x (2, 6, 12), w_q, w_k and w_v all (12, 4)", w_v_square, None),
    ]
    for what, wv, m in cases:
        args = (x, w_q, w_k, wv) if m is None else (x, w_q, w_k, wv, m)
        output, weights = unpack(call_answer(fn, what, *args), ("output", "weights"), what)
        q, k = x @ w_q, x @ w_k  # (N, L, E), (N, L, E)
        expected_output, expected_weights = solution_self_attention(x, w_q, w_k, wv, m)
        if isinstance(output, torch.Tensor) and output.shape != expected_output.shape:
            if output.shape[-1] == D and wv.size(-1) != D:
                raise ExerciseError(
                    f"{what}, output: expected shape {shape(expected_output)}, got "
                    f"shape {shape(output)}: the last dimension is D = {D}, so the "
                    f"values were not projected; use value = x @ w_v, shape (N, L, Ev) = "
                    f"(2, 6, {wv.size(-1)})"
                )
            if output.shape[-1] == E and wv.size(-1) != E:
                raise ExerciseError(
                    f"{what}, output: expected shape {shape(expected_output)}, got "
                    f"shape {shape(output)}: the last dimension is E = {E}, the key size; "
                    f"were the values projected with w_k? Use value = x @ w_v, Ev = {wv.size(-1)}"
                )
        weight_mistakes = [
            (
                _weights(q, k, m, 1.0 / math.sqrt(D)),
                f"the weights match a scale of 1/sqrt(D) = 1/sqrt({D}), the model size: scale "
                f"by 1/sqrt(E) = 1/sqrt({E}), the size of the projected keys",
            ),
            (
                _weights(k, q, m, 1.0 / math.sqrt(E)),
                "the weights match softmax(K Q^T): queries and keys are swapped; queries are "
                "x @ w_q (the rows), keys x @ w_k (the columns)",
            ),
            (
                _weights(x, x, m, 1.0 / math.sqrt(D)),
                "the weights match attention on x itself: project the queries with w_q and "
                "the keys with w_k first",
            ),
            *_attention_mistakes(q, k, m),
        ]
        output_mistakes = [
            (
                (expected_weights @ (x @ w_k)),
                "the output averages x @ w_k, the keys: the values have their own projection, "
                "x @ w_v (keys decide where to look; values what is delivered)",
            ),
            (
                (expected_weights @ x),
                "the output averages x itself: project the values with w_v first",
            ),
        ]
        _check_pair(
            output, weights, expected_output, expected_weights,
            weight_mistakes, output_mistakes, what,
        )
    passed(
        f"the self-attention head matches on {len(cases)} cases, with and without a causal mask, "
        "for D, E and Ev all different."
    )


# ------------------------------------------------------------------------------------------------
# Exercise 4: write the test of a claim
# ------------------------------------------------------------------------------------------------


def solution_scale_test(attention: Callable[..., tuple[torch.Tensor, torch.Tensor]]) -> bool:
    """Exercise 4's reference solution: does ``attention`` scale its scores by ``1/sqrt(E)``?

    A test is only as good as its inputs: with ``L``, ``S`` and ``E`` all different, a scale by
    ``sqrt(S)``, by ``sqrt(L)`` or by ``E``, no scale and a softmax over the wrong dimension each
    give weights that differ from the right ones.

    Args:
        attention: called as ``attention(query, key, value)`` with query ``(L, E)``, key
            ``(S, E)`` and value ``(S, Ev)``; returns ``(output, weights)``.

    Returns:
        True when the weights are ``softmax(query @ key^T / sqrt(E))`` over the keys.
    """
    g = torch.Generator().manual_seed(0)
    L, S, E, Ev = 3, 7, 5, 2  # all different, so that every wrong size gives other numbers
    query, key = torch.randn(L, E, generator=g), torch.randn(S, E, generator=g)
    value = torch.randn(S, Ev, generator=g)
    _, weights = attention(query, key, value)  # (L, S)
    expected = torch.softmax(query @ key.T / math.sqrt(E), dim=-1)  # (L, S)
    return weights.shape == expected.shape and torch.allclose(weights, expected, atol=1e-5)


def _scaled_attention(scale: Callable[[int, int, int], float], dim: int = -1):
    """An attention function with the scale ``scale(L, S, E)`` and the softmax over ``dim``."""

    def attention(query, key, value, mask=None):
        L, S, E = query.size(-2), key.size(-2), query.size(-1)
        scores = query @ key.transpose(-2, -1) * scale(L, S, E)  # (..., L, S)
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        weights = torch.softmax(scores, dim=dim)  # (..., L, S)
        return weights @ value, weights  # (..., L, Ev), (..., L, S)

    return attention


def _scale_candidates() -> list[tuple[str, Callable, bool]]:
    """(description, attention function, whether it is right) for the scale test's check."""
    return [
        ("a correct attention (scale 1/sqrt(E))", _scaled_attention(lambda L, S, E: E**-0.5), True),
        ("an attention without any scale", _scaled_attention(lambda L, S, E: 1.0), False),
        ("an attention scaled by 1/sqrt(S), the number of keys",
         _scaled_attention(lambda L, S, E: S**-0.5), False),
        ("an attention scaled by 1/sqrt(L), the number of queries",
         _scaled_attention(lambda L, S, E: L**-0.5), False),
        ("an attention scaled by 1/E instead of 1/sqrt(E)",
         _scaled_attention(lambda L, S, E: 1.0 / E), False),
        ("an attention with the right scale but the softmax over the queries (dim=-2)",
         _scaled_attention(lambda L, S, E: E**-0.5, dim=-2), False),
    ]


@checks(solution_scale_test)
def check_scale_test(fn: Callable[[Callable], bool]) -> None:
    """Check a learner's test of the claim "this attention scales its scores by 1/sqrt(E)".

    The test ``fn(attention)`` is handed six attention functions, each called as
    ``attention(query, key, value)`` and returning ``(output, weights)``: one correct, and five
    with a classic mistake (no scale, ``1/sqrt(S)``, ``1/sqrt(L)``, ``1/E``, the softmax over
    the queries). It must return True for the correct one and False for every other; a test
    that passes a wrong function is named with the mistake it missed, and a hint on how to pick
    its inputs.

    Args:
        fn: the learner's test; takes an attention function and returns a bool.

    Raises:
        ExerciseError: when the test crashes, returns something other than a bool, or gets a
            candidate wrong.

    See the chapter's section "Why divide by sqrt(d_k), not by sqrt(n)".
    """
    for what, attention, right in _scale_candidates():
        try:
            verdict = fn(attention)
        except ExerciseError:
            raise
        except Exception as err:  # the learner's test failed: say on which candidate
            raise ExerciseError(
                f"your test raised {type(err).__name__}: {err} when it was handed {what}"
            ) from err
        if isinstance(verdict, torch.Tensor) and verdict.numel() == 1:
            verdict = bool(verdict)
        if not isinstance(verdict, bool):
            raise ExerciseError(
                f"handed {what}, your test returned {type(verdict).__name__}; return True or "
                "False (e.g. bool(torch.allclose(...)))"
            )
        if verdict != right:
            if right:
                raise ExerciseError(
                    f"your test rejects {what}: compare its weights with "
                    "softmax(query @ key^T / sqrt(E)) over the last dimension, with a tolerance "
                    "(torch.allclose), not with exact equality"
                )
            raise ExerciseError(
                f"your test accepts {what}: choose inputs on which that mistake gives other "
                "weights, with the number of queries L, of keys S and the key size E all "
                "different (e.g. L = 3, S = 7, E = 5)"
            )
    passed(
        "your test accepts the correct attention and rejects all five wrong ones (no scale, "
        "1/sqrt(S), 1/sqrt(L), 1/E, softmax over the queries)."
    )


# ------------------------------------------------------------------------------------------------
# Exercise 5: scores with QK-norm
# ------------------------------------------------------------------------------------------------


def solution_qk_norm_scores(
    query: torch.Tensor, key: torch.Tensor, g_q: torch.Tensor, g_k: torch.Tensor
) -> torch.Tensor:
    """Exercise 5's reference solution: attention scores after RMSNorm on queries and keys.

    Each query and each key vector is divided by its root-mean-square over its E features, then
    multiplied by its gain; the scores are the scaled dot products of the results. Whatever the
    size of the inputs, every score is at most ``sqrt(E) * max|g_q| * max|g_k|`` in size.

    Args:
        query: ``(..., L, E)``.
        key: ``(..., S, E)``.
        g_q: ``(E,)``, the queries' gain.
        g_k: ``(E,)``, the keys' gain.

    Returns:
        ``(..., L, S)``: ``q_hat @ k_hat^T / sqrt(E)``, with ``q_hat = g_q * q / rms(q)`` and
        ``rms(q) = sqrt(mean(q^2) + 1e-6)`` over the last dimension (PyTorch's ``nn.RMSNorm``
        with ``eps=1e-6``, as ``attnlib.MultiHeadAttention(qk_norm=True)`` uses).
    """
    q_hat = g_q * query * torch.rsqrt(query.pow(2).mean(-1, keepdim=True) + 1e-6)  # (..., L, E)
    k_hat = g_k * key * torch.rsqrt(key.pow(2).mean(-1, keepdim=True) + 1e-6)  # (..., S, E)
    return q_hat @ k_hat.transpose(-2, -1) / math.sqrt(query.size(-1))  # (..., L, S)


def _qk_norm_mistakes(query, key, g_q, g_k) -> list[tuple[torch.Tensor, str]]:
    """The scores that classic mistakes produce, each with the message that names it."""
    E = query.size(-1)

    def rms(x, dim=-1):
        return x * torch.rsqrt(x.pow(2).mean(dim, keepdim=True) + 1e-6)

    right = solution_qk_norm_scores(query, key, g_q, g_k)
    q_c, k_c = query - query.mean(-1, keepdim=True), key - key.mean(-1, keepdim=True)
    return [
        (right * math.sqrt(E), f"the scores are missing the 1/sqrt(E) = 1/sqrt({E}) scale"),
        (
            rms(query) @ rms(key).transpose(-2, -1) / math.sqrt(E),
            "the gains are missing: multiply each normalised query by g_q and each key by g_k",
        ),
        (
            solution_qk_norm_scores(q_c, k_c, g_q, g_k),
            "you subtracted the mean, as LayerNorm does; RMSNorm only divides by the root mean "
            "square",
        ),
        (
            (g_q * query / query.norm(dim=-1, keepdim=True))
            @ (g_k * key / key.norm(dim=-1, keepdim=True)).transpose(-2, -1) / math.sqrt(E),
            "you divided by the vector's length; RMSNorm divides by the root MEAN square, "
            f"length / sqrt(E), so a normalised vector has length sqrt(E) = sqrt({E}), not 1",
        ),
        (
            (g_q * rms(query, -2)) @ (g_k * rms(key, -2)).transpose(-2, -1) / math.sqrt(E),
            "you normalised over the positions (dim=-2); normalise each vector over its E "
            "features (dim=-1)",
        ),
    ]


@checks(solution_qk_norm_scores)
def check_qk_norm_scores(fn: Callable[..., torch.Tensor]) -> None:
    """Check attention scores computed with RMSNorm on the queries and the keys (QK-norm).

    The answer is called as ``fn(query, key, g_q, g_k)`` on a pair of sequences, on a batch with
    heads, and on queries and keys a thousand times larger, whose scores must not change (within
    the ``eps`` of the norm). The messages name the usual mistakes: a missing scale or gain, a
    mean subtracted as in LayerNorm, a division by the length instead of the root mean square,
    a norm over the wrong dimension.

    Args:
        fn: takes query ``(..., L, E)``, key ``(..., S, E)``, gains ``g_q`` and ``g_k`` ``(E,)``
            and returns the scores ``(..., L, S)``.

    Raises:
        ExerciseError: on a wrong type, shape or value, or when the function crashes or changes
            its input.

    See the chapter's section "Logit growth, entropy collapse and QK-norm".
    """
    g = cases_generator(5)
    E = 6
    g_q, g_k = 0.5 + torch.rand(E, generator=g), 0.5 + torch.rand(E, generator=g)
    q1, k1 = 2.0 + torch.randn(4, E, generator=g), torch.randn(7, E, generator=g) - 1.0
    q2, k2 = torch.randn(2, 3, 4, E, generator=g), torch.randn(2, 3, 5, E, generator=g)
    cases = [
        ("scores for 4 queries and 7 keys of size 6", q1, k1),
        ("scores for a batch with heads (2, 3, ...)", q2, k2),
        ("the same queries and keys times 1000", 1000.0 * q1, 1000.0 * k1),
    ]
    for what, query, key in cases:
        got = call_answer(fn, what, query, key, g_q, g_k)
        expected = solution_qk_norm_scores(query, key, g_q, g_k)
        expect_tensor(got, expected, what=what, legend="(..., L, S)")
        diagnose(got, _qk_norm_mistakes(query, key, g_q, g_k), what, expected=expected)
        expect_close(got, expected, what=what)
    bound = math.sqrt(E) * g_q.max().item() * g_k.max().item()
    passed(
        f"the scores match on {len(cases)} cases, and do not grow when the queries and keys are "
        f"1000 times larger; none can exceed sqrt(E) max|g_q| max|g_k| = {bound:.2f} here."
    )
