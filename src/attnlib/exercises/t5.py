"""Self-checks for the chapter "T5: an encoder–decoder with relative positions".

Four exercises, each with a reference solution and a check:

* :func:`solution_relative_position_bucket`, :func:`check_relative_position_bucket` -- T5's
  bucket of a relative position ``j - i``;
* :func:`solution_relative_bias`, :func:`check_relative_bias` -- the ``(1, H, L, S)`` bias matrix
  built from a table of learned values, one per bucket and head;
* :func:`solution_t5_attention`, :func:`check_t5_attention` -- attention as T5 runs it: no
  ``1/sqrt(E)``, the position bias added to the scores, a boolean mask (True = may attend), zeros
  for a query with no allowed key;
* :func:`solution_depends_only_on_offset`, :func:`check_depends_only_on_offset` -- a test of the
  chapter's claim that the bias depends only on ``j - i``: the check runs the learner's test on
  biases for which the claim holds and on near misses for which it does not.

Each check runs the answer on a few cases and prints ``Correct: ...``, or raises
:class:`~attnlib.exercises.ExerciseError` saying what was expected and what came back (shape first,
then values). When a wrong answer matches a classic mistake (``i - j`` instead of ``j - i``, no
clamp on the last bucket, a scale T5 does not use, the bias forgotten, an inverted mask...), the
message names it. While an answer is still the template (its body is ``...``), a check says so and
runs the reference solution instead (see :func:`attnlib.exercises.checks`).

Shape legend (see the notation page): N batch, H heads, L query length, S key length, E query/key
size, Ev value size.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from .._checks import shape
from ..attention import scaled_dot_product_attention
from . import call_answer, cases_generator, checks, passed, unpack
from ._compare import ExerciseError, diagnose, expect_close, expect_tensor

__all__ = [
    "solution_relative_position_bucket",
    "check_relative_position_bucket",
    "solution_relative_bias",
    "check_relative_bias",
    "solution_t5_attention",
    "check_t5_attention",
    "solution_depends_only_on_offset",
    "check_depends_only_on_offset",
]


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


def solution_relative_position_bucket(
    relative_position: torch.Tensor,
    bidirectional: bool = True,
    num_buckets: int = 32,
    max_distance: int = 128,
) -> torch.Tensor:
    """Exercise 1's reference solution: T5's bucket of each relative position ``j - i``.

    Args:
        relative_position: a long tensor of distances ``j - i``, any shape.
        bidirectional: whether keys on the right get buckets of their own (the encoder) or all
            fall into bucket 0 (the decoder).
        num_buckets: the number of buckets, both sides together when bidirectional.
        max_distance: the distance from which every larger one shares the last bucket.

    Returns:
        A long tensor of the same shape, each entry in ``[0, num_buckets)``: small distances get
        a bucket each, larger ones logarithmically wider buckets.
    """
    buckets = torch.zeros_like(relative_position)
    if bidirectional:
        num_buckets //= 2  # half for keys on the left (and the query itself), half for the right
        buckets = buckets + (relative_position > 0).long() * num_buckets
        distance = relative_position.abs()
    else:
        distance = (-relative_position).clamp(min=0)  # keys on the right: distance 0
    max_exact = num_buckets // 2
    log_ratio = torch.log(distance.float() / max_exact) / math.log(max_distance / max_exact)
    large = (max_exact + (log_ratio * (num_buckets - max_exact)).long()).clamp(
        max=num_buckets - 1
    )
    return buckets + torch.where(distance < max_exact, distance, large)


@checks(solution_relative_position_bucket)
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

    See the chapter\'s section "Relative position bias".
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
        sizes = {"num_buckets": num_buckets, "max_distance": max_distance}
        kwargs = {"bidirectional": bidirectional, **sizes}
        got = call_answer(fn, what, rel, **kwargs)
        expected = solution_relative_position_bucket(rel, **kwargs)
        expect_tensor(got, expected, what=what, legend="(one bucket per distance)")
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
                solution_relative_position_bucket(-rel, **kwargs),
                "your buckets are those of i - j; T5 buckets j - i, the key's position minus "
                "the query's, so a key to the left of its query has a negative distance (in the "
                "encoder, keys on the right get the upper half of the buckets)",
            ),
        ]
        if not bidirectional:
            mistakes.append((
                solution_relative_position_bucket(rel, bidirectional=True, **sizes),
                "these are the bidirectional buckets; with bidirectional=False all num_buckets "
                "buckets are for keys at or to the left of the query, and every key to its "
                "right (j - i > 0) falls into bucket 0",
            ))
            mistakes.append((
                solution_relative_position_bucket(-rel.abs(), bidirectional=False, **sizes),
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
                solution_relative_position_bucket(rel, bidirectional=False, **sizes),
                "these are the unidirectional buckets; with bidirectional=True, halve "
                "num_buckets, bucket |j - i| in the first half, and add num_buckets // 2 for "
                "keys to the right (j - i > 0)",
            ))
        diagnose(got, mistakes, what, expected=expected)
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


def solution_relative_bias(
    table: torch.Tensor, L: int, S: int, bidirectional: bool = True, max_distance: int = 128
) -> torch.Tensor:
    """Exercise 2's reference solution: T5's position bias from its table of learned values.

    Args:
        table: ``(num_buckets, H)``, the learned value of each bucket for each head.
        L: the number of queries.
        S: the number of keys.
        bidirectional: as in :func:`solution_relative_position_bucket`.
        max_distance: as in :func:`solution_relative_position_bucket`.

    Returns:
        ``(1, H, L, S)``: entry ``[0, h, i, j]`` is ``table[bucket(j - i), h]``.
    """
    i = torch.arange(L)[:, None]  # (L, 1) query positions
    j = torch.arange(S)[None, :]  # (1, S) key positions
    buckets = solution_relative_position_bucket(
        j - i, bidirectional, table.size(0), max_distance
    )  # (L, S)
    return table[buckets].permute(2, 0, 1)[None]  # (L, S, H) -> (1, H, L, S)


@checks(solution_relative_bias)
def check_relative_bias(fn: Callable[..., torch.Tensor]) -> None:
    """Check a function that turns a table of learned values into T5's bias matrix.

    The answer is called as ``fn(table, L, S, bidirectional=..., max_distance=...)``.

    Args:
        fn: takes ``table`` ``(num_buckets, H)`` (the learned value of each bucket for each
            head), the number of queries ``L`` and keys ``S``, and returns the bias
            ``(1, H, L, S)`` whose entry ``[0, h, i, j]`` is ``table[bucket(j - i), h]``.

    Raises:
        ExerciseError: on a wrong type, shape or value, or when the function crashes.

    See the chapter\'s section "Relative position bias".
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
        expected = solution_relative_bias(table, L, S, bidirectional, max_distance)
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
                f"{what}: expected shape (1, H, L, S) = {shape(expected)}, got shape "
                f"{shape(got)}{hint}"
            )
        i_minus_j = torch.arange(L)[:, None] - torch.arange(S)[None, :]  # (L, S)
        flipped = solution_relative_position_bucket(
            i_minus_j, bidirectional, table.size(0), max_distance
        )  # (L, S)
        diagnose(got, [(
            table[flipped].permute(2, 0, 1)[None],
            "the bias is that of i - j: entry [0, h, i, j] must use the bucket of j - i, the "
            "key's position minus the query's",
        )], what, expected=expected, equal_nan=True)
        expect_close(got, expected, what=what)
    passed(
        f"the bias matches on {len(cases)} cases: square and rectangular, bidirectional and "
        "unidirectional; each diagonal holds one value per head."
    )


