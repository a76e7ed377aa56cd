"""The multi-head chapter's self-checks accept the references and name the classic mistakes."""

from __future__ import annotations

import math

import pytest
import torch

from attnlib.exercises import ExerciseError
from attnlib.exercises import multi_head as ex
from attnlib.multihead import MultiHeadAttention

# The reference solutions live in attnlib.exercises; the chapter shows their source.
split_heads = ex.solution_split_heads
merge_heads = ex.solution_merge_heads
multi_head_attention = ex.solution_multi_head_attention


def test_reference_solutions_pass(capsys):
    ex.check_split_heads(split_heads)
    ex.check_merge_heads(merge_heads)
    ex.check_multi_head_attention(multi_head_attention)
    assert capsys.readouterr().out.count("Correct:") == 3


def test_library_methods_pass_as_answers(capsys):
    def lib_split(x, H):
        return MultiHeadAttention(x.size(-1), H).split_heads(x)

    ex.check_split_heads(lib_split)
    ex.check_merge_heads(MultiHeadAttention(12, 3).merge_heads)
    assert capsys.readouterr().out.count("Correct:") == 2


# ------------------------------------------------------------------------------------------------
# split_heads: wrong answers
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (
            lambda x, H: x.reshape(x.size(0), H, x.size(1), x.size(2) // H),
            r"the shape is right but the numbers are shuffled: x.view\(N, H, L, E\)",
        ),
        (
            lambda x, H: x.view(x.size(0), x.size(1), x.size(2) // H, H).permute(0, 3, 1, 2),
            "dealt out round-robin",
        ),
        (
            lambda x, H: x.view(x.size(0), x.size(1), H, x.size(2) // H),
            r"got shape \(2, 5, 3, 4\), which is \(N, L, H, E\).*transpose\(1, 2\)",
        ),
        (
            lambda x, H: x.view(x.size(0), x.size(1), x.size(2) // H, H).transpose(1, 2),
            r"expected shape \(2, 3, 5, 4\) \(N, H, L, E\) with E = D / H = 12 / 3, got shape "
            r"\(2, 4, 5, 3\)",
        ),
        (lambda x, H: x.view(-1), r"expected shape \(2, 3, 5, 4\).*got shape \(120,\)"),
        (lambda x, H: "heads", "expected a torch.Tensor of shape"),
        (lambda x, H: split_heads(x, H) + 1e-2, "values differ; largest difference"),
    ],
)
def test_split_heads_mistakes(answer, message):
    with pytest.raises(ExerciseError, match=message):
        ex.check_split_heads(answer)


def test_split_heads_crash_names_the_case():
    def crashes(x, H):
        return x.view(x.size(0), H, -1, 7)

    with pytest.raises(ExerciseError, match=r"x \(2, 5, 12\) split into 3 heads: your function "
                                            r"raised RuntimeError"):
        ex.check_split_heads(crashes)


def test_split_heads_in_place_change_is_caught():
    def in_place(x, H):
        x.mul_(1.0)
        x.add_(1.0)
        return split_heads(x - 1.0, H)

    with pytest.raises(ExerciseError, match="changed its argument 0 in place"):
        ex.check_split_heads(in_place)


# ------------------------------------------------------------------------------------------------
# merge_heads: wrong answers
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (
            lambda x: x.reshape(x.size(0), x.size(2), -1),
            "reshaping \\(N, H, L, E\\) straight to \\(N, L, D\\) glues together rows",
        ),
        (
            lambda x: x.permute(0, 2, 3, 1).reshape(x.size(0), x.size(2), -1),
            "the features are interleaved",
        ),
        (
            lambda x: x.transpose(1, 2).view(x.size(0), x.size(2), -1),
            r"your function raised RuntimeError: view size is not compatible",
        ),
        (lambda x: x.transpose(1, 2), r"expected shape \(2, 5, 12\) \(N, L, H \* E\), got shape "
                                      r"\(2, 5, 3, 4\)"),
        (lambda x: merge_heads(x).double() * 2, "values differ"),
    ],
)
def test_merge_heads_mistakes(answer, message):
    with pytest.raises(ExerciseError, match=message):
        ex.check_merge_heads(answer)


