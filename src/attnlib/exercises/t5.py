"""Self-checks for chapter 10, "T5: an encoder–decoder with relative positions".

Three exercises, three checks:

* :func:`check_relative_position_bucket` -- T5's bucket of a relative position ``j - i``;
* :func:`check_relative_bias` -- the ``(1, H, L, S)`` bias matrix built from a table of learned
  values, one per bucket and head;
* :func:`check_t5_attention` -- attention as T5 runs it: no ``1/sqrt(E)``, the position bias added
  to the scores, a boolean mask (True = may attend), zeros for a query with no allowed key.

Each check runs the answer on a few cases and prints ``Correct: ...``, or raises
:class:`~attnlib.exercises.ExerciseError` saying what was expected and what came back (shape first,
then values). When a wrong answer matches a classic mistake (``i - j`` instead of ``j - i``, no
clamp on the last bucket, a scale T5 does not use, the bias forgotten, an inverted mask...), the
message names it.

Shape legend (see book/notation.md): N batch, H heads, L query length, S key length, E query/key
size, Ev value size.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..models.t5 import relative_position_bucket
from . import ExerciseError, call_answer, cases_generator, expect_close, passed

__all__ = ["check_relative_position_bucket", "check_relative_bias", "check_t5_attention"]


def _shape(t) -> str:
    return str(tuple(t.shape)) if hasattr(t, "shape") else type(t).__name__


def _same(a, b: torch.Tensor) -> bool:
    if not isinstance(a, torch.Tensor) or a.shape != b.shape:
        return False
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    return bool(torch.allclose(a, b, atol=1e-4, rtol=1e-4, equal_nan=True))


def _diagnose(got, mistakes: list[tuple[torch.Tensor, str]], what: str) -> None:
    for result, message in mistakes:
        if _same(got, result):
            raise ExerciseError(f"{what}: {message}")


# ------------------------------------------------------------------------------------------------
# Exercise 1: the bucket of a relative position
# ------------------------------------------------------------------------------------------------


def _bucket_no_clamp(rel: torch.Tensor, bidirectional: bool, num_buckets: int, max_distance: int):
    """The reference without the final clamp: what a forgotten ``min(..., num_buckets - 1)``
    gives."""
    out = torch.zeros_like(rel)
    n = num_buckets
    if bidirectional:
        n //= 2
        out = out + (rel > 0).long() * n
        d = rel.abs()
    else:
        d = (-rel).clamp(min=0)
    exact = n // 2
    large = exact + (
        torch.log(d.float() / exact) / torch.log(torch.tensor(max_distance / exact)) * (n - exact)
    ).long()
    return out + torch.where(d < exact, d, large)


def check_relative_position_bucket(fn: Callable[..., torch.Tensor]) -> None:
    """Check a function that puts relative positions into T5's buckets.

    The answer is called as ``fn(relative_position, bidirectional=..., num_buckets=...,
    max_distance=...)`` on a row of distances from -300 to 300 and on a matrix ``j - i``, with T5's
    settings (32 buckets, max distance 128) and with small ones, in both modes.

    Args:
        fn: takes ``relative_position``, a long tensor of distances ``j - i`` (key position minus
            query position) of any shape, and returns a long tensor of the same shape: the bucket
            of each distance, in ``[0, num_buckets)``.

    Raises:
        ExerciseError: on a wrong type, shape or value, or when the function crashes.

    See chapter 10, "Relative position bias".
    """
    i = torch.arange(12)[:, None]  # (L, 1)
    j = torch.arange(15)[None, :]  # (1, S)
    row = torch.arange(-300, 301)  # (601,)
    cases = [
        ("distances -300..300, bidirectional, 32 buckets, max distance 128", row, True, 32, 128),
        ("distances -300..300, unidirectional, 32 buckets, max distance 128", row, False, 32, 128),
        ("a matrix j - i (12, 15), bidirectional, 8 buckets, max distance 10", j - i, True, 8, 10),
        ("a matrix j - i (12, 15), unidirectional, 8 buckets, max distance 10", j - i, False, 8,
         10),
    ]
    for what, rel, bidirectional, num_buckets, max_distance in cases:
        kwargs = {"bidirectional": bidirectional, "num_buckets": num_buckets,
                  "max_distance": max_distance}
        got = call_answer(fn, what, rel, **kwargs)
        expected = relative_position_bucket(rel, **kwargs)
        if not isinstance(got, torch.Tensor):
            raise ExerciseError(
                f"{what}: expected a torch.Tensor of shape {_shape(expected)}, got "
                f"{type(got).__name__}"
            )
        if got.shape != expected.shape:
            raise ExerciseError(
                f"{what}: expected shape {_shape(expected)} (one bucket per distance), got shape "
                f"{_shape(got)}"
            )
        if got.is_floating_point() or got.dtype == torch.bool:
            raise ExerciseError(
                f"{what}: expected integer bucket ids (a long tensor, to index the table of "
                f"learned biases), got dtype {got.dtype}; truncate with .long() after the "
                f"logarithm"
            )
        if got.numel() and (int(got.max()) >= num_buckets or int(got.min()) < 0):
            raise ExerciseError(
                f"{what}: bucket ids must lie in [0, {num_buckets}), got ids from "
                f"{int(got.min())} to {int(got.max())}; clamp the logarithmic buckets to "
                f"num_buckets - 1 (per side when bidirectional), so that every distance beyond "
                f"max_distance shares the last bucket"
            )
        mistakes = [
            (
                relative_position_bucket(-rel, **kwargs),
                "your buckets are those of i - j; T5 buckets j - i, the key's position minus "
                "the query's, so a key to the left of its query has a negative distance (in the "
                "encoder, keys on the right get the upper half of the buckets)",
            ),
        ]
        if not bidirectional:
            mistakes.append((
                relative_position_bucket(rel, bidirectional=True, num_buckets=num_buckets,
                                         max_distance=max_distance),
                "these are the bidirectional buckets; with bidirectional=False all num_buckets "
                "buckets are for keys at or to the left of the query, and every key to its "
                "right (j - i > 0) falls into bucket 0",
            ))
            mistakes.append((
                relative_position_bucket(-rel.abs(), bidirectional=False,
                                         num_buckets=num_buckets, max_distance=max_distance),
                "keys to the right were bucketed by their distance like keys to the left; with "
                "bidirectional=False, every j - i > 0 goes to bucket 0 (-min(j - i, 0))",
            ))
        else:
            mistakes.append((
                _bucket_no_clamp(rel, bidirectional, num_buckets, max_distance).clamp(
                    max=num_buckets - 1
                ),
                "distances beyond max_distance spill from the left side's buckets into the "
                "right side's: clamp each side's logarithmic bucket to its own last one "
                "(num_buckets // 2 - 1 before adding the right half's offset)",
            ))
            mistakes.append((
                relative_position_bucket(rel, bidirectional=False, num_buckets=num_buckets,
                                         max_distance=max_distance),
                "these are the unidirectional buckets; with bidirectional=True, halve "
                "num_buckets, bucket |j - i| in the first half, and add num_buckets // 2 for "
                "keys to the right (j - i > 0)",
            ))
        _diagnose(got, mistakes, what)
        if not torch.equal(got.long(), expected):
            bad = (got.long() != expected).nonzero()[0]
            idx = tuple(int(x) for x in bad)
            raise ExerciseError(
                f"{what}: buckets differ at index {idx}, distance {int(rel[idx])}: got "
                f"{int(got[idx])}, expected {int(expected[idx])}"
            )
    passed(
        f"the buckets match T5's on {len(cases)} cases, bidirectional and unidirectional, with "
        "T5's settings and small ones."
    )


# ------------------------------------------------------------------------------------------------
# Exercise 2: the bias matrix
# ------------------------------------------------------------------------------------------------


def _reference_bias(table, L, S, bidirectional, max_distance, sign=1):
    i = torch.arange(L)[:, None]  # (L, 1)
    j = torch.arange(S)[None, :]  # (1, S)
    buckets = relative_position_bucket(
        sign * (j - i), bidirectional=bidirectional, num_buckets=table.size(0),
        max_distance=max_distance,
    )  # (L, S)
    return table[buckets].permute(2, 0, 1)[None]  # (1, H, L, S)


def check_relative_bias(fn: Callable[..., torch.Tensor]) -> None:
    """Check a function that turns a table of learned values into T5's bias matrix.

    The answer is called as ``fn(table, L, S, bidirectional=..., max_distance=...)``.

    Args:
        fn: takes ``table`` ``(num_buckets, H)`` (the learned value of each bucket for each
            head), the number of queries ``L`` and keys ``S``, and returns the bias
            ``(1, H, L, S)`` whose entry ``[0, h, i, j]`` is ``table[bucket(j - i), h]``.

    Raises:
        ExerciseError: on a wrong type, shape or value, or when the function crashes.

    See chapter 10, "Relative position bias".
    """
    g = cases_generator(10)
    cases = [
        ("table (32, 4), L = S = 9, bidirectional", torch.randn(32, 4, generator=g), 9, 9, True,
         128),
        ("table (8, 3), L = 6, S = 11, bidirectional, max distance 10",
         torch.randn(8, 3, generator=g), 6, 11, True, 10),
        ("table (32, 2), L = S = 7, unidirectional", torch.randn(32, 2, generator=g), 7, 7, False,
         128),
    ]
    for what, table, L, S, bidirectional, max_distance in cases:
        got = call_answer(fn, what, table, L=L, S=S, bidirectional=bidirectional,
                          max_distance=max_distance)
        expected = _reference_bias(table, L, S, bidirectional, max_distance)
        if isinstance(got, torch.Tensor) and got.shape != expected.shape:
            H = table.size(1)
            hint = ""
            if tuple(got.shape) in ((L, S, H), (1, L, S, H)):
                hint = (
                    ": indexing the table with an (L, S) matrix of buckets gives (L, S, H); move "
                    "the heads to the front with .permute(2, 0, 1) and add a batch dimension"
                )
            elif tuple(got.shape) == (H, L, S):
                hint = ": add the leading batch dimension of 1 (bias[None]) so it broadcasts"
            elif tuple(got.shape) == (1, H, S, L):
                hint = ": rows are queries (L), columns keys (S)"
            raise ExerciseError(
                f"{what}: expected shape (1, H, L, S) = {_shape(expected)}, got shape "
                f"{_shape(got)}{hint}"
            )
        _diagnose(got, [(
            _reference_bias(table, L, S, bidirectional, max_distance, sign=-1),
            "the bias is that of i - j: entry [0, h, i, j] must use the bucket of j - i, the "
            "key's position minus the query's",
        )], what)
        expect_close(got, expected, what=what)
    passed(
        f"the bias matches on {len(cases)} cases: square and rectangular, bidirectional and "
        "unidirectional; each diagonal holds one value per head."
    )


# ------------------------------------------------------------------------------------------------
# Exercise 3: attention with a relative position bias and no scale
# ------------------------------------------------------------------------------------------------


def _reference_attention(q, k, v, bias, mask, *, scale=1.0, use_bias=True, invert=False,
                         bias_after=False):
    scores = (q.double() @ k.double().transpose(-2, -1)) * scale  # (N, H, L, S)
    if use_bias and not bias_after:
        scores = scores + bias.double()
    if mask is not None:
        scores = scores.masked_fill(~mask if not invert else mask, float("-inf"))
    dead = torch.isneginf(scores).all(dim=-1, keepdim=True)  # (N, H, L, 1)
    weights = torch.softmax(scores.masked_fill(dead, 0.0), dim=-1).masked_fill(dead, 0.0)
    if use_bias and bias_after:
        weights = weights + bias.double()
    return (weights @ v.double()).float(), weights.float()


def check_t5_attention(fn: Callable[..., tuple[torch.Tensor, torch.Tensor]]) -> None:
    """Check attention as T5 computes it: ``softmax(q k^T + bias)`` with a mask, no scale.

    The answer is called as ``fn(query, key, value, bias, mask)``; ``mask`` may be None. One case
    has a query whose keys are all masked: its weights and output must be zeros, not NaN.

    Args:
        fn: takes query ``(N, H, L, E)``, key ``(N, H, S, E)``, value ``(N, H, S, Ev)``, bias
            (float, broadcastable to ``(N, H, L, S)``, added to the scores) and mask (boolean,
            True = may attend, broadcastable to ``(N, H, L, S)``, or None), and returns
            ``(output (N, H, L, Ev), weights (N, H, L, S))``.

    Raises:
        ExerciseError: on a wrong type, shape or value, or when the function crashes.

    See chapter 10, "The model, from attnlib's parts".
    """
    g = cases_generator(11)
    N, H, L, S, E, Ev = 2, 3, 4, 6, 8, 5
    mask = torch.tensor([
        [True, True, False, True, True, False],
        [True, False, True, True, False, True],
        [False, True, True, False, True, True],
        [True, True, True, True, False, False],
    ])  # (L, S): every row allows some keys and forbids others
    dead = mask.clone()
    dead[2] = False  # query 2 may attend to nothing
    cases = []
    for what, m in (
        ("no mask", None),
        ("a boolean mask (4, 6)", mask),
        ("a mask (4, 6) in which query 2 may attend to no key", dead),
    ):
        q = 2.0 * torch.randn(N, H, L, E, generator=g)  # (N, H, L, E)
        k = torch.randn(N, H, S, E, generator=g)  # (N, H, S, E)
        v = torch.randn(N, H, S, Ev, generator=g)  # (N, H, S, Ev)
        bias = 2.0 * torch.randn(1, H, L, S, generator=g)  # (1, H, L, S)
        cases.append((f"query (2, 3, 4, 8), key (2, 3, 6, 8), bias (1, 3, 4, 6), {what}",
                      q, k, v, bias, m))
    for what, q, k, v, bias, m in cases:
        result = call_answer(fn, what, q, k, v, bias, m)
        if not isinstance(result, (tuple, list)) or len(result) != 2:
            raise ExerciseError(
                f"{what}: expected a pair (output, weights), got {type(result).__name__}; end "
                "with `return output, weights`"
            )
        output, weights = result
        exp_out, exp_w = _reference_attention(q, k, v, bias, m)
        for name, got, exp in (("weights", weights, exp_w), ("output", output, exp_out)):
            if not isinstance(got, torch.Tensor):
                raise ExerciseError(
                    f"{what}, {name}: expected a torch.Tensor of shape {_shape(exp)}, got "
                    f"{type(got).__name__}"
                )
            if got.shape != exp.shape:
                raise ExerciseError(
                    f"{what}, {name}: expected shape {_shape(exp)}, got shape {_shape(got)}"
                )
        if m is not None and not bool(m.any(-1).all()) and torch.isnan(weights).any():
            raise ExerciseError(
                f"{what}, weights: NaN in the row of the query that may attend to no key "
                "(softmax of a row of -inf is 0 / 0); give such a row zero weights and a zero "
                "output, e.g. find rows whose scores are all -inf and fill them with 0 after "
                "the softmax (attnlib.scaled_dot_product_attention does this)"
            )
        mistakes = [
            (
                _reference_attention(q, k, v, bias, m, scale=E**-0.5)[1],
                f"the scores were scaled by 1/sqrt(E) = 1/sqrt({E}); T5 folds that factor into "
                "the initialisation of the query projection and computes q k^T + bias with no "
                "scale (pass scale=1.0)",
            ),
            (
                _reference_attention(q, k, v, bias, m, use_bias=False)[1],
                "the weights ignore the bias: add it to the scores q k^T before the softmax",
            ),
            (
                _reference_attention(q, k, v, bias, m, bias_after=True)[1],
                "the bias was added to the weights after the softmax; add it to the scores "
                "before, so every row still sums to 1",
            ),
        ]
        if m is not None and bool((~m).any(-1).all()):
            mistakes.append((
                _reference_attention(q, k, v, bias, m, invert=True)[1],
                "the mask's polarity is inverted: True means the query MAY attend to that key; "
                "fill the scores with -inf where the mask is False",
            ))
        if m is not None:
            mistakes.append((
                _reference_attention(q, k, v, bias, None)[1],
                "the weights ignore the mask: where it is False the score must be -inf, e.g. "
                "bias.masked_fill(~mask, float('-inf')) as one float mask",
            ))
        _diagnose(weights, mistakes, f"{what}, weights")
        expect_close(weights, exp_w, what=f"{what}, weights")
        expect_close(output, exp_out, what=f"{what}, output")
    passed(
        f"T5's attention matches on {len(cases)} cases: no scale, the bias added to the scores, "
        "a boolean mask, and zeros for a query with no allowed key."
    )
