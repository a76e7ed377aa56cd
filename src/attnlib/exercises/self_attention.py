"""Self-checks for chapter 4, "Self-attention and scaled dot-product attention".

Three exercises, three checks:

* :func:`check_softmax` -- a numerically stable softmax over the last dimension;
* :func:`check_attention` -- scaled dot-product attention returning ``(output, weights)``;
* :func:`check_self_attention` -- one self-attention head: project a sequence into queries, keys
  and values with three matrices, then attend.

Each check runs the answer on a few cases and prints ``Correct: ...``, or raises
:class:`~attnlib.exercises.ExerciseError` saying what was expected and what came back (shape first,
then values). When a wrong answer matches a classic mistake (no scale, a scale by the sequence
length, the softmax over the wrong dimension, an inverted mask, keys used as values...), the
message names that mistake.

Shape legend (see book/notation.md): N batch, H heads, L query length, S key length,
E query/key size, Ev value size, D model size.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from . import ExerciseError, call_answer, cases_generator, expect_close, passed

__all__ = ["check_softmax", "check_attention", "check_self_attention"]


def _shape(t: torch.Tensor | Sequence[int]) -> str:
    dims = t.shape if isinstance(t, torch.Tensor) else t
    return str(tuple(int(d) for d in dims))


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether a learner's tensor equals a candidate (same shape, close values, no NaN)."""
    if not isinstance(a, torch.Tensor) or a.shape != b.shape:
        return False
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    return bool(torch.allclose(a, b, atol=1e-4, rtol=1e-4))


def _diagnose(got: torch.Tensor, mistakes: Sequence[tuple[torch.Tensor, str]], what: str) -> None:
    """Raise ExerciseError naming the first known mistake whose result ``got`` reproduces."""
    for result, message in mistakes:
        if _close(got, result):
            raise ExerciseError(f"{what}: {message}")


