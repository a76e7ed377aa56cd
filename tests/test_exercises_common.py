"""The pieces every chapter's exercises share: the template detector, the @checks decorator and
the operator log that refuses a ruled-out shortcut."""

import pytest
import torch

from attnlib import exercises as ex


def _plain(x): ...


def _documented(x, dim=-1):
    """Your code here."""
    ...


def _passed(x):
    pass


def _forgot_return(x):
    x.exp()


def _answer(x):
    return x.exp()


@pytest.mark.parametrize("fn", [_plain, _documented, _passed])
def test_templates_are_unfilled(fn):
    assert ex.is_unfilled(fn)


@pytest.mark.parametrize("fn", [_forgot_return, _answer, torch.exp])
def test_answers_are_not_templates(fn):
    assert not ex.is_unfilled(fn)


def test_checks_runs_the_solution_for_a_template_and_the_answer_otherwise(capsys):
    seen = []

    @ex.checks(_answer)
    def check(fn):
        seen.append(fn)

    check(_documented)
    assert seen == [_answer]
    assert "still the template" in capsys.readouterr().out
    check(_forgot_return)
    assert seen == [_answer, _forgot_return]
    assert check.solution is _answer


def test_ops_called_sees_a_library_softmax_and_not_a_hand_written_one():
    x = torch.randn(2, 5)
    _, library = ex.ops_called(torch.softmax, x, -1)
    shifted = lambda s: (s - s.max(-1, keepdim=True).values).exp()  # noqa: E731
    _, by_hand = ex.ops_called(shifted, x)
    assert "_softmax" in library
    assert "_softmax" not in by_hand and {"exp", "max"} <= by_hand
