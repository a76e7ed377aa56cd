"""The masking chapter's self-checks accept the references and name the classic mistakes."""

from __future__ import annotations

import pytest
import torch

import attnlib
from attnlib.exercises import ExerciseError
from attnlib.exercises import masking as ex

# The reference solutions live in attnlib.exercises; the chapter shows their source.
padding_mask = ex.solution_padding_mask
causal_mask = ex.solution_causal_mask
masked_softmax = ex.solution_masked_softmax


def test_reference_solutions_pass(capsys):
    ex.check_padding_mask(padding_mask)
    ex.check_causal_mask(causal_mask)
    ex.check_masked_softmax(masked_softmax)
    assert capsys.readouterr().out.count("Correct:") == 3


def test_library_functions_pass_as_answers(capsys):
    ex.check_padding_mask(lambda n, S: attnlib.masks.padding_mask(n, S)[:, 0, 0, :])
    from attnlib.widgets.masks import masked_softmax as widget_softmax

    ex.check_masked_softmax(widget_softmax)
    assert capsys.readouterr().out.count("Correct:") == 2


@pytest.mark.parametrize(
    "shortcut",
    [
        lambda L, S: attnlib.masks.causal_mask(L, S),
        lambda L, S: torch.ones(L, S, dtype=torch.bool).tril(),
        lambda L, S: torch.tril(torch.ones(L, S)).bool(),
        lambda L, S: ~torch.ones(L, S, dtype=torch.bool).triu(1),
    ],
    ids=["attnlib.causal_mask", "Tensor.tril", "torch.tril", "triu"],
)
def test_causal_mask_refuses_tril_and_triu(shortcut):
    # Exercise 2 asks for the mask from two aranges: a right mask cut out with tril is refused.
    with pytest.raises(ExerciseError, match=r"the mask is right, but it is cut out with tri[lu]"):
        ex.check_causal_mask(shortcut)


def test_causal_mask_from_a_comparison_passes(capsys):
    ex.check_causal_mask(lambda L, S: torch.arange(S)[None, :] <= torch.arange(L)[:, None])
    assert "Correct:" in capsys.readouterr().out


def _template(*args):
    """The learner's cell before it is filled in."""
    ...


@pytest.mark.parametrize(
    "check",
    [ex.check_padding_mask, ex.check_causal_mask, ex.check_masked_softmax,
     ex.check_causality_test],
    ids=lambda c: c.__name__,
)
def test_an_unfilled_template_runs_the_reference(check, capsys):
    check(_template)
    out = capsys.readouterr().out
    assert "still the template" in out and f"`{check.solution.__name__}`" in out
    assert "Correct:" in out


# ------------------------------------------------------------------------------------------------
# Exercise 4: the learner's test of the causal claim
# ------------------------------------------------------------------------------------------------


def test_reference_causality_test_passes(capsys):
    ex.check_causality_test(ex.solution_causality_test)
    assert "the single leak included" in capsys.readouterr().out


def changes_only_the_last_token(layer, L, D):  # misses a leak from a middle token
    x = torch.randn(1, L, D)
    changed = x.clone()
    changed[:, -1] = torch.randn(D)
    return bool(((layer(changed) - layer(x))[:, :-1] == 0).all())


def compares_every_output(layer, L, D):  # the outputs at and after s are meant to move
    x = torch.randn(1, L, D)
    changed = x.clone()
    changed[:, 1] = torch.randn(D)
    return bool((layer(changed) == layer(x)).all())