# ------------------------------------------------------------------------------------------------
# Exercise 3: attention with a relative position bias and no scale
# ------------------------------------------------------------------------------------------------


def solution_t5_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    bias: torch.Tensor,
    mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exercise 3's reference solution: attention as T5 computes it.

    The mask becomes ``-inf`` in one float mask with the bias, and attnlib's kernel, called with
    ``scale=1.0``, adds it to the scores and gives a query with no allowed key zeros.

    Args:
        query: ``(N, H, L, E)``.
        key: ``(N, H, S, E)``.
        value: ``(N, H, S, Ev)``.
        bias: float, broadcastable to ``(N, H, L, S)``, added to the scores.
        mask: optional boolean, broadcastable to ``(N, H, L, S)``, True = may attend.

    Returns:
        ``(output, weights)``: ``(N, H, L, Ev)`` and ``(N, H, L, S)``, the softmax of
        ``q k^T + bias`` with no ``1/sqrt(E)``.
    """
    float_mask = bias if mask is None else bias.masked_fill(~mask, float("-inf"))  # (., H, L, S)
    return scaled_dot_product_attention(query, key, value, float_mask, scale=1.0)


def _attention_variant(q, k, v, bias, mask, *, scale=1.0, use_bias=True, invert=False,
                       bias_after=False):
    """T5's attention with one thing changed: what the classic mistakes compute."""
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


