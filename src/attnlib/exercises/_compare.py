"""How the exercise checks compare a learner's answer with the reference: shapes, then values,
then the known mistakes it reproduces. Re-exported by :mod:`attnlib.exercises`."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .._checks import shape

__all__ = ["ExerciseError", "expect_tensor", "expect_close", "matches", "diagnose"]


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
