"""Self-checks for the chapter "The big picture: encoders, decoders, and why attention".

Four exercises, each with a reference solution and a check:

- :func:`solution_model_shape`, :func:`check_model_shape`: which shape of model (encoder,
  decoder, encoder-decoder) a task needs;
- :func:`solution_masked_max_pool`, :func:`check_masked_max_pool`: pool token vectors into one
  sentence vector, ignoring padding;
- :func:`solution_greedy_decode`, :func:`check_greedy_decode`: the greedy decoding loop of an
  autoregressive decoder;
- :func:`solution_is_causal`, :func:`check_is_causal`: write the test of the chapter's claim that a
  decoder is causal (no output depends on a later input); the check runs the learner's test on
  causal models and on counterexamples it must catch.

Each check runs the learner's function on a few fixed cases and prints ``Correct: ...``, or raises
:class:`~attnlib.exercises.ExerciseError` saying what was expected and what came back. Each is
decorated with :func:`~attnlib.exercises.checks`: a template still to be filled in (a body of
``...``) runs the reference solution instead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from . import cases_generator, checks, passed
from ._compare import ExerciseError, expect_close

__all__ = [
    "MODEL_SHAPES",
    "TASK_NAMES",
    "solution_model_shape",
    "check_model_shape",
    "solution_masked_max_pool",
    "check_masked_max_pool",
    "solution_greedy_decode",
    "check_greedy_decode",
    "solution_is_causal",
    "check_is_causal",
]

MODEL_SHAPES: tuple[str, ...] = ("encoder", "decoder", "encoder-decoder")
"""The three answers :func:`check_model_shape` accepts."""

TASK_NAMES: tuple[str, ...] = (
    "sentiment analysis",
    "spam detection",
    "part-of-speech tagging",
    "named-entity recognition",
    "story continuation",
    "code completion",
    "machine translation",
    "summarisation",
)
"""The tasks :func:`check_model_shape` asks about, in the order it asks."""


def solution_model_shape(task: str) -> str:
    """Exercise 1's reference solution: the shape of model designed for ``task``.

    Args:
        task: one of :data:`TASK_NAMES`.

    Returns:
        ``"encoder"`` for a task that labels the text it is given, ``"decoder"`` for one that
        continues a prompt, ``"encoder-decoder"`` for one that reads a text and writes another.
    """
    shapes = {
        "sentiment analysis": "encoder",  # one label per text
        "spam detection": "encoder",
        "part-of-speech tagging": "encoder",  # one label per token
        "named-entity recognition": "encoder",
        "story continuation": "decoder",  # continue a prompt, token by token
        "code completion": "decoder",
        "machine translation": "encoder-decoder",  # read one text, write another
        "summarisation": "encoder-decoder",
    }
    return shapes[task]


_HINTS: dict[tuple[str, str], str] = {
    ("part-of-speech tagging", "decoder"): (
        "a tagger labels tokens that are all given at once; nothing new is written"
    ),
    ("named-entity recognition", "decoder"): (
        "entity tags are labels on the input's own tokens; nothing new is written"
    ),
    ("machine translation", "decoder"): (
        "a decoder-only model can translate when the source is put in its prompt (GPT-2 "
        "tried this), but the shape built for the task, which reads the whole source and then "
        "writes a new text, is the encoder-decoder"
    ),
    ("summarisation", "decoder"): (
        "a decoder-only model can summarise from a prompt, but the shape built for it, which "
        "reads the whole document and then writes a new, shorter text, is the encoder-decoder"
    ),
    ("machine translation", "encoder"): (
        "an encoder gives one vector per source token; writing a new sentence of another "
        "length needs a decoder"
    ),
    ("summarisation", "encoder"): (
        "an encoder gives one vector per input token; writing a new, shorter text needs a decoder"
    ),
    ("story continuation", "encoder-decoder"): (
        "there is no separate source: the text so far is the prompt, and a decoder continues it"
    ),
    ("code completion", "encoder-decoder"): (
        "the code so far is the prompt, and a decoder continues it token by token"
    ),
}


@checks(solution_model_shape)
def check_model_shape(model_shape: Callable[[str], str]) -> None:
    """Check a function that names the shape of model a task needs.

    Args:
        model_shape: maps a task name (one of :data:`TASK_NAMES`) to one of
            :data:`MODEL_SHAPES`: ``"encoder"``, ``"decoder"`` or ``"encoder-decoder"``.

    Raises:
        ExerciseError: naming the first task whose answer is wrong, with what was expected.

    See the chapter's exercise 1.
    """
    for task in TASK_NAMES:
        expected = solution_model_shape(task)
        try:
            got = model_shape(task)
        except Exception as err:  # the learner's code: report any failure as a wrong answer
            raise ExerciseError(
                f"model_shape({task!r}) raised {type(err).__name__}: {err}; expected it to "
                f"return {expected!r}"
            ) from err
        if got not in MODEL_SHAPES:
            raise ExerciseError(
                f"model_shape({task!r}): expected one of {', '.join(map(repr, MODEL_SHAPES))}, "
                f"got {got!r}"
            )
        if got != expected:
            hint = _HINTS.get((task, got))
            if hint is None:
                hint = {
                    "encoder": "the task labels text it is given, so an encoder suffices",
                    "decoder": "the task continues a text, token by token, from a prompt",
                    "encoder-decoder": "the task reads one text and writes another",
                }[expected]
            raise ExerciseError(
                f"model_shape({task!r}): expected {expected!r}, got {got!r} ({hint})"
            )
    passed(f"all {len(TASK_NAMES)} tasks matched to the right shape of model")


def _rounded_list(row: torch.Tensor) -> list[float]:
    return [round(v, 3) + 0.0 for v in row.tolist()]


def solution_masked_max_pool(token_vectors: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Exercise 2's reference solution: each sentence's largest value per feature, padding ignored.

    Args:
        token_vectors: ``(N, L, D)``.
        mask: boolean ``(N, L)``, True for a real token; every sentence has at least one.

    Returns:
        ``(N, D)``. Padded positions are filled with ``-inf``, which can never be the maximum.
    """
    filled = token_vectors.masked_fill(~mask.unsqueeze(-1), float("-inf"))  # (N, L, D)
    return filled.max(dim=1).values  # (N, D)