@checks(solution_t5_attention)
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

    See the chapter\'s section "The model, from attnlib's parts".
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
        output, weights = unpack(result, ("output", "weights"), what)
        exp_out, exp_w = solution_t5_attention(q, k, v, bias, m)
        for name, got, exp in (("weights", weights, exp_w), ("output", output, exp_out)):
            expect_tensor(got, exp, what=f"{what}, {name}")
        if m is not None and not bool(m.any(-1).all()) and torch.isnan(weights).any():
            raise ExerciseError(
                f"{what}, weights: NaN in the row of the query that may attend to no key "
                "(softmax of a row of -inf is 0 / 0); give such a row zero weights and a zero "
                "output, e.g. find rows whose scores are all -inf and fill them with 0 after "
                "the softmax (attnlib.scaled_dot_product_attention does this)"
            )
        mistakes = [
            (
                _attention_variant(q, k, v, bias, m, scale=E**-0.5)[1],
                f"the scores were scaled by 1/sqrt(E) = 1/sqrt({E}); T5 folds that factor into "
                "the initialisation of the query projection and computes q k^T + bias with no "
                "scale (pass scale=1.0)",
            ),
            (
                _attention_variant(q, k, v, bias, m, use_bias=False)[1],
                "the weights ignore the bias: add it to the scores q k^T before the softmax",
            ),
            (
                _attention_variant(q, k, v, bias, m, bias_after=True)[1],
                "the bias was added to the weights after the softmax; add it to the scores "
                "before, so every row still sums to 1",
            ),
        ]
        if m is not None and bool((~m).any(-1).all()):
            mistakes.append((
                _attention_variant(q, k, v, bias, m, invert=True)[1],
                "the mask's polarity is inverted: True means the query MAY attend to that key; "
                "fill the scores with -inf where the mask is False",
            ))
        if m is not None:
            mistakes.append((
                _attention_variant(q, k, v, bias, None)[1],
                "the weights ignore the mask: where it is False the score must be -inf, e.g. "
                "bias.masked_fill(~mask, float('-inf')) as one float mask",
            ))
        diagnose(weights, mistakes, f"{what}, weights", expected=exp_w, equal_nan=True)
        expect_close(weights, exp_w, what=f"{what}, weights")
        expect_close(output, exp_out, what=f"{what}, output")
    passed(
        f"T5's attention matches on {len(cases)} cases: no scale, the bias added to the scores, "
        "a boolean mask, and zeros for a query with no allowed key."
    )


# ------------------------------------------------------------------------------------------------
# Exercise 4: test the claim "the bias depends only on j - i"
# ------------------------------------------------------------------------------------------------


