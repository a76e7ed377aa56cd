"""Self-checks for the course's exercises.

Each chapter's exercises have a ``check_*`` function in a module named after the chapter's concept
(``big_picture``, ``soft_lookup``, ``rnn_attention``, ``self_attention``, ...). A check runs the
learner's answer on a few cases, compares it with a reference, and either prints a short
confirmation or raises
:class:`ExerciseError` with a message that says what was expected and what came back (shapes first,
then values). The reference solutions themselves run in CI (tests/test_exercises_*.py).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

import torch

__all__ = ["ExerciseError", "expect_close", "passed", "call_answer", "cases_generator"]

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


def _shape(x) -> str:
    return str(tuple(x.shape)) if hasattr(x, "shape") else type(x).__name__


def expect_close(
    got, expected: torch.Tensor, *, what: str, atol: float = 1e-4, rtol: float = 1e-4
) -> None:
    """Raise :class:`ExerciseError` unless ``got`` matches ``expected`` in type, shape and values.

    Args:
        got: the learner's result.
        expected: the reference result.
        what: a description of the case, used in the message (e.g. "softmax of [1, 2, 3]").
    """
    if not isinstance(got, torch.Tensor):
        raise ExerciseError(
            f"{what}: expected a torch.Tensor of shape {_shape(expected)}, "
            f"got {type(got).__name__}"
        )
    if got.shape != expected.shape:
        raise ExerciseError(
            f"{what}: expected shape {_shape(expected)}, got shape {_shape(got)}"
        )
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
        shapes = ", ".join("None" if a is None else _shape(a) for a in args)
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