def _max_pool_cases() -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    cases = []
    # No padding at all: a plain max over positions.
    x = torch.randn(2, 3, 4, generator=g)  # (N, L, D)
    cases.append(("a batch without padding", x, torch.ones(2, 3, dtype=torch.bool)))
    # Padding holds large values: a max that forgets the mask returns them.
    x = torch.randn(3, 5, 4, generator=g)  # (N, L, D)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]], dtype=torch.bool)
    x = x.masked_fill(~mask[..., None], 50.0)
    cases.append(("a padded batch (lengths 5, 3, 1) whose padding holds 50.0", x, mask))
    # Every real value negative, padding zero: filling padding with 0 instead of -inf fails.
    x = -torch.rand(2, 4, 3, generator=g) - 0.5  # (N, L, D), all in [-1.5, -0.5)
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 0]], dtype=torch.bool)
    x = x.masked_fill(~mask[..., None], 0.0)
    cases.append(("a padded batch whose real values are all negative", x, mask))
    return cases


@checks(solution_masked_max_pool)
def check_masked_max_pool(
    masked_max_pool: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
) -> None:
    """Check a masked max pooling: one sentence vector from token vectors, padding ignored.

    Args:
        masked_max_pool: takes ``token_vectors`` ``(N, L, D)`` and a boolean ``mask`` ``(N, L)``,
            True where a token is real (not padding), and returns ``(N, D)``: for each sentence
            and each feature, the largest value over its real tokens. Every sentence has at
            least one real token.

    Raises:
        ExerciseError: the shape is wrong, or the values are (with a hint for the usual slips:
            forgetting the mask, or filling padding with 0 instead of ``-inf``).

    See the chapter's exercise 2.
    """
    for what, x, mask in _max_pool_cases():
        got = masked_max_pool(x.clone(), mask.clone())
        expected = solution_masked_max_pool(x, mask)
        if isinstance(got, torch.Tensor) and got.shape == expected.shape:
            got_f = got.detach().float().cpu()
            if not torch.allclose(got_f, expected, atol=1e-5):
                row = int((got_f - expected).abs().amax(dim=1).argmax())  # first worst sentence
                shown = (
                    f"(sentence {row}: expected {_rounded_list(expected[row])}, "
                    f"got {_rounded_list(got_f[row])})"
                )
                if torch.allclose(got_f, x.amax(dim=1), atol=1e-5):
                    raise ExerciseError(
                        f"{what}: values differ; your result equals the max over all L "
                        f"positions, padding included. Exclude padded positions before taking "
                        f"the max {shown}"
                    )
                zero_filled = x.masked_fill(~mask[..., None], 0.0).amax(dim=1)
                if torch.allclose(got_f, zero_filled, atol=1e-5):
                    raise ExerciseError(
                        f"{what}: values differ; your result equals a max with padding filled "
                        f"by 0, which beats real negative values. Fill padding with -inf "
                        f"{shown}"
                    )
        expect_close(got, expected, what=f"masked_max_pool on {what}", atol=1e-5, rtol=1e-5)
    passed("padding never wins the max, and the result has shape (N, D)")


