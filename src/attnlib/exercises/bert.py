"""Self-checks for the chapter "BERT: attention in both directions".

Four exercises, each with a reference solution and a check:

* :func:`solution_mean_pool`, :func:`check_mean_pool` -- a sentence vector: the average of the
  real tokens' vectors, padding left out;
* :func:`solution_previous_token_score`, :func:`check_previous_token_score` -- how much each head
  attends from every token to the token just before it (the measure that finds MiniLM's
  previous-token head);
* :func:`solution_factorised_embedding_parameters`, :func:`check_factorised_embedding_parameters`
  -- how many parameters ALBERT's factorised embedding holds;
* :func:`solution_sees_later_tokens`, :func:`check_sees_later_tokens` -- a test of the chapter's
  claim that an encoder's earlier tokens depend on a later word: the check runs the learner's test
  on encoders where the claim holds and on encoders where it does not.

Each check runs the answer on a few cases and prints ``Correct: ...``, or raises
:class:`~attnlib.exercises.ExerciseError` saying what was expected and what came back (shape first,
then values). While an answer is still the template (its body is ``...``), a check says so and
runs the reference solution instead (see :func:`attnlib.exercises.checks`).

Shape legend (see the notation page): N batch, H heads, L length, D model size.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from . import call_answer, cases_generator, checks, passed
from ._compare import ExerciseError, expect_close

__all__ = [
    "solution_mean_pool",
    "check_mean_pool",
    "solution_previous_token_score",
    "check_previous_token_score",
    "solution_factorised_embedding_parameters",
    "check_factorised_embedding_parameters",
    "solution_sees_later_tokens",
    "check_sees_later_tokens",
]


# --- Exercise 1: mean pooling with a padding mask ------------------------------------------------


def solution_mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Exercise 1's reference solution: each sentence's mean over its real tokens.

    Args:
        hidden: ``(N, L, D)`` token vectors.
        mask: boolean ``(N, L)``, True for a real token; every sentence has at least one.

    Returns:
        ``(N, D)`` sentence vectors; padding never enters the sum or the count.
    """
    m = mask[..., None].to(hidden.dtype)  # (N, L, 1): 1 for a real token, 0 for padding
    return (hidden * m).sum(dim=1) / m.sum(dim=1)  # (N, D)


