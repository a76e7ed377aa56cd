"""Exercise 4 of the explanation chapter (duplicate-token heads, beside the induction heads): the
check accepts the reference and names the mistakes that confuse it with its neighbours."""

from __future__ import annotations

import pytest
import torch

from attnlib.exercises import ExerciseError
from attnlib.exercises import explanation as ex


def at_offset(offset_from_half):
    def answer(attentions, half):
        queries = torch.arange(half, attentions.size(-1))
        keys = queries - half + offset_from_half
        return attentions[..., queries, keys].mean(dim=(1, 3))

    return answer


def test_reference_passes_and_is_returned(capsys):
    got = ex.check_duplicate_token_score(ex.solution_duplicate_token_score)
    assert got is ex.solution_duplicate_token_score
    assert "Correct:" in capsys.readouterr().out


def test_template_runs_the_reference(capsys):
    def duplicate_token_score(attentions, half):
        """A template."""
        ...

    got = ex.check_duplicate_token_score(duplicate_token_score)
    assert got is ex.solution_duplicate_token_score
    assert "still the template" in capsys.readouterr().out


def test_the_hand_case_scores_one_zero_zero():
    what, attentions, half = ex._duplicate_cases()[0]
    torch.testing.assert_close(ex.solution_duplicate_token_score(attentions, half),
                               torch.tensor([[1.0, 0.0, 0.0]]))
    assert torch.allclose(attentions.sum(-1), torch.ones(1, 1, 3, 6))  # rows are distributions


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (at_offset(1), "this is the induction score"),
        (at_offset(-1), "one position too early"),
        (lambda a, half: at_offset(0)(a, half) + 0.01, "values differ"),
        (lambda a, half: a[..., torch.arange(half, a.size(-1)), torch.arange(half)].mean(-1),
         "average over the sequences (dim 1) too"),
        (lambda a, half: a[..., torch.arange(half, a.size(-1)), torch.arange(half)],
         "average over the second copy's queries"),
        (lambda a, half: a[..., torch.arange(half, a.size(-1)), torch.arange(half)].mean(1),
         "average over the queries too"),
    ],
    ids=["induction", "too-early", "values", "per-sequence", "per-query", "per-query-pooled"],
)
def test_mistakes_are_named(answer, expected):
    with pytest.raises(ExerciseError) as info:
        ex.check_duplicate_token_score(answer)
    assert expected in str(info.value)


def test_previous_token_offset_is_named():
    def previous(attentions, half):
        queries = torch.arange(half, attentions.size(-1))
        return attentions[..., queries, queries - 1].mean(dim=(1, 3))

    with pytest.raises(ExerciseError, match="this is the previous-token score"):
        ex.check_duplicate_token_score(previous)
