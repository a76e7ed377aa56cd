"""Self-checks for the chapter "GPT: decoder-only Transformers".

Five exercises, each with a reference solution and a check:

* :func:`solution_top_k`, :func:`check_top_k` -- keep the ``k`` largest logits of each row, set
  the rest to ``-inf``;
* :func:`solution_repeat_kv`, :func:`check_repeat_kv` -- grouped-query attention's
  ``repeat_kv``: give each of the ``H`` query heads its key/value head,
  ``(N, Hkv, S, E) -> (N, H, S, E)``;
* :func:`solution_causal_mask_with_past`, :func:`check_causal_mask_with_past` -- the causal mask
  of ``L`` new queries after ``past`` cached positions (what a KV cache needs);
* :func:`solution_is_causal`, :func:`check_causality_test` -- the learner writes the test of the
  chapter's first claim (a prediction never depends on a later token), and the check runs that
  test on a causal model and on leaky ones that a single split would miss;
* :func:`solution_top_p`, :func:`check_top_p` -- nucleus filtering: keep the most likely tokens
  of each row until they hold probability ``p``, set the rest to ``-inf``.

Each check is decorated with :func:`~attnlib.exercises.checks`: an unfilled template (a body of
``...``) runs the reference solution instead, so the chapter executes top to bottom.

Each check runs the answer on a few cases and prints ``Correct: ...``, or raises
:class:`~attnlib.exercises.ExerciseError` saying what was expected and what came back (shape first,
then values). When a wrong answer matches a classic mistake (zeros instead of ``-inf``, the heads
tiled instead of repeated, a mask aligned top-left, the polarity flipped...), the message names it.

Shape legend (see the notation page): N batch, H query heads, Hkv key/value heads, L new queries,
S keys, E head size; ``vocab_size`` entries in a row of logits.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .._checks import shape
from . import call_answer, cases_generator, checks, passed
from ._compare import ExerciseError, diagnose, expect_close, expect_tensor

__all__ = [
    "solution_top_k",
    "check_top_k",
    "solution_repeat_kv",
    "check_repeat_kv",
    "solution_causal_mask_with_past",
    "check_causal_mask_with_past",
    "solution_is_causal",
    "check_causality_test",
    "solution_top_p",
    "check_top_p",
]


# ------------------------------------------------------------------------------------------------
# Exercise 1: top-k filtering
# ------------------------------------------------------------------------------------------------


def solution_top_k(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Exercise 1's reference solution: keep each row's ``k`` largest logits, drop the rest.

    Args:
        logits: ``(..., vocab_size)``; left unchanged.
        k: how many logits survive per row, ``1 <= k <= vocab_size``.

    Returns:
        ``(..., vocab_size)``: the logits at or above the ``k``-th largest of their row, ``-inf``
        elsewhere, so that a softmax gives the dropped tokens probability exactly 0.
    """
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]  # (..., 1), the k-th largest per row
    return logits.masked_fill(logits < kth, float("-inf"))  # (..., vocab_size)


