"""The RNN-attention chapter's self-checks: references pass, mistakes fail with clear messages."""

from __future__ import annotations

import pytest
import torch

import attnlib
from attnlib import scoring
from attnlib.exercises import ExerciseError, rnn_attention

# --- Exercise 1: Luong's general score --------------------------------------------------------


general = rnn_attention.solution_general_score  # the reference, shown in the chapter


def test_general_reference_agrees_with_the_library():
    q, k, W = torch.randn(2, 3, 4), torch.randn(2, 5, 6), torch.randn(4, 6)
    torch.testing.assert_close(general(q, k, W), scoring.general_scores(q, k, W))


def test_general_reference_passes(capsys):
    rnn_attention.check_general_score(general)
    assert capsys.readouterr().out.startswith("Correct: ")


def test_general_einsum_passes_too(capsys):
    rnn_attention.check_general_score(lambda q, k, W: torch.einsum("nle,ef,nsf->nls", q, W, k))
    assert "Correct:" in capsys.readouterr().out


def test_general_transposed_W_crashes_and_is_reported_with_shapes():
    with pytest.raises(ExerciseError) as info:
        rnn_attention.check_general_score(lambda q, k, W: q @ W.T @ k.transpose(-2, -1))
    message = str(info.value)
    assert "your function raised RuntimeError" in message
    assert "called with shapes (1, 1, 2), (1, 2, 3), (2, 3)" in message


def test_general_wrong_orientation_fails_on_shape():
    with pytest.raises(ExerciseError, match=r"expected shape \(1, 1, 2\), got shape \(1, 2, 1\)"):
        rnn_attention.check_general_score(lambda q, k, W: general(q, k, W).transpose(-2, -1))


def test_general_forgetting_W_fails_on_values_for_the_identity_case_only_if_sizes_match():
    def dot_only(query, key, W):
        if query.size(-1) != key.size(-1):
            return general(query, key, W)  # cheat on the cases where a dot product cannot work
        return query @ key.transpose(-2, -1) * 2  # wrong values

    with pytest.raises(ExerciseError, match=r"identity .*values differ; largest difference"):
        rnn_attention.check_general_score(dot_only)


def test_general_nan_is_named():
    with pytest.raises(ExerciseError, match="contains NaN"):
        rnn_attention.check_general_score(lambda q, k, W: general(q, k, W) * float("nan"))


# --- Exercise 2: one Bahdanau step ------------------------------------------------------------


bahdanau_step = rnn_attention.solution_bahdanau_step  # the reference, shown in the chapter


def test_bahdanau_reference_passes(capsys):
    rnn_attention.check_bahdanau_step(bahdanau_step)
    assert capsys.readouterr().out.startswith("Correct: ")


def test_bahdanau_forgetting_the_mask_is_named():
    def no_mask(s_prev, memory, lengths, W_q, W_k, v):
        return bahdanau_step(s_prev, memory, torch.full_like(lengths, memory.size(1)), W_q, W_k, v)

    with pytest.raises(ExerciseError) as info:
        rnn_attention.check_bahdanau_step(no_mask)
    message = str(info.value)
    assert "padding positions (j >= lengths[n]) must get weight exactly 0" in message
    assert "mask them with -inf before the softmax" in message


def test_bahdanau_softmax_over_the_batch_fails_on_values():
    def wrong_axis(s_prev, memory, lengths, W_q, W_k, v):
        q_h = s_prev @ W_q.T
        scores = torch.tanh(q_h[:, None, :] + memory @ W_k.T) @ v  # (N, S)
        real = torch.arange(memory.size(1))[None, :] < lengths[:, None]
        weights = torch.softmax(scores.masked_fill(~real, -1e4), dim=0) * real  # wrong axis
        return (weights[:, :, None] * memory).sum(1), weights

    with pytest.raises(ExerciseError, match=r"weights of .*values differ"):
        rnn_attention.check_bahdanau_step(wrong_axis)


def test_bahdanau_wrong_shapes_and_types_are_named():
    with pytest.raises(ExerciseError, match=r"expected shape \(2, 4\), got shape \(2, 1, 4\)"):
        rnn_attention.check_bahdanau_step(
            lambda *a: (bahdanau_step(*a)[0], bahdanau_step(*a)[1][:, None])
        )
    with pytest.raises(ExerciseError, match=r"expected a pair \(context, weights\), got a Tensor"):
        rnn_attention.check_bahdanau_step(lambda *a: bahdanau_step(*a)[0])
    with pytest.raises(ExerciseError, match=r"context of .*expected shape \(2, 3\), got shape"):
        rnn_attention.check_bahdanau_step(
            lambda *a: (bahdanau_step(*a)[0][:, None], bahdanau_step(*a)[1])
        )


