"""The Transformer-block chapter's self-checks accept the references and name the mistakes."""

from __future__ import annotations

import pytest
import torch

from attnlib.exercises import ExerciseError
from attnlib.exercises import transformer_block as ex
from attnlib.positional import apply_rope, sinusoidal_encoding

# The reference solutions live in attnlib.exercises; the chapter shows their source.
my_sinusoidal = ex.solution_sinusoidal_encoding
my_rope = ex.solution_rope
my_pre_norm_block = ex.solution_pre_norm_block


def test_reference_solutions_pass(capsys):
    ex.check_sinusoidal_encoding(my_sinusoidal)
    ex.check_rope(my_rope)
    ex.check_pre_norm_block(my_pre_norm_block)
    assert capsys.readouterr().out.count("Correct:") == 3


def test_library_functions_pass_as_answers(capsys):
    ex.check_sinusoidal_encoding(sinusoidal_encoding)
    ex.check_sinusoidal_encoding(lambda L, D: sinusoidal_encoding(L, D, dtype=torch.float64))
    ex.check_rope(apply_rope)
    assert capsys.readouterr().out.count("Correct:") == 3


def _sinusoidal_template(length, dim):
    """Your code here."""
    ...


def _rope_template(x, positions): ...


def _block_template(x, layer): ...


def _predict_template(num_layers, causal): ...


@pytest.mark.parametrize(
    ("check", "template"),
    [
        (ex.check_sinusoidal_encoding, _sinusoidal_template),
        (ex.check_rope, _rope_template),
        (ex.check_pre_norm_block, _block_template),
        (ex.check_predict_unchanged, _predict_template),
    ],
    ids=["sinusoidal", "rope", "pre-norm", "predict"],
)
def test_templates_run_the_reference_solution(check, template, capsys):
    check(template)
    out = capsys.readouterr().out
    assert "is still the template" in out and out.count("Correct:") == 1


# ------------------------------------------------------------------------------------------------
# Sinusoidal: the constraint (no Python loop)
# ------------------------------------------------------------------------------------------------


def loop_over_positions(length, dim):
    pe = torch.zeros(length, dim)
    for p in range(length):
        pe[p] = my_sinusoidal(1, dim)[0] * 0 + my_sinusoidal(length, dim)[p]
    return pe


def loop_over_pairs(length, dim):
    import math

    pe = torch.zeros(length, dim)
    positions = torch.arange(length, dtype=torch.float32)
    i = 0
    while i < dim // 2:
        angle = positions / 10000.0 ** (2 * i / dim)
        pe[:, 2 * i], pe[:, 2 * i + 1] = angle.sin(), angle.cos()
        i += 1
    return pe + 0 * math.pi


def comprehension(length, dim):
    rows = [my_sinusoidal(length, dim)[p] for p in range(length)]
    return torch.stack(rows)


def _row(p, dim):  # the loop lives in the caller's helper's caller: invisible to the bytecode
    return my_sinusoidal(p + 1, dim)[p]


def hidden_loop(length, dim):
    return torch.stack(list(map(_row, range(length), [dim] * length)))


@pytest.mark.parametrize("answer", [loop_over_positions, loop_over_pairs, comprehension],
                         ids=["for", "while", "comprehension"])
def test_sinusoidal_with_a_python_loop_fails(answer):
    with pytest.raises(ExerciseError, match=r"contains a Python loop.*without a Python loop"):
        ex.check_sinusoidal_encoding(answer)


def test_sinusoidal_with_a_loop_in_a_helper_fails():
    with pytest.raises(ExerciseError, match=r"fn\(length=50, dim=16\) ran \d+ tensor operations.*"
                       r"in a loop"):
        ex.check_sinusoidal_encoding(hidden_loop)


def test_sinusoidal_loop_free_variants_pass(capsys):
    def stacked(length, dim):  # interleave with stack + reshape instead of strided slices
        positions = torch.arange(length, dtype=torch.float32)[:, None]
        angles = positions / 10000.0 ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim)
        return torch.stack((angles.sin(), angles.cos()), dim=-1).reshape(length, dim)

    ex.check_sinusoidal_encoding(stacked)
    assert "no loop" in capsys.readouterr().out


# ------------------------------------------------------------------------------------------------
# Sinusoidal: wrong answers
# ------------------------------------------------------------------------------------------------