@checks(solution_mean_pool)
def check_mean_pool(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    """Check mean pooling: each sentence's vector is the mean of its real tokens' vectors.

    The answer is called as ``fn(hidden, mask)`` on batches whose sentences have different
    lengths, so the padding positions hold large numbers that must not leak into the average.

    Args:
        fn: takes ``hidden`` ``(N, L, D)`` and ``mask`` ``(N, L)`` boolean (True = a real token;
            every sentence has at least one) and returns ``(N, D)``.

    Raises:
        ExerciseError: on a wrong type, shape or value, or when the function crashes.

    See the chapter\'s section "Sentence similarity".
    """
    g = cases_generator(8)
    hidden = torch.randn(3, 5, 4, generator=g)  # (N, L, D) = (3, 5, 4)
    mask = torch.tensor(
        [[True, True, True, True, True], [True, True, False, False, False],
         [True, False, False, False, False]]
    )
    hidden = hidden.masked_fill(~mask[..., None], 100.0)  # loud padding: forgetting it shows
    cases = [
        ("hidden (3, 5, 4) with lengths 5, 2 and 1", hidden, mask),
        ("one sentence (1, 3, 2) without padding", torch.randn(1, 3, 2, generator=g),
         torch.ones(1, 3, dtype=torch.bool)),
        ("hidden (2, 4, 6) with lengths 3 and 4", torch.randn(2, 4, 6, generator=g),
         torch.tensor([[True, True, True, False], [True, True, True, True]])),
    ]
    for what, h, m in cases:
        got = call_answer(fn, f"mean pooling of {what}", h, m)
        expect_close(got, solution_mean_pool(h, m), what=f"mean pooling of {what}")
    passed(
        f"mean pooling matches on {len(cases)} batches; padding never enters the average."
    )


# --- Exercise 2: find the previous-token head ---------------------------------------------------


def solution_previous_token_score(weights: torch.Tensor) -> torch.Tensor:
    """Exercise 2's reference solution: each head's mean weight from token ``i`` to ``i - 1``.

    Args:
        weights: ``(H, L, L)``, each row a distribution over the keys.

    Returns:
        ``(H,)``: the average over the queries ``i = 1 .. L-1`` (query 0 has no previous token);
        a perfect previous-token head scores 1.
    """
    L = weights.size(-1)
    i = torch.arange(1, L)  # (L - 1,): the queries that have a previous token
    return weights[:, i, i - 1].mean(dim=-1)  # (H,)


@checks(solution_previous_token_score)
def check_previous_token_score(
    fn: Callable[[torch.Tensor], torch.Tensor],
) -> Callable[[torch.Tensor], torch.Tensor]:
    """Check a previous-token score: for each head, the mean weight from token ``i`` to ``i - 1``.

    The score of head ``h`` is the average, over the queries ``i = 1 .. L-1``, of
    ``weights[h, i, i - 1]`` (query 0 has no previous token and is left out). A perfect
    previous-token head scores 1.

    Args:
        fn: takes ``weights`` ``(H, L, L)`` (each row a distribution over keys) and returns
            ``(H,)``.

    Returns:
        The function that passed: ``fn``, or the reference solution while ``fn`` is the template.

    Raises:
        ExerciseError: on a wrong type, shape or value, or when the function crashes.

    See the chapter\'s section "Heads with a job".
    """
    g = cases_generator(80)
    L = 6
    previous = torch.zeros(L, L)
    previous[0, 0] = 1.0
    previous[torch.arange(1, L), torch.arange(L - 1)] = 1.0  # (L, L): a perfect previous-token head
    nxt = torch.zeros(L, L)
    nxt[torch.arange(L - 1), torch.arange(1, L)] = 1.0
    nxt[L - 1, L - 1] = 1.0  # (L, L): a next-token head
    diagonal = torch.eye(L)
    uniform = torch.full((L, L), 1 / L)
    random = torch.softmax(3 * torch.randn(4, 7, 7, generator=g), dim=-1)  # (4, 7, 7)
    cases = [
        ("4 hand-made heads (previous, next, self, uniform) of L = 6",
         torch.stack([previous, nxt, diagonal, uniform])),
        ("4 random heads of L = 7", random),
        ("one previous-token head of L = 6", previous[None]),
    ]
    for what, w in cases:
        got = call_answer(fn, f"the scores of {what}", w)
        expect_close(got, solution_previous_token_score(w), what=f"the scores of {what}")
    passed(
        f"previous-token scores match on {len(cases)} cases: the perfect head scores 1, the "
        "next-token and self heads 0, the uniform head 1/L."
    )
    return fn


# --- Exercise 3: the factorised embedding -------------------------------------------------------


def solution_factorised_embedding_parameters(vocab_size: int, embed_size: int, d_model: int) -> int:
    """Exercise 3's reference solution: the parameters of ALBERT's factorised embedding.

    Args:
        vocab_size: the number of vocabulary entries.
        embed_size: the size of each entry's vector in the table.
        d_model: the model width the table is projected to.

    Returns:
        The table's ``vocab_size * embed_size`` numbers plus the projection's matrix and bias.
    """
    table = vocab_size * embed_size  # one embed_size-vector per vocabulary entry
    projection = embed_size * d_model + d_model  # the embed_size -> d_model matrix and its bias
    return table + projection


@checks(solution_factorised_embedding_parameters)
def check_factorised_embedding_parameters(fn: Callable[[int, int, int], int]) -> None:
    """Check a count of the parameters of a factorised embedding.

    The answer is called as ``fn(vocab_size, embed_size, d_model)``: a table of ``vocab_size``
    vectors of size ``embed_size``, followed by a linear projection from ``embed_size`` to
    ``d_model`` *with* a bias (as :class:`torch.nn.Linear` has).

    Raises:
        ExerciseError: when the answer is not an integer or differs on one of the cases.

    See the chapter\'s section "ALBERT: fewer parameters, the same work".
    """
    cases = [(30_000, 128, 768), (30_000, 64, 256), (10, 2, 3)]
    for vocab_size, embed_size, d_model in cases:
        what = f"vocab_size = {vocab_size:,}, embed_size = {embed_size}, d_model = {d_model}"
        try:
            got = fn(vocab_size, embed_size, d_model)
        except Exception as err:
            raise ExerciseError(
                f"{what}: your function raised {type(err).__name__}: {err}"
            ) from err
        if isinstance(got, torch.Tensor) and got.numel() == 1 and not got.is_floating_point():
            got = int(got.item())
        if isinstance(got, bool) or not isinstance(got, int):
            raise ExerciseError(
                f"{what}: expected an int (a number of parameters), got {type(got).__name__} "
                f"{got!r}"
            )
        expected = solution_factorised_embedding_parameters(vocab_size, embed_size, d_model)
        if got != expected:
            hint = ""
            if got == vocab_size * d_model:
                hint = " (that is the unfactorised vocab_size x d_model table)"
            elif got == vocab_size * embed_size + embed_size * d_model:
                hint = " (the projection's bias is missing)"
            raise ExerciseError(f"{what}: expected {expected:,} parameters, got {got:,}{hint}")
    vocab_size, embed_size, d_model = cases[0]
    count = solution_factorised_embedding_parameters(vocab_size, embed_size, d_model)
    passed(
        f"a factorised embedding with vocab_size = {vocab_size:,}, embed_size = {embed_size}, "
        f"d_model = {d_model} holds {count:,} parameters instead of {vocab_size * d_model:,}."
    )


# --- Exercise 4: test the claim "an encoder's earlier tokens see a later word" ------------------


def solution_sees_later_tokens(
    encode: Callable[[torch.Tensor], torch.Tensor], ids: torch.Tensor
) -> bool:
    """Exercise 4's reference solution: does a later token reach the vectors of earlier ones?

    Changes the last token of ``ids`` and compares the vectors of every *earlier* position (the
    changed position itself always changes, so it proves nothing).

    Args:
        encode: maps token ids ``(1, L)`` to vectors ``(1, L, D)``.
        ids: ``(1, L)`` token ids, ``L >= 2``.

    Returns:
        True when some position before the last one gets a different vector.
    """
    changed = ids.clone()
    changed[0, -1] = 1 if int(ids[0, -1]) != 1 else 2  # another token id in the last place
    before, after = encode(ids), encode(changed)  # (1, L, D) each
    return not torch.allclose(before[:, :-1], after[:, :-1])  # earlier positions only


class _Stack(torch.nn.Module):
    """A tiny encoder for the check's cases: embeddings, one attnlib encoder layer (so a token's
    information moves only as far as the mask lets it in one step), and an ``(L, L)`` boolean mask
    (True = may attend) that decides who sees whom."""

    def __init__(self, seed: int, D: int = 16, vocab_size: int = 20) -> None:
        from ..layers import TransformerEncoderLayer

        super().__init__()
        with torch.random.fork_rng(devices=[]):  # the learner's random state is left alone
            torch.manual_seed(seed)
            self.embed = torch.nn.Embedding(vocab_size, D)
            self.layers = torch.nn.ModuleList(
                TransformerEncoderLayer(D, 2, 2 * D, dropout=0.0) for _ in range(1)
            )

    @torch.no_grad()
    def run(self, ids: torch.Tensor, attend: torch.Tensor | None) -> torch.Tensor:
        x = self.embed(ids)  # (1, L, D)
        for layer in self.layers:
            x = layer(x, src_attend_mask=attend)  # (1, L, D); attend None: all may attend
        return x  # (1, L, D)


def _encoders(L: int) -> list[tuple[str, Callable[[torch.Tensor], torch.Tensor], bool, str]]:
    """(name, encode, does the claim hold, what a wrong verdict usually means)."""
    stack = _Stack(seed=4)
    causal = torch.ones(L, L, dtype=torch.bool).tril()  # (L, L)
    first_sees_all = causal.clone()
    first_sees_all[0] = True  # only position 0 may look ahead
    middle_sees_last = causal.clone()
    middle_sees_last[L // 2, -1] = True  # one middle position may see the last token
    own = torch.eye(L, dtype=torch.bool)  # (L, L): every token sees only itself
    return [
        ("a bidirectional encoder (padding mask only)", lambda i: stack.run(i, None), True,
         "every position sees the last token here, so an earlier vector must change"),
        ("the same encoder with a causal mask", lambda i: stack.run(i, causal), False,
         "did you compare the last position too? It holds the changed token itself, so it "
         "always changes; compare the positions before it"),
        ("an encoder in which only position 0 may look ahead",
         lambda i: stack.run(i, first_sees_all), True,
         "position 0 sees the last token: look at every earlier position, not only the one "
         "just before the change"),
        ("an encoder in which one middle position may see the last token",
         lambda i: stack.run(i, middle_sees_last), True,
         f"position {L // 2} sees the last token: compare every earlier position"),
        ("an encoder in which every token sees only itself", lambda i: stack.run(i, own), False,
         "no token sees any other here, so only the changed position may change"),
    ]


@checks(solution_sees_later_tokens)
def check_sees_later_tokens(
    fn: Callable[[Callable[[torch.Tensor], torch.Tensor], torch.Tensor], bool],
) -> Callable[[Callable[[torch.Tensor], torch.Tensor], torch.Tensor], bool]:
    """Check a test of the claim "in an encoder, a later word changes the earlier tokens' vectors".

    The answer is called as ``fn(encode, ids)`` on small encoders whose masks are known: some let
    an earlier position see the last token (the claim holds), some do not. A test must say True
    for the first kind and False for the second.

    Args:
        fn: takes ``encode`` (token ids ``(1, L)`` -> vectors ``(1, L, D)``) and ``ids``
            ``(1, L)`` and returns a bool: True when changing the last token changes the vector
            of some earlier position.

    Returns:
        The test that passed: ``fn``, or the reference solution while ``fn`` is the template.

    Raises:
        ExerciseError: when the test gives the wrong verdict on one of the encoders, returns
            something other than a bool, or crashes.

    See the chapter's section "Bidirectional: every token sees both sides".
    """
    L = 7
    ids = torch.randint(3, 20, (1, L), generator=cases_generator(44))  # (1, L)
    encoders = _encoders(L)
    for name, encode, holds, why in encoders:
        what = f"your test on {name}"
        got = call_answer(lambda i, enc=encode: fn(enc, i), what, ids)
        if isinstance(got, torch.Tensor) and got.numel() == 1 and got.dtype == torch.bool:
            got = bool(got)
        if not isinstance(got, bool):
            raise ExerciseError(
                f"{what}: expected a bool (does a later token reach an earlier one?), got "
                f"{type(got).__name__}"
            )
        if got != holds:
            raise ExerciseError(f"{what}: expected {holds}, got {got}; {why}")
    passed(
        f"your test gives the right verdict on {len(encoders)} encoders: True where an "
        "earlier position may see the last token, False under a causal mask and when each token "
        "sees only itself."
    )
    return fn
