"""The BERT chapter's self-checks: references pass, typical mistakes fail with clear messages."""

from __future__ import annotations

import pytest
import torch

from attnlib.exercises import ExerciseError
from attnlib.exercises import bert as ex

# --- Exercise 1: mean pooling ---------------------------------------------------------------


mean_pool = ex.solution_mean_pool  # the reference, shown in the chapter


def test_mean_pool_reference_passes(capsys):
    ex.check_mean_pool(mean_pool)
    assert capsys.readouterr().out.startswith("Correct: ")


def test_mean_pool_library_function_passes(capsys):
    from attnlib.models.bert import mean_pool as library

    ex.check_mean_pool(library)
    assert "Correct" in capsys.readouterr().out


def test_mean_pool_forgetting_the_mask_fails_on_values():
    with pytest.raises(ExerciseError) as info:
        ex.check_mean_pool(lambda h, m: h.mean(1))
    message = str(info.value)
    assert "mean pooling of hidden (3, 5, 4) with lengths 5, 2 and 1" in message
    assert "values differ; largest difference" in message


def test_mean_pool_dividing_by_the_padded_length_fails():
    with pytest.raises(ExerciseError, match="values differ"):
        ex.check_mean_pool(lambda h, m: (h * m[..., None]).sum(1) / h.size(1))


def test_mean_pool_wrong_axis_fails_on_shape():
    with pytest.raises(ExerciseError) as info:
        ex.check_mean_pool(lambda h, m: (h * m[..., None]).sum(2) / m.sum(1, keepdim=True))
    assert "expected shape (3, 4), got shape (3, 5)" in str(info.value)


def test_mean_pool_crash_is_reported_with_shapes():
    with pytest.raises(ExerciseError) as info:
        ex.check_mean_pool(lambda h, m: h * m)  # (N, L, D) * (N, L): does not broadcast
    message = str(info.value)
    assert "your function raised RuntimeError" in message
    assert "called with shapes (3, 5, 4), (3, 5)" in message


# --- Exercise 2: the previous-token score ---------------------------------------------------


previous_token_score = ex.solution_previous_token_score  # the reference, shown in the chapter


def test_previous_token_reference_passes(capsys):
    ex.check_previous_token_score(previous_token_score)
    assert "the perfect head scores 1" in capsys.readouterr().out


def test_previous_token_diagonal_answer_passes_too(capsys):
    def from_the_diagonal(weights):
        L = weights.size(-1)
        return torch.diagonal(weights, offset=-1, dim1=-2, dim2=-1).sum(-1) / (L - 1)  # (H,)

    ex.check_previous_token_score(from_the_diagonal)
    assert "Correct" in capsys.readouterr().out


def test_previous_token_next_token_diagonal_fails():
    def next_token(w):
        return torch.diagonal(w, offset=1, dim1=-2, dim2=-1).mean(-1)

    with pytest.raises(ExerciseError) as info:
        ex.check_previous_token_score(next_token)
    message = str(info.value)
    assert "the scores of 4 hand-made heads" in message
    assert "got 0.0000, expected 1.0000" in message


def test_previous_token_including_query_zero_fails():
    def with_query_zero(w):
        L = w.size(-1)
        i = torch.arange(L)
        return w[..., i, (i - 1).clamp(min=0)].mean(-1)

    with pytest.raises(ExerciseError, match="values differ"):
        ex.check_previous_token_score(with_query_zero)


def test_previous_token_per_query_scores_fail_on_shape():
    with pytest.raises(ExerciseError) as info:
        ex.check_previous_token_score(
            lambda w: torch.diagonal(w, offset=-1, dim1=-2, dim2=-1)
        )
    assert "expected shape (4,), got shape (4, 5)" in str(info.value)


# --- Exercise 3: factorised embedding parameters ---------------------------------------------


count = ex.solution_factorised_embedding_parameters  # the reference, shown in the chapter


def test_factorised_reference_passes(capsys):
    ex.check_factorised_embedding_parameters(count)
    out = capsys.readouterr().out
    assert out.startswith("Correct: ") and "3,939,072" in out and "23,040,000" in out


def test_factorised_unfactorised_count_is_named():
    with pytest.raises(ExerciseError) as info:
        ex.check_factorised_embedding_parameters(lambda vocab, emb, d: vocab * d)
    message = str(info.value)
    assert "expected 3,939,072 parameters, got 23,040,000" in message
    assert "unfactorised" in message


def test_factorised_missing_bias_is_named():
    with pytest.raises(ExerciseError, match="bias is missing"):
        ex.check_factorised_embedding_parameters(lambda vocab, emb, d: vocab * emb + emb * d)


def test_factorised_float_answer_is_rejected():
    with pytest.raises(ExerciseError, match="expected an int .* got float"):
        ex.check_factorised_embedding_parameters(
            lambda vocab, emb, d: float(count(vocab, emb, d))
        )


def test_factorised_tensor_answer_is_accepted(capsys):
    ex.check_factorised_embedding_parameters(
        lambda vocab, emb, d: torch.tensor(count(vocab, emb, d))
    )
    assert "Correct" in capsys.readouterr().out


def test_factorised_reference_counts_the_modules_parameters():
    table, projection = torch.nn.Embedding(100, 8), torch.nn.Linear(8, 32)
    held = sum(p.numel() for m in (table, projection) for p in m.parameters())
    assert count(100, 8, 32) == held