@checks(solution_top_k)
def check_top_k(fn: Callable[[torch.Tensor, int], torch.Tensor]) -> None:
    """Check ``fn(logits, k)``: each row keeps its ``k`` largest logits, the others become -inf.

    After the filter, ``softmax`` gives the dropped tokens probability exactly 0 and shares the
    probability among the ``k`` survivors. The cases have no ties, include negative logits, a
    batch of rows, ``k = 1`` (greedy) and ``k = vocab_size`` (nothing dropped).

    Args:
        fn: takes ``logits`` ``(..., vocab_size)`` (float32) and an int ``k`` and returns
            ``(..., vocab_size)``, without changing ``logits`` in place.

    Raises:
        ExerciseError: on a wrong type, shape or value, or when the function crashes.

    See the chapter's exercises.
    """
    g = cases_generator(9)
    cases = [
        ("logits [2.0, -1.0, 0.5, 3.0, 0.0] with k = 2", torch.tensor([2.0, -1.0, 0.5, 3.0, 0.0]),
         2),
        ("a batch of logits (3, 10) with k = 4", 2.0 * torch.randn(3, 10, generator=g), 4),
        ("negative logits (2, 6) with k = 3", -5.0 + torch.randn(2, 6, generator=g), 3),
        ("logits (2, 7) with k = 1 (greedy)", torch.randn(2, 7, generator=g), 1),
        ("logits (4,) with k = 4 (keep all)", torch.tensor([0.1, -0.3, 0.7, 0.2]), 4),
    ]
    for what, logits, k in cases:
        got = call_answer(lambda t, k=k: fn(t, k), what, logits)
        expected = solution_top_k(logits, k)  # (..., vocab_size)
        legend = "(..., vocab_size), the same shape as the logits"
        expect_tensor(got, expected, what=what, legend=legend)
        kth_smallest = -torch.topk(-logits, min(k, logits.size(-1)), dim=-1).values[..., -1:]
        diagnose(
            got,
            [
                (
                    logits.masked_fill(logits < torch.topk(logits, k, dim=-1).values[..., -1:],
                                       0.0),
                    "the dropped logits are 0, but 0 is still a score: softmax would give those "
                    "tokens probability exp(0) / Z > 0. Set them to float('-inf')",
                ),
                (
                    torch.softmax(expected, dim=-1),
                    "these are probabilities (softmax of the filtered logits); return the "
                    "filtered logits themselves, with -inf for the dropped tokens",
                ),
                (
                    logits.masked_fill(logits > kth_smallest, float("-inf")),
                    "you kept the k smallest logits; keep the k largest (torch.topk returns the "
                    "largest by default)",
                ),
                (
                    solution_top_k(logits, k + 1) if k + 1 <= logits.size(-1) else expected,
                    f"{k + 1} logits survive per row instead of {k}: compare with the k-th "
                    "largest value, topk(...).values[..., -1:], and drop what is strictly below",
                ),
                (
                    solution_top_k(logits, k - 1) if k > 1 else expected,
                    f"only {k - 1} logits survive per row instead of {k}: keep values equal to "
                    "the k-th largest (drop only those strictly below it)",
                ),
            ],
            what,
            expected=expected,
            tol=1e-5,
        )
        kept, wanted = ~torch.isneginf(got.detach().cpu()), ~torch.isneginf(expected)
        if not torch.equal(kept, wanted):
            raise ExerciseError(
                f"{what}: expected {wanted.sum(-1).tolist()} finite logits per row (the k "
                f"largest), got {kept.sum(-1).tolist()} at other places: keep exactly the "
                "entries >= the k-th largest value and set the others to -inf"
            )
        expect_close(got.detach().cpu()[kept], expected[wanted], what=f"{what} (the kept logits)")
    passed(
        f"top-k filtering matches on {len(cases)} cases: the k largest logits stay, the rest are "
        "-inf, so softmax gives them probability 0."
    )


# ------------------------------------------------------------------------------------------------
# Exercise 2: repeat_kv for grouped-query attention
# ------------------------------------------------------------------------------------------------


def solution_repeat_kv(x: torch.Tensor, n_rep: int) -> torch.Tensor:
    """Exercise 2's reference solution: give every query head its key/value head.

    Args:
        x: keys or values ``(N, Hkv, S, E)``.
        n_rep: how many query heads share one key/value head.

    Returns:
        ``(N, Hkv * n_rep, S, E)``: ``n_rep`` copies of head 0, then of head 1, ..., so query
        head ``h`` reads key/value head ``h // n_rep``.
    """
    N, Hkv, S, E = x.shape
    x = x[:, :, None].expand(N, Hkv, n_rep, S, E)  # (N, Hkv, n_rep, S, E): copies, no memory yet
    return x.reshape(N, Hkv * n_rep, S, E)  # (N, H, S, E)


