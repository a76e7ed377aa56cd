"""Self-checks for chapter 5, "Multi-head attention".

Three exercises, three checks:

* :func:`check_split_heads` -- fold ``(N, L, D)`` into ``(N, H, L, E)``, head ``h`` taking the
  ``h``-th block of ``E = D / H`` features;
* :func:`check_merge_heads` -- unfold ``(N, H, L, E)`` back into ``(N, L, D)``;
* :func:`check_multi_head_attention` -- a whole multi-head self-attention layer without biases:
  project, split, attend per head, merge, project out.

Each check runs the answer on a few cases and prints ``Correct: ...``, or raises
:class:`~attnlib.exercises.ExerciseError` saying what was expected and what came back (shape first,
then values). When a wrong answer matches a classic mistake (a reshape without the transpose, the
features dealt out to heads round-robin, the scale by the model size instead of the head size, a
forgotten output projection...), the message names that mistake.

Shape legend (see book/notation.md): N batch, H heads, L query length, S key length,
E query/key size per head, D model size (D = H * E).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from . import ExerciseError, call_answer, cases_generator, expect_close, passed

__all__ = ["check_split_heads", "check_merge_heads", "check_multi_head_attention"]


def _shape(t: torch.Tensor | Sequence[int]) -> str:
    dims = t.shape if isinstance(t, torch.Tensor) else t
    return str(tuple(int(d) for d in dims))


def _close(a, b: torch.Tensor) -> bool:
    if not isinstance(a, torch.Tensor) or a.shape != b.shape:
        return False
    return bool(torch.allclose(a.detach().double().cpu(), b.detach().double().cpu(), atol=1e-4))


def _diagnose(
    got, expected: torch.Tensor, mistakes: Sequence[tuple[torch.Tensor, str]], what: str
) -> None:
    """Raise naming the first known mistake that ``got`` reproduces (and the answer does not)."""
    for result, message in mistakes:
        if _close(got, result) and not _close(expected, result):
            raise ExerciseError(f"{what}: {message}")


def _split(x: torch.Tensor, H: int) -> torch.Tensor:
    N, L, D = x.shape
    return x.view(N, L, H, D // H).transpose(1, 2)  # (N, H, L, E)


def _merge(x: torch.Tensor) -> torch.Tensor:
    N, H, L, E = x.shape
    return x.transpose(1, 2).reshape(N, L, H * E)  # (N, L, D)


# ------------------------------------------------------------------------------------------------
# Exercise 1: split the heads
# ------------------------------------------------------------------------------------------------


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

    See chapter 5, "Exercises".
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
        expected = _split(x, H)  # (N, H, L, E)
        if isinstance(got, torch.Tensor) and got.shape != expected.shape:
            if got.shape == (N, L, H, E):
                raise ExerciseError(
                    f"{what}: expected shape {_shape(expected)} (N, H, L, E), got shape "
                    f"{_shape(got)}, which is (N, L, H, E): the heads are folded, now move them "
                    "in front of the positions with .transpose(1, 2)"
                )
            raise ExerciseError(
                f"{what}: expected shape {_shape(expected)} (N, H, L, E) with E = D / H = "
                f"{D} / {H}, got shape {_shape(got)}"
            )
        _diagnose(
            got,
            expected,
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
        )
        expect_close(got, expected, what=what)
    passed(
        f"split_heads matches on {len(cases)} cases: head h holds features h*E to (h+1)*E - 1 "
        "of every position."
    )


# ------------------------------------------------------------------------------------------------
# Exercise 2: merge the heads
# ------------------------------------------------------------------------------------------------


def check_merge_heads(fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
    """Check ``fn(x)``, which unfolds ``(N, H, L, E)`` into ``(N, L, H * E)``.

    It must undo the split exactly: ``merge(split(x, H)) == x``. The cases include a tensor that
    is not contiguous (as the output of attention per head after a transpose often is), so a bare
    ``.view`` fails.

    Args:
        fn: takes ``x`` ``(N, H, L, E)`` and returns ``(N, L, H * E)``.

    Raises:
        ExerciseError: on a wrong type, shape or value, or when the function crashes.

    See chapter 5, "Exercises".
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
        expected = _merge(x)  # (N, L, D)
        if isinstance(got, torch.Tensor) and got.shape != expected.shape:
            raise ExerciseError(
                f"{what}: expected shape {_shape(expected)} (N, L, H * E), got shape "
                f"{_shape(got)}"
            )
        _diagnose(
            got,
            expected,
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
        )
        expect_close(got, expected, what=what)
    g2 = cases_generator(7)
    x = torch.randn(2, 5, 12, generator=g2)
    back = call_answer(fn, "merge_heads(split_heads(x, 3)) for x (2, 5, 12)", _split(x, 3))
    expect_close(back, x, what="merge_heads(split_heads(x, 3)) for x (2, 5, 12)")
    passed(f"merge_heads matches on {len(cases)} cases and undoes the split exactly.")


# ------------------------------------------------------------------------------------------------
# Exercise 3: a whole multi-head layer
# ------------------------------------------------------------------------------------------------


def _reference_mha(x, w_q, w_k, w_v, w_o, H, mask=None, scale_by=None):
    xd = x.double()
    q, k, v = (_split(xd @ w.double(), H) for w in (w_q, w_k, w_v))  # (N, H, L, E) each
    E = q.size(-1)
    scale = 1.0 / math.sqrt(E if scale_by is None else scale_by)
    scores = q @ k.transpose(-2, -1) * scale  # (N, H, L, L)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)  # (N, H, L, L)
    heads = weights @ v  # (N, H, L, E)
    return (_merge(heads) @ w_o.double()).float(), weights.float(), _merge(heads).float()


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

    See chapter 5, "Exercises".
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
        if not isinstance(result, (tuple, list)) or len(result) != 2:
            raise ExerciseError(
                f"{what}: expected a pair (output, weights), got {type(result).__name__}; end "
                "with `return output, weights`"
            )
        output, weights = result
        expected, expected_w, concat = _reference_mha(x, w_q, w_k, w_v, w_o, H, mask)
        if isinstance(weights, torch.Tensor) and weights.shape == (N, L, L) and H > 1:
            raise ExerciseError(
                f"{what}, weights: expected shape {_shape(expected_w)} (N, H, L, L), one map per "
                f"head, got shape {_shape(weights)}: did you average over the heads? Return "
                "them all"
            )
        if isinstance(weights, torch.Tensor) and weights.shape == expected_w.shape:
            _diagnose(
                weights,
                expected_w,
                [
                    (
                        _reference_mha(x, w_q, w_k, w_v, w_o, H, mask, scale_by=D)[1],
                        f"the weights match a scale of 1/sqrt(D) = 1/sqrt({D}), the model size; "
                        f"each head's keys have E = D / H = {D // H} features: scale by "
                        f"1/sqrt({D // H})",
                    )
                ]
                if H > 1
                else [],
                f"{what}, weights",
            )
        expect_close(weights, expected_w, what=f"{what}, weights")
        _diagnose(
            output,
            expected,
            [
                (
                    concat,
                    "the output is the concatenation of the heads: apply the output "
                    "projection w_o to it (it mixes what the heads found)",
                )
            ],
            f"{what}, output",
        )
        expect_close(output, expected, what=f"{what}, output")
    passed(
        f"the multi-head layer matches on {len(cases)} cases (1, 3 and 4 heads, with and without "
        "a causal mask), weights (N, H, L, L) per head."
    )
