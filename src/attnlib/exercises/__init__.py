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

import functools
import importlib
from collections.abc import Callable, Sequence

import torch

from .._checks import shape
from ._compare import ExerciseError, diagnose, expect_close, expect_tensor, matches

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
    "is_unfilled",
    "checks",
    "ops_called",
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


def _template(*args, **kwargs):
    ...


def _documented_template(*args, **kwargs):
    """A template with a docstring."""
    ...


_TEMPLATE_CODES = {_template.__code__.co_code, _documented_template.__code__.co_code}


def is_unfilled(fn: Callable) -> bool:
    """True when ``fn`` is still a learner's template: a body of ``...`` (or ``pass``), perhaps
    under a docstring, and nothing else. Such a function only returns ``None``; its bytecode is
    that of :func:`_template`, whatever its parameters."""
    code = getattr(fn, "__code__", None)
    # `return 5` or `return True, 3` compiles to the same bytes as `...`, with another constant:
    # only None (and a docstring) may be among the constants of a template.
    return (code is not None and code.co_code in _TEMPLATE_CODES
            and all(c is None or c == fn.__doc__ for c in code.co_consts))


def checks(solution: Callable) -> Callable[[Callable], Callable]:
    """Decorate a ``check_*`` function so that an unfilled template is not an error.

    Each exercise in a chapter gives the learner a template (the signature and ``...``) and a
    cell that checks it. Until the template is filled in, the check says so and runs on the
    reference ``solution`` instead, so the chapter executes top to bottom (and nbval checks the
    check). Any other answer is checked as given.
    """

    def wrap(check: Callable) -> Callable:
        @functools.wraps(check)
        def run(fn: Callable, *args, **kwargs):
            if is_unfilled(fn):
                print(
                    f"`{fn.__name__}` is still the template (its body is `...`): fill it in and "
                    f"run this cell again. Meanwhile, the reference solution `{solution.__name__}`:"
                )
                fn = solution
            return check(fn, *args, **kwargs)

        run.solution = solution
        return run

    return wrap


def ops_called(fn: Callable, *args, **kwargs) -> tuple[object, set[str]]:
    """Run ``fn(*args, **kwargs)`` and return ``(result, names)``: the names of the ATen operators
    it ran (``"_softmax"``, ``"exp"``, ``"bmm"``...), overloads stripped. A check uses it to refuse
    a shortcut the exercise rules out (``torch.softmax`` in a softmax written from ``exp``,
    ``sum`` and ``max``), the same on every device."""
    from torch.utils._python_dispatch import TorchDispatchMode

    names: set[str] = set()

    class _Log(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            names.add(func.overloadpacket.__name__)
            return func(*args, **(kwargs or {}))

    with _Log():
        result = fn(*args, **kwargs)
    return result, names


def __getattr__(name: str):
    if name in _CHAPTERS:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'attnlib.exercises' has no attribute {name!r}")
