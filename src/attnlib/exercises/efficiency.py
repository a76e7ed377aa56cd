"""Self-checks for the chapter "The cost of attention and how to cut it".

Five exercises, each with a reference solution and a check:

* :func:`solution_online_update`, :func:`check_online_update` -- fold one tile of scores into the
  running maximum, the running sum and the running (unnormalised) output: the heart of
  FlashAttention;
* :func:`solution_tiled_attention`, :func:`check_tiled_attention` -- the whole loop: exact
  attention one block of keys at a time; the check refuses an answer that creates a tensor the
  size of the ``(L, S)`` score matrix (it counts with :func:`attnlib.efficient.largest_tensor`);
* :func:`solution_sliding_window`, :func:`check_sliding_window` -- Longformer's pattern: a band of
  half-width ``window`` plus global tokens;
* :func:`solution_rescale_test`, :func:`check_rescale_test` -- write the test of a claim: a test
  that tells a correct online-softmax update from broken ones, each of which is right on some
  inputs (a broken update that never rescales is right whenever no later tile raises the maximum);
* :func:`solution_linear_attention_step`, :func:`check_linear_attention_step` -- one position of
  causal linear attention run as a recurrent network; run over a sequence from a zero state, the
  steps must equal the parallel form.

An unfilled template (a body of ``...``) is routed to the reference solution by
:func:`~attnlib.exercises.checks`. Each check runs the answer on a few cases and prints
``Correct: ...``, or raises :class:`~attnlib.exercises.ExerciseError` saying what was expected and
what came back (shape first, then values), naming the mistake when it recognises one.

Shape legend (see the notation page): L query length, S key length, B keys in a tile,
E query/key size, Ev value size.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from ..efficient.measure import largest_tensor
from . import call_answer, cases_generator, checks, passed, unpack
from ._compare import ExerciseError, diagnose, expect_close, expect_tensor, matches

__all__ = [
    "solution_online_update",
    "check_online_update",
    "solution_tiled_attention",
    "check_tiled_attention",
    "solution_sliding_window",
    "check_sliding_window",
    "solution_rescale_test",
    "check_rescale_test",
    "solution_linear_attention_step",
    "check_linear_attention_step",
    "BROKEN_UPDATES",
]

_NEG_INF = float("-inf")


# ------------------------------------------------------------------------------------------------
# Exercise 1: one step of the online softmax
# ------------------------------------------------------------------------------------------------


def solution_online_update(
    m: torch.Tensor,
    ell: torch.Tensor,
    acc: torch.Tensor,
    scores: torch.Tensor,
    values: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Exercise 1's reference solution: fold one tile into the running state of ``L`` queries.

    Args:
        m: ``(L,)``, each query's largest score so far (``-inf`` before the first tile).
        ell: ``(L,)``, the running sum ``l`` of ``exp(score - m)``.
        acc: ``(L, Ev)``, the running sum of ``exp(score - m) * value``, not divided by ``l``.
        scores: ``(L, B)``, the tile's scores (``-inf`` for a masked key).
        values: ``(B, Ev)``, the tile's values.

    Returns:
        ``(m_new, l_new, acc_new)``, the same shapes, all relative to the new maximum: the old
        sums shrink by ``exp(m - m_new) <= 1`` (0 on a first tile).
    """
    m_new = torch.maximum(m, scores.max(dim=-1).values)  # (L,)
    rescale = torch.exp(m - m_new)  # (L,) shrinks the old sums; 0 on a first tile
    p = torch.exp(scores - m_new[:, None])  # (L, B)
    return m_new, rescale * ell + p.sum(dim=-1), rescale[:, None] * acc + p @ values


