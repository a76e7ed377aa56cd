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


# --- The template convention --------------------------------------------------------------------


def test_a_template_is_routed_to_the_reference_solution(capsys):
    def my_mean_pool(hidden, mask):
        """Average of the real tokens' vectors."""
        ...  # your code here

    def my_previous_token_score(weights): ...

    def my_factorised_parameters(vocab_size, embed_size, d_model): ...

    def my_test(encode, ids): ...

    ex.check_mean_pool(my_mean_pool)
    used = ex.check_previous_token_score(my_previous_token_score)
    ex.check_factorised_embedding_parameters(my_factorised_parameters)
    tested = ex.check_sees_later_tokens(my_test)
    out = capsys.readouterr().out
    assert out.count("still the template") == 4 and out.count("Correct: ") == 4
    assert used is ex.solution_previous_token_score and tested is ex.solution_sees_later_tokens


def test_a_filled_answer_is_returned_for_the_cells_that_use_it():
    def mine(weights):
        return ex.solution_previous_token_score(weights) + 0.0

    assert ex.check_previous_token_score(mine) is mine


# --- Exercise 4: the test of "an encoder's earlier tokens see a later word" --------------------


def _changed_last(ids):
    changed = ids.clone()
    changed[0, -1] = 1 if int(ids[0, -1]) != 1 else 2
    return changed


def test_sees_later_tokens_reference_passes(capsys):
    assert ex.check_sees_later_tokens(ex.solution_sees_later_tokens) is (
        ex.solution_sees_later_tokens
    )
    assert "right verdict on 5 encoders" in capsys.readouterr().out


def test_sees_later_tokens_comparing_the_changed_position_fails():
    def whole_sequence(encode, ids):
        return not torch.allclose(encode(ids), encode(_changed_last(ids)))

    with pytest.raises(ExerciseError, match="causal mask: expected False, got True; did you"):
        ex.check_sees_later_tokens(whole_sequence)


def test_sees_later_tokens_looking_only_next_door_fails():
    def only_the_previous_position(encode, ids):
        before, after = encode(ids), encode(_changed_last(ids))
        return not torch.allclose(before[:, -2], after[:, -2])

    with pytest.raises(ExerciseError, match="only position 0 may look ahead: expected True"):
        ex.check_sees_later_tokens(only_the_previous_position)


def test_sees_later_tokens_looking_only_at_the_first_position_fails():
    def only_the_first_position(encode, ids):
        before, after = encode(ids), encode(_changed_last(ids))
        return not torch.allclose(before[:, 0], after[:, 0])

    with pytest.raises(ExerciseError, match="one middle position may see the last token"):
        ex.check_sees_later_tokens(only_the_first_position)


def test_sees_later_tokens_a_non_bool_is_refused():
    with pytest.raises(ExerciseError, match="expected a bool .* got Tensor"):
        ex.check_sees_later_tokens(lambda encode, ids: encode(ids).sum())


def test_sees_later_tokens_leaves_the_global_random_state_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    ex.check_sees_later_tokens(ex.solution_sees_later_tokens)
    assert torch.equal(torch.rand(3), expected)
