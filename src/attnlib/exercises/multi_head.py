"""Self-checks for the chapter "Multi-head attention".

Four exercises, each with a reference solution and a check:

* :func:`solution_split_heads`, :func:`check_split_heads` -- fold ``(N, L, D)`` into
  ``(N, H, L, E)``, head ``h`` taking the ``h``-th block of ``E = D / H`` features;
* :func:`solution_merge_heads`, :func:`check_merge_heads` -- unfold ``(N, H, L, E)`` back into
  ``(N, L, D)``;
* :func:`solution_multi_head_attention`, :func:`check_multi_head_attention` -- a whole multi-head
  self-attention layer without biases: project, split, attend per head, merge, project out;
* :func:`solution_predict_cost`, :func:`check_predict_cost` -- predict, before running anything,
  the parameters of a multi-head layer and the size of the weights it returns, for 8 heads and
  for 1; the check computes them, prints the truth and says which prediction was off.

Every check is decorated with :func:`~attnlib.exercises.checks`: handed the chapter's unfilled
template (a body of ``...``), it says so and checks the reference solution instead.

Each check runs the answer on a few cases and prints ``Correct: ...``, or raises
:class:`~attnlib.exercises.ExerciseError` saying what was expected and what came back (shape first,
then values). When a wrong answer matches a classic mistake (a reshape without the transpose, the
features dealt out to heads round-robin, the scale by the model size instead of the head size, a
forgotten output projection...), the message names that mistake.

Shape legend (see the notation page): N batch, H heads, L query length, S key length,
E query/key size per head, D model size (D = H * E).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from .._checks import shape
from . import call_answer, cases_generator, checks, passed, unpack
from ._compare import ExerciseError, diagnose, expect_close

__all__ = [
    "solution_split_heads",
    "check_split_heads",
    "solution_merge_heads",
    "check_merge_heads",
    "solution_multi_head_attention",
    "check_multi_head_attention",
    "solution_predict_cost",
    "check_predict_cost",
]


def solution_split_heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """Exercise 1's reference solution: fold the features into heads.

    Args:
        x: ``(N, L, D)``.
        num_heads: ``H``, which divides ``D``.

    Returns:
        ``(N, H, L, E)`` with ``E = D / H``; head ``h`` holds features ``h*E .. (h+1)*E - 1``.
    """
    N, L, D = x.shape
    x = x.view(N, L, num_heads, D // num_heads)  # (N, L, H, E)
    return x.transpose(1, 2)  # (N, H, L, E)


def solution_merge_heads(x: torch.Tensor) -> torch.Tensor:
    """Exercise 2's reference solution: put the heads' features side by side again.

    Args:
        x: ``(N, H, L, E)``, contiguous or not.

    Returns:
        ``(N, L, H * E)``; ``solution_merge_heads(solution_split_heads(x, H))`` is ``x``.
    """
    N, H, L, E = x.shape
    x = x.transpose(1, 2)  # (N, L, H, E), usually not contiguous
    return x.reshape(N, L, H * E)  # (N, L, D)


# ------------------------------------------------------------------------------------------------
# Exercise 1: split the heads
# ------------------------------------------------------------------------------------------------


@checks(solution_split_heads)
def check_split_heads(fn: Callable[[torch.Tensor, int], torch.Tensor]) -> None:
    """Check ``fn(x, num_heads)``, which folds ``(N, L, D)`` into ``(N, H, L, D // H)``.

    Head ``h`` must get the features ``h*E .. (h+1)*E - 1`` of every position, the block layout
    of :class:`torch.nn.MultiheadAttention` and of ``attnlib.MultiHeadAttention``. The cases have
    ``L != H`` so that a reshape without a transpose gives a recognisably wrong answer.

    Args:
        fn: takes ``x`` ``(N, L, D)`` and ``num_heads`` (an int dividing ``D``) and returns
            ``(N, H, L, E)`` with ``E = D // H``, without changing ``x`` in place.

    Raises:
        ExerciseError: on a wrong type, shape or value, or when the function crashes.

    See the chapter's exercises.
    """
    g = cases_generator(5)
    cases = [
        ("x (2, 5, 12) split into 3 heads", torch.randn(2, 5, 12, generator=g), 3),
        ("x (1, 4, 8) split into 2 heads", torch.randn(1, 4, 8, generator=g), 2),
        ("x (3, 6, 12) split into 4 heads", torch.randn(3, 6, 12, generator=g), 4),
        ("x (2, 3, 6) into 1 head", torch.randn(2, 3, 6, generator=g), 1),
    ]
    for what, x, H in cases:
        N, L, D = x.shape
        E = D // H
        got = call_answer(lambda t, H=H: fn(t, H), what, x)
        expected = solution_split_heads(x, H)  # (N, H, L, E)
        if isinstance(got, torch.Tensor) and got.shape != expected.shape:
            if got.shape == (N, L, H, E):
                raise ExerciseError(
                    f"{what}: expected shape {shape(expected)} (N, H, L, E), got shape "
                    f"{shape(got)}, which is (N, L, H, E): the heads are folded, now move them "
                    "in front of the positions with .transpose(1, 2)"
                )
            raise ExerciseError(
                f"{what}: expected shape {shape(expected)} (N, H, L, E) with E = D / H = "
                f"{D} / {H}, got shape {shape(got)}"
            )
        diagnose(
            got,
            [
                (
                    x.reshape(N, H, L, E),
                    "the shape is right but the numbers are shuffled: x.view(N, H, L, E) "
                    "reinterprets memory laid out as (N, L, D), so a 'head' gets pieces of "
                    "different positions. View it as (N, L, H, E) first, then .transpose(1, 2)",
                ),
                (
                    x.view(N, L, E, H).permute(0, 3, 1, 2),
                    "head h got the features h, h + H, h + 2H, ... (dealt out round-robin); "
                    "each head owns a contiguous block of E features: view as (N, L, H, E)",
                ),
            ],
            what,
            expected=expected,
        )
        expect_close(got, expected, what=what)
    passed(
        f"split_heads matches on {len(cases)} cases: head h holds features h*E to (h+1)*E - 1 "
        "of every position."
    )


# ------------------------------------------------------------------------------------------------
# Exercise 2: merge the heads
# ------------------------------------------------------------------------------------------------


@checks(solution_merge_heads)
def check_merge_heads(fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
    """Check ``fn(x)``, which unfolds ``(N, H, L, E)`` into ``(N, L, H * E)``.

    It must undo the split exactly: ``merge(split(x, H)) == x``. The cases include a tensor that
    is not contiguous (as the output of attention per head after a transpose often is), so a bare
    ``.view`` fails.

    Args:
        fn: takes ``x`` ``(N, H, L, E)`` and returns ``(N, L, H * E)``.

    Raises:
        ExerciseError: on a wrong type, shape or value, or when the function crashes.

    See the chapter's exercises.
    """
    g = cases_generator(6)
    a = torch.randn(2, 5, 3, 4, generator=g).transpose(1, 2)  # (2, 3, 5, 4), not contiguous
    cases = [
        ("x (2, 3, 5, 4): 3 heads of size 4", torch.randn(2, 3, 5, 4, generator=g)),
        ("x (1, 2, 4, 4): 2 heads of size 4", torch.randn(1, 2, 4, 4, generator=g)),
        ("x (2, 3, 5, 4) that is not contiguous (a transposed view)", a),
    ]
    for what, x in cases:
        N, H, L, E = x.shape
        got = call_answer(fn, what, x)
        expected = solution_merge_heads(x)  # (N, L, D)
        if isinstance(got, torch.Tensor) and got.shape != expected.shape:
            raise ExerciseError(
                f"{what}: expected shape {shape(expected)} (N, L, H * E), got shape "
                f"{shape(got)}"
            )
        diagnose(
            got,
            [
                (
                    x.reshape(N, L, H * E),
                    "the shape is right but the numbers are shuffled: reshaping (N, H, L, E) "
                    "straight to (N, L, D) glues together rows of different positions. "
                    "Transpose to (N, L, H, E) first, then reshape",
                ),
                (
                    x.permute(0, 2, 3, 1).reshape(N, L, H * E),
                    "the features are interleaved (head 0's first, head 1's first, ...): "
                    "concatenate whole heads, transpose(1, 2) then reshape(N, L, H * E)",
                ),
            ],
            what,
            expected=expected,
        )
        expect_close(got, expected, what=what)
    g2 = cases_generator(7)
    x = torch.randn(2, 5, 12, generator=g2)
    what = "merge_heads(split_heads(x, 3)) for x (2, 5, 12)"
    back = call_answer(fn, what, solution_split_heads(x, 3))
    expect_close(back, x, what=what)
    passed(f"merge_heads matches on {len(cases)} cases and undoes the split exactly.")


# ------------------------------------------------------------------------------------------------
# Exercise 3: a whole multi-head layer
# ------------------------------------------------------------------------------------------------


def solution_multi_head_attention(
    x: torch.Tensor,
    w_q: torch.Tensor,
    w_k: torch.Tensor,
    w_v: torch.Tensor,
    w_o: torch.Tensor,
    num_heads: int,
    mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exercise 3's reference solution: multi-head self-attention without biases.

    Args:
        x: ``(N, L, D)``.
        w_q: ``(D, D)``, applied as ``x @ w_q``; likewise ``w_k``, ``w_v`` and ``w_o``.
        w_k: ``(D, D)``.
        w_v: ``(D, D)``.
        w_o: ``(D, D)``, the output projection.
        num_heads: ``H``, which divides ``D``.
        mask: optional boolean ``(L, L)``, True = may attend.

    Returns:
        ``(output, weights)``: ``(N, L, D)`` and every head's weights ``(N, H, L, L)``, scaled by
        ``1/sqrt(E)``, the size of one head's keys.
    """
    q = solution_split_heads(x @ w_q, num_heads)  # (N, H, L, E)
    k = solution_split_heads(x @ w_k, num_heads)  # (N, H, L, E)
    v = solution_split_heads(x @ w_v, num_heads)  # (N, H, L, E)
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))  # (N, H, L, L): sqrt(E), not sqrt(D)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))  # (N, H, L, L)
    weights = torch.softmax(scores, dim=-1)  # (N, H, L, L): over the keys, per head
    return solution_merge_heads(weights @ v) @ w_o, weights  # (N, L, D), (N, H, L, L)