@checks(solution_repeat_kv)
def check_repeat_kv(fn: Callable[[torch.Tensor, int], torch.Tensor]) -> None:
    """Check ``fn(x, n_rep)``: ``(N, Hkv, S, E) -> (N, Hkv * n_rep, S, E)``.

    Query head ``h`` reads key/value head ``h // n_rep``: the output holds ``n_rep`` copies of
    head 0, then ``n_rep`` copies of head 1, and so on (SmolLM2: heads 0-2 share key/value head
    0, heads 3-5 share head 1, heads 6-8 share head 2).

    Args:
        fn: takes ``x`` ``(N, Hkv, S, E)`` and an int ``n_rep`` and returns
            ``(N, Hkv * n_rep, S, E)``.

    Raises:
        ExerciseError: on a wrong type, shape or value, or when the function crashes.

    See the chapter's exercises.
    """
    g = cases_generator(10)
    cases = [
        ("x (1, 3, 4, 2) with n_rep = 3 (SmolLM2's grouping)", torch.randn(1, 3, 4, 2, generator=g),
         3),
        ("x (2, 2, 5, 3) with n_rep = 2", torch.randn(2, 2, 5, 3, generator=g), 2),
        ("x (2, 4, 3, 2) with n_rep = 1 (ordinary multi-head attention)",
         torch.randn(2, 4, 3, 2, generator=g), 1),
        ("x (1, 1, 6, 4) with n_rep = 4 (multi-query attention)",
         torch.randn(1, 1, 6, 4, generator=g), 4),
    ]
    for what, x, n_rep in cases:
        N, Hkv, S, E = x.shape
        got = call_answer(lambda t, n_rep=n_rep: fn(t, n_rep), what, x)
        expected = solution_repeat_kv(x, n_rep)  # (N, H, S, E)
        if isinstance(got, torch.Tensor) and got.shape != expected.shape:
            if got.shape == (N, Hkv, S * n_rep, E) or got.shape == (N, Hkv, S, E * n_rep):
                raise ExerciseError(
                    f"{what}: expected shape {shape(expected)} (N, H, S, E), got shape "
                    f"{shape(got)}: the copies went along the wrong dimension; repeat the "
                    "heads (dimension 1)"
                )
        expect_tensor(got, expected, what=what, legend="(N, H, S, E) with H = Hkv * n_rep")
        diagnose(
            got,
            [
                (
                    x.repeat(1, n_rep, 1, 1),
                    "the heads are tiled (0, 1, 2, 0, 1, 2, ...) instead of repeated "
                    "(0, 0, 0, 1, 1, 1, ...): query head h must read key/value head h // n_rep. "
                    "Use repeat_interleave, or x[:, :, None].expand(...) then reshape",
                ),
            ],
            what,
            expected=expected,
            tol=1e-5,
        )
        expect_close(got, expected, what=what)
    passed(
        f"repeat_kv matches on {len(cases)} cases: query head h reads key/value head h // n_rep."
    )


# ------------------------------------------------------------------------------------------------
# Exercise 3: the causal mask after cached positions
# ------------------------------------------------------------------------------------------------


def solution_causal_mask_with_past(L: int, past: int) -> torch.Tensor:
    """Exercise 3's reference solution: the causal mask of ``L`` new queries after a cache.

    Args:
        L: the number of new queries.
        past: the number of cached positions before them.

    Returns:
        Boolean ``(L, past + L)``, True = may attend: new query ``i`` sits at position
        ``past + i`` and sees every cached key and the new keys up to itself (the mask is
        aligned bottom-right).
    """
    return torch.ones(L, past + L, dtype=torch.bool).tril(diagonal=past)  # (L, S)


