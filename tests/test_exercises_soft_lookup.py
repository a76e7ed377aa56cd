"""The soft-lookup chapter's self-checks: references pass, mistakes fail with clear messages."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from attnlib.exercises import ExerciseError, soft_lookup

# --- Exercise 1: cosine similarity ------------------------------------------------------------


cosine = soft_lookup.solution_cosine


def test_cosine_reference_passes(capsys):
    soft_lookup.check_cosine(cosine)
    assert capsys.readouterr().out.startswith("Correct: ")


def test_cosine_plain_dot_product_fails_on_values():
    with pytest.raises(ExerciseError, match=r"values differ; largest difference .* \(got .*"):
        soft_lookup.check_cosine(lambda q, k: q @ k.T)


def test_cosine_transposed_fails_on_shape():
    with pytest.raises(ExerciseError) as info:
        soft_lookup.check_cosine(lambda q, k: cosine(q, k).T)
    assert "expected shape (2, 3), got shape (3, 2)" in str(info.value)


def test_cosine_normalising_the_wrong_axis_fails():
    def wrong_axis(q, k):
        return F.normalize(q, dim=0) @ F.normalize(k, dim=0).T

    with pytest.raises(ExerciseError, match="values differ"):
        soft_lookup.check_cosine(wrong_axis)


def test_cosine_numpy_result_is_named():
    with pytest.raises(ExerciseError, match="expected a torch.Tensor of shape .* got ndarray"):
        soft_lookup.check_cosine(lambda q, k: cosine(q, k).numpy())


def test_cosine_crash_is_reported_with_shapes():
    with pytest.raises(ExerciseError) as info:
        soft_lookup.check_cosine(lambda q, k: q @ k)  # (L, E) @ (S, E): shapes do not chain
    message = str(info.value)
    assert "your function raised RuntimeError" in message
    assert "called with shapes (2, 2), (3, 2)" in message


# --- Exercise 2: the soft lookup --------------------------------------------------------------


soft = soft_lookup.solution_soft_lookup


def test_soft_lookup_reference_passes(capsys):
    soft_lookup.check_soft_lookup(soft)
    assert capsys.readouterr().out.startswith("Correct: ")


def test_soft_lookup_ignoring_temperature_fails():
    def no_temperature(query, keys, values, temperature=1.0):
        return torch.softmax(keys @ query, dim=-1) @ values

    with pytest.raises(ExerciseError) as info:
        soft_lookup.check_soft_lookup(no_temperature)
    assert "temperature=0.25: values differ" in str(info.value)


def test_soft_lookup_multiplying_by_temperature_fails():
    def times_temperature(query, keys, values, temperature=1.0):
        return torch.softmax(keys @ query * temperature, dim=-1) @ values

    with pytest.raises(ExerciseError, match="values differ"):
        soft_lookup.check_soft_lookup(times_temperature)


def test_soft_lookup_returning_weights_fails_on_shape():
    def weights_only(query, keys, values, temperature=1.0):
        return torch.softmax(keys @ query / temperature, dim=-1)

    with pytest.raises(ExerciseError, match=r"expected shape \(2,\), got shape \(5,\)"):
        soft_lookup.check_soft_lookup(weights_only)


def test_soft_lookup_naive_exp_overflows_to_nan():
    def naive(query, keys, values, temperature=1.0):
        e = torch.exp(keys @ query / temperature)
        return (e / e.sum()) @ values

    with pytest.raises(ExerciseError) as info:
        soft_lookup.check_soft_lookup(naive)
    message = str(info.value)
    assert "temperature=0.05" in message
    assert "contains NaN" in message


def test_soft_lookup_must_not_rely_on_inputs_it_mutates():
    def mutating(query, keys, values, temperature=1.0):
        keys.mul_(0)  # vandalises its own copy only
        return soft(query, keys, values, temperature)

    with pytest.raises(ExerciseError, match="changed its argument 1 in place"):
        soft_lookup.check_soft_lookup(mutating)
    soft_lookup.check_soft_lookup(soft)  # the check's cases were not damaged


# --- Exercise 3: the temperature --------------------------------------------------------------


def test_cosine_agrees_with_torch_normalize():
    q, k = torch.randn(3, 4), torch.randn(5, 4)
    expected = F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).T  # (L, S)
    torch.testing.assert_close(cosine(q, k), expected)


def test_temperature_reference_passes(capsys):
    tau = soft_lookup.solution_temperature()
    assert soft_lookup.top_weight(tau) == pytest.approx(0.9, abs=1e-9)
    assert soft_lookup.top_weight(tau * (1 + 1e-6)) < 0.9  # the largest such temperature
    soft_lookup.check_temperature(tau)
    soft_lookup.check_temperature(torch.tensor(tau))
    assert capsys.readouterr().out.count("Correct: ") == 2


def test_temperature_too_hot_fails():
    with pytest.raises(ExerciseError, match="expected at least 0.9: too hot"):
        soft_lookup.check_temperature(1.0)


def test_temperature_too_cold_fails():
    with pytest.raises(ExerciseError, match="expected the largest such temperature"):
        soft_lookup.check_temperature(0.1)


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_temperature_non_positive_fails(bad):
    with pytest.raises(ExerciseError, match="positive, finite temperature"):
        soft_lookup.check_temperature(bad)


def test_temperature_wrong_type_fails():
    with pytest.raises(ExerciseError, match="expected a positive number .* got str"):
        soft_lookup.check_temperature("0.4")


def test_soft_lookup_reference_agrees_with_attention_in_double_precision():
    q, k, v = torch.randn(3, dtype=torch.float64), torch.randn(5, 3), torch.randn(5, 2)
    expected = torch.softmax(k.double() @ q / 0.25, dim=-1) @ v.double()  # (Ev,)
    torch.testing.assert_close(soft(q.float(), k, v, temperature=0.25).double(), expected)
