"""Self-checks for the chapter "Masking".

Four exercises, each with a reference solution and a check:

* :func:`solution_padding_mask`, :func:`check_padding_mask` -- build the allowed-mask ``(N, S)``
  of a padded batch from the sequences' lengths (True = a real token that may be attended);
* :func:`solution_causal_mask`, :func:`check_causal_mask` -- build a decoder's allowed-mask
  ``(L, S)``, aligned top-left as PyTorch's ``is_causal=True``, by comparing positions (an answer
  that calls ``tril`` or ``triu``, directly or through ``attnlib.masks.causal_mask``, is refused);
* :func:`solution_masked_softmax`, :func:`check_masked_softmax` -- a softmax over the allowed keys
  that gives a row with no allowed key zeros, not NaN;
* :func:`solution_causality_test`, :func:`check_causality_test` -- write the test of the chapter's
  claim that a causal layer's output at position ``t`` never depends on a later token; the check
  hands it causal layers and leaky ones, and the test must tell them apart.

Every check is decorated with :func:`~attnlib.exercises.checks`: handed the chapter's unfilled
template (a body of ``...``), it says so and checks the reference solution instead.

Each check runs the answer on a few cases and prints ``Correct: ...``, or raises
:class:`~attnlib.exercises.ExerciseError` saying what was expected and what came back (shape first,
then values). The classic mistakes (PyTorch's opposite polarity, an off-by-one, the diagonal left
out, NaN rows...) are named in the message.

Shape legend (see the notation page): N batch, L query length, S key length.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from .._checks import shape
from . import call_answer, cases_generator, checks, ops_called, passed
from ._compare import ExerciseError, diagnose, expect_close, expect_tensor

__all__ = [
    "solution_padding_mask",
    "check_padding_mask",
    "solution_causal_mask",
    "check_causal_mask",
    "solution_masked_softmax",
    "check_masked_softmax",
    "solution_causality_test",
    "check_causality_test",
]

_TRIANGLE_OPS = {"tril", "triu", "tril_indices", "triu_indices"}


def _rows(mask: torch.Tensor) -> str:
    """A boolean matrix as rows of 1s and 0s, for messages."""
    return " / ".join("".join("1" if v else "0" for v in row) for row in mask.tolist())


def _expect_bool(got, expected: torch.Tensor, what: str,
                 mistakes: Sequence[tuple[torch.Tensor, str]] = ()) -> None:
    if not isinstance(got, torch.Tensor):
        raise ExerciseError(
            f"{what}: expected a boolean torch.Tensor of shape {shape(expected)}, got "
            f"{type(got).__name__}"
        )
    if got.shape != expected.shape:
        raise ExerciseError(f"{what}: expected shape {shape(expected)}, got shape {shape(got)}")
    if got.dtype != torch.bool:
        raise ExerciseError(
            f"{what}: expected dtype torch.bool (True = may attend), got {got.dtype}; a float or "
            "integer mask would be added to the scores instead of selecting keys"
        )
    got = got.cpu()
    if torch.equal(got, expected):
        return
    for result, message in mistakes:
        if torch.equal(got, result) and not torch.equal(expected, result):
            raise ExerciseError(f"{what}: {message}")
    raise ExerciseError(
        f"{what}: values differ in {int((got != expected).sum())} places; expected rows "
        f"{_rows(expected.reshape(-1, expected.size(-1)))}, got "
        f"{_rows(got.reshape(-1, got.size(-1)))}"
    )


# ------------------------------------------------------------------------------------------------
# Exercise 1: a padding mask
# ------------------------------------------------------------------------------------------------


def solution_padding_mask(lengths: torch.Tensor, S: int) -> torch.Tensor:
    """Exercise 1's reference solution: the allowed-mask of a padded batch.

    Args:
        lengths: ``(N,)`` long, the true length of each sequence, each in ``[0, S]``.
        S: the padded length.

    Returns:
        Boolean ``(N, S)``, True where key ``j`` of sequence ``n`` is a real token
        (``j < lengths[n]``): attnlib's polarity, not ``nn.MultiheadAttention``'s.
    """
    positions = torch.arange(S, device=lengths.device)  # (S,)
    return positions[None, :] < lengths[:, None]  # (N, S): True = a real token


@checks(solution_padding_mask)
def check_padding_mask(fn: Callable[[torch.Tensor, int], torch.Tensor]) -> None:
    """Check ``fn(lengths, S)``, the allowed-mask of a padded batch.

    Args:
        fn: takes ``lengths`` (a LongTensor ``(N,)``, each in ``[0, S]``) and ``S`` (the padded
            length) and returns a boolean ``(N, S)``: ``mask[n, j]`` is True when key ``j`` of
            sequence ``n`` is a real token (``j < lengths[n]``).

    Raises:
        ExerciseError: on a wrong type, shape, dtype or value; PyTorch's polarity (True =
            padding) and an off-by-one are named.

    See the chapter's exercises.
    """
    cases = [
        ("lengths [3, 5, 1], S = 5", torch.tensor([3, 5, 1]), 5),
        ("lengths [2, 2], S = 4 (every sequence padded)", torch.tensor([2, 2]), 4),
        ("lengths [0, 4], S = 4 (an empty sequence)", torch.tensor([0, 4]), 4),
    ]
    for what, lengths, S in cases:
        got = call_answer(lambda n, S=S: fn(n, S), what, lengths)
        j = torch.arange(S)  # (S,)
        expected = solution_padding_mask(lengths, S)  # (N, S)
        _expect_bool(
            got,
            expected,
            what,
            [
                (
                    ~expected,
                    "the polarity is inverted: that is PyTorch's key_padding_mask (True = "
                    "padding, ignore). In attnlib True means a real token that MAY be attended",
                ),
                (
                    j[None, :] <= lengths[:, None],
                    "off by one: a sequence of length n has real tokens at positions "
                    "0 .. n - 1, so use j < n, not j <= n",
                ),
            ],
        )
    passed(f"the padding mask matches on {len(cases)} cases, True = a real token.")


# ------------------------------------------------------------------------------------------------
# Exercise 2: a causal mask
# ------------------------------------------------------------------------------------------------


def solution_causal_mask(L: int, S: int) -> torch.Tensor:
    """Exercise 2's reference solution: a causal mask aligned top-left, from two ``arange``.

    Args:
        L: the number of queries.
        S: the number of keys.

    Returns:
        Boolean ``(L, S)``, True where ``j <= i``: query ``i`` sees itself and the keys before it,
        as with PyTorch's ``is_causal=True``, also when ``L != S``.
    """
    i = torch.arange(L)[:, None]  # (L, 1): query positions
    j = torch.arange(S)[None, :]  # (1, S): key positions
    return j <= i  # (L, S)


@checks(solution_causal_mask)
def check_causal_mask(fn: Callable[[int, int], torch.Tensor]) -> None:
    """Check ``fn(L, S)``, a decoder's allowed-mask aligned top-left, built by comparing positions.

    The exercise asks for the mask from two ``arange``s (query ``i`` may see key ``j`` when
    ``j <= i``), so an answer whose operator log shows ``tril`` or ``triu`` (``torch.tril``,
    ``Tensor.tril``, ``attnlib.masks.causal_mask``...) is refused even when its mask is right.

    Args:
        fn: takes the number of queries ``L`` and of keys ``S`` and returns a boolean
            ``(L, S)``, True where ``j <= i`` (query ``i`` sees itself and the keys before it),
            the alignment of ``is_causal=True`` in PyTorch even when ``L != S``.

    Raises:
        ExerciseError: on a wrong type, shape, dtype or value (the inverted triangle, the
            missing diagonal and the bottom-right alignment are named), or when the mask is
            cut out with ``tril``/``triu``.

    See the chapter's exercises.
    """
    cases = [("L = 4, S = 4", 4, 4), ("L = 1, S = 1", 1, 1), ("L = 3, S = 5", 3, 5),
             ("L = 5, S = 3", 5, 3)]
    used: set[str] = set()  # the operators the answer ran, over all cases
    for what, L, S in cases:
        got, ops = ops_called(call_answer, lambda L=L, S=S: fn(L, S), what)
        expected = solution_causal_mask(L, S)  # (L, S)
        _expect_bool(
            got,
            expected,
            what,
            [
                (
                    ~expected,
                    "the triangle is inverted (True above the diagonal): that is the "
                    "'True = masked' polarity of nn.MultiheadAttention's attn_mask; in attnlib "
                    "True = may attend, so keep j <= i",
                ),
                (
                    torch.ones(L, S, dtype=torch.bool).tril(-1),
                    "the diagonal is missing: a query may attend to its own position (j <= i, "
                    "not j < i); otherwise the first query has nothing to attend to",
                ),
                (
                    torch.ones(L, S, dtype=torch.bool).tril(S - L),
                    "the mask is aligned bottom-right (the last query sees every key), as for "
                    "queries appended after a cache; PyTorch's is_causal and attnlib align it "
                    "top-left: query i sees keys 0 .. i",
                ),
            ],
        )
        used |= ops
    triangle = sorted(used & _TRIANGLE_OPS)  # checked once every mask is right
    if triangle:
        raise ExerciseError(
            f"the mask is right, but it is cut out with {', '.join(triangle)} "
            "(directly or inside a library function such as attnlib.masks.causal_mask). "
            "The exercise asks you to compare positions: i = torch.arange(L)[:, None], "
            "j = torch.arange(S)[None, :], and query i may see key j when j <= i"
        )
    passed(f"the causal mask matches on {len(cases)} cases, including L != S (top-left).")


# ------------------------------------------------------------------------------------------------
# Exercise 3: a masked softmax without NaN
# ------------------------------------------------------------------------------------------------


def solution_masked_softmax(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Exercise 3's reference solution: a softmax over the allowed keys that never gives NaN.

    Args:
        scores: ``(..., L, S)``; left unchanged.
        mask: boolean, broadcastable to ``scores``, True = may attend.

    Returns:
        ``(..., L, S)``: each row sums to 1 over its allowed keys, masked keys get exactly 0, and
        a row with no allowed key is all zeros.
    """
    scores = scores.masked_fill(~mask, float("-inf"))  # (..., L, S)
    empty = ~mask.expand_as(scores).any(dim=-1, keepdim=True)  # (..., L, 1): nothing allowed
    weights = torch.softmax(scores.masked_fill(empty, 0.0), dim=-1)  # no row is all -inf now
    return weights.masked_fill(empty, 0.0)  # (..., L, S)