def solution_depends_only_on_offset(bias: torch.Tensor) -> bool:
    """Exercise 4's reference solution: is every diagonal of every head's bias constant?

    Entry ``[0, h, i, j]`` depends only on ``j - i`` exactly when it equals entry
    ``[0, h, i + 1, j + 1]`` wherever both exist: compare the matrix with itself shifted one
    place down and to the right, in every head.

    Args:
        bias: ``(1, H, L, S)``.

    Returns:
        True when the bias of every head depends only on ``j - i``.
    """
    return torch.equal(bias[..., 1:, 1:], bias[..., :-1, :-1])  # (i, j) against (i + 1, j + 1)


def _bias_cases() -> list[tuple[str, torch.Tensor, bool, str]]:
    """(what, bias (1, H, L, S), does the claim hold, what a wrong verdict usually means)."""
    g = cases_generator(40)
    table = torch.randn(32, 3, generator=g)  # (num_buckets, H)
    square = solution_relative_bias(table, 8, 8)  # (1, 3, 8, 8)
    wide = solution_relative_bias(table, 5, 9, bidirectional=False)  # (1, 3, 5, 9)
    corner = square.clone()
    corner[0, 0, 6, 1] += 1.0  # one entry far from the first row and column, in head 0
    head = square.clone()
    head[0, 2] = torch.randn(8, 8, generator=g)  # head 2 depends on the absolute positions
    rows = square + torch.arange(8.0)[:, None]  # (1, 3, 8, 8): a term that grows with i alone
    return [
        ("T5's bias, L = S = 8, 3 heads", square, True,
         "every diagonal of this bias is constant in every head"),
        ("T5's unidirectional bias, L = 5, S = 9", wide, True,
         "a rectangular bias can depend only on j - i too: compare entries (i, j) and "
         "(i + 1, j + 1), not the matrix with its transpose"),
        ("T5's bias with entry (6, 1) of head 0 changed", corner, False,
         "one entry far from the first row and the first column breaks its diagonal: compare "
         "every pair (i, j), (i + 1, j + 1), not only the first row or the main diagonal"),
        ("T5's bias with head 2 replaced by a random matrix", head, False,
         "head 2 depends on the absolute positions: test every head, not only head 0"),
        ("T5's bias plus a term that grows with the query's position i", rows, False,
         "every entry of row i moved by i, so the diagonals are no longer constant: a test that "
         "only looks at differences along a row misses it"),
    ]


@checks(solution_depends_only_on_offset)
def check_depends_only_on_offset(
    fn: Callable[[torch.Tensor], bool],
) -> Callable[[torch.Tensor], bool]:
    """Check a test of the claim "T5's bias depends only on ``j - i``".

    The answer is called as ``fn(bias)`` on biases ``(1, H, L, S)`` for which the claim holds
    (T5's, square and rectangular) and on near misses for which it does not (one entry changed
    far from the first row, one head that depends on absolute positions, a term that grows with
    the query's position). A test must say True for the first and False for the others.

    Args:
        fn: takes ``bias`` ``(1, H, L, S)`` and returns a bool: True when every head's entry
            ``[0, h, i, j]`` depends only on ``j - i``.

    Returns:
        The test that passed: ``fn``, or the reference solution while ``fn`` is the template.

    Raises:
        ExerciseError: when the test gives a wrong verdict, returns something other than a bool,
            or crashes.

    See the chapter's section "Relative position bias".
    """
    cases = _bias_cases()
    for what, bias, holds, why in cases:
        got = call_answer(fn, f"your test on {what}", bias)
        if isinstance(got, torch.Tensor) and got.numel() == 1 and got.dtype == torch.bool:
            got = bool(got)
        if not isinstance(got, bool):
            raise ExerciseError(
                f"your test on {what}: expected a bool (does the bias depend only on j - i?), "
                f"got {type(got).__name__}"
            )
        if got != holds:
            raise ExerciseError(f"your test on {what}: expected {holds}, got {got}; {why}")
    passed(
        f"your test gives the right verdict on {len(cases)} biases: True for T5's, square and "
        "rectangular; False for each near miss."
    )
    return fn