def _weights_scaled_by(x, w_q, w_k, H, mask, size) -> torch.Tensor:
    """Every head's weights with the scale ``1/sqrt(size)``: what a wrong scale gives."""
    q, k = solution_split_heads(x @ w_q, H), solution_split_heads(x @ w_k, H)  # (N, H, L, E)
    scores = q @ k.transpose(-2, -1) / math.sqrt(size)  # (N, H, L, L)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=-1)  # (N, H, L, L)


@checks(solution_multi_head_attention)
def check_multi_head_attention(fn: Callable[..., tuple[torch.Tensor, torch.Tensor]]) -> None:
    """Check ``fn(x, w_q, w_k, w_v, w_o, num_heads, mask=None)``: multi-head self-attention.

    The layer projects ``x`` with ``w_q``, ``w_k``, ``w_v`` (each ``(D, D)``, applied as
    ``x @ w``), splits the results into ``num_heads`` heads, runs scaled dot-product attention in
    every head with the scale ``1 / sqrt(E)`` (``E = D / H``, the head size), merges the heads
    and applies ``w_o``. It returns ``(output (N, L, D), weights (N, H, L, L))``.

    Args:
        fn: the learner's layer; ``mask`` is an optional boolean ``(L, L)`` (True = may attend).

    Raises:
        ExerciseError: on a wrong type, shape or value (naming a scale by ``sqrt(D)``, a
            forgotten output projection, weights averaged over heads...), or on a crash.

    See the chapter's exercises.
    """
    g = cases_generator(8)
    N, L, D = 2, 5, 12
    x = torch.randn(N, L, D, generator=g)
    w_q, w_k, w_v, w_o = (torch.randn(D, D, generator=g) / math.sqrt(D) for _ in range(4))
    causal = torch.ones(L, L, dtype=torch.bool).tril()
    cases = [
        ("x (2, 5, 12) with 3 heads", 3, None),
        ("x (2, 5, 12) with 4 heads and a causal mask", 4, causal),
        ("x (2, 5, 12) with 1 head", 1, None),
    ]
    for what, H, mask in cases:
        tensors = (x, w_q, w_k, w_v, w_o) if mask is None else (x, w_q, w_k, w_v, w_o, mask)
        result = call_answer(lambda *t, H=H: fn(*t[:5], H, *t[5:]), what, *tensors)
        output, weights = unpack(result, ("output", "weights"), what)
        expected, expected_w = solution_multi_head_attention(x, w_q, w_k, w_v, w_o, H, mask)
        concat = solution_merge_heads(expected_w @ solution_split_heads(x @ w_v, H))  # (N, L, D)
        if isinstance(weights, torch.Tensor) and weights.shape == (N, L, L) and H > 1:
            raise ExerciseError(
                f"{what}, weights: expected shape {shape(expected_w)} (N, H, L, L), one map per "
                f"head, got shape {shape(weights)}: did you average over the heads? Return "
                "them all"
            )
        if isinstance(weights, torch.Tensor) and weights.shape == expected_w.shape:
            diagnose(
                weights,
                [
                    (
                        _weights_scaled_by(x, w_q, w_k, H, mask, D),
                        f"the weights match a scale of 1/sqrt(D) = 1/sqrt({D}), the model size; "
                        f"each head's keys have E = D / H = {D // H} features: scale by "
                        f"1/sqrt({D // H})",
                    )
                ]
                if H > 1
                else [],
                f"{what}, weights",
                expected=expected_w,
            )
        expect_close(weights, expected_w, what=f"{what}, weights")
        diagnose(
            output,
            [
                (
                    concat,
                    "the output is the concatenation of the heads: apply the output "
                    "projection w_o to it (it mixes what the heads found)",
                )
            ],
            f"{what}, output",
            expected=expected,
        )
        expect_close(output, expected, what=f"{what}, output")
    passed(
        f"the multi-head layer matches on {len(cases)} cases (1, 3 and 4 heads, with and without "
        "a causal mask), weights (N, H, L, L) per head."
    )


