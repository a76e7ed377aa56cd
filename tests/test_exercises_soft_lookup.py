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


# --- Exercise 1's constraint: a single matrix product ---------------------------------------------


def test_cosine_with_einsum_or_normalize_passes(capsys):
    soft_lookup.check_cosine(lambda q, k: F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).T)
    soft_lookup.check_cosine(
        lambda q, k: torch.einsum("le,se->ls", F.normalize(q, dim=-1), F.normalize(k, dim=-1))
    )
    assert capsys.readouterr().out.count("Correct: ") == 2


def test_cosine_from_broadcast_cosine_similarity_fails():
    def broadcast(q, k):
        return F.cosine_similarity(q[:, None, :], k[None, :, :], dim=-1)  # right values, no product

    with pytest.raises(ExerciseError, match="single matrix product.*ran none"):
        soft_lookup.check_cosine(broadcast)


def test_cosine_from_elementwise_products_fails():
    def elementwise(q, k):
        return (F.normalize(q, dim=-1)[:, None] * F.normalize(k, dim=-1)[None]).sum(-1)

    with pytest.raises(ExerciseError, match="single matrix product.*ran none"):
        soft_lookup.check_cosine(elementwise)


def test_cosine_from_a_loop_over_queries_fails():
    def loop(q, k):
        k_unit = F.normalize(k, dim=-1)
        return torch.stack([k_unit @ F.normalize(row, dim=0) for row in q])  # one product a row

    with pytest.raises(ExerciseError, match="ran 2: a loop"):
        soft_lookup.check_cosine(loop)


def test_cosine_from_a_loop_over_pairs_fails():
    def pairs(q, k):
        return torch.tensor([[float(F.cosine_similarity(a, b, dim=0)) for b in k] for a in q])

    with pytest.raises(ExerciseError, match="single matrix product"):
        soft_lookup.check_cosine(pairs)


# --- every check: an unfilled template runs the reference -------------------------------------


def _template_cosine(queries, keys):
    """Your code here."""
    ...


def _template_lookup(query, keys, values, temperature=1.0): ...


def _template_temperature(): ...


def _template_predictions():
    """Your predictions here."""
    ...


@pytest.mark.parametrize(
    "check, template",
    [
        (soft_lookup.check_cosine, _template_cosine),
        (soft_lookup.check_soft_lookup, _template_lookup),
        (soft_lookup.check_temperature, _template_temperature),
        (soft_lookup.check_predictions, _template_predictions),
    ],
)
def test_a_template_is_routed_to_the_reference(check, template, capsys):
    check(template)
    out = capsys.readouterr().out
    assert "is still the template" in out and "Correct: " in out


def test_temperature_accepts_the_learners_search_function(capsys):
    soft_lookup.check_temperature(lambda: soft_lookup.solution_temperature())
    assert "Correct: " in capsys.readouterr().out


def test_temperature_search_that_raises_is_reported():
    def broken():
        return 1 / 0

    with pytest.raises(ExerciseError, match=r"broken\(\) raised ZeroDivisionError"):
        soft_lookup.check_temperature(broken)


# --- Exercise 4: predict, then run ----------------------------------------------------------------


def test_predictions_reference_is_right_and_prints_the_truth(capsys):
    soft_lookup.check_predictions(soft_lookup.solution_predictions)
    out = capsys.readouterr().out
    assert "computed (10.534, 11.247)" in out and "computed (0.500, 1.500)" in out
    assert out.rstrip().endswith("all 3 predictions within 0.01 of the computed outputs.")


def test_predictions_reference_matches_the_lookup():
    keys = torch.tensor(soft_lookup.LOOKUP_KEYS)
    values = torch.tensor(soft_lookup.LOOKUP_VALUES)
    query = torch.tensor(soft_lookup.LOOKUP_QUERY)
    output = torch.softmax(keys @ query, dim=-1) @ values  # (Ev,)
    predicted = soft_lookup.solution_predictions()
    torch.testing.assert_close(
        torch.tensor(predicted["keys + (1, 1, 1)"]), output, atol=1e-3, rtol=0
    )
    torch.testing.assert_close(torch.tensor(predicted["zero query"]), values.mean(dim=0))


def test_predictions_that_keys_shifts_change_the_output_fail(capsys):
    def shift_moves_it():
        guess = dict(soft_lookup.solution_predictions())
        guess["keys + (1, 1, 1)"] = (0.6, 1.2)  # the shift is thought to matter
        return guess

    with pytest.raises(ExerciseError, match=r"1 of 3 predictions .*'keys \+ \(1, 1, 1\)'"):
        soft_lookup.check_predictions(shift_moves_it)
    assert "computed (0.534, 1.247)" in capsys.readouterr().out  # the truth is shown


def test_predictions_that_values_shifts_do_nothing_fail():
    def unchanged(change=None):
        guess = dict(soft_lookup.solution_predictions())
        guess["values + 10"] = (0.534, 1.247)
        return guess

    with pytest.raises(ExerciseError, match="'values \\+ 10'"):
        soft_lookup.check_predictions(unchanged)


def test_predictions_missing_or_malformed_are_named():
    with pytest.raises(ExerciseError, match="no prediction for 'zero query'"):
        soft_lookup.check_predictions(lambda: {"values + 10": (1, 2), "keys + (1, 1, 1)": (1, 2)})
    with pytest.raises(ExerciseError, match="expected a dict"):
        soft_lookup.check_predictions(lambda: [1, 2] if soft_lookup else None)
    with pytest.raises(ExerciseError, match="'zero query': expected two numbers, got 3"):
        soft_lookup.check_predictions(
            lambda: dict(soft_lookup.solution_predictions(), **{"zero query": (1, 2, 3)})
        )
