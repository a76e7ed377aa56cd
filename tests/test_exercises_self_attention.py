"""The self-attention chapter's self-checks accept the references and name the classic mistakes."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import attnlib
from attnlib.exercises import ExerciseError
from attnlib.exercises import self_attention as ex

# The reference solutions live in attnlib.exercises; the chapter shows their source.
stable_softmax = ex.solution_softmax
attention = ex.solution_attention
self_attention_head = ex.solution_self_attention


def test_reference_solutions_pass(capsys):
    ex.check_softmax(stable_softmax)
    ex.check_attention(attention)
    ex.check_self_attention(self_attention_head)
    out = capsys.readouterr().out
    assert out.count("Correct:") == 3


def test_library_attention_passes_as_an_answer(capsys):
    ex.check_attention(
        lambda q, k, v, m=None: attnlib.scaled_dot_product_attention(q, k, v, attn_mask=m)
    )
    assert capsys.readouterr().out.count("Correct:") == 1


@pytest.mark.parametrize(
    "shortcut",
    [
        lambda s: torch.softmax(s, dim=-1),
        lambda s: F.softmax(s, dim=-1),
        lambda s: s.softmax(-1),
        lambda s: F.log_softmax(s, dim=-1).exp(),
        lambda s: (s - torch.logsumexp(s, dim=-1, keepdim=True)).exp(),
    ],
    ids=["torch.softmax", "F.softmax", "Tensor.softmax", "log_softmax", "logsumexp"],
)
def test_softmax_refuses_a_library_softmax(shortcut):
    # Exercise 1 asks for a softmax from exp, sum and max: right numbers are not enough.
    with pytest.raises(ExerciseError, match="runs a library softmax.*from exp, sum and max"):
        ex.check_softmax(shortcut)


def _template(x):
    """The learner's cell before it is filled in."""
    ...


@pytest.mark.parametrize(
    "check",
    [ex.check_softmax, ex.check_attention, ex.check_self_attention, ex.check_scale_test],
    ids=lambda c: c.__name__,
)
def test_an_unfilled_template_runs_the_reference(check, capsys):
    check(_template)
    out = capsys.readouterr().out
    assert "still the template" in out and f"`{check.solution.__name__}`" in out
    assert "Correct:" in out


# ------------------------------------------------------------------------------------------------
# Exercise 4: the learner's test of the scale
# ------------------------------------------------------------------------------------------------


def test_reference_scale_test_passes(capsys):
    ex.check_scale_test(ex.solution_scale_test)
    assert "rejects all five wrong ones" in capsys.readouterr().out


def rows_sum_to_one(attention):  # a test of the wrong property: every candidate passes it
    _, w = attention(torch.randn(3, 5), torch.randn(7, 5), torch.randn(7, 2))
    return bool(torch.allclose(w.sum(-1), torch.ones(3)))


def square_sizes(attention):  # L = S = E: a scale by sqrt(S) or sqrt(L) looks right
    q, k, v = torch.randn(4, 4), torch.randn(4, 4), torch.randn(4, 4)
    _, w = attention(q, k, v)
    return bool(torch.allclose(w, torch.softmax(q @ k.T / 2.0, dim=-1), atol=1e-5))


@pytest.mark.parametrize(
    ("learner_test", "message"),
    [
        (lambda attention: True, "accepts an attention without any scale"),
        (lambda attention: False, "rejects a correct attention"),
        (rows_sum_to_one, "accepts an attention without any scale"),
        (square_sizes, "accepts an attention scaled by 1/sqrt\\(S\\).*all different"),
        (lambda attention: "yes", "returned str; return True or False"),
        (lambda attention: attention(torch.randn(3, 5)), "your test raised TypeError"),
    ],
    ids=["always-true", "always-false", "wrong-property", "square-sizes", "not-a-bool", "crash"],
)
def test_scale_test_mistakes(learner_test, message):
    with pytest.raises(ExerciseError, match=message):
        ex.check_scale_test(learner_test)


# ------------------------------------------------------------------------------------------------
# Softmax: wrong answers
# ------------------------------------------------------------------------------------------------


def naive_softmax(scores):
    e = scores.exp()
    return e / e.sum(dim=-1, keepdim=True)


def naive_softmax_over(scores, dim):
    e = scores.exp()
    return e / e.sum(dim=dim, keepdim=True)


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (naive_softmax, "[1000, 1001, 1002]: your result contains NaN"),
        (lambda s: s.exp(), "these are exp(scores)"),
        (lambda s: naive_softmax_over(s - s.max(dim=0, keepdim=True).values, dim=0),
         "ran over the first dimension"),
        (
            lambda s: (s - s.max()).exp() / (s - s.max()).exp().sum(),
            "normalised over the whole tensor",
        ),
        (lambda s: stable_softmax(s)[..., :-1], "expected shape (3,), got shape (2,)"),
        (lambda s: stable_softmax(s).tolist(), "expected a torch.Tensor of shape (3,), got list"),
        (lambda s: stable_softmax(s) + 0.01, "values differ"),
    ],
    ids=["overflow", "no-normalisation", "wrong-dim", "whole-tensor", "shape", "type", "values"],
)
def test_softmax_mistakes(answer, expected):
    with pytest.raises(ExerciseError) as info:
        ex.check_softmax(answer)
    assert expected in str(info.value)


def test_softmax_overflow_message_explains_the_fix():
    with pytest.raises(ExerciseError, match="subtract each row's maximum"):
        ex.check_softmax(naive_softmax)