@checks(solution_causal_mask_with_past)
def check_causal_mask_with_past(fn: Callable[[int, int], torch.Tensor]) -> None:
    """Check ``fn(L, past)``: the ``(L, past + L)`` boolean mask, True = may attend.

    New query ``i`` sits at position ``past + i`` and may attend to keys ``0 .. past + i``: every
    cached key, and the new keys up to itself.

    Args:
        fn: takes two ints ``L`` (new queries) and ``past`` (cached positions) and returns a
            boolean tensor ``(L, past + L)``.

    Raises:
        ExerciseError: on a wrong type, shape, dtype or value, or when the function crashes.

    See the chapter's exercises.
    """
    cases = [(4, 0), (3, 2), (1, 5), (2, 6)]
    for L, past in cases:
        what = f"L = {L} new queries after past = {past} cached positions"
        try:
            got = fn(L, past)
        except Exception as err:
            raise ExerciseError(
                f"{what}: your function raised {type(err).__name__}: {err}"
            ) from err
        expected = solution_causal_mask_with_past(L, past)  # (L, S)
        expect_tensor(got, expected, what=what, legend="(L, past + L)")
        if got.dtype != torch.bool:
            raise ExerciseError(
                f"{what}: expected a boolean mask (True = may attend), got dtype {got.dtype}"
            )
        S = past + L
        diagnose(
            got,
            [
                (
                    ~expected,
                    "the polarity is flipped: in attnlib (and PyTorch's SDPA) True means "
                    "'may attend', so the allowed entries (on and below the shifted diagonal) "
                    "must be True",
                ),
                (
                    torch.ones(L, S, dtype=torch.bool).tril(),
                    "the mask is aligned top-left (tril() with diagonal 0): new query i is at "
                    "position past + i, so it may see every cached key too. Shift the diagonal "
                    "by past: tril(diagonal=past)",
                ),
                (
                    torch.ones(L, S, dtype=torch.bool).tril(diagonal=past - 1),
                    "each query is masked from itself: position past + i may attend to key "
                    "past + i (tril(diagonal=past), not past - 1)",
                ),
            ],
            what,
            expected=expected,
            tol=1e-5,
        )
        if not torch.equal(got.cpu(), expected):
            bad = (got.cpu() != expected).nonzero()[0].tolist()
            raise ExerciseError(
                f"{what}: values differ, first at (query {bad[0]}, key {bad[1]}): got "
                f"{bool(got[bad[0], bad[1]])}, expected {bool(expected[bad[0], bad[1]])}"
            )
    passed(
        f"the mask is right on {len(cases)} cases: new query i sees every cached key and the new "
        "keys up to itself."
    )


# ------------------------------------------------------------------------------------------------
# Exercise 4: write the causality test
# ------------------------------------------------------------------------------------------------


def solution_is_causal(model: Callable[[torch.Tensor], torch.Tensor], vocab_size: int,
                       length: int) -> bool:
    """Exercise 4's reference solution: test that no output depends on a later token.

    Args:
        model: maps token ids ``(1, L)`` to logits ``(1, L, vocab_size)``.
        vocab_size: how many token ids exist.
        length: ``L``, the length to test at.

    Returns:
        True when, for every split ``k``, changing the tokens from position ``k`` on leaves the
        logits at positions ``0 .. k - 1`` unchanged.
    """
    ids = (torch.arange(length) % vocab_size)[None]  # (1, L)
    logits = model(ids)  # (1, L, vocab_size)
    for k in range(1, length):  # one split at every position: a leak may sit anywhere
        changed = ids.clone()
        changed[:, k:] = (changed[:, k:] + 1) % vocab_size  # new tokens from position k on
        if not torch.allclose(model(changed)[:, :k], logits[:, :k], atol=1e-5):
            return False
    return True


def _toy_model(vocab_size: int, leak: tuple[int, int] | None, *, full: bool = False,
               seed: int = 13) -> Callable[[torch.Tensor], torch.Tensor]:
    """A one-layer attention model over token ids: causal, fully bidirectional (``full``), or
    causal except that query ``leak[0]`` also sees key ``leak[1]``."""
    g = cases_generator(seed)
    D = 8
    embed = torch.randn(vocab_size, D, generator=g)  # (vocab_size, D)
    w_q, w_k, w_v = (torch.randn(D, D, generator=g) / D**0.5 for _ in range(3))  # (D, D) each
    readout = torch.randn(D, vocab_size, generator=g)  # (D, vocab_size)

    def model(ids: torch.Tensor) -> torch.Tensor:
        x = embed[ids.cpu()]  # (N, L, D)
        L = x.size(-2)
        allowed = torch.ones(L, L, dtype=torch.bool)  # (L, S), True = may attend
        if not full:
            allowed = allowed.tril()
            if leak is not None and max(leak) < L:
                allowed[leak] = True
        scores = (x @ w_q) @ (x @ w_k).transpose(-2, -1) / D**0.5  # (N, L, S)
        weights = scores.masked_fill(~allowed, float("-inf")).softmax(dim=-1)  # (N, L, S)
        return (x + weights @ (x @ w_v)) @ readout  # (N, L, vocab_size)

    return model