@checks(solution_online_update)
def check_online_update(fn: Callable) -> None:
    """Check one update of the online softmax.

    The answer is called as ``fn(m, l, acc, scores, values)`` with

    * ``m`` ``(L,)``: each query's largest score so far (``-inf`` before its first tile);
    * ``l`` ``(L,)``: the running sum of ``exp(score - m)`` over the keys seen so far;
    * ``acc`` ``(L, Ev)``: the running sum of ``exp(score - m) * value`` (not yet divided by ``l``);
    * ``scores`` ``(L, B)``: the new tile's scaled scores (``-inf`` for a masked key);
    * ``values`` ``(B, Ev)``: the tile's values;

    and must return ``(m_new, l_new, acc_new)`` with the same shapes, all relative to the new
    maximum. Cases: a first tile, a tile that raises the maximum, one that does not, scores near
    1000 (``exp`` overflows unless the maximum is subtracted), and masked keys.

    Raises:
        ExerciseError: on a wrong type, shape or value (naming a missing rescale, an inverted
            factor, or a normalised ``acc``), on NaN or inf, or when the function crashes or
            changes its inputs.

    See the chapter's exercises.
    """
    g = cases_generator(12)
    L, B, Ev = 3, 4, 2
    start = (torch.full((L,), _NEG_INF), torch.zeros(L), torch.zeros(L, Ev))
    m1 = torch.tensor([0.5, 2.0, -1.0])
    l1 = torch.tensor([1.5, 1.0, 2.25])
    acc1 = torch.randn(L, Ev, generator=g)
    masked = torch.randn(L, B, generator=g)
    masked[0, 1:] = _NEG_INF
    masked[2, 0] = _NEG_INF
    cases = [
        ("the first tile (m = -inf, l = 0, acc = 0)", *start, torch.randn(L, B, generator=g)),
        ("a tile that raises every maximum", m1, l1, acc1, torch.randn(L, B, generator=g) + 4.0),
        ("a tile below every maximum", m1, l1, acc1, torch.randn(L, B, generator=g) - 5.0),
        ("scores near 1000", m1 + 1000.0, l1, acc1, torch.randn(L, B, generator=g) + 1001.0),
        ("a tile with masked keys (-inf)", m1, l1, acc1, masked),
    ]
    for what, m, ell, acc, scores in cases:
        values = torch.randn(B, Ev, generator=g)
        result = unpack(
            call_answer(fn, what, m, ell, acc, scores, values), ("m_new", "l_new", "acc_new"), what
        )
        expected = solution_online_update(m, ell, acc, scores, values)
        got_m, got_l, got_acc = result
        e_m = expected[0]
        p = torch.exp(scores - e_m[:, None])  # (L, B)
        inverted = torch.exp(e_m - m)  # the factor upside down: inf on a first tile
        inverted_l = inverted * ell + p.sum(-1)
        if isinstance(got_l, torch.Tensor) and got_l.shape == inverted_l.shape and torch.allclose(
            got_l.detach().double(), inverted_l.double(), equal_nan=True
        ) and not matches(inverted_l, expected[1]):
            raise ExerciseError(
                f"{what}, l_new: the rescale factor is inverted: old sums shrink by "
                "exp(m - m_new) <= 1 (on a first tile that is exp(-inf) = 0, not inf)"
            )
        for name, got, exp in zip(("m_new", "l_new", "acc_new"), result, expected, strict=True):
            if isinstance(got, torch.Tensor) and got.shape == exp.shape:
                if torch.isnan(got).any() or (torch.isinf(got).any() and name != "m_new"):
                    raise ExerciseError(
                        f"{what}, {name}: your result contains NaN or inf. Subtract the new "
                        "maximum before exp (exp(1000) overflows), and note that "
                        "exp(-inf - m) = 0 is fine but -inf - (-inf) is NaN: take m_new from the "
                        "maximum of m and the tile's maximum first"
                    )
        expect_close(got_m, expected[0], what=f"{what}, m_new")
        e_l, e_acc = expected[1], expected[2]
        mistakes_l = [
            (p.sum(-1) + ell, "l_new adds the old sum without rescaling it by exp(m - m_new)"),
        ]
        diagnose(got_l, mistakes_l, f"{what}, l_new", expected=e_l)
        expect_close(got_l, e_l, what=f"{what}, l_new")
        mistakes_acc = [
            (acc + p @ values,
             "acc_new adds the old acc without rescaling it by exp(m - m_new) (l was rescaled: "
             "acc needs the same factor)"),
            (e_acc / e_l[:, None],
             "acc_new is divided by l: keep the running sum unnormalised and divide once, at "
             "the very end"),
            (inverted[:, None] * acc + p @ values,
             "the rescale factor is inverted: old sums shrink by exp(m - m_new) <= 1"),
        ]
        diagnose(got_acc, mistakes_acc, f"{what}, acc_new", expected=e_acc)
        expect_close(got_acc, e_acc, what=f"{what}, acc_new")
    passed(
        f"the online-softmax update matches on {len(cases)} tiles: a first tile, a rising and a "
        "falling maximum, scores near 1000 and masked keys."
    )


