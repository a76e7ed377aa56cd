"""Exercise 5 of the chapter on positions and the Transformer block: NTK-aware RoPE scaling
(attnlib.exercises.transformer_block.check_ntk_frequencies)."""

from __future__ import annotations

import pytest
import torch

from attnlib.exercises import ExerciseError
from attnlib.exercises import transformer_block as ex
from attnlib.positional import rope_frequencies


def library_answer(dim, scale):
    return rope_frequencies(dim, base=10000.0 * scale ** (dim / (dim - 2)))


def test_solution_and_library_pass(capsys):
    ex.check_ntk_frequencies(ex.solution_ntk_frequencies)
    ex.check_ntk_frequencies(library_answer)
    assert capsys.readouterr().out.count("Correct:") == 2


def test_template_runs_the_reference_solution(capsys):
    def template(dim, scale): ...

    ex.check_ntk_frequencies(template)
    out = capsys.readouterr().out
    assert "is still the template" in out and out.count("Correct:") == 1


def test_solution_keeps_the_fastest_pair_and_slows_the_last_by_scale():
    for dim, scale in [(16, 4.0), (128, 8.0)]:
        got, plain = ex.solution_ntk_frequencies(dim, scale), rope_frequencies(dim)
        assert got[0] == 1.0
        torch.testing.assert_close(got[-1], plain[-1] / scale, rtol=1e-4, atol=0)


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (lambda dim, scale: rope_frequencies(dim, scale=scale), "position interpolation"),
        (lambda dim, scale: rope_frequencies(dim, base=10000.0 * scale), "by scale alone"),
        (
            lambda dim, scale: (10000.0 * scale ** (dim / (dim - 2)))
            ** (-torch.arange(dim // 2).float() / dim),
            "the exponent i/dim",
        ),
        (lambda dim, scale: rope_frequencies(dim), "expected"),  # ignores the scale
        (lambda dim, scale: rope_frequencies(dim)[None], "shape"),
        (lambda dim, scale: 1 / 0, "ZeroDivisionError"),
    ],
    ids=["interpolation", "no-exponent", "half-exponent", "ignores-scale", "shape", "crash"],
)
def test_mistakes_are_named(answer, expected):
    with pytest.raises(ExerciseError, match=expected):
        ex.check_ntk_frequencies(answer)