@checks(solution_masked_softmax)
def check_masked_softmax(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    """Check ``fn(scores, mask)``: softmax over the allowed keys, zeros for a row with none.

    Args:
        fn: takes ``scores`` ``(..., L, S)`` and a boolean ``mask`` broadcastable to it (True =
            may attend) and returns ``(..., L, S)`` weights: each row sums to 1 over its
            allowed keys, disallowed keys get exactly 0, and a row with no allowed key is all
            zeros (not NaN).

    Raises:
        ExerciseError: on a wrong type, shape or value; NaN rows, weights zeroed after the
            softmax and an inverted mask are named.

    See the chapter's exercises.
    """
    g = cases_generator(9)
    scores = torch.randn(2, 4, 5, generator=g)  # (N, L, S)
    pad = torch.tensor([[True] * 5, [True, True, False, False, False]])[:, None, :]  # (N, 1, S)
    mixed = torch.tensor([
        [True, False, True, False, True],
        [False, False, False, False, False],  # a row with nothing to attend to
        [True, True, True, True, True],
        [False, False, False, False, True],
    ])  # (L, S)
    cases = [
        ("scores (2, 4, 5), padding mask (2, 1, 5)", scores, pad),
        ("scores (2, 4, 5), mask (4, 5) with one row all False", scores, mixed),
        ("scores (4, 5), every key masked", scores[0], torch.zeros(4, 5, dtype=torch.bool)),
    ]
    for what, s, m in cases:
        got = call_answer(fn, what, s, m)
        mb = m.expand_as(s)
        expected = solution_masked_softmax(s, m)  # (..., L, S)
        expect_tensor(got, expected, what=what)
        got_d = got.detach().double().cpu()
        if torch.isnan(got_d).any():
            rows = torch.isnan(got_d).any(-1).nonzero().tolist()
            raise ExerciseError(
                f"{what}: your result contains NaN in the rows {rows}. A row whose keys are all "
                "masked is all -inf, and softmax of all -inf is 0 / 0 = NaN: find such rows "
                "(mask.any(dim=-1) is False) and give them zero weights"
            )
        zeroed_after = torch.softmax(s, -1) * mb
        inverted = torch.softmax(s.masked_fill(mb, float("-inf")), -1).nan_to_num(0.0)
        mistakes = [
            (
                zeroed_after,
                "the weights were zeroed after a softmax over all keys, so the rows no longer "
                "sum to 1: put -inf in the scores of the masked keys before the softmax",
            ),
            (
                inverted,
                "the mask's polarity is inverted: True means the query MAY attend to that key",
            ),
        ]
        diagnose(got, mistakes, what, expected=expected)
        expect_close(got, expected, what=what)
    passed(
        f"the masked softmax matches on {len(cases)} cases: masked keys get 0, and a row with no "
        "allowed key gets zeros, not NaN."
    )


# ------------------------------------------------------------------------------------------------
# Exercise 4: write the test of the causal claim
# ------------------------------------------------------------------------------------------------


def solution_causality_test(layer: Callable[[torch.Tensor], torch.Tensor], L: int, D: int) -> bool:
    """Exercise 4's reference solution: is ``layer``'s output at ``t`` free of every later token?

    Change one position ``s`` at a time and check that no output before ``s`` moves, for every
    ``s``: a leak from one late token into one early output is found only if every position
    is changed.

    Args:
        layer: maps ``(1, L, D)`` to ``(1, L, D)``.
        L: the sequence length.
        D: the model size.

    Returns:
        True when, for every ``s``, changing the input at ``s`` leaves the outputs ``0 .. s-1``
        exactly as they were.
    """
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, L, D, generator=g)  # (1, L, D)
    out = layer(x)  # (1, L, D)
    for s in range(L):
        changed = x.clone()
        changed[:, s] = torch.randn(D, generator=g)  # a different token at position s
        moved = (layer(changed) - out).abs().amax(dim=-1)[0]  # (L,): largest change per position
        if bool((moved[:s] != 0).any()):
            return False
    return True