def test_bahdanau_context_from_the_wrong_vectors_fails():
    def summed_keys(s_prev, memory, lengths, W_q, W_k, v):
        context, weights = bahdanau_step(s_prev, memory, lengths, W_q, W_k, v)
        return context + 0.1, weights

    with pytest.raises(ExerciseError, match=r"context of .*values differ"):
        rnn_attention.check_bahdanau_step(summed_keys)


def test_bahdanau_in_place_change_is_caught():
    def in_place(s_prev, memory, lengths, W_q, W_k, v):
        memory[lengths.new_zeros(())] = 0.0  # scribbles on the input
        return bahdanau_step(s_prev, memory, lengths, W_q, W_k, v)

    with pytest.raises(ExerciseError, match="changed its argument 1 in place"):
        rnn_attention.check_bahdanau_step(in_place)


def test_bahdanau_reference_agrees_with_the_library():
    s_prev, memory = torch.randn(2, 3), torch.randn(2, 4, 3)
    lengths, v = torch.tensor([4, 2]), torch.randn(5)
    W_q, W_k = torch.randn(5, 3), torch.randn(5, 3)
    scores = scoring.additive_scores(s_prev[:, None, :], memory, W_q, W_k, v)  # (N, 1, S)
    mask = attnlib.masks.padding_mask(lengths, 4)[:, 0]  # (N, 1, S)
    context, weights = scoring.attend(scores, memory, mask)  # (N, 1, D), (N, 1, S)
    got_context, got_weights = bahdanau_step(s_prev, memory, lengths, W_q, W_k, v)
    torch.testing.assert_close(got_weights, weights[:, 0])
    torch.testing.assert_close(got_context, context[:, 0])


# --- every check: an unfilled template runs the reference -------------------------------------


def _template_general(query, key, W): ...


def _template_step(s_prev, memory, lengths, W_q, W_k, v):
    """Your code here."""
    ...


def _template_parameters(kind, query_size, key_size, hidden_size): ...


@pytest.mark.parametrize(
    "check, template",
    [
        (rnn_attention.check_general_score, _template_general),
        (rnn_attention.check_bahdanau_step, _template_step),
        (rnn_attention.check_score_parameters, _template_parameters),
    ],
)
def test_a_template_is_routed_to_the_reference(check, template, capsys):
    check(template)
    out = capsys.readouterr().out
    assert "is still the template" in out and "Correct: " in out


# --- Exercise 3: predict the parameter counts -------------------------------------------------


count = rnn_attention.solution_score_parameters


def test_score_parameters_reference_passes_and_prints_the_chapter_sizes(capsys):
    rnn_attention.check_score_parameters(count)
    out = capsys.readouterr().out
    assert "additive 8,256, dot 0, general 4,096, concat 8,256" in out


@pytest.mark.parametrize("kind", scoring.SCORES)
def test_score_parameters_reference_counts_the_modules(kind):
    sizes = (5, 5, 3) if kind == "dot" else (3, 7, 4)
    module = scoring.make_score(kind, *sizes)
    assert count(kind, *sizes) == sum(p.numel() for p in module.parameters())


def test_score_parameters_forgetting_v_fails():
    def without_v(kind, q, k, h):
        return {"additive": h * (q + k), "dot": 0, "general": q * k, "concat": h * (q + k)}[kind]

    with pytest.raises(ExerciseError, match=r"additive with Eq = 64.*predicted 8,192.*has 8,256"):
        rnn_attention.check_score_parameters(without_v)


def test_score_parameters_a_square_general_matrix_fails():
    def square(kind, q, k, h):
        return q * q if kind == "general" else count(kind, q, k, h)

    with pytest.raises(ExerciseError, match=r"general with Eq = 3, Ek = 5"):
        rnn_attention.check_score_parameters(square)


def test_score_parameters_counting_a_bias_fails():
    def with_bias(kind, q, k, h):
        return count(kind, q, k, h) + (h if kind in ("additive", "concat") else 0)

    with pytest.raises(ExerciseError, match="none of these scores has a bias"):
        rnn_attention.check_score_parameters(with_bias)


def test_score_parameters_non_integer_is_named():
    with pytest.raises(ExerciseError, match="expected a whole number, got '8256'"):
        rnn_attention.check_score_parameters(lambda kind, q, k, h: str(count(kind, q, k, h)))


def test_score_parameters_accepts_whole_floats_and_tensors(capsys):
    rnn_attention.check_score_parameters(lambda kind, q, k, h: float(count(kind, q, k, h)))
    rnn_attention.check_score_parameters(lambda kind, q, k, h: torch.tensor(count(kind, q, k, h)))
    assert capsys.readouterr().out.count("Correct: ") == 2