@pytest.mark.parametrize(
    ("learner_test", "message"),
    [
        (lambda layer, L, D: True, "accepts bidirectional self-attention"),
        (lambda layer, L, D: False, "rejects causal self-attention, which is causal"),
        (changes_only_the_last_token, "accepts causal self-attention except that position 0 "
                                      "also reads position 3, which reads ahead"),
        (compares_every_output, "rejects causal self-attention, which is causal"),
        (lambda layer, L, D: layer(torch.randn(L, D)).sum(), "returned Tensor|raised"),
        (lambda layer, L, D: layer(torch.randn(1, L + 1, D)), "your test raised"),
    ],
    ids=["always-true", "always-false", "last-token-only", "every-output", "not-a-bool", "crash"],
)
def test_causality_test_mistakes(learner_test, message):
    with pytest.raises(ExerciseError, match=message):
        ex.check_causality_test(learner_test)


# ------------------------------------------------------------------------------------------------
# Padding masks
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (lambda n, S: ~padding_mask(n, S), "polarity is inverted: that is PyTorch's key_padding"),
        (lambda n, S: torch.arange(S)[None, :] <= n[:, None], "off by one"),
        (lambda n, S: padding_mask(n, S).float(), "expected dtype torch.bool"),
        (lambda n, S: padding_mask(n, S)[:, None, None, :], r"expected shape \(3, 5\), got shape "
                                                           r"\(3, 1, 1, 5\)"),
        (lambda n, S: padding_mask(n, S).tolist(), "expected a boolean torch.Tensor"),
        (
            lambda n, S: torch.arange(S)[None, :] < n.flip(0)[:, None],
            r"values differ in \d+ places; expected rows 11100 / 11111 / 10000, "
            r"got 10000 / 11111 / 11100",
        ),
    ],
)
def test_padding_mask_mistakes(answer, message):
    with pytest.raises(ExerciseError, match=message):
        ex.check_padding_mask(answer)


# ------------------------------------------------------------------------------------------------
# Causal masks
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (lambda L, S: ~causal_mask(L, S), "the triangle is inverted"),
        (lambda L, S: torch.ones(L, S, dtype=torch.bool).triu(), "values differ|inverted"),
        (lambda L, S: torch.ones(L, S, dtype=torch.bool).tril(-1), "the diagonal is missing"),
        (
            lambda L, S: torch.ones(L, S, dtype=torch.bool).tril(S - L),
            "L = 3, S = 5: the mask is aligned bottom-right",
        ),
        (lambda L, S: torch.ones(L, L).tril(), "L = 4, S = 4: expected dtype torch.bool"),
        (lambda L, S: causal_mask(L, L), r"L = 3, S = 5: expected shape \(3, 5\), got shape "
                                        r"\(3, 3\)"),
    ],
)
def test_causal_mask_mistakes(answer, message):
    with pytest.raises(ExerciseError, match=message):
        ex.check_causal_mask(answer)


# ------------------------------------------------------------------------------------------------
# Masked softmax
# ------------------------------------------------------------------------------------------------


def naive(scores, mask):
    return torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)


def zeroed_after(scores, mask):
    return torch.softmax(scores, dim=-1) * mask


def inverted(scores, mask):
    return masked_softmax(scores, ~mask)


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (naive, r"one row all False: your result contains NaN in the rows \[\[0, 1\], \[1, 1\]\]"
                r".*0 / 0 = NaN"),
        (zeroed_after, "zeroed after a softmax over all keys"),
        (inverted, "polarity is inverted"),
        (lambda s, m: masked_softmax(s, m)[..., :-1], r"expected shape \(2, 4, 5\), got shape "
                                                      r"\(2, 4, 4\)"),
        (lambda s, m: masked_softmax(s / 2, m), "values differ; largest difference"),
        (lambda s, m: s.tolist(), "expected a torch.Tensor"),
    ],
)
def test_masked_softmax_mistakes(answer, message):
    with pytest.raises(ExerciseError, match=message):
        ex.check_masked_softmax(answer)


def test_masked_softmax_may_not_change_its_input():
    def in_place(scores, mask):
        return scores.masked_fill_(~mask, float("-inf")).softmax(-1).nan_to_num(0.0)

    with pytest.raises(ExerciseError, match="changed its argument 0 in place"):
        ex.check_masked_softmax(in_place)
