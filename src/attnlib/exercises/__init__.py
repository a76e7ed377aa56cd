"""Self-checks for the course's exercises.

Each chapter's exercises live in a module named after the chapter's concept (``big_picture``,
``soft_lookup``, ``rnn_attention``, ``self_attention``, ...). For every exercise the module holds

* a ``solution_*`` function, the reference solution, written once: the check compares the learner's
  answer with it, the tests (tests/test_exercises_*.py) run it through the check, and the chapter
  shows its source under the exercise, folded;
* a ``check_*`` function that runs the learner's answer on a few cases and either prints a short
  confirmation or raises :class:`ExerciseError` with a message that says what was expected and what
  came back (shapes first, then values), naming the mistake when it recognises one.

The helpers below are what the checks share.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence

import torch

from .._checks import shape

__all__ = [
    "ExerciseError",
    "expect_close",
    "expect_tensor",
    "matches",
    "diagnose",
    "unpack",
    "passed",
    "call_answer",
    "cases_generator",
]

_CHAPTERS = {
    "big_picture",
    "soft_lookup",
    "rnn_attention",
    "self_attention",
    "multi_head",
    "masking",
    "transformer_block",
    "bert",
    "gpt",
    "t5",
    "explanation",
    "efficiency",
}


class ExerciseError(AssertionError):
    """Raised by a self-check when an answer is wrong; the message says how."""


def expect_tensor(
    got, expected: torch.Tensor, *, what: str, legend: str = "", hint: str = ""
) -> None:
    """Raise :class:`ExerciseError` unless ``got`` is a tensor of ``expected``'s shape.

    Args:
        got: the learner's result.
        expected: the reference result.
        what: a description of the case, used in the message.
        legend: the shape's letters, e.g. ``"(L, past + L)"``, written after the expected shape.
        hint: text appended to a wrong-shape message, e.g. a likely cause.
    """
    letters = f" {legend}" if legend else ""
    if not isinstance(got, torch.Tensor):
        raise ExerciseError(
            f"{what}: expected a torch.Tensor of shape {shape(expected)}{letters}, "
            f"got {type(got).__name__}"
        )
    if got.shape != expected.shape:
        raise ExerciseError(
            f"{what}: expected shape {shape(expected)}{letters}, got shape {shape(got)}{hint}"
        )


def expect_close(
    got, expected: torch.Tensor, *, what: str, atol: float = 1e-4, rtol: float = 1e-4
) -> None:
    """Raise :class:`ExerciseError` unless ``got`` matches ``expected`` in type, shape and values.

    Args:
        got: the learner's result.
        expected: the reference result.
        what: a description of the case, used in the message (e.g. "softmax of [1, 2, 3]").
    """
    expect_tensor(got, expected, what=what)
    got_f, exp_f = got.detach().double().cpu(), expected.detach().double().cpu()
    if torch.isnan(got_f).any() and not torch.isnan(exp_f).any():
        raise ExerciseError(f"{what}: your result contains NaN; the expected one does not")
    if not torch.allclose(got_f, exp_f, atol=atol, rtol=rtol):
        err = (got_f - exp_f).abs()
        idx = tuple(int(i) for i in torch.unravel_index(err.argmax(), err.shape))
        raise ExerciseError(
            f"{what}: values differ; largest difference {err.max().item():.3g} at index {idx} "
            f"(got {got_f[idx].item():.4f}, expected {exp_f[idx].item():.4f})"
        )


def matches(got, candidate: torch.Tensor, *, tol: float = 1e-4, equal_nan: bool = False) -> bool:
    """Whether ``got`` is a tensor equal to ``candidate``: same shape, values within ``tol``.

    Boolean tensors must be equal exactly (and both boolean); ``-inf`` matches ``-inf``.
    """
    if not isinstance(got, torch.Tensor) or got.shape != candidate.shape:
        return False
    if got.dtype == torch.bool or candidate.dtype == torch.bool:
        return got.dtype == candidate.dtype and bool(torch.equal(got.cpu(), candidate.cpu()))
    a, b = got.detach().double().cpu(), candidate.detach().double().cpu()
    return bool(torch.allclose(a, b, atol=tol, rtol=tol, equal_nan=equal_nan))


def diagnose(
    got,
    mistakes: Sequence[tuple[torch.Tensor, str]],
    what: str,
    *,
    expected: torch.Tensor | None = None,
    tol: float = 1e-4,
    distinct_tol: float | None = None,
    equal_nan: bool = False,
) -> None:
    """Raise :class:`ExerciseError` naming the first known mistake that ``got`` reproduces.

    Args:
        got: the learner's result.
        mistakes: pairs ``(result of the mistake on this case, message that explains it)``.
        what: a description of the case, used in the message.
        expected: the right answer; a mistake that gives it on this case is skipped, so a right
            answer is never blamed for a mistake it happens to agree with.
        tol: how close ``got`` must be to a mistake's result to be recognised as it.
        distinct_tol: how far a mistake's result must be from ``expected`` to count (``tol``
            when None).
        equal_nan: whether NaN in ``got`` matches NaN in a mistake's result.
    """
    apart = tol if distinct_tol is None else distinct_tol
    for result, message in mistakes:
        if not matches(got, result, tol=tol, equal_nan=equal_nan):
            continue
        if expected is not None and matches(result, expected, tol=apart, equal_nan=equal_nan):
            continue
        raise ExerciseError(f"{what}: {message}")


def unpack(result, names: Sequence[str], what: str) -> tuple:
    """``result`` as a tuple of ``len(names)`` items, else :class:`ExerciseError` naming them.

    ``names`` are the items the function must return, e.g. ``("output", "weights")``.
    """
    if isinstance(result, (tuple, list)) and len(result) == len(names):
        return tuple(result)
    kind = {2: "pair", 3: "triple"}.get(len(names), f"tuple of {len(names)}")
    got = (
        f"a {type(result).__name__} of length {len(result)}"
        if isinstance(result, (tuple, list))
        else f"a {type(result).__name__}"
    )
    listed = ", ".join(names)
    raise ExerciseError(
        f"{what}: expected a {kind} ({listed}), got {got}; end with `return {listed}`"
    )


def cases_generator(seed: int) -> torch.Generator:
    """A private generator for a check's cases: the same cases every time, and the learner's
    global random state is left alone."""
    return torch.Generator().manual_seed(seed)


def call_answer(fn: Callable, what: str, *args: torch.Tensor | None, **kwargs):
    """Call the learner's ``fn`` on copies of ``args``; turn a crash into :class:`ExerciseError`.

    The message names the case (``what``) and the shapes it was called with. A function that
    changes one of its tensor arguments in place is caught too.
    """
    copies = tuple(None if a is None else a.clone() for a in args)
    try:
        result = fn(*copies, **kwargs)
    except ExerciseError:
        raise
    except Exception as err:  # the learner's code failed: say on which case, keep the cause
        shapes = ", ".join("None" if a is None else shape(a) for a in args)
        raise ExerciseError(
            f"{what}: your function raised {type(err).__name__}: {err} "
            f"(called with shapes {shapes})"
        ) from err
    for i, (a, c) in enumerate(zip(args, copies, strict=True)):
        if a is not None and not torch.equal(a, c):
            raise ExerciseError(
                f"{what}: your function changed its argument {i} in place; compute new tensors "
                "instead (e.g. x - m, not x -= m)"
            )
    return result


def passed(message: str) -> None:
    """Print the confirmation a correct answer gets."""
    print(f"Correct: {message}")


def __getattr__(name: str):
    if name in _CHAPTERS:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'attnlib.exercises' has no attribute {name!r}")