def _sinusoidal_with(exponent=2.0, layout="interleaved", swap=False, multiply=False):
    def answer(length, dim):
        positions = torch.arange(length, dtype=torch.float32)[:, None]
        scale = 10000.0 ** (exponent * torch.arange(dim // 2, dtype=torch.float32) / dim)
        angles = positions * scale if multiply else positions / scale
        first, second = (angles.cos(), angles.sin()) if swap else (angles.sin(), angles.cos())
        if layout == "halves":
            return torch.cat((first, second), dim=-1)
        return torch.stack((first, second), dim=-1).reshape(length, dim)

    return answer


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (_sinusoidal_with(layout="halves"), "the sines fill the first half of the columns"),
        (_sinusoidal_with(swap=True), "sin and cos are swapped"),
        (_sinusoidal_with(exponent=1.0), "the exponent is i/D; it is 2i/D"),
        (_sinusoidal_with(multiply=True), "the positions are multiplied by 10000^(2i/D)"),
        (lambda L, D: my_sinusoidal(L, D).T, "expected shape (4, 6), got shape (6, 4): rows are "
                                            "positions and columns are dimensions"),
        (lambda L, D: my_sinusoidal(L, D)[:, :-1], "expected shape (4, 6), got shape (4, 5)"),
        (lambda L, D: my_sinusoidal(L, D).tolist(), "expected a torch.Tensor of shape (4, 6), "
                                                   "got list"),
        (lambda L, D: (1000 * my_sinusoidal(L, D)).long(), "expected a floating tensor"),
        (lambda L, D: my_sinusoidal(L, D) + 0.01, "values differ; largest difference 0.01"),
        (lambda L, D: my_sinusoidal(L, D) * float("nan"), "your result contains NaN"),
    ],
    ids=["halves", "swapped", "exponent", "multiply", "transposed", "shape", "type", "dtype",
         "values", "nan"],
)
def test_sinusoidal_mistakes(answer, expected):
    with pytest.raises(ExerciseError) as info:
        ex.check_sinusoidal_encoding(answer)
    assert expected in str(info.value)
    assert str(info.value).startswith("fn(length=")  # the message names the case


def test_sinusoidal_crash():
    def crashes(length, dim):
        raise ZeroDivisionError("oops")

    with pytest.raises(ExerciseError, match=r"fn\(length=4, dim=6\): your function raised "
                       r"ZeroDivisionError: oops"):
        ex.check_sinusoidal_encoding(crashes)


# ------------------------------------------------------------------------------------------------
# RoPE: wrong answers
# ------------------------------------------------------------------------------------------------


def interleaved_rope(x, positions):
    E = x.size(-1)
    freqs = 10000.0 ** (-torch.arange(0, E, 2, dtype=torch.float32) / E)
    angles = positions[:, None].float() * freqs
    a, b = x[..., 0::2], x[..., 1::2]
    out = torch.stack((a * angles.cos() - b * angles.sin(), a * angles.sin() + b * angles.cos()),
                      dim=-1)
    return out.flatten(-2)


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (interleaved_rope, "the pairs are neighbours (0, 1), (2, 3)"),
        (lambda x, p: my_rope(x, -p), "the rotation goes the wrong way"),
        (lambda x, p: my_rope(x, torch.arange(x.size(-2))), "the result ignores `positions`"),
        (lambda x, p: x, "values differ"),
        (lambda x, p: my_rope(x, p)[0], "expected shape (1, 1, 3, 4), got shape (1, 3, 4)"),
    ],
    ids=["interleaved", "clockwise", "ignores-positions", "identity", "shape"],
)
def test_rope_mistakes(answer, expected):
    with pytest.raises(ExerciseError) as info:
        ex.check_rope(answer)
    assert expected in str(info.value)