# ------------------------------------------------------------------------------------------------
# Exercise 2: exact attention, one block of keys at a time
# ------------------------------------------------------------------------------------------------


def solution_tiled_attention(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, block_size: int
) -> torch.Tensor:
    """Exercise 2's reference solution: exact attention, one block of keys at a time.

    Args:
        query: ``(L, E)``.
        key: ``(S, E)``.
        value: ``(S, Ev)``.
        block_size: the keys per block; the last block may be shorter.

    Returns:
        ``(L, Ev)``: ``softmax(query @ key.T / sqrt(E)) @ value``, without ever holding the
        ``(L, S)`` score matrix.
    """
    L, E = query.shape
    m = torch.full((L,), float("-inf"))  # (L,)
    ell = torch.zeros(L)  # (L,)
    acc = torch.zeros(L, value.size(-1))  # (L, Ev)
    for j in range(0, key.size(0), block_size):
        scores = query @ key[j:j + block_size].T / math.sqrt(E)  # (L, B)
        m, ell, acc = solution_online_update(m, ell, acc, scores, value[j:j + block_size])
    return acc / ell[:, None]  # (L, Ev): divide once, at the end


@checks(solution_tiled_attention)
def check_tiled_attention(fn: Callable) -> None:
    """Check tiled attention with an online softmax against exact attention.

    The answer is called as ``fn(query, key, value, block_size)`` with query ``(L, E)``, key
    ``(S, E)``, value ``(S, Ev)`` and an int ``block_size``; it must return the attention output
    ``(L, Ev)`` = ``softmax(query @ key.T / sqrt(E)) @ value``, computed over blocks of
    ``block_size`` keys (the last block may be shorter). Cases: ``S`` not divisible by the block,
    a block of 1, a block larger than ``S``, ``L != S``, scores near 1000, and one longer case.

    The exercise rules out the ``(L, S)`` score matrix, and the check enforces it: it runs the
    answer under :func:`attnlib.efficient.largest_tensor` and refuses it when any operation
    creates a tensor with ``L * S`` elements or more while the block is shorter than ``S`` (a
    tile has ``L * block_size``; the inputs, the running state and the output are smaller still).
    So exact attention computed all at once fails, however right its numbers.

    Raises:
        ExerciseError: on a tensor as large as the score matrix, on a wrong type, shape or value
            (naming a missing scale or a forgotten last partial block), or when the function
            crashes or changes its inputs.

    See the chapter's exercises.
    """
    g = cases_generator(21)
    cases = [
        ("L = 4, S = 7, E = 3, Ev = 2, block 3 (the last block has 1 key)", 4, 7, 3, 2, 3, 1.0),
        ("L = 5, S = 5, block 1 (one key at a time)", 5, 5, 4, 3, 1, 1.0),
        ("L = 3, S = 6, block 10 (one block holds every key)", 3, 6, 2, 2, 10, 1.0),
        ("L = 6, S = 9, block 4, large scores (up to ~1000)", 6, 9, 4, 2, 4, 30.0),
        ("L = 32, S = 48, E = 4, Ev = 2, block 8", 32, 48, 4, 2, 8, 1.0),
    ]
    for what, L, S, E, Ev, block, size in cases:
        q = torch.randn(L, E, generator=g) * size
        k = torch.randn(S, E, generator=g) * size
        v = torch.randn(S, Ev, generator=g)
        got, largest, largest_shape = largest_tensor(
            call_answer, fn, what, q, k, v, block_size=block
        )
        if block < S and largest >= L * S:
            raise ExerciseError(
                f"{what}: your function creates a tensor of shape {largest_shape} "
                f"({largest} elements), as large as the whole (L, S) = ({L}, {S}) score matrix. "
                f"The exercise asks for exact attention without it: compute one tile of scores "
                f"at a time, query @ key[j:j + block_size].T of shape (L, block_size) = "
                f"({L}, {block}), fold it into the running m, l and acc, and let it go"
            )
        scores = q.double() @ k.double().T / math.sqrt(E)  # (L, S)
        expected = (torch.softmax(scores, dim=-1) @ v.double()).float()  # (L, Ev)
        if isinstance(got, torch.Tensor) and got.shape == expected.shape:
            if not torch.isfinite(got).all():
                raise ExerciseError(
                    f"{what}: your result contains NaN or inf; subtract the running maximum "
                    "before exp, and divide by l only at the end"
                )
            full = S - S % block if S % block else S
            mistakes = [
                ((torch.softmax(scores * math.sqrt(E), -1) @ v.double()).float(),
                 "the result matches attention without the 1/sqrt(E) scale"),
                ((torch.softmax(scores[:, :full], -1) @ v[:full].double()).float(),
                 f"the result ignores the last, shorter block of {S % block} key(s): loop with "
                 "range(0, S, block_size) and slice key[j:j + block_size]"),
            ]
            diagnose(got, mistakes, what, expected=expected)
        expect_close(got, expected, what=what, atol=1e-4, rtol=1e-4)
    passed(
        f"tiled attention equals exact attention on {len(cases)} cases, ragged last blocks and "
        "scores near 1000 included, and no tensor as large as the (L, S) score matrix was made."
    )


