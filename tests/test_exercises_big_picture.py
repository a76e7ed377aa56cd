"""The big-picture chapter's self-checks: the references pass, wrong answers are explained."""

from __future__ import annotations

import pytest
import torch

from attnlib.exercises import ExerciseError, big_picture

# The reference solutions live in attnlib.exercises.big_picture; the chapter shows their source.
model_shape = big_picture.solution_model_shape
masked_max_pool = big_picture.solution_masked_max_pool
greedy_decode = big_picture.solution_greedy_decode
SHAPES = {task: model_shape(task) for task in big_picture.TASK_NAMES}


# --- exercise 1: which shape of model -------------------------------------------------------------


def test_model_shape_reference_passes(capsys):
    big_picture.check_model_shape(model_shape)
    assert capsys.readouterr().out.startswith("Correct:")


def test_task_names_cover_every_shape():
    assert len(set(big_picture.TASK_NAMES)) == 8  # eight different tasks
    assert set(SHAPES.values()) == set(big_picture.MODEL_SHAPES)  # every shape is an answer


def test_model_shape_wrong_answer_names_task_and_hint():
    answers = dict(SHAPES, **{"machine translation": "decoder"})
    with pytest.raises(ExerciseError) as err:
        big_picture.check_model_shape(answers.__getitem__)
    msg = str(err.value)
    assert "'machine translation'" in msg
    assert "expected 'encoder-decoder', got 'decoder'" in msg
    assert "prompt" in msg  # the hint about decoder-only translation


def test_model_shape_unknown_label():
    with pytest.raises(
        ExerciseError,
        match=r"expected one of 'encoder', 'decoder', "
        r"'encoder-decoder', got 'seq2seq'",
    ):
        big_picture.check_model_shape(lambda task: "seq2seq")


def test_model_shape_that_raises_is_reported():
    with pytest.raises(ExerciseError, match=r"raised KeyError.*expected it to return 'encoder'"):
        big_picture.check_model_shape({}.__getitem__)


# --- exercise 2: masked max pooling ---------------------------------------------------------------


def test_masked_max_pool_reference_passes(capsys):
    big_picture.check_masked_max_pool(masked_max_pool)
    assert "Correct:" in capsys.readouterr().out


def test_masked_max_pool_forgetting_the_mask():
    with pytest.raises(ExerciseError, match="padding included") as err:
        big_picture.check_masked_max_pool(lambda x, mask: x.max(dim=1).values)
    assert "50.0" in str(err.value)  # shows the padding's value winning


def test_masked_max_pool_zero_fill():
    def zero_filled(x, mask):
        return (x * mask.unsqueeze(-1)).max(dim=1).values

    with pytest.raises(ExerciseError, match="Fill padding with -inf"):
        big_picture.check_masked_max_pool(zero_filled)


def test_masked_max_pool_wrong_shape_is_reported_first():
    with pytest.raises(ExerciseError, match=r"expected shape \(2, 4\), got shape \(2, 1, 4\)"):
        big_picture.check_masked_max_pool(lambda x, mask: masked_max_pool(x, mask).unsqueeze(1))


def test_masked_max_pool_mean_instead_of_max():
    def mean_pool(x, mask):
        m = mask.unsqueeze(-1).float()
        return (x * m).sum(1) / m.sum(1)

    with pytest.raises(ExerciseError, match="values differ; largest difference"):
        big_picture.check_masked_max_pool(mean_pool)


# --- exercise 3: greedy decoding ------------------------------------------------------------------


def test_greedy_reference_passes(capsys):
    big_picture.check_greedy_decode(greedy_decode)
    assert "Correct:" in capsys.readouterr().out


def test_greedy_accepts_tensor_ids(capsys):
    def with_tensors(step, start_id, end_id, max_len):
        return torch.tensor(greedy_decode(step, start_id, end_id, max_len))

    big_picture.check_greedy_decode(with_tensors)
    assert "Correct:" in capsys.readouterr().out


def test_greedy_including_start_token():
    def with_start(step, start_id, end_id, max_len):
        return [start_id, *greedy_decode(step, start_id, end_id, max_len)]

    with pytest.raises(ExerciseError, match="leave the start token out"):
        big_picture.check_greedy_decode(with_start)


def test_greedy_dropping_end_token():
    def without_end(step, start_id, end_id, max_len):
        ids = greedy_decode(step, start_id, end_id, max_len)
        return ids[:-1] if ids and ids[-1] == end_id else ids

    with pytest.raises(ExerciseError, match="keep the end token"):
        big_picture.check_greedy_decode(without_end)