# ------------------------------------------------------------------------------------------------
# Exercise 4: predict the cost, then measure it
# ------------------------------------------------------------------------------------------------

_COST_CASE = {"d_model": 512, "N": 2, "L": 100}  # MultiHeadAttention(512, H) on (2, 100, 512)


def solution_predict_cost() -> tuple[int, int, int]:
    """Exercise 4's reference solution, worked out on paper for ``D = 512`` and ``N, L = 2, 100``.

    Returns:
        ``(parameters, weights_8, weights_1)``: the parameters of ``MultiHeadAttention(512, 8)``,
        four ``D x D`` projections with biases, ``4 (D^2 + D)``, the same for any number of heads;
        and the entries of the weights it returns for a batch ``(2, 100, 512)``, ``N H L S`` with
        ``S = L``, for 8 heads and for 1.
    """
    D, N, L = _COST_CASE["d_model"], _COST_CASE["N"], _COST_CASE["L"]
    return 4 * (D * D + D), N * 8 * L * L, N * 1 * L * L


def _measured_cost() -> tuple[int, int, int]:
    from ..multihead import MultiHeadAttention

    D, N, L = _COST_CASE["d_model"], _COST_CASE["N"], _COST_CASE["L"]
    x = torch.zeros(N, L, D)  # (N, L, D): the values do not matter for counting
    counts = []
    with torch.no_grad():
        for heads in (8, 1):
            layer = MultiHeadAttention(D, heads)
            _, weights = layer(x, x, x)  # (N, H, L, L)
            counts.append((sum(p.numel() for p in layer.parameters()), weights.numel()))
    (params_8, weights_8), (params_1, weights_1) = counts
    assert params_8 == params_1
    return params_8, weights_8, weights_1