# ------------------------------------------------------------------------------------------------
# Exercise 3: Longformer's sliding window with global tokens
# ------------------------------------------------------------------------------------------------


def solution_sliding_window(L: int, window: int, global_tokens: Sequence[int]) -> torch.Tensor:
    """Exercise 3's reference solution: Longformer's pattern.

    Args:
        L: the sequence length.
        window: the band's half-width.
        global_tokens: the positions that see, and are seen by, every token.

    Returns:
        Boolean ``(L, L)``, True where query ``i`` may attend to key ``j``: ``|i - j| <= window``,
        or ``i`` or ``j`` global.
    """
    pos = torch.arange(L)
    allowed = (pos[:, None] - pos[None, :]).abs() <= window  # (L, L) the band
    allowed[list(global_tokens), :] = True  # global tokens see everything
    allowed[:, list(global_tokens)] = True  # and everything sees them
    return allowed


@checks(solution_sliding_window)
def check_sliding_window(fn: Callable) -> None:
    """Check a Longformer pattern: a band of half-width ``window`` plus global tokens.

    The answer is called as ``fn(L, window, global_tokens)`` and must return a boolean ``(L, L)``
    tensor, True where query ``i`` may attend to key ``j``: when ``|i - j| <= window``, when ``i``
    is a global token (it sees everything) or when ``j`` is one (everything sees it).

    Raises:
        ExerciseError: on a wrong type, dtype, shape or value (naming a one-sided band, an
            off-by-one window, or a global token that only sees or is only seen).

    See the chapter's exercises.
    """
    cases = [
        ("L = 6, window = 1, no global token", 6, 1, ()),
        ("L = 8, window = 2, global token 0", 8, 2, (0,)),
        ("L = 9, window = 1, global tokens 0 and 5", 9, 1, (0, 5)),
        ("L = 5, window = 4 (covers everything)", 5, 4, ()),
        ("L = 7, window = 0, global token 3", 7, 0, (3,)),
    ]
    for what, L, window, glob in cases:
        got = call_answer(fn, what, L=L, window=window, global_tokens=glob)
        expected = solution_sliding_window(L, window, glob)
        expect_tensor(got, expected, what=what)
        if got.dtype != torch.bool:
            raise ExerciseError(
                f"{what}: expected dtype torch.bool (True = may attend), got {got.dtype}; "
                "compare, e.g. (i - j).abs() <= window"
            )
        if torch.equal(got, expected):
            continue
        pos = torch.arange(L)
        diff = pos[:, None] - pos[None, :]
        mistakes = [
            (~expected, "the mask is inverted: True must mean *may attend*"),
            (solution_sliding_window(L, window, glob) & (diff >= 0),
             "the band is one-sided (causal): Longformer's window looks both ways, |i - j| <= "
             "window"),
            (solution_sliding_window(L, window - 1, glob) if window > 0 else None,
             "the window is one short: use |i - j| <= window, not < window"),
            (solution_sliding_window(L, window + 1, glob),
             "the window is one too wide: use |i - j| <= window"),
        ]
        rows_only = diff.abs() <= window
        cols_only = diff.abs() <= window
        for gpos in glob:
            rows_only[gpos, :] = True
            cols_only[:, gpos] = True
        mistakes += [
            (rows_only, "global tokens see everything, but every token must also see them "
                        "(set the global columns too)"),
            (cols_only, "every token sees the global tokens, but a global token must also see "
                        "everything (set the global rows too)"),
        ]
        for candidate, message in mistakes:
            if candidate is not None and torch.equal(got, candidate):
                raise ExerciseError(f"{what}: {message}")
        wrong = (got != expected).nonzero()[0].tolist()
        raise ExerciseError(
            f"{what}: values differ; first wrong entry at (query, key) = {tuple(wrong)}: got "
            f"{bool(got[tuple(wrong)])}, expected {bool(expected[tuple(wrong)])}"
        )
    passed(
        f"the sliding-window pattern matches on {len(cases)} cases, with and without global "
        "tokens."
    )