@checks(solution_is_causal)
def check_causality_test(fn: Callable[[Callable, int, int], bool]) -> None:
    """Run the learner's causality test ``fn(model, vocab_size, length)`` on five toy models.

    Each toy model maps ids ``(1, L)`` to logits ``(1, L, vocab_size)`` with one attention layer.
    The test must accept the causal one and reject the other four: a fully bidirectional model,
    and three models that are causal except for one leak (query 0 sees key 1, query 3 sees key
    4, query 6 sees key 7). No single split of the sequence reveals all three leaks.

    Args:
        fn: takes ``model``, ``vocab_size`` and ``length`` and returns True (causal) or False.

    Raises:
        ExerciseError: when the test gives a wrong verdict, returns something other than a bool,
            or crashes.

    See the chapter's exercises.
    """
    vocab_size, length = 11, 8
    cases = [
        ("the causal model", _toy_model(vocab_size, None), True),
        ("a bidirectional model (every query sees every key)",
         _toy_model(vocab_size, None, full=True), False),
        ("a causal model whose query 0 also sees key 1", _toy_model(vocab_size, (0, 1)), False),
        ("a causal model whose query 3 also sees key 4", _toy_model(vocab_size, (3, 4)), False),
        ("a causal model whose query 6 also sees key 7", _toy_model(vocab_size, (6, 7)), False),
    ]
    for what, model, causal in cases:
        try:
            verdict = fn(model, vocab_size, length)
        except Exception as err:
            raise ExerciseError(
                f"on {what}: your test raised {type(err).__name__}: {err} (it was called with "
                f"vocab_size={vocab_size}, length={length}; the model takes ids (1, L) and "
                "returns logits (1, L, vocab_size))"
            ) from err
        if isinstance(verdict, torch.Tensor) and verdict.numel() == 1:
            verdict = bool(verdict)
        if not isinstance(verdict, bool):
            raise ExerciseError(
                f"on {what}: expected True or False, got {type(verdict).__name__}"
            )
        if verdict and not causal:
            raise ExerciseError(
                f"your test says that {what} is causal, but it is not. A leak from position j "
                "into an earlier position i only shows when a change at j or later is compared "
                "at i: change the tokens from k on for every split k = 1, ..., L - 1, and compare "
                "the logits before k"
            )
        if not verdict and causal:
            raise ExerciseError(
                f"your test rejects {what}. Compare only the positions before the change, and "
                "with a tolerance (torch.allclose(..., atol=1e-5)): positions from the change on "
                "are supposed to move"
            )
    passed(
        f"your test accepts the causal model and rejects all {len(cases) - 1} leaky ones, "
        "including three leaks that each show at a different split only."
    )


# ------------------------------------------------------------------------------------------------
# Exercise 5: top-p (nucleus) filtering
# ------------------------------------------------------------------------------------------------


