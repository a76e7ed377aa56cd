"""The GPT chapter's self-checks accept the reference solutions and name the classic mistakes."""

from __future__ import annotations

import pytest
import torch

from attnlib import generation
from attnlib.attention import repeat_kv_heads
from attnlib.exercises import ExerciseError
from attnlib.exercises import gpt as ex

# The reference solutions live in attnlib.exercises; the chapter shows their source.
top_k = ex.solution_top_k
repeat_kv_answer = ex.solution_repeat_kv
causal_mask_with_past = ex.solution_causal_mask_with_past


def test_reference_solutions_pass(capsys):
    ex.check_top_k(top_k)
    ex.check_repeat_kv(repeat_kv_answer)
    ex.check_causal_mask_with_past(causal_mask_with_past)
    assert capsys.readouterr().out.count("Correct:") == 3


def test_library_functions_pass_as_answers(capsys):
    ex.check_top_k(generation.top_k_filter)
    ex.check_repeat_kv(repeat_kv_heads)
    ex.check_causal_mask_with_past(lambda L, past: generation.causal_mask_with_past(L, past))
    assert capsys.readouterr().out.count("Correct:") == 3


# ------------------------------------------------------------------------------------------------
# top-k: wrong answers
# ------------------------------------------------------------------------------------------------


def test_top_k_with_zeros_instead_of_minus_infinity():
    def zeros(logits, k):
        kth = torch.topk(logits, k, dim=-1).values[..., -1:]
        return logits.masked_fill(logits < kth, 0.0)

    with pytest.raises(ExerciseError, match=r"the dropped logits are 0.*float\('-inf'\)"):
        ex.check_top_k(zeros)


def test_top_k_returning_probabilities():
    with pytest.raises(ExerciseError, match="these are probabilities"):
        ex.check_top_k(lambda logits, k: torch.softmax(top_k(logits, k), dim=-1))


def test_top_k_keeping_the_smallest():
    def smallest(logits, k):
        kth = -torch.topk(-logits, k, dim=-1).values[..., -1:]
        return logits.masked_fill(logits > kth, float("-inf"))

    with pytest.raises(ExerciseError, match="you kept the k smallest"):
        ex.check_top_k(smallest)


def test_top_k_off_by_one():
    def one_too_few(logits, k):
        kth = torch.topk(logits, k, dim=-1).values[..., -1:]
        return logits.masked_fill(logits <= kth, float("-inf"))

    with pytest.raises(ExerciseError, match="only 1 logits survive per row instead of 2"):
        ex.check_top_k(one_too_few)


def test_top_k_wrong_shape_and_wrong_type():
    with pytest.raises(ExerciseError, match=r"expected shape \(5,\).*got shape \(2,\)"):
        ex.check_top_k(lambda logits, k: torch.topk(logits, k).values)
    with pytest.raises(ExerciseError, match="expected a torch.Tensor of shape"):
        ex.check_top_k(lambda logits, k: logits.tolist())


def test_top_k_in_place_and_crash():
    def in_place(logits, k):
        kth = torch.topk(logits, k, dim=-1).values[..., -1:]
        logits[logits < kth] = float("-inf")
        return logits

    with pytest.raises(ExerciseError, match="changed its argument 0 in place"):
        ex.check_top_k(in_place)
    with pytest.raises(ExerciseError, match="your function raised ZeroDivisionError"):
        ex.check_top_k(lambda logits, k: 1 / 0)


# ------------------------------------------------------------------------------------------------
# repeat_kv: wrong answers
# ------------------------------------------------------------------------------------------------


def test_repeat_kv_tiled_instead_of_repeated():
    with pytest.raises(ExerciseError, match=r"tiled \(0, 1, 2, 0, 1, 2, ...\).*h // n_rep"):
        ex.check_repeat_kv(lambda x, n: x.repeat(1, n, 1, 1))


def test_repeat_kv_along_the_wrong_dimension():
    with pytest.raises(ExerciseError, match=r"expected shape \(1, 9, 4, 2\).*wrong dimension"):
        ex.check_repeat_kv(lambda x, n: x.repeat_interleave(n, dim=2))


def test_repeat_kv_not_repeated():
    with pytest.raises(ExerciseError, match=r"expected shape \(1, 9, 4, 2\).*got shape"):
        ex.check_repeat_kv(lambda x, n: x)


def test_repeat_kv_wrong_values():
    with pytest.raises(ExerciseError, match="values differ"):
        ex.check_repeat_kv(lambda x, n: torch.zeros_like(x.repeat_interleave(n, dim=1)))


# ------------------------------------------------------------------------------------------------
# causal mask with past: wrong answers
# ------------------------------------------------------------------------------------------------


def test_mask_aligned_top_left():
    with pytest.raises(ExerciseError, match=r"aligned top-left.*tril\(diagonal=past\)"):
        ex.check_causal_mask_with_past(
            lambda L, past: torch.ones(L, past + L, dtype=torch.bool).tril()
        )


def test_mask_with_flipped_polarity():
    with pytest.raises(ExerciseError, match="the polarity is flipped"):
        ex.check_causal_mask_with_past(lambda L, past: ~causal_mask_with_past(L, past))


def test_mask_ignoring_the_past():
    expected = r"expected shape \(3, 5\) \(L, past \+ L\), got shape \(3, 3\)"
    with pytest.raises(ExerciseError, match=expected):
        ex.check_causal_mask_with_past(lambda L, past: torch.ones(L, L, dtype=torch.bool).tril())


def test_mask_of_floats():
    with pytest.raises(ExerciseError, match="expected a boolean mask.*float32"):
        ex.check_causal_mask_with_past(lambda L, past: causal_mask_with_past(L, past).float())


def test_mask_hiding_each_query_from_itself():
    with pytest.raises(ExerciseError, match="masked from itself"):
        ex.check_causal_mask_with_past(
            lambda L, past: torch.ones(L, past + L, dtype=torch.bool).tril(diagonal=past - 1)
        )