def _unpack_pair(result, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        got = (
            f"a {type(result).__name__} of length {len(result)}"
            if isinstance(result, (tuple, list))
            else f"a {type(result).__name__}"
        )
        raise ExerciseError(
            f"{what}: expected a pair (output, weights), got {got}; end with "
            "`return output, weights`"
        )
    return result[0], result[1]


# ------------------------------------------------------------------------------------------------
# Exercise 1: a softmax that does not overflow
# ------------------------------------------------------------------------------------------------


def check_softmax(fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
    """Check a numerically stable softmax over the last dimension.

    The answer is called as ``fn(scores)`` on rows like ``[1000, 1001, 1002]``, where ``exp``
    overflows to ``inf`` in float32 unless the row maximum is subtracted first, on rows like
    ``[-1000, -1001, -1002]``, where every ``exp`` underflows to 0, on a row holding ``-inf`` (a
    masked key, whose weight must be exactly 0), and on batches of rows in 2 and 4 dimensions.

    Args:
        fn: takes ``scores`` ``(..., S)`` (float32) and returns ``(..., S)``: each row's softmax
            along the last dimension, without changing ``scores`` in place.

    Raises:
        ExerciseError: on a wrong type, shape or value, on NaN or inf, or when the function
            crashes or modifies its input.

    See chapter 4, "Exercises".
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
    for what, scores in cases:
        got = call_answer(fn, what, scores)
        expected = torch.softmax(scores.double(), dim=-1).float()
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
            _diagnose(got, mistakes, what)
        expect_close(got, expected, what=what)
    passed(
        f"the softmax matches on {len(cases)} cases, including [1000, 1001, 1002] and "
        "[-1000, -1001, -1002] without NaN, and a masked key at weight 0."
    )


# ------------------------------------------------------------------------------------------------
# Exercise 2: scaled dot-product attention
# ------------------------------------------------------------------------------------------------


def _reference_weights(
    query: torch.Tensor,
    key: torch.Tensor,
    mask: torch.Tensor | None,
    scale: float,
    dim: int = -1,
) -> torch.Tensor:
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
            _reference_weights(query, key, mask, 1.0),
            f"the weights match softmax(q . k) without the scale: multiply the scores by "
            f"1/sqrt(E) = 1/sqrt({E}), E being the size of the query and key vectors",
        ),
        (
            _reference_weights(query, key, mask, 1.0 / math.sqrt(S)),
            f"the weights match a scale of 1/sqrt(S) = 1/sqrt({S}), S being the number of "
            f"keys (the sequence length n): the scale is 1/sqrt(E) = 1/sqrt({E}), the key size, "
            "because Var(q . k) grows with E, not with the length",
        ),
        (
            _reference_weights(query, key, mask, 1.0 / E),
            f"the weights match a scale of 1/E = 1/{E}: divide by sqrt(E), not by E",
        ),
        (
            _reference_weights(query, key, mask, right, dim=-2),
            "the softmax ran over the queries (dim=-2), so each column sums to 1: run it over "
            "the keys (dim=-1), so that each query's row is a distribution over the keys",
        ),
    ]
    if L != S:
        mistakes.append((
            _reference_weights(query, key, mask, 1.0 / math.sqrt(L)),
            f"the weights match a scale of 1/sqrt(L) = 1/sqrt({L}), L being the number of "
            f"queries (a sequence length): the scale is 1/sqrt(E) = 1/sqrt({E}), the key size",
        ))
    if mask is not None:
        unmasked = _reference_weights(query, key, None, right)
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
                _reference_weights(query, key, ~mask, right),
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
                f"{what}, {name}: expected a torch.Tensor of shape {_shape(exp)}, "
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
                f"{what}, {name}: expected shape {_shape(exp)}, got shape {_shape(got)}{hint}"
            )
    _diagnose(weights, weight_mistakes, f"{what}, weights")
    expect_close(weights, expected_weights, what=f"{what}, weights")
    _diagnose(output, output_mistakes, f"{what}, output")
    expect_close(output, expected_output, what=f"{what}, output")


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

    See chapter 4, "Scaled dot-product attention from scratch".
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
        output, weights = _unpack_pair(call_answer(fn, what, *args), what)
        expected_weights = _reference_weights(query, key, m, 1.0 / math.sqrt(E))
        expected_output = (expected_weights.double() @ value.double()).float()
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

    See chapter 4, "Queries, keys and values: three projections of one sequence".
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
        output, weights = _unpack_pair(call_answer(fn, what, *args), what)
        q, k, v = x @ w_q, x @ w_k, x @ wv  # (N, L, E), (N, L, E), (N, L, Ev)
        expected_weights = _reference_weights(q, k, m, 1.0 / math.sqrt(E))
        expected_output = (expected_weights.double() @ v.double()).float()
        if isinstance(output, torch.Tensor) and output.shape != expected_output.shape:
            if output.shape[-1] == D and wv.size(-1) != D:
                raise ExerciseError(
                    f"{what}, output: expected shape {_shape(expected_output)}, got shape "
                    f"{_shape(output)}: the last dimension is D = {D}, so the values were not "
                    f"projected; use value = x @ w_v, shape (N, L, Ev) = (2, 6, {wv.size(-1)})"
                )
            if output.shape[-1] == E and wv.size(-1) != E:
                raise ExerciseError(
                    f"{what}, output: expected shape {_shape(expected_output)}, got shape "
                    f"{_shape(output)}: the last dimension is E = {E}, the key size; were the "
                    f"values projected with w_k? Use value = x @ w_v, Ev = {wv.size(-1)}"
                )
        weight_mistakes = [
            (
                _reference_weights(q, k, m, 1.0 / math.sqrt(D)),
                f"the weights match a scale of 1/sqrt(D) = 1/sqrt({D}), the model size: scale "
                f"by 1/sqrt(E) = 1/sqrt({E}), the size of the projected keys",
            ),
            (
                _reference_weights(k, q, m, 1.0 / math.sqrt(E)),
                "the weights match softmax(K Q^T): queries and keys are swapped; queries are "
                "x @ w_q (the rows), keys x @ w_k (the columns)",
            ),
            (
                _reference_weights(x, x, m, 1.0 / math.sqrt(D)),
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