# ------------------------------------------------------------------------------------------------
# Exercise 4: write the test that catches a broken update
# ------------------------------------------------------------------------------------------------


def _update_float64(m, ell, acc, scores, values):
    """A correct update that computes in float64: it differs from the reference by rounding."""
    m_new, l_new, acc_new = solution_online_update(
        m.double(), ell.double(), acc.double(), scores.double(), values.double()
    )
    return m_new.to(m.dtype), l_new.to(ell.dtype), acc_new.to(acc.dtype)


def _update_no_rescale(m, ell, acc, scores, values):
    m_new = torch.maximum(m, scores.max(dim=-1).values)
    p = torch.exp(scores - m_new[:, None])
    return m_new, ell + p.sum(dim=-1), acc + p @ values


def _update_rescale_l_only(m, ell, acc, scores, values):
    m_new = torch.maximum(m, scores.max(dim=-1).values)
    p = torch.exp(scores - m_new[:, None])
    return m_new, torch.exp(m - m_new) * ell + p.sum(dim=-1), acc + p @ values


def _update_tile_maximum(m, ell, acc, scores, values):
    m_new = torch.maximum(m, scores.max(dim=-1).values)
    rescale = torch.exp(m - m_new)
    p = torch.exp(scores - scores.max(dim=-1, keepdim=True).values)  # the tile's own maximum
    return m_new, rescale * ell + p.sum(dim=-1), rescale[:, None] * acc + p @ values


def _update_inverted(m, ell, acc, scores, values):
    m_new = torch.maximum(m, scores.max(dim=-1).values)
    factor = torch.exp(m_new - m)  # upside down: inf on a first tile
    p = torch.exp(scores - m_new[:, None])
    return m_new, factor * ell + p.sum(dim=-1), factor[:, None] * acc + p @ values


#: The correct updates a test must accept: (update, what it is, why a test might reject it).
CORRECT_UPDATES = [
    (solution_online_update, "the reference update", ""),
    (_update_float64, "a correct update computed in float64",
     " It differs from the reference only by rounding: compare floats with torch.allclose, "
     "not torch.equal or =="),
]

#: The broken updates a test must reject: (update, what is wrong, when it is nevertheless
#: right, so what the test's tiles must contain).
BROKEN_UPDATES = [
    (_update_no_rescale, "never rescales the old sums",
     "It is right whenever no later tile raises a query's maximum (the factor is then 1): give "
     "your update a later tile whose scores exceed the maximum so far"),
    (_update_rescale_l_only, "rescales l but not acc",
     "Its l is right; only acc is wrong, and only after the maximum rises: compare the final "
     "output acc / l with softmax(scores) @ values, and let a later tile raise the maximum"),
    (_update_tile_maximum, "subtracts each tile's own maximum instead of the running one",
     "It is right whenever the tile raises the maximum (the two are then equal): include a "
     "later tile whose scores all stay below the maximum so far"),
    (_update_inverted, "inverts the rescale factor, exp(m_new - m)",
     "On a first tile it multiplies 0 by inf: start from the empty state (m = -inf, l = 0, "
     "acc = 0) and check that the output is finite and right"),
]