def solution_top_p(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Exercise 5's reference solution: keep each row's nucleus of probability ``p``.

    Args:
        logits: ``(..., vocab_size)``; left unchanged.
        p: the probability mass to keep, ``0 < p <= 1``.

    Returns:
        ``(..., vocab_size)``: the logits of the most likely tokens, taken in order while the
        probability of the tokens before them is still below ``p`` (so the token that carries the
        total past ``p`` stays), ``-inf`` elsewhere.
    """
    probs = torch.softmax(logits, dim=-1)  # (..., vocab_size)
    sorted_probs, order = probs.sort(dim=-1, descending=True)  # (..., vocab_size)
    before = sorted_probs.cumsum(dim=-1) - sorted_probs  # the mass of the likelier tokens
    drop = (before >= p).scatter(-1, order, before >= p)  # back to vocabulary order
    return logits.masked_fill(drop, float("-inf"))  # (..., vocab_size)


def _top_p_mistakes(logits: torch.Tensor, p: float, expected: torch.Tensor) -> list:
    probs = torch.softmax(logits, dim=-1)
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    through = sorted_probs.cumsum(dim=-1) >= p  # drops the token that crosses p as well
    crossing_dropped = logits.masked_fill(through.scatter(-1, order, through), float("-inf"))
    unsorted = probs.cumsum(dim=-1) - probs >= p  # the mass in vocabulary order, not by rank
    return [
        (
            expected.masked_fill(torch.isneginf(expected), 0.0),
            "the dropped logits are 0, but 0 is still a score: softmax would give those tokens "
            "probability exp(0) / Z > 0. Set them to float('-inf')",
        ),
        (
            torch.softmax(expected, dim=-1),
            "these are probabilities (softmax of the filtered logits); return the filtered "
            "logits themselves, with -inf for the dropped tokens",
        ),
        (
            crossing_dropped,
            "you dropped the token that carries the total past p, so the kept tokens hold less "
            "than p (and at small p nothing is left). Drop a token only when the mass of the "
            "tokens before it (cumsum minus its own probability) has already reached p",
        ),
        (
            logits.masked_fill(unsorted, float("-inf")),
            "you added up the probabilities in vocabulary order; sort them, most likely first, "
            "before the cumulative sum, and map the decision back with the sort's indices",
        ),
    ]


@checks(solution_top_p)
def check_top_p(fn: Callable[[torch.Tensor, float], torch.Tensor]) -> None:
    """Check ``fn(logits, p)``: each row keeps its most likely tokens until they hold ``p``.

    The cases have no ties near the cut and include a batch of rows, a small ``p`` (only the
    most likely token survives), ``p = 1`` (nothing dropped) and a row whose most likely token is
    not first in vocabulary order.

    Args:
        fn: takes ``logits`` ``(..., vocab_size)`` (float32) and a float ``p`` and returns
            ``(..., vocab_size)``, without changing ``logits`` in place.

    Raises:
        ExerciseError: on a wrong type, shape or value, or when the function crashes.

    See the chapter's exercises.
    """
    g = cases_generator(15)
    cases = [
        ("logits [0.5, 3.0, -1.0, 2.0, 0.0] with p = 0.8",
         torch.tensor([0.5, 3.0, -1.0, 2.0, 0.0]), 0.8),
        ("a batch of logits (3, 12) with p = 0.9", 2.0 * torch.randn(3, 12, generator=g), 0.9),
        ("logits (2, 8) with p = 0.05 (the most likely token only)",
         torch.randn(2, 8, generator=g), 0.05),
        ("logits (4,) with p = 1 (keep all)", torch.tensor([0.1, -0.3, 0.7, 0.2]), 1.0),
    ]
    for what, logits, p in cases:
        got = call_answer(lambda t, p=p: fn(t, p), what, logits)
        expected = solution_top_p(logits, p)  # (..., vocab_size)
        expect_tensor(got, expected, what=what,
                      legend="(..., vocab_size), the same shape as the logits")
        diagnose(got, _top_p_mistakes(logits, p, expected), what, expected=expected, tol=1e-5)
        kept, wanted = ~torch.isneginf(got.detach().cpu()), ~torch.isneginf(expected)
        if not torch.equal(kept, wanted):
            raise ExerciseError(
                f"{what}: expected {wanted.sum(-1).tolist()} finite logits per row (the nucleus), "
                f"got {kept.sum(-1).tolist()} at other places: keep the most likely tokens, in "
                "order, while the mass before each is below p, and set the others to -inf"
            )
        expect_close(got.detach().cpu()[kept], expected[wanted], what=f"{what} (the kept logits)")
    passed(
        f"top-p filtering matches on {len(cases)} cases: the most likely tokens stay until they "
        "hold p, the token that crosses p included; the rest are -inf."
    )
