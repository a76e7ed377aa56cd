"""Self-checks for the chapter "Attention is not explanation".

Four exercises, each with a reference solution and a check:

* :func:`solution_rollout`, :func:`check_rollout` -- attention rollout (Abnar & Zuidema, 2020):
  average the heads, mix in the identity for the residual connection, renormalise the rows,
  multiply through the layers;
* :func:`solution_zero_heads`, :func:`check_zero_heads` -- the heart of a head-ablation hook:
  given the heads' outputs side by side, ``(N, L, H*E)``, return a copy with chosen heads' slices
  set to zero;
* :func:`solution_largest_weight_is_largest_contribution`,
  :func:`check_largest_weight_is_largest_contribution` -- a test of the claim "the key with the
  largest weight contributes the most": the check runs the learner's test on cases where the
  claim holds and on cases where it fails;
* :func:`solution_duplicate_token_score`, :func:`check_duplicate_token_score` -- on a block of
  tokens repeated twice, how much each head attends from the second copy to the earlier
  occurrence of the same token (the induction heads' section attends one position later).

Each check runs the answer on a few cases and prints ``Correct: ...``, or raises
:class:`~attnlib.exercises.ExerciseError` saying what was expected and what came back (shape first,
then values). When a wrong answer matches a classic mistake (no residual, the layers multiplied in
the wrong order, rows not renormalised, heads taken as interleaved features...), the message names
it. While an answer is still the template (its body is ``...``), a check says so and runs the
reference solution instead (see :func:`attnlib.exercises.checks`).

Shape legend (see the notation page): N batch, H heads, L length, E size per head; ``layers`` is
the number of layers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from .._checks import shape
from . import call_answer, cases_generator, checks, passed
from ._compare import ExerciseError, diagnose, expect_close

__all__ = [
    "solution_rollout",
    "check_rollout",
    "solution_zero_heads",
    "check_zero_heads",
    "solution_largest_weight_is_largest_contribution",
    "check_largest_weight_is_largest_contribution",
    "solution_duplicate_token_score",
    "check_duplicate_token_score",
]


# --- exercise 1: attention rollout ----------------------------------------------------------------


def solution_rollout(attentions: torch.Tensor) -> torch.Tensor:
    """Exercise 1's reference solution: attention rollout with the heads averaged.

    Args:
        attentions: ``(layers, N, H, L, L)``, first layer first.

    Returns:
        ``(N, L, L)``: the product of every layer's ``0.5 * mean_h(A) + 0.5 * I`` (rows
        renormalised), later layers on the left; every row sums to 1.
    """
    A = attentions.mean(dim=2)  # (layers, N, L, L): heads averaged
    A = 0.5 * A + 0.5 * torch.eye(A.size(-1), device=A.device)  # (layers, N, L, L)
    A = A / A.sum(dim=-1, keepdim=True)  # (layers, N, L, L): rows sum to 1
    R = A[0]  # (N, L, L)
    for layer in range(1, A.size(0)):
        R = A[layer] @ R  # (N, L, L): later layers on the left
    return R


def _mix(attentions: torch.Tensor, fusion: str = "mean", residual: float = 0.5) -> torch.Tensor:
    fused = attentions.mean(2) if fusion == "mean" else attentions.amax(2)  # (layers, N, L, L)
    eye = torch.eye(fused.size(-1), dtype=fused.dtype)  # (L, L)
    mixed = (1 - residual) * fused + residual * eye  # (layers, N, L, L)
    return mixed / mixed.sum(-1, keepdim=True)  # (layers, N, L, L)


def _product(mats: torch.Tensor, later_on_left: bool = True) -> torch.Tensor:
    out = mats[0]  # (N, L, L)
    for m in mats[1:]:
        out = m @ out if later_on_left else out @ m  # (N, L, L)
    return out


def _rollout_cases() -> list[tuple[str, torch.Tensor]]:
    layer1 = torch.tensor([[[1.0, 0.0], [0.5, 0.5]], [[1.0, 0.0], [1.0, 0.0]]])  # (H, L, L)
    layer2 = torch.tensor([[[0.5, 0.5], [0.0, 1.0]], [[0.5, 0.5], [0.0, 1.0]]])  # (H, L, L)
    hand = torch.stack([layer1, layer2])[:, None]  # (layers=2, N=1, H=2, L=2, L=2)
    g = cases_generator(11)
    scores = torch.randn(3, 2, 4, 5, 5, generator=g) * 2  # (layers, N, H, L, L)
    return [
        ("2 layers, 2 heads, 2 tokens (the chapter's hand example)", hand),
        ("3 layers, N = 2 sentences, 4 heads, 5 tokens", torch.softmax(scores, dim=-1)),
    ]


@checks(solution_rollout)
def check_rollout(fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
    """Check ``fn(attentions) -> rollout``: attention rollout with averaged heads.

    ``attentions`` has shape ``(layers, N, H, L, L)`` (first layer first); the answer must
    return ``(N, L, L)``: for every layer, average the heads, compute ``0.5 * A + 0.5 * I``,
    divide each row by its sum, and multiply the layers' matrices with later layers on the left.
    """
    cases = _rollout_cases()
    for what, attentions in cases:
        n_layers, N, H, L, _ = attentions.shape
        mixed = _mix(attentions)  # (layers, N, L, L)
        expected = solution_rollout(attentions)  # (N, L, L)
        got = call_answer(fn, what, attentions)
        if isinstance(got, torch.Tensor) and got.shape != expected.shape:
            hints = {
                (N, H, L, L): "one matrix per head: average over the heads (dim=2) first",
                (n_layers, N, L, L): "one matrix per layer: multiply them into one rollout",
                (n_layers, N, H, L, L): "the attentions unchanged: average the heads, add the "
                "identity, renormalise, multiply through the layers",
            }
            hint = hints.get(tuple(got.shape))
            message = f"{what}: expected shape {shape(expected)}, got shape {shape(got)}"
            raise ExerciseError(message + (f": that is {hint}" if hint else ""))
        diagnose(
            got,
            [
                (
                    _product(attentions.mean(2)),
                    "this is the product of the raw head-averaged weights: add the identity for "
                    "the residual connection first (0.5 * A + 0.5 * I), or every token's own "
                    "path through the skip connections is lost",
                ),
                (
                    _product(mixed, later_on_left=False),
                    "the layers are multiplied in the wrong order: the later layer goes on the "
                    "left, R = A_l @ R (a layer reads the mixture the earlier layers made)",
                ),
                (
                    _product(attentions.mean(2) + torch.eye(L)),
                    f"each row sums to {2 ** n_layers}, not 1: after adding the identity, "
                    "divide each row by its sum (or use 0.5 * A + 0.5 * I)",
                ),
                (
                    mixed[-1],
                    "this is the last layer alone: multiply the layers' matrices together",
                ),
                (
                    _product(_mix(attentions, fusion="max")),
                    "the heads were fused with their maximum: the paper averages them (mean "
                    "over dim=2)",
                ),
            ],
            what,
            expected=expected,
        )
        expect_close(got, expected, what=what, atol=1e-5)
    passed(
        f"your rollout matches on {len(cases)} cases, including the hand example; every row "
        "sums to 1."
    )


# --- exercise 2: zero chosen heads ----------------------------------------------------------------


def solution_zero_heads(x: torch.Tensor, heads: Sequence[int], num_heads: int) -> torch.Tensor:
    """Exercise 2's reference solution: a copy of the heads' outputs with chosen heads zeroed.

    Args:
        x: ``(N, L, H*E)``, the heads' outputs side by side, head ``h`` in features ``h*E`` to
            ``(h+1)*E - 1``; left unchanged.
        heads: the heads to zero.
        num_heads: ``H``.

    Returns:
        ``(N, L, H*E)``: ``x`` with the listed heads' features set to 0.
    """
    N, L, D = x.shape
    y = x.view(N, L, num_heads, D // num_heads).clone()  # (N, L, H, E)
    y[:, :, heads, :] = 0.0
    return y.view(N, L, D)  # (N, L, H*E)


def _zero_interleaved(x: torch.Tensor, heads: Sequence[int], num_heads: int) -> torch.Tensor:
    E = x.size(-1) // num_heads
    y = x.view(*x.shape[:-1], E, num_heads).clone()  # (N, L, E, H): the wrong layout
    y[..., list(heads)] = 0.0
    return y.flatten(-2)  # (N, L, H*E)


@checks(solution_zero_heads)
def check_zero_heads(
    fn: Callable[[torch.Tensor, list[int], int], torch.Tensor],
) -> Callable[[torch.Tensor, list[int], int], torch.Tensor]:
    """Check ``fn(x, heads, num_heads) -> y``: zero chosen heads' slices of ``(N, L, H*E)``.

    ``x`` is what a multi-head attention passes to its output projection: the H heads' outputs
    side by side, head ``h`` in features ``h*E`` to ``(h+1)*E - 1``. The answer returns a new
    tensor equal to ``x`` except that the listed heads' features are 0, and leaves ``x`` as it was.
    Returns the function that passed: ``fn``, or the reference solution while ``fn`` is the
    template.
    """
    g = cases_generator(12)
    x = torch.randn(2, 3, 12, generator=g)  # (N, L, H*E) with H = 4, E = 3
    cases = [
        ("x (2, 3, 12), num_heads 4, heads [1]", x, [1], 4),
        ("x (2, 3, 12), num_heads 4, heads [0, 3]", x, [0, 3], 4),
        ("x (2, 3, 12), num_heads 6, heads [5]", x, [5], 6),
        ("x (2, 3, 12), num_heads 4, heads [] (nothing to zero)", x, [], 4),
    ]
    for what, inp, heads, H in cases:
        expected = solution_zero_heads(inp, heads, H)
        got = call_answer(lambda t, hs=heads, n=H: fn(t, list(hs), n), what, inp)
        if isinstance(got, torch.Tensor) and got.shape != expected.shape:
            raise ExerciseError(
                f"{what}: expected shape {shape(expected)} (the same as x), got shape "
                f"{shape(got)}: keep the heads side by side, (N, L, H*E)"
            )
        E = inp.size(-1) // H
        others = [h for h in range(H) if h not in heads]
        mistakes = [
            (
                _zero_interleaved(inp, heads, H),
                "the zeros landed on every H-th feature: the heads are not interleaved; head h "
                f"is one block of E = {E} features, x[..., h*E:(h+1)*E] (view as (N, L, H, E), "
                "not (N, L, E, H))",
            ),
            (
                solution_zero_heads(inp, others, H),
                "the chosen heads were kept and all the other heads zeroed: zero only the "
                "listed heads",
            ),
        ]
        if heads and max(heads) + 1 < H:
            mistakes.append(
                (
                    solution_zero_heads(inp, [h + 1 for h in heads], H),
                    "the zeros are one head too far: head h starts at feature h*E (heads count "
                    "from 0)",
                )
            )
        if heads:
            diagnose(got, mistakes, what, expected=expected)
        expect_close(got, expected, what=what, atol=0.0, rtol=0.0)
    passed(
        f"your function zeroes exactly the chosen heads' slices on {len(cases)} cases and leaves "
        "its input alone."
    )
    return fn


# --- exercise 3: test the claim "the largest weight is the largest contribution" ----------------


def solution_largest_weight_is_largest_contribution(
    weights: torch.Tensor, values: torch.Tensor
) -> bool:
    """Exercise 3's reference solution: does each query's top-weighted key also contribute most?

    Query ``i``'s output is ``sum_j w_ij v_j``; key ``j`` contributes the vector ``w_ij v_j``, of
    length ``w_ij * |v_j|`` {Kobayashi et al., 2020}. The claim holds for this head when, for
    every query, the key with the largest weight is the key with the longest contribution.

    Args:
        weights: ``(L, S)``, one head's weights, each row a distribution over the keys.
        values: ``(S, Ev)``, that head's value vectors.

    Returns:
        True when the claim holds for every query.
    """
    contribution = weights * values.norm(dim=-1)  # (L, S): |w_ij v_j| = w_ij |v_j|
    return torch.equal(weights.argmax(dim=-1), contribution.argmax(dim=-1))  # (L,) each


def _contribution_cases() -> list[tuple[str, torch.Tensor, torch.Tensor, bool, str]]:
    """(what, weights (L, S), values (S, Ev), does the claim hold, what a wrong verdict means)."""
    g = cases_generator(13)
    L, S, Ev = 5, 6, 4
    weights = torch.softmax(2 * torch.randn(L, S, generator=g), dim=-1)  # (L, S)
    unit = torch.nn.functional.normalize(torch.randn(S, Ev, generator=g), dim=-1)  # (S, Ev)
    sink = torch.full((L, S), 0.3 / (S - 1))
    sink[:, 0] = 0.7  # every query puts 0.7 on key 0 ...
    short_sink = unit.clone()
    short_sink[0] *= 0.05  # ... whose value vector is short, as [CLS]'s is in MiniLM
    one_row = torch.eye(L, S) * 0.5 + 0.5 / S  # (L, S): query i's top key is key i
    lengths = torch.ones(S)
    lengths[L - 1] = 0.1  # only the last query's top key has a short value
    last_row_fails = unit * lengths[:, None]  # (S, Ev)
    long_elsewhere = unit * torch.tensor([1.0, 1.5, 1.0, 1.0, 1.0, 1.0])[:, None]  # key 1 longest
    return [
        ("6 keys with values of equal length", weights, unit, True,
         "when every value has the same length, the contributions are ordered like the weights"),
        ("a sink: weight 0.7 on key 0, whose value is 20 times shorter", sink, short_sink, False,
         "key 0 gets the largest weight but contributes 0.7 * 0.05 = 0.035, less than the 0.06 "
         "of any other key: weigh each key's value length, w_ij * |v_j|"),
        ("a head whose top key has a short value for the last query only", one_row,
         last_row_fails, False,
         "the claim fails for the last query: check every query, not only the first"),
        ("top keys 0..4 on the diagonal, key 1's value 1.5 times longer", one_row,
         long_elsewhere, True,
         "key 1's value is the longest, but with weight 0.58 against 0.08 each query's top key "
         "still contributes most: compare the contributions w_ij * |v_j|, not the value lengths "
         "alone"),
    ]


@checks(solution_largest_weight_is_largest_contribution)
def check_largest_weight_is_largest_contribution(
    fn: Callable[[torch.Tensor, torch.Tensor], bool],
) -> Callable[[torch.Tensor, torch.Tensor], bool]:
    """Check a test of the claim "in this head, the key with the largest weight contributes most".

    The answer is called as ``fn(weights, values)`` on heads where the claim holds and on heads
    where it fails (a sink whose value vector is short, a failure in one query only); it must
    return True for the first and False for the others.

    Args:
        fn: takes one head's ``weights`` ``(L, S)`` and ``values`` ``(S, Ev)`` and returns a
            bool: True when, for every query, the key with the largest weight is the key whose
            contribution ``w_ij v_j`` is longest.

    Returns:
        The test that passed: ``fn``, or the reference solution while ``fn`` is the template.

    Raises:
        ExerciseError: when the test gives a wrong verdict, returns something other than a bool,
            or crashes.
    """
    cases = _contribution_cases()
    for what, weights, values, holds, why in cases:
        got = call_answer(fn, f"your test on {what}", weights, values)
        if isinstance(got, torch.Tensor) and got.numel() == 1 and got.dtype == torch.bool:
            got = bool(got)
        if not isinstance(got, bool):
            raise ExerciseError(
                f"your test on {what}: expected a bool (does the top-weighted key contribute "
                f"most?), got {type(got).__name__}"
            )
        if got != holds:
            raise ExerciseError(f"your test on {what}: expected {holds}, got {got}; {why}")
    passed(
        f"your test gives the right verdict on {len(cases)} heads, including a sink whose short "
        "value makes its large weight a small contribution."
    )
    return fn


# --- exercise 4: duplicate-token heads -----------------------------------------------------------


def solution_duplicate_token_score(attentions: torch.Tensor, half: int) -> torch.Tensor:
    """Exercise 4's reference solution: each head's duplicate-token score on a repeated block.

    The sequences are a block of ``half`` tokens followed by the same block, so query ``i`` of the
    second copy (``half <= i < L``) holds the token that stood at position ``i - half``. A
    duplicate-token head attends from ``i`` to that earlier occurrence; an induction head attends
    one position later, to ``i - half + 1``.

    Args:
        attentions: ``(layers, N, H, L, L)`` with ``L = 2 * half``.
        half: the length of the repeated block.

    Returns:
        ``(layers, H)``: the weight from query ``i`` to key ``i - half``, averaged over the
        second copy's queries and over the sequences.
    """
    queries = torch.arange(half, attentions.size(-1), device=attentions.device)  # (half,)
    return attentions[..., queries, queries - half].mean(dim=(1, 3))  # (layers, H)


def _at_offset(attentions: torch.Tensor, half: int, offset: int) -> torch.Tensor:
    """The weight from query i of the second copy to key i - offset, averaged like the answer."""
    queries = torch.arange(half, attentions.size(-1))  # (half,)
    return attentions[..., queries, queries - offset].mean(dim=(1, 3))  # (layers, H)


def _duplicate_cases() -> list[tuple[str, torch.Tensor, int]]:
    half, L = 3, 6
    causal = torch.tril(torch.ones(L, L))  # (L, L): True = may attend, as 1.0
    uniform = causal / causal.sum(-1, keepdim=True)  # (L, L)
    heads = uniform.repeat(3, 1, 1)  # (H = 3, L, L)
    for h, offset in enumerate((half, half - 1, 1)):  # duplicate token, induction, previous token
        for i in range(half, L):
            heads[h, i] = 0.0
            heads[h, i, i - offset] = 1.0
    hand = heads[None, None]  # (layers = 1, N = 1, H = 3, L, L)
    g = cases_generator(14)
    scores = torch.randn(2, 3, 4, 8, 8, generator=g) * 2  # (layers, N, H, L, L)
    scores = scores.masked_fill(torch.tril(torch.ones(8, 8, dtype=torch.bool)).logical_not(),
                                float("-inf"))
    return [
        ("three heads on a block of 3 tokens repeated (duplicate-token, induction, previous-token)",
         hand, half),
        ("random causal attention: 2 layers, N = 3, 4 heads, a block of 4 repeated",
         torch.softmax(scores, dim=-1), 4),
    ]


@checks(solution_duplicate_token_score)
def check_duplicate_token_score(
    fn: Callable[[torch.Tensor, int], torch.Tensor],
) -> Callable[[torch.Tensor, int], torch.Tensor]:
    """Check ``fn(attentions, half) -> (layers, H)``: the duplicate-token score of every head.

    The answer is run on a hand-made layer whose three heads attend, from the second copy, to the
    earlier occurrence (score 1), to the token after it (an induction head, score 0) and to the
    previous token (score 0), and on random causal attention.

    Returns:
        The function that passed: ``fn``, or the reference solution while ``fn`` is the template.
    """
    cases = _duplicate_cases()
    for what, attentions, half in cases:
        n_layers, N, H, L, _ = attentions.shape
        expected = solution_duplicate_token_score(attentions, half)  # (layers, H)
        got = call_answer(lambda a, b=half: fn(a, b), what, attentions)
        if isinstance(got, torch.Tensor) and got.shape != expected.shape:
            hints = {
                (n_layers, N, H): "one score per sequence: average over the sequences (dim 1) too",
                (n_layers, N, H, half): "one weight per query: average over the second copy's "
                "queries",
                (n_layers, H, half): "one weight per query: average over the queries too",
            }
            hint = hints.get(tuple(got.shape))
            message = f"{what}: expected shape {shape(expected)} (layers, H), got {shape(got)}"
            raise ExerciseError(message + (f": that is {hint}" if hint else ""))
        diagnose(
            got,
            [
                (
                    _at_offset(attentions, half, half - 1),
                    "this is the induction score, the weight on the token *after* the earlier "
                    "occurrence (key i - half + 1); a duplicate-token head attends to the earlier "
                    "occurrence itself, key i - half",
                ),
                (
                    _at_offset(attentions, half, 1),
                    "this is the previous-token score (key i - 1): the earlier occurrence of "
                    "query i's token is half positions back, key i - half",
                ),
                (
                    _at_offset(attentions, half, half + 1),
                    "the key is one position too early: query i's token stood at i - half, not "
                    "i - half - 1",
                ),
            ],
            what,
            expected=expected,
        )
        expect_close(got, expected, what=what, atol=1e-5)
    passed(
        f"your score matches on {len(cases)} cases and tells a duplicate-token head from an "
        "induction head and a previous-token head."
    )
    return fn