# ------------------------------------------------------------------------------------------------
# The whole layer: wrong answers
# ------------------------------------------------------------------------------------------------


def scale_by_D(x, w_q, w_k, w_v, w_o, H, mask=None):
    q, k, v = (split_heads(x @ w, H) for w in (w_q, w_k, w_v))
    scores = q @ k.transpose(-2, -1) / math.sqrt(x.size(-1))  # wrong: sqrt(D)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    return merge_heads(weights @ v) @ w_o, weights


def no_output_projection(x, w_q, w_k, w_v, w_o, H, mask=None):
    _, weights = multi_head_attention(x, w_q, w_k, w_v, w_o, H, mask)
    v = split_heads(x @ w_v, H)
    return merge_heads(weights @ v), weights


def averaged_weights(x, w_q, w_k, w_v, w_o, H, mask=None):
    out, weights = multi_head_attention(x, w_q, w_k, w_v, w_o, H, mask)
    return out, weights.mean(dim=1)


def ignores_mask(x, w_q, w_k, w_v, w_o, H, mask=None):
    return multi_head_attention(x, w_q, w_k, w_v, w_o, H)


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (scale_by_D, r"scale of 1/sqrt\(D\) = 1/sqrt\(12\), the model size.*1/sqrt\(4\)"),
        (no_output_projection, "apply the output projection w_o"),
        (averaged_weights, r"weights: expected shape \(2, 3, 5, 5\) \(N, H, L, L\).*average"),
        (ignores_mask, r"with 4 heads and a causal mask, weights: values differ"),
        (lambda *a, **k: multi_head_attention(*a, **k)[0], "expected a pair"),
    ],
)
def test_multi_head_mistakes(answer, message):
    with pytest.raises(ExerciseError, match=message):
        ex.check_multi_head_attention(answer)


# ------------------------------------------------------------------------------------------------
# Templates and the prediction
# ------------------------------------------------------------------------------------------------


def _template(*args):
    """The learner's cell before it is filled in."""
    ...


@pytest.mark.parametrize(
    "check",
    [ex.check_split_heads, ex.check_merge_heads, ex.check_multi_head_attention,
     ex.check_predict_cost],
    ids=lambda c: c.__name__,
)
def test_an_unfilled_template_runs_the_reference(check, capsys):
    check(_template)
    out = capsys.readouterr().out
    assert "still the template" in out and f"`{check.solution.__name__}`" in out
    assert "Correct:" in out


def test_a_right_prediction_passes_and_the_truth_is_printed(capsys):
    def my_prediction():
        return 1_050_624, 160_000, 20_000

    ex.check_predict_cost(my_prediction)
    out = capsys.readouterr().out
    assert "measured: 1,050,624 parameters" in out and "Correct:" in out
    assert "still the template" not in out  # a function returning constants is an answer


@pytest.mark.parametrize(
    ("prediction", "message"),
    [
        ((8 * 1_050_624, 160_000, 20_000), r"parameters: you predicted 8,404,992.*whatever the "
                                           r"number of heads"),
        ((4 * 512 * 512, 160_000, 20_000), r"parameters: you predicted 1,048,576.*4 \(D\^2 \+ D\)"),
        ((1_050_624, 20_000, 20_000), r"weights with 8 heads: you predicted 20,000, the layer has "
                                      r"160,000"),
        ((1_050_624, 160_000, 160_000), r"weights with 1 head.*grow with H"),
        ((1_050_624, 160_000), r"expected a triple \(parameters, weights_8, weights_1\)"),
        ((1.05e6, 160_000, 20_000), "three whole numbers"),
    ],
    ids=["params-times-H", "no-biases", "weights-8", "weights-1", "two-numbers", "float"],
)
def test_wrong_predictions_are_named(prediction, message):
    with pytest.raises(ExerciseError, match=message):
        ex.check_predict_cost(lambda: prediction)


def test_the_template_does_not_give_the_prediction_away(capsys):
    ex.check_predict_cost(_template)
    assert "1,050,624" not in capsys.readouterr().out