def _attention_layer(allowed: torch.Tensor | None) -> Callable[[torch.Tensor], torch.Tensor]:
    """Self-attention of ``x`` on itself (q = k = v = x) with the allowed-mask ``allowed``."""
    from ..attention import scaled_dot_product_attention

    def layer(x: torch.Tensor) -> torch.Tensor:  # (1, L, D) -> (1, L, D)
        return scaled_dot_product_attention(x, x, x, attn_mask=allowed)[0]

    return layer


def _running_mean(x: torch.Tensor) -> torch.Tensor:
    """A causal layer that is not attention: the mean of the tokens up to each position."""
    counts = torch.arange(1, x.size(1) + 1, dtype=x.dtype)[None, :, None]  # (1, L, 1)
    return x.cumsum(dim=1) / counts  # (1, L, D)


def _causality_candidates(L: int) -> list[tuple[str, Callable, bool]]:
    """(description, layer, whether it is causal) for the causality test's check."""
    causal = solution_causal_mask(L, L)  # (L, L)
    one_leak = causal.clone()
    one_leak[0, L // 2] = True  # position 0 also reads a middle token; nothing else leaks
    return [
        ("causal self-attention", _attention_layer(causal), True),
        ("a running mean over the prefix (causal, but not attention)", _running_mean, True),
        ("bidirectional self-attention (no mask)", _attention_layer(None), False),
        ("self-attention whose mask lets every query see the next token too",
         _attention_layer(solution_causal_mask(L + 1, L)[1:]), False),  # j <= i + 1
        (f"causal self-attention except that position 0 also reads position {L // 2}",
         _attention_layer(one_leak), False),
    ]


@checks(solution_causality_test)
def check_causality_test(fn: Callable[[Callable, int, int], bool]) -> None:
    """Check a learner's test of the claim "the output at t does not depend on any later token".

    The test ``fn(layer, L, D)`` is handed five layers that map ``(1, L, D)`` to ``(1, L, D)``
    (``L = 6``, ``D = 4``): causal self-attention and a running mean (both causal), and three
    that read ahead: bidirectional attention, attention that also sees the next token, and
    causal attention with one leak, from a middle token into position 0. It must return True
    for the causal ones and False for the others; a test that passes a leaky layer is told
    which one, and why its probe missed it.

    Args:
        fn: the learner's test; takes a layer, ``L`` and ``D`` and returns a bool.

    Raises:
        ExerciseError: when the test crashes, returns something other than a bool, or gets a
            layer wrong.

    See the chapter's section "Causal masks: a decoder must not read ahead".
    """
    L, D = 6, 4
    for what, layer, causal in _causality_candidates(L):
        try:
            verdict = fn(layer, L, D)
        except ExerciseError:
            raise
        except Exception as err:  # the learner's test failed: say on which layer
            raise ExerciseError(
                f"your test raised {type(err).__name__}: {err} when it was handed {what}"
            ) from err
        if isinstance(verdict, torch.Tensor) and verdict.numel() == 1:
            verdict = bool(verdict)
        if not isinstance(verdict, bool):
            raise ExerciseError(
                f"handed {what}, your test returned {type(verdict).__name__}; return True or False"
            )
        if verdict != causal:
            if causal:
                raise ExerciseError(
                    f"your test rejects {what}, which is causal. Compare the outputs at positions "
                    "before the one you changed, and only those: the outputs at and after it "
                    "are meant to move"
                )
            raise ExerciseError(
                f"your test accepts {what}, which reads ahead. Change every position s in "
                "turn (not just one), and check that no output before s moves at all (compare "
                "with == 0, not a tolerance)"
            )
    passed(
        "your test accepts both causal layers and catches all three that read ahead, the "
        "single leak included."
    )