def test_softmax_in_place_and_crash():
    def in_place(s):
        s -= s.max(dim=-1, keepdim=True).values
        return stable_softmax(s)

    def crashes(s):
        raise RuntimeError("boom")

    with pytest.raises(ExerciseError, match="changed its argument 0 in place"):
        ex.check_softmax(in_place)
    with pytest.raises(ExerciseError, match=r"raised RuntimeError: boom \(called with shapes"):
        ex.check_softmax(crashes)


# ------------------------------------------------------------------------------------------------
# Attention: wrong answers
# ------------------------------------------------------------------------------------------------


def _attention_with(scale_fn=None, dim=-1, mask_mode="right", value_is_key=False):
    def answer(query, key, value, mask=None):
        scale = 1 / math.sqrt(query.size(-1)) if scale_fn is None else scale_fn(query, key)
        scores = query @ key.transpose(-2, -1) * scale
        if mask is not None and mask_mode == "right":
            scores = scores.masked_fill(~mask, float("-inf"))
        if mask is not None and mask_mode == "inverted":
            scores = scores.masked_fill(mask, float("-inf"))
        weights = torch.softmax(scores, dim=dim)
        if mask is not None and mask_mode == "after":
            weights = weights * mask
        return weights @ (key if value_is_key else value), weights

    return answer


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (_attention_with(lambda q, k: 1.0), "without the scale"),
        (_attention_with(lambda q, k: 1 / math.sqrt(k.size(-2))), "1/sqrt(S) = 1/sqrt(6)"),
        (_attention_with(lambda q, k: 1 / math.sqrt(q.size(-2))), "1/sqrt(L) = 1/sqrt(4)"),
        (_attention_with(lambda q, k: 1 / q.size(-1)), "divide by sqrt(E), not by E"),
        (_attention_with(dim=-2), "the softmax ran over the queries (dim=-2)"),
        (_attention_with(mask_mode="ignored"), "the weights ignore the mask"),
        (_attention_with(mask_mode="inverted"), "the mask's polarity is inverted"),
        (_attention_with(mask_mode="after"), "zeroed after the softmax"),
        (_attention_with(value_is_key=True), "got shape (4, 16): one output row per query"),
    ],
    ids=["no-scale", "sqrt-S", "sqrt-L", "by-E", "wrong-dim", "mask-ignored", "mask-inverted",
         "mask-after-softmax", "keys-as-values"],
)
def test_attention_mistakes(answer, expected):
    with pytest.raises(ExerciseError) as info:
        ex.check_attention(answer)
    assert expected in str(info.value)


def test_attention_shape_messages():
    def transposed(query, key, value, mask=None):
        out, w = attention(query, key, value, mask)
        return out, w.transpose(-2, -1)

    def output_only(query, key, value, mask=None):
        return attention(query, key, value, mask)[0]

    def squeezed(query, key, value, mask=None):
        out, w = attention(query, key, value, mask)
        return out.sum(-1), w

    with pytest.raises(ExerciseError, match=r"expected shape \(4, 6\), got shape \(6, 4\): the "
                       r"last two dimensions are swapped"):
        ex.check_attention(transposed)
    with pytest.raises(ExerciseError, match=r"expected a pair \(output, weights\), got a Tensor"):
        ex.check_attention(output_only)
    with pytest.raises(ExerciseError, match=r"output: expected shape \(4, 5\), got shape \(4,\)"):
        ex.check_attention(squeezed)


# ------------------------------------------------------------------------------------------------
# Self-attention head: wrong answers
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (
            lambda x, wq, wk, wv, m=None: attention(x @ wq, x @ wk, x @ wk, m),
            "the last dimension is E = 4, the key size; were the values projected with w_k?",
        ),
        (
            lambda x, wq, wk, wv, m=None: attention(x @ wq, x @ wk, x, m),
            "the last dimension is D = 12, so the values were not projected",
        ),
        (
            lambda x, wq, wk, wv, m=None: _attention_with(lambda q, k: 1 / math.sqrt(12))(
                x @ wq, x @ wk, x @ wv, m),
            "1/sqrt(D) = 1/sqrt(12), the model size",
        ),
        (
            lambda x, wq, wk, wv, m=None: attention(x @ wk, x @ wq, x @ wv, m),
            "queries and keys are swapped",
        ),
        (
            lambda x, wq, wk, wv, m=None: _attention_with(lambda q, k: 1 / math.sqrt(6))(
                x @ wq, x @ wk, x @ wv, m),
            "1/sqrt(S) = 1/sqrt(6)",
        ),
    ],
    ids=["keys-as-values", "values-unprojected", "sqrt-D", "q-k-swapped", "sqrt-n"],
)
def test_self_attention_mistakes(answer, expected):
    with pytest.raises(ExerciseError) as info:
        ex.check_self_attention(answer)
    assert expected in str(info.value)


def test_self_attention_keys_as_values_when_sizes_agree():
    # Only the third case has Ev = E; a function that uses w_k for values when shapes allow it
    # passes the first two cases and must still be caught by value.
    def sneaky(x, wq, wk, wv, m=None):
        return attention(x @ wq, x @ wk, x @ wk if wv.shape == wk.shape else x @ wv, m)

    with pytest.raises(ExerciseError, match="the output averages x @ w_k, the keys"):
        ex.check_self_attention(sneaky)


def test_checks_leave_global_random_state_alone():
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    ex.check_attention(attention)
    assert torch.equal(before, torch.random.get_rng_state())