class _TinyDecoder:
    """A fixed toy decoder over 6 token ids (0 is the start token, 1 the end token).

    Its state counts the steps taken; the logits depend on the step and on the previous token,
    and the end token wins only at the step ``stop_at`` (counted from 0), so a loop that drops
    the state or ignores the end token goes wrong in a visible way.
    """

    vocab_size = 6

    def __init__(self, stop_at: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.table = torch.randn(8, self.vocab_size, self.vocab_size, generator=g)  # (steps, 6, 6)
        self.table[..., 0] = float("-inf")  # the start token is never generated
        self.table[..., 1] = float("-inf")  # the end token only at step stop_at ...
        if stop_at < 8:
            self.table[stop_at, :, 1] = 10.0  # ... where it wins whatever came before
        self.calls = 0

    def step(self, token: int, state: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        self.calls += 1
        t = 0 if state is None else int(state.item())
        logits = self.table[min(t, 7), int(token)].clone()  # (vocab_size,)
        return logits, torch.tensor([t + 1])


def solution_greedy_decode(step: Callable, start_id: int, end_id: int, max_len: int) -> list[int]:
    """Exercise 3's reference solution: greedy decoding, one token at a time.

    Args:
        step: ``step(token, state) -> (logits, state)``, one decoder step; ``logits`` has shape
            ``(vocab_size,)`` and the first call gets ``state=None``.
        start_id: the token the decoder starts from (not part of the result).
        end_id: the token that ends the output (part of the result).
        max_len: the most ids to generate.

    Returns:
        The generated ids, up to and including ``end_id``, at most ``max_len`` of them.
    """
    generated, token, state = [], start_id, None
    for _ in range(max_len):
        logits, state = step(token, state)
        token = int(logits.argmax())
        generated.append(token)
        if token == end_id:
            break
    return generated


@checks(solution_greedy_decode)
def check_greedy_decode(greedy_decode: Callable[[Callable, int, int, int], Any]) -> None:
    """Check a greedy decoding loop against the reference on a fixed toy decoder.

    Args:
        greedy_decode: called as ``greedy_decode(step, start_id, end_id, max_len)``, where
            ``step(token, state) -> (logits, state)`` runs the decoder one step (``logits`` has
            shape ``(vocab_size,)``; the first call gets ``state=None``, later calls the state the
            previous call returned). It must return the list of generated token ids: without
            the start token, up to and including the end token, and at most ``max_len`` ids.

    Raises:
        ExerciseError: the returned ids differ from the reference's (with a hint).

    See the chapter's exercise 3.
    """
    cases = [
        ("a decoder that ends at its 5th token", 4, 0, 10),
        ("a decoder that would end at its 7th token, cut at max_len=4", 6, 1, 4),
    ]
    for what, stop_at, seed, max_len in cases:
        expected = solution_greedy_decode(_TinyDecoder(stop_at, seed).step, 0, 1, max_len)
        model = _TinyDecoder(stop_at, seed)
        got = greedy_decode(model.step, 0, 1, max_len)
        if isinstance(got, torch.Tensor):
            got = got.tolist()
        if isinstance(got, list | tuple):  # accept one-element tensors such as argmax()
            got = [int(t) if isinstance(t, torch.Tensor) and t.numel() == 1 else t for t in got]
        if not isinstance(got, list | tuple) or not all(isinstance(t, int) for t in got):
            raise ExerciseError(
                f"{what}: expected a list of int token ids like {expected}, got {got!r}"
            )
        got = list(got)
        if got == expected:
            continue
        if got[:1] == [0] and got[1:] == expected:
            hint = "leave the start token out of the result"
        elif expected[-1] == 1 and got == expected[:-1]:
            hint = "keep the end token: append it, then stop"
        elif len(got) > len(expected) and got[: len(expected)] == expected:
            hint = "stop as soon as the end token has been generated, or after max_len ids"
        elif model.calls > 1 and got[:1] == expected[:1]:
            hint = (
                "pass the state returned by step back into the next call, and feed it the "
                "token just chosen"
            )
        else:
            hint = "take the argmax of the logits at every step"
        raise ExerciseError(
            f"{what}: expected {len(expected)} ids {expected}, got {len(got)} ids {got} ({hint})"
        )
    passed("the greedy loop feeds back its own tokens, keeps the state, and stops at the end token")


def solution_is_causal(model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> bool:
    """Exercise 4's reference solution: test whether ``model`` is causal on the input ``x``.

    Causal means that output ``t`` depends only on the inputs ``0 .. t``. So change one input
    position ``t`` at a time, every ``t`` in turn, and require every output *before* ``t`` to stay
    exactly as it was; the outputs from ``t`` on may change or not.

    Args:
        model: maps an input ``(L, D)`` to an output with one row per position.
        x: ``(L, D)``, the input to test around.

    Returns:
        ``True`` when no change at any position moved an earlier output.
    """
    g = torch.Generator().manual_seed(0)
    before = model(x)  # (L, D)
    for t in range(x.size(0)):
        changed = x.clone()
        changed[t] += torch.randn(x.shape[1:], generator=g).to(x.device)  # alter position t only
        after = model(changed)  # (L, D)
        if not torch.allclose(after[:t], before[:t], atol=1e-6, rtol=0.0):
            return False  # an output before t moved: it depends on a later input
    return True


def _causal_cases() -> list[tuple[str, Callable[[torch.Tensor], torch.Tensor], bool, str]]:
    """Models on inputs ``(L, D)``: (description, model, causal?, what a wrong verdict means)."""
    g = cases_generator(5)
    D = 4
    gru = torch.nn.GRU(D, 3, batch_first=True)
    bigru = torch.nn.GRU(D, 3, batch_first=True, bidirectional=True)
    with torch.no_grad():
        for p in [*gru.parameters(), *bigru.parameters()]:
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)

    def run_gru(rnn):
        def model(x):
            with torch.no_grad():
                return rnn(x[None])[0][0]  # (L, hidden) or (L, 2 * hidden)

        return model

    def running_mean(x):
        return x.cumsum(0) / torch.arange(1, x.size(0) + 1, device=x.device)[:, None]  # (L, D)

    def future_sum(x):
        return x.flip(0).cumsum(0).flip(0)  # (L, D): output t sums inputs t .. L - 1

    def first_reads_second(x):
        out = running_mean(x).clone()
        out[0] = out[0] + x[1]  # one leak: output 0 reads input 1
        return out

    def small_leak(x):
        return running_mean(x) + 0.01 * x.roll(-1, dims=0)  # every output peeks at the next input

    def delayed(x):
        return torch.cat([torch.zeros_like(x[:1]), x[:-1]])  # output t is input t - 1

    def constant(x):
        return torch.ones(x.size(0), 2)  # depends on nothing at all

    every = "an output moved when only a later input changed"
    return [
        ("a left-to-right GRU", run_gru(gru), True, "nothing it outputs depends on later inputs"),
        ("a running mean", running_mean, True, "output t averages inputs 0 .. t"),
        (
            "a one-step delay (output t is input t - 1)",
            delayed,
            True,
            "an output that ignores its own position's input is still causal",
        ),
        (
            "a constant model",
            constant,
            True,
            "causality forbids earlier outputs to move; it does not require any output to move",
        ),
        ("a bidirectional GRU", run_gru(bigru), False, every),
        ("a sum over the future", future_sum, False, every),
        (
            "a running mean whose output 0 also reads input 1",
            first_reads_second,
            False,
            "changing only the last input cannot reveal it: change every position in turn",
        ),
        (
            "a running mean plus 0.01 times the next input",
            small_leak,
            False,
            "the leak is small but real: compare with a tolerance far below 0.01 (say 1e-6)",
        ),
    ]


@checks(solution_is_causal)
def check_is_causal(is_causal: Callable[[Callable, torch.Tensor], Any]) -> None:
    """Check a test of causality on models whose answer is known.

    The learner's test is called as ``is_causal(model, x)`` with ``x`` of shape ``(L, D) = (6, 4)``
    and a ``model`` mapping ``(L, D)`` to one output row per position; it must return ``True``
    for the causal models (a GRU, a running mean, a one-step delay, a constant) and ``False``
    for the counterexamples (a bidirectional GRU, a sum over the future, a model whose first
    output reads the second input, and one that leaks 0.01 of the next input into every output).

    Raises:
        ExerciseError: naming the first model the test judged wrongly, and what that misses.

    See the chapter's section "A decoder: one token at a time".
    """
    x = torch.randn(6, 4, generator=cases_generator(6))  # (L, D)
    for what, model, causal, hint in _causal_cases():
        try:
            verdict = is_causal(model, x.clone())
        except Exception as err:  # the learner's code: report any failure with the case
            raise ExerciseError(
                f"is_causal on {what}: your test raised {type(err).__name__}: {err}"
            ) from err
        if isinstance(verdict, torch.Tensor) and verdict.numel() == 1:
            verdict = verdict.item()
        if not isinstance(verdict, bool):
            raise ExerciseError(f"is_causal on {what}: expected True or False, got {verdict!r}")
        if verdict != causal:
            raise ExerciseError(f"is_causal on {what}: expected {causal}, got {verdict} ({hint})")
    passed(
        "your test accepts all 4 causal models and catches all 4 counterexamples, including a "
        "single leak from input 1 and a leak of 0.01"
    )