def test_greedy_never_stopping():
    def no_stop(step, start_id, end_id, max_len):
        out, token, state = [], start_id, None
        for _ in range(max_len):
            logits, state = step(token, state)
            token = int(logits.argmax())
            out.append(token)
        return out

    with pytest.raises(ExerciseError, match=r"expected 5 ids .*got 10 ids.*stop as soon"):
        big_picture.check_greedy_decode(no_stop)


def test_greedy_dropping_the_state():
    def stateless(step, start_id, end_id, max_len):
        out, token = [], start_id
        for _ in range(max_len):
            logits, _ = step(token, None)
            token = int(logits.argmax())
            out.append(token)
            if token == end_id:
                break
        return out

    with pytest.raises(ExerciseError, match="pass the state returned by step back"):
        big_picture.check_greedy_decode(stateless)


def test_greedy_wrong_type():
    with pytest.raises(ExerciseError, match="expected a list of int token ids"):
        big_picture.check_greedy_decode(lambda *args: "2 3 4")


def test_a_constant_answer_is_checked_not_taken_for_the_template():
    def model_shape(task):
        return "encoder"

    with pytest.raises(ExerciseError, match="expected 'decoder', got 'encoder'"):
        big_picture.check_model_shape(model_shape)


def test_masked_max_pool_reference_agrees_with_a_loop():
    x = torch.randn(2, 4, 3)
    mask = torch.tensor([[True, True, False, False], [True, True, True, False]])
    loop = torch.stack([x[n, mask[n]].max(dim=0).values for n in range(2)])  # (N, D)
    torch.testing.assert_close(masked_max_pool(x, mask), loop)


# --- every check: an unfilled template runs the reference solution -----------------------------


def _template_model_shape(task):
    """Your code here."""
    ...


def _template_pool(token_vectors, mask): ...


def _template_decode(step, start_id, end_id, max_len): ...


def _template_is_causal(model, x): ...


@pytest.mark.parametrize(
    "check, template",
    [
        (big_picture.check_model_shape, _template_model_shape),
        (big_picture.check_masked_max_pool, _template_pool),
        (big_picture.check_greedy_decode, _template_decode),
        (big_picture.check_is_causal, _template_is_causal),
    ],
)
def test_a_template_is_routed_to_the_reference(check, template, capsys):
    check(template)
    out = capsys.readouterr().out
    assert "is still the template" in out and "Correct:" in out


# --- exercise 4: the test of the causality claim ------------------------------------------------


is_causal = big_picture.solution_is_causal


def test_is_causal_reference_passes(capsys):
    big_picture.check_is_causal(is_causal)
    assert "Correct:" in capsys.readouterr().out


def test_is_causal_reference_agrees_with_the_known_answers():
    x = torch.randn(6, 4)
    for what, model, causal, _ in big_picture._causal_cases():
        assert is_causal(model, x) is causal, what


def _probe(model, x, positions, atol=1e-6, require_change=False):
    before = model(x)
    for t in positions:
        changed = x.clone()
        changed[t] += 1.0
        after = model(changed)
        if not torch.allclose(after[:t], before[:t], atol=atol, rtol=0.0):
            return False
        if require_change and torch.allclose(after[t:], before[t:]):
            return False
    return True


def test_is_causal_probing_only_the_last_position_fails():
    def last_only(model, x):
        return _probe(model, x, [x.size(0) - 1])

    with pytest.raises(ExerciseError, match="output 0 also reads input 1.*change every position"):
        big_picture.check_is_causal(last_only)


def test_is_causal_with_a_loose_tolerance_fails():
    def loose(model, x):
        return _probe(model, x, range(x.size(0)), atol=0.1)

    with pytest.raises(ExerciseError, match="0.01 times the next input.*tolerance"):
        big_picture.check_is_causal(loose)


def test_is_causal_requiring_later_outputs_to_move_fails():
    def needs_change(model, x):
        return _probe(model, x, range(x.size(0)), require_change=True)

    with pytest.raises(ExerciseError, match="one-step delay.*still causal"):
        big_picture.check_is_causal(needs_change)


def test_is_causal_that_never_looks_fails():
    def always_yes(model, x):
        return True

    with pytest.raises(ExerciseError, match=r"bidirectional GRU: expected False, got True"):
        big_picture.check_is_causal(always_yes)


def test_is_causal_that_rejects_everything_fails():
    def always_no(model, x):
        return False

    with pytest.raises(ExerciseError, match=r"left-to-right GRU: expected True, got False"):
        big_picture.check_is_causal(always_no)


def test_is_causal_must_return_a_bool():
    with pytest.raises(ExerciseError, match="expected True or False, got 'yes'"):
        big_picture.check_is_causal(lambda model, x: "yes" if x is not None else "no")


def test_is_causal_accepts_a_one_element_tensor(capsys):
    big_picture.check_is_causal(lambda model, x: torch.tensor(is_causal(model, x)))
    assert "Correct:" in capsys.readouterr().out
