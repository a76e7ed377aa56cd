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


def _top_k_template(logits, k): ...


def _repeat_kv_template(x, n_rep):
    """Your code here."""
    ...


def _mask_template(L, past): ...


def _causality_template(model, vocab_size, length): ...


@pytest.mark.parametrize(
    ("check", "template"),
    [
        (ex.check_top_k, _top_k_template),
        (ex.check_repeat_kv, _repeat_kv_template),
        (ex.check_causal_mask_with_past, _mask_template),
        (ex.check_causality_test, _causality_template),
    ],
    ids=["top-k", "repeat-kv", "mask", "causality-test"],
)
def test_templates_run_the_reference_solution(check, template, capsys):
    check(template)
    out = capsys.readouterr().out
    assert "is still the template" in out and out.count("Correct:") == 1


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


# ------------------------------------------------------------------------------------------------
# the causality test: tests that must fail
# ------------------------------------------------------------------------------------------------


def _split_test(splits, compare=torch.allclose):
    """A causality test that changes the tokens from k on, for each k in splits(L)."""

    def test(model, vocab_size, length):
        ids = (torch.arange(length) % vocab_size)[None]
        logits = model(ids)
        for k in splits(length):
            changed = ids.clone()
            changed[:, k:] = (changed[:, k:] + 1) % vocab_size
            if not compare(model(changed)[:, :k], logits[:, :k]):
                return False
        return True

    return test


def test_the_reference_test_passes_and_a_thorough_variant_too(capsys):
    ex.check_causality_test(ex.solution_is_causal)
    ex.check_causality_test(_split_test(lambda L: range(1, L), compare=torch.equal))
    assert capsys.readouterr().out.count("Correct:") == 2


@pytest.mark.parametrize(
    "test",
    [
        _split_test(lambda L: [L - 1]),  # change only the last token
        _split_test(lambda L: [L // 2]),  # one split in the middle, as the chapter's first cell
        _split_test(lambda L: [1]),  # one split at the start
        _split_test(lambda L: [1, L - 1]),  # both ends, still not every split
        lambda model, vocab_size, length: length > 0,  # a test that accepts everything
    ],
    ids=["last-token", "middle", "first", "ends", "always-true"],
)
def test_a_test_that_misses_a_leak_fails(test):
    with pytest.raises(ExerciseError, match=r"your test says that a .* model.* is causal, but it "
                       r"is not.*for every split"):
        ex.check_causality_test(test)


def test_a_test_that_rejects_the_causal_model_fails():
    def compares_everything(model, vocab_size, length):  # the positions after the change move
        ids = (torch.arange(length) % vocab_size)[None]
        changed = ids.clone()
        changed[:, -1] = (changed[:, -1] + 1) % vocab_size
        return torch.allclose(model(changed), model(ids))

    with pytest.raises(ExerciseError, match=r"your test rejects the causal model.*before the "
                       r"change"):
        ex.check_causality_test(compares_everything)


def test_a_test_that_returns_no_bool_or_crashes_fails():
    with pytest.raises(ExerciseError, match="on the causal model: expected True or False, got str"):
        ex.check_causality_test(lambda model, vocab_size, length: str(length))
    with pytest.raises(ExerciseError, match="on the causal model: your test raised IndexError"):
        ex.check_causality_test(lambda model, vocab_size, length: model(torch.tensor([[99]])))


# ------------------------------------------------------------------------------------------------
# top-p: the reference, the library, the template and the classic mistakes
# ------------------------------------------------------------------------------------------------


def test_top_p_reference_library_and_template(capsys):
    ex.check_top_p(ex.solution_top_p)
    ex.check_top_p(generation.top_p_filter)

    def template(logits, p): ...

    ex.check_top_p(template)
    out = capsys.readouterr().out
    assert out.count("Correct:") == 3 and "is still the template" in out


def _nucleus_parts(logits):
    probs = torch.softmax(logits, dim=-1)
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    return probs, sorted_probs, order


def test_top_p_dropping_the_crossing_token():
    def through(logits, p):
        _, sorted_probs, order = _nucleus_parts(logits)
        drop = sorted_probs.cumsum(-1) >= p
        return logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))

    with pytest.raises(ExerciseError, match="you dropped the token that carries the total"):
        ex.check_top_p(through)


def test_top_p_in_vocabulary_order():
    def unsorted(logits, p):
        probs = torch.softmax(logits, dim=-1)
        return logits.masked_fill(probs.cumsum(-1) - probs >= p, float("-inf"))

    with pytest.raises(ExerciseError, match="vocabulary order"):
        ex.check_top_p(unsorted)


def test_top_p_zeros_probabilities_and_shape():
    with pytest.raises(ExerciseError, match=r"the dropped logits are 0"):
        ex.check_top_p(lambda logits, p: torch.nan_to_num(ex.solution_top_p(logits, p),
                                                          neginf=0.0))
    with pytest.raises(ExerciseError, match="these are probabilities"):
        ex.check_top_p(lambda logits, p: torch.softmax(ex.solution_top_p(logits, p), dim=-1))
    with pytest.raises(ExerciseError, match="expected shape"):
        ex.check_top_p(lambda logits, p: ex.solution_top_p(logits, p)[..., :-1])
    with pytest.raises(ExerciseError, match="expected a torch.Tensor"):
        ex.check_top_p(lambda logits, p: ex.solution_top_p(logits, p).tolist())