def solution_rescale_test(update: Callable) -> bool:
    """Exercise 4's reference solution: True when ``update`` is a correct online-softmax update.

    It folds three tiles of two keys each into the empty state, for two queries whose maximum
    rises in the second tile and does not in the third (the tile's scores stay below it), and
    compares ``acc / l`` with ``softmax(scores) @ values``. A broken update can be right on a
    single tile, or on tiles whose maximum never rises; these tiles leave it nowhere to hide.

    Args:
        update: called as ``update(m, l, acc, scores, values)``, as in Exercise 1.

    Returns:
        ``True`` if the final output is exact attention's, else ``False``.
    """
    scores = torch.tensor([[0.0, 1.0, 3.0, -1.0, 2.0, 0.5],  # (L, S) = (2, 6); tiles of 2 keys:
                           [2.0, -1.0, 0.5, 4.0, 1.0, -2.0]])  # the maximum rises, then it stays
    values = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0],
                           [-1.0, 2.0], [0.5, -0.5], [2.0, 0.0]])  # (S, Ev)
    m, ell, acc = torch.full((2,), float("-inf")), torch.zeros(2), torch.zeros(2, 2)
    for j in range(0, 6, 2):
        m, ell, acc = update(m, ell, acc, scores[:, j:j + 2], values[j:j + 2])
    expected = torch.softmax(scores, dim=-1) @ values  # (L, Ev)
    return bool(torch.allclose(acc / ell[:, None], expected, atol=1e-5))


def _verdict(test: Callable, update: Callable, what: str, *, correct: bool) -> bool:
    """Run the learner's ``test`` on ``update``: its bool, an AssertionError as ``False``."""
    try:
        verdict = test(update)
    except AssertionError:
        return False
    except Exception as err:  # the learner's test failed: say on what
        if correct:
            raise ExerciseError(
                f"your test raised {type(err).__name__}: {err} on {what}; call it as "
                "update(m, l, acc, scores, values), as in Exercise 1"
            ) from err
        return False  # it choked on a broken update: count that as rejecting it
    if not isinstance(verdict, bool):
        raise ExerciseError(
            f"your test returned {type(verdict).__name__} ({verdict!r}) on {what}; it must return "
            "True (a correct update) or False (a broken one), e.g. bool(torch.allclose(...))"
        )
    return verdict


@checks(solution_rescale_test)
def check_rescale_test(test: Callable) -> None:
    """Check a test that tells correct online-softmax updates from broken ones.

    The learner writes ``test(update) -> bool``: it runs ``update(m, l, acc, scores, values)``
    (the contract of Exercise 1) on tiles of its own choosing and returns True when the update is
    correct. The check runs it on :data:`CORRECT_UPDATES` (which it must accept) and on
    :data:`BROKEN_UPDATES` (which it must reject). Each broken update is right on some inputs, so
    a test passes only if its tiles include a later tile that raises the maximum and one that
    does not. A test that raises ``AssertionError`` counts as rejecting.

    Raises:
        ExerciseError: when the test rejects a correct update, accepts a broken one (the message
            says what the tiles lack), returns something other than a bool, or crashes on a
            correct update.

    See the chapter's exercises.
    """
    for update, what, why in CORRECT_UPDATES:
        if not _verdict(test, update, what, correct=True):
            raise ExerciseError(f"your test rejected {what}, which is correct.{why}")
    for update, what, when in BROKEN_UPDATES:
        if _verdict(test, update, f"an update that {what}", correct=False):
            raise ExerciseError(
                f"your test accepted an update that {what}, which is wrong. {when}."
            )
    passed(
        f"your test accepts the {len(CORRECT_UPDATES)} correct updates and rejects all "
        f"{len(BROKEN_UPDATES)} broken ones: its tiles raise the maximum and leave it alone."
    )


# ------------------------------------------------------------------------------------------------
# Exercise 5: one step of linear attention as a recurrent network
# ------------------------------------------------------------------------------------------------