@checks(solution_predict_cost)
def check_predict_cost(fn: Callable[[], tuple[int, int, int]]) -> None:
    """Compare a prediction with the measured cost of ``MultiHeadAttention(512, H)``.

    ``fn()`` returns the learner's three numbers, written down before running anything: the
    parameters of ``MultiHeadAttention(512, 8)`` (with biases) and the number of entries of the
    weights it returns for an input of shape ``(2, 100, 512)``, first with 8 heads, then with 1.
    The check builds both layers, counts, prints the truth (except for the reference solution,
    so that the chapter's stored output does not give it away), and raises with the reason when
    a prediction is off.

    Raises:
        ExerciseError: when ``fn`` does not return three integers, or a prediction is wrong.

    See the chapter's section on BERT's 12 x 64 = 768.
    """
    predicted = call_answer(fn, "your prediction")
    predicted = unpack(predicted, ("parameters", "weights_8", "weights_1"), "your prediction")
    if not all(isinstance(p, int) and not isinstance(p, bool) for p in predicted):
        raise ExerciseError(
            "your prediction: return three whole numbers (ints), e.g. `return 1000, 2000, 3000`"
        )
    truth = _measured_cost()
    if fn is not solution_predict_cost:  # the chapter's stored output must not give it away
        print(f"measured: {truth[0]:,} parameters; weights of {truth[1]:,} entries with 8 heads, "
              f"{truth[2]:,} with 1 head")
    reasons = (
        "four D x D projections with a bias each, 4 (D^2 + D), whatever the number of heads: "
        "splitting into heads reshapes the projections' outputs, it adds no weights",
        "the weights have shape (N, H, L, S) = (2, 8, 100, 100): one L x S matrix per head and "
        "sequence",
        "with one head they have shape (2, 1, 100, 100): the weights, unlike the parameters, "
        "grow with H",
    )
    names = ("parameters", "weights with 8 heads", "weights with 1 head")
    for name, guess, true, why in zip(names, predicted, truth, reasons, strict=True):
        if guess != true:
            raise ExerciseError(f"{name}: you predicted {guess:,}, the layer has {true:,}: {why}")
    passed("all three predictions match the measured layer.")