def test_rope_exponent_mistake():
    def half_exponent(x, positions):
        E = x.size(-1)
        freqs = 10000.0 ** (-torch.arange(E // 2, dtype=torch.float32) / E)  # i/E, not 2i/E
        angles = positions[:, None].float() * freqs
        a, b = x[..., : E // 2], x[..., E // 2 :]
        return torch.cat((a * angles.cos() - b * angles.sin(), a * angles.sin() + b * angles.cos()),
                         dim=-1)

    with pytest.raises(ExerciseError, match=r"x \(1, 1, 3, 4\).*the exponent i/E; pair i turns"):
        ex.check_rope(half_exponent)


def test_rope_in_place_is_caught():
    def in_place(x, positions):
        out = my_rope(x, positions)
        x.mul_(0.0)
        return out

    with pytest.raises(ExerciseError, match="changed its argument 0 in place"):
        ex.check_rope(in_place)


# ------------------------------------------------------------------------------------------------
# Pre-norm block: wrong answers
# ------------------------------------------------------------------------------------------------


def post_norm(x, layer):
    x = layer.norm1(x + layer.self_attn(x, x, x)[0])
    return layer.norm2(x + layer.linear2(layer.activation(layer.linear1(x))))


def no_attention_residual(x, layer):
    h = layer.norm1(x)
    x = layer.self_attn(h, h, h)[0]
    return x + layer.linear2(layer.activation(layer.linear1(layer.norm2(x))))


def no_mlp_residual(x, layer):
    h = layer.norm1(x)
    x = x + layer.self_attn(h, h, h)[0]
    return layer.linear2(layer.activation(layer.linear1(layer.norm2(x))))


def normalised_stream(x, layer):
    x = layer.norm1(x)
    x = x + layer.self_attn(x, x, x)[0]
    x = layer.norm2(x)
    return x + layer.linear2(layer.activation(layer.linear1(x)))


def no_activation(x, layer):
    h = layer.norm1(x)
    x = x + layer.self_attn(h, h, h)[0]
    return x + layer.linear2(layer.linear1(layer.norm2(x)))


def swapped_norms(x, layer):
    h = layer.norm2(x)
    x = x + layer.self_attn(h, h, h)[0]
    return x + layer.linear2(layer.activation(layer.linear1(layer.norm1(x))))


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (post_norm, "this is the post-norm order"),
        (no_attention_residual, "the attention sublayer has no residual connection"),
        (no_mlp_residual, "the MLP sublayer has no residual connection"),
        (lambda x, layer: torch.nn.functional.layer_norm(my_pre_norm_block(x, layer),
                                                         (x.size(-1),)),
         "normalised once more at the end"),
        (normalised_stream, "the normalised x was added back to the residual stream"),
        (no_activation, "the MLP has no activation"),
        (swapped_norms, "norm1 and norm2 are swapped"),
        (lambda x, layer: my_pre_norm_block(x, layer)[..., :4],
         "expected shape (1, 4, 8), got shape (1, 4, 4)"),
        (lambda x, layer: my_pre_norm_block(x, layer) * 1.01, "values differ"),
    ],
    ids=["post-norm", "no-attn-residual", "no-mlp-residual", "final-norm", "normalised-stream",
         "no-activation", "swapped-norms", "shape", "values"],
)
def test_pre_norm_mistakes(answer, expected):
    with pytest.raises(ExerciseError) as info:
        ex.check_pre_norm_block(answer)
    assert expected in str(info.value)
    assert "a layer with 2 heads" in str(info.value)


@pytest.mark.parametrize(
    "answer",
    [lambda x, layer: layer(x), lambda x, layer: type(layer).forward(layer, x)],
    ids=["layer(x)", "forward"],
)
def test_pre_norm_calling_the_whole_layer_fails(answer):
    with pytest.raises(ExerciseError, match=r"x \(1, 4, 8\).*calls the layer itself.*from the "
                       r"layer's parts"):
        ex.check_pre_norm_block(answer)


def test_pre_norm_crash_names_the_case():
    def crashes(x, layer):
        return layer.self_attn(x)  # forgot key and value

    with pytest.raises(ExerciseError, match=r"x \(1, 4, 8\).*your function raised TypeError"):
        ex.check_pre_norm_block(crashes)


def test_checks_leave_global_random_state_alone():
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    ex.check_pre_norm_block(my_pre_norm_block)
    ex.check_rope(my_rope)
    assert torch.equal(before, torch.random.get_rng_state())


# ------------------------------------------------------------------------------------------------
# Prediction: what survives swapping the first two tokens
# ------------------------------------------------------------------------------------------------


def test_predictions_are_compared_with_the_layers(capsys):
    ex.check_predict_unchanged(ex.solution_predict_unchanged)
    out = capsys.readouterr().out
    assert "2 layers, causal mask: unchanged at no position" in out
    assert "1 layer, causal mask: unchanged at [2, 3, 4, 5]" in out


@pytest.mark.parametrize(
    ("prediction", "expected"),
    [
        # "a causal mask changes nothing": the bag-of-words intuition carried over
        (lambda n, causal: {2, 3, 4, 5}, r"2 layers, causal mask: you predicted unchanged outputs "
                                         r"at \[2, 3, 4, 5\], the layers give \[\]"),
        # "a causal mask changes everything"
        (lambda n, causal: set() if causal else {2, 3, 4, 5},
         r"1 layer, causal mask: you predicted unchanged outputs at \[\], the layers give "
         r"\[2, 3, 4, 5\]"),
        # "equivariance means every output is the same"
        (lambda n, causal: set(range(6)), r"1 layer, no mask: .*\[0, 1, 2, 3, 4, 5\].*only moves "
                                          r"tokens a and b"),
    ],
    ids=["mask-changes-nothing", "mask-changes-everything", "all-unchanged"],
)
def test_wrong_predictions_fail_and_say_the_truth(prediction, expected):
    with pytest.raises(ExerciseError, match=expected):
        ex.check_predict_unchanged(prediction)


def test_prediction_that_is_not_a_set_fails():
    with pytest.raises(ExerciseError, match=r"expected a set of positions.*got bool"):
        ex.check_predict_unchanged(lambda n, causal: bool(n))
