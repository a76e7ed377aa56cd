"""The efficiency chapter's self-checks: the reference solutions pass, and typical wrong answers
are caught with a message that says what went wrong."""

from __future__ import annotations

import math

import pytest
import torch

from attnlib.exercises import ExerciseError
from attnlib.exercises import efficiency as ex

# The reference solutions live in attnlib.exercises; the chapter shows their source.
online_update = ex.solution_online_update
tiled_attention = ex.solution_tiled_attention
sliding_window = ex.solution_sliding_window


def test_reference_solutions_pass(capsys):
    ex.check_online_update(online_update)
    ex.check_tiled_attention(tiled_attention)
    ex.check_sliding_window(sliding_window)
    out = capsys.readouterr().out
    assert out.count("Correct:") == 3


# --- exercise 1 ---------------------------------------------------------------------------------


def test_update_without_rescaling_acc_is_named():
    def wrong(m, l, acc, scores, values):  # noqa: E741
        m_new, l_new, _ = online_update(m, l, acc, scores, values)
        p = torch.exp(scores - m_new[:, None])
        return m_new, l_new, acc + p @ values

    with pytest.raises(ExerciseError, match="acc_new adds the old acc without rescaling"):
        ex.check_online_update(wrong)


def test_update_without_subtracting_the_maximum_overflows():
    def wrong(m, l, acc, scores, values):  # noqa: E741
        p = torch.exp(scores)
        return torch.maximum(m, scores.max(-1).values), l + p.sum(-1), acc + p @ values

    with pytest.raises(ExerciseError) as err:
        ex.check_online_update(wrong)
    assert "l_new" in str(err.value)


def test_update_with_normalised_acc_and_inverted_factor_are_named():
    def normalised(m, l, acc, scores, values):  # noqa: E741
        m_new, l_new, acc_new = online_update(m, l, acc, scores, values)
        return m_new, l_new, acc_new / l_new[:, None]

    with pytest.raises(ExerciseError, match="divided by l"):
        ex.check_online_update(normalised)

    def inverted(m, l, acc, scores, values):  # noqa: E741
        m_new = torch.maximum(m, scores.max(dim=-1).values)
        alpha = torch.exp(m_new - m)
        p = torch.exp(scores - m_new[:, None])
        return m_new, alpha * l + p.sum(-1), alpha[:, None] * acc + p @ values

    with pytest.raises(ExerciseError, match="inverted"):
        ex.check_online_update(inverted)


def test_update_returning_two_things_or_wrong_shape():
    with pytest.raises(ExerciseError, match=r"expected a triple \(m_new, l_new, acc_new\)"):
        ex.check_online_update(lambda m, l, acc, s, v: (m, l))  # noqa: E741
    with pytest.raises(ExerciseError, match=r"m_new: expected shape \(3,\), got shape \(3, 1\)"):
        ex.check_online_update(
            lambda m, l, acc, s, v: (s.max(-1, keepdim=True).values, l, acc)  # noqa: E741
        )


def test_update_that_changes_its_input_in_place_is_caught():
    def in_place(m, l, acc, scores, values):  # noqa: E741
        result = online_update(m, l, acc, scores, values)
        scores -= 1.0
        return result

    with pytest.raises(ExerciseError, match="changed its argument 3 in place"):
        ex.check_online_update(in_place)


# --- exercise 2 ---------------------------------------------------------------------------------


def test_tiled_attention_without_scale_or_last_block_is_named():
    def unscaled(query, key, value, block_size):
        return tiled_attention(query * math.sqrt(query.size(-1)), key, value, block_size)

    with pytest.raises(ExerciseError, match="without the 1/sqrt\\(E\\) scale"):
        ex.check_tiled_attention(unscaled)

    def drops_last(query, key, value, block_size):
        full = key.size(0) - key.size(0) % block_size
        return tiled_attention(query, key[:full], value[:full], block_size)

    with pytest.raises(ExerciseError, match="ignores the last, shorter block of 1 key"):
        ex.check_tiled_attention(drops_last)


def test_tiled_attention_wrong_shape_and_nan():
    with pytest.raises(ExerciseError, match=r"expected shape \(4, 2\), got shape \(2, 4\)"):
        ex.check_tiled_attention(lambda q, k, v, block_size: tiled_attention(q, k, v, 3).T)

    def naive_exp(query, key, value, block_size):
        w = torch.exp(query @ key.T / math.sqrt(query.size(-1)))
        return (w / w.sum(-1, keepdim=True)) @ value

    with pytest.raises(ExerciseError, match="NaN or inf"):
        ex.check_tiled_attention(naive_exp)


def test_tiled_attention_that_crashes_names_the_case():
    with pytest.raises(ExerciseError, match=r"L = 4, S = 7.*raised ZeroDivisionError"):
        ex.check_tiled_attention(lambda q, k, v, block_size: 1 / 0)


# --- exercise 3 ---------------------------------------------------------------------------------


def test_sliding_window_mistakes_are_named():
    with pytest.raises(ExerciseError, match="inverted"):
        ex.check_sliding_window(lambda L, window, global_tokens: ~sliding_window(L, window,
                                                                                 global_tokens))
    with pytest.raises(ExerciseError, match="one-sided"):
        ex.check_sliding_window(
            lambda L, window, global_tokens: sliding_window(L, window, global_tokens)
            & (torch.arange(L)[:, None] >= torch.arange(L)[None, :])
        )
    with pytest.raises(ExerciseError, match="one short"):
        ex.check_sliding_window(
            lambda L, window, global_tokens: sliding_window(L, max(window - 1, 0), global_tokens)
            if window > 0 else sliding_window(L, window, global_tokens)
        )


def test_sliding_window_global_rows_only_and_dtype():
    def rows_only(L, window, global_tokens):
        pos = torch.arange(L)
        allowed = (pos[:, None] - pos[None, :]).abs() <= window
        allowed[list(global_tokens), :] = True
        return allowed

    with pytest.raises(ExerciseError, match="set the global columns too"):
        ex.check_sliding_window(rows_only)
    with pytest.raises(ExerciseError, match="expected dtype torch.bool.*got torch.int64"):
        ex.check_sliding_window(
            lambda L, window, global_tokens: sliding_window(L, window, global_tokens).long()
        )
    with pytest.raises(ExerciseError, match=r"expected shape \(6, 6\), got shape \(6,\)"):
        ex.check_sliding_window(lambda L, window, global_tokens: torch.ones(L, dtype=torch.bool))


# --- the references against independent computations --------------------------------------------


def test_sliding_window_library_pattern_passes_as_an_answer(capsys):
    from attnlib.efficient import longformer_pattern

    ex.check_sliding_window(longformer_pattern)  # called with keywords L, window, global_tokens
    assert "Correct" in capsys.readouterr().out


def test_online_update_over_two_tiles_is_the_softmax_average():
    scores, values = torch.randn(3, 8), torch.randn(8, 2)
    state = (torch.full((3,), float("-inf")), torch.zeros(3), torch.zeros(3, 2))
    for j in (0, 4):
        state = online_update(*state, scores[:, j:j + 4], values[j:j + 4])
    _, ell, acc = state
    torch.testing.assert_close(acc / ell[:, None], torch.softmax(scores, dim=-1) @ values)