def solution_linear_attention_step(kv, z, query, key, value):
    """Exercise 5's reference solution: one position of causal linear attention, as an RNN.

    Args:
        kv: ``(E, Ev)``, the sum of ``phi(k_j) v_j^T`` over the earlier positions.
        z: ``(E,)``, the sum of ``phi(k_j)`` over the earlier positions.
        query, key: ``(E,)``, this position's query and key.
        value: ``(Ev,)``, this position's value.

    Returns:
        ``(output, kv, z)``: the output ``(Ev,)`` and the state after this position. The state
        is updated *before* it is read: a query sees its own key.
    """
    phi_q, phi_k = F.elu(query) + 1, F.elu(key) + 1  # (E,), (E,): positive features
    kv = kv + phi_k[:, None] * value[None, :]  # (E, Ev): add phi(k) v^T
    z = z + phi_k  # (E,)
    output = (phi_q @ kv) / (phi_q @ z)  # (Ev,)
    return output, kv, z


def _step_candidates(kv, z, query, key, value):
    """Typical wrong steps as ``((output, kv, z), mistake)`` (same arguments as the solution)."""
    phi_q, phi_k = F.elu(query) + 1, F.elu(key) + 1
    kv_new, z_new = kv + phi_k[:, None] * value[None, :], z + phi_k
    raw_kv, raw_z = kv + key[:, None] * value[None, :], z + key
    return [
        (
            ((phi_q @ kv) / (phi_q @ z), kv_new, z_new),
            "the output was read from the state *before* this position was added: update kv "
            "and z first, so that the query sees its own key",
        ),
        (
            (phi_q @ kv_new, kv_new, z_new),
            "the output is not normalised: divide phi(q)^T kv by phi(q)^T z",
        ),
        (
            ((query @ raw_kv) / (query @ raw_z), raw_kv, raw_z),
            "the feature map is missing: use phi(x) = elu(x) + 1 on the query and on the key",
        ),
    ]


@checks(solution_linear_attention_step)
def check_linear_attention_step(fn: Callable) -> None:
    """Check one step of causal linear attention run as a recurrent network.

    The answer is called as ``fn(kv, z, query, key, value)`` with the state ``kv (E, Ev)``,
    ``z (E,)`` and one position's ``query (E,)``, ``key (E,)``, ``value (Ev,)``, and must return
    ``(output, kv, z)``: the output ``(Ev,)`` and the new state. First every step is checked from
    the correct state; then the answer is run from a zero state over a whole sequence, and its
    outputs must equal :func:`attnlib.efficient.linear_attention` with ``is_causal=True``.

    Raises:
        ExerciseError: on a wrong type, shape or value (naming an output read before the update,
            a missing normaliser or a missing feature map), or when the answer changes its
            arguments in place.

    See the chapter's exercises.
    """
    from ..efficient.linear import linear_attention

    gen = cases_generator(5)
    L, E, Ev = 7, 4, 3
    q, k, v = (torch.randn(L, d, generator=gen, dtype=torch.float64) for d in (E, E, Ev))
    kv, z = torch.zeros(E, Ev, dtype=torch.float64), torch.zeros(E, dtype=torch.float64)
    for t in range(L):
        what = f"position {t} of {L} (E = {E}, Ev = {Ev})"
        got = unpack(call_answer(fn, what, kv, z, q[t], k[t], v[t]), ("output", "kv", "z"), what)
        expected = solution_linear_attention_step(kv, z, q[t], k[t], v[t])
        if not all(matches(g, e) for g, e in zip(got, expected, strict=True)):
            for candidate, message in _step_candidates(kv, z, q[t], k[t], v[t]):
                if all(matches(g, c, equal_nan=True) for g, c in zip(got, candidate, strict=True)):
                    raise ExerciseError(f"{what}: {message}")
        for name, g, e in zip(("output", "kv", "z"), got, expected, strict=True):
            expect_close(g, e, what=f"{what}, {name}")
        kv, z = expected[1], expected[2]

    what = f"the whole sequence of {L} from a zero state"
    kv, z = torch.zeros(E, Ev, dtype=torch.float64), torch.zeros(E, dtype=torch.float64)
    outputs = []
    for t in range(L):
        out, kv, z = call_answer(fn, what, kv, z, q[t], k[t], v[t])
        outputs.append(out)
    parallel = linear_attention(q, k, v, is_causal=True)  # (L, Ev)
    expect_close(torch.stack(outputs), parallel, what=f"{what}, against the parallel form")
    passed(
        f"every step matches, and {L} steps from a zero state equal linear_attention(..., "
        "is_causal=True), the parallel form."
    )
