"""The explanation chapter's self-checks accept the references and name the classic mistakes."""

from __future__ import annotations

import pytest
import torch

from attnlib import explain
from attnlib.exercises import ExerciseError
from attnlib.exercises import explanation as ex

# The reference solutions live in attnlib.exercises; the chapter shows their source.
rollout = ex.solution_rollout
zero_heads = ex.solution_zero_heads


def test_reference_solutions_pass(capsys):
    ex.check_rollout(rollout)
    ex.check_zero_heads(zero_heads)
    assert capsys.readouterr().out.count("Correct:") == 2


def test_library_function_passes_as_an_answer(capsys):
    ex.check_rollout(explain.attention_rollout)
    assert "Correct:" in capsys.readouterr().out


# ------------------------------------------------------------------------------------------------
# Rollout: wrong answers
# ------------------------------------------------------------------------------------------------


def _rollout_with(residual=0.5, renormalise=True, later_on_left=True, fusion="mean", last=False):
    """A rollout with one mistake; residual=None adds the identity at full weight (A + I)."""

    def answer(attentions):
        A = attentions.mean(2) if fusion == "mean" else attentions.amax(2)
        eye = torch.eye(A.size(-1))
        A = A + eye if residual is None else (1 - residual) * A + residual * eye
        if renormalise:
            A = A / A.sum(-1, keepdim=True)
        if last:
            return A[-1]
        R = A[0]
        for layer in range(1, A.size(0)):
            R = A[layer] @ R if later_on_left else R @ A[layer]
        return R

    return answer


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (_rollout_with(residual=0.0), "add the identity for the residual connection"),
        (_rollout_with(later_on_left=False), "multiplied in the wrong order"),
        (_rollout_with(residual=None, renormalise=False), "each row sums to 4, not 1"),
        (_rollout_with(last=True), "this is the last layer alone"),
        (_rollout_with(fusion="max"), "fused with their maximum"),
        (lambda a: rollout(a) + 0.01, "values differ"),
        (lambda a: rollout(a).tolist(), "expected a torch.Tensor of shape (1, 2, 2), got list"),
    ],
    ids=["no-residual", "order", "no-renormalisation", "last-layer", "max", "values", "type"],
)
def test_rollout_mistakes(answer, expected):
    with pytest.raises(ExerciseError) as info:
        ex.check_rollout(answer)
    assert expected in str(info.value)


def test_rollout_shape_messages():
    def per_head(attentions):
        A = 0.5 * attentions + 0.5 * torch.eye(attentions.size(-1))
        R = A[0]
        for layer in range(1, A.size(0)):
            R = A[layer] @ R
        return R  # (N, H, L, L)

    with pytest.raises(ExerciseError, match=r"expected shape \(1, 2, 2\), got shape "
                       r"\(1, 2, 2, 2\): that is one matrix per head"):
        ex.check_rollout(per_head)
    with pytest.raises(ExerciseError, match=r"got shape \(2, 1, 2, 2\): that is one matrix per "
                       "layer"):
        ex.check_rollout(lambda a: explain.attention_rollout(a, cumulative=True))
    with pytest.raises(ExerciseError, match="got shape .*: that is the attentions unchanged"):
        ex.check_rollout(lambda a: a)


def test_rollout_crash_and_in_place():
    def in_place(attentions):
        attentions /= 2
        return rollout(attentions * 2)

    with pytest.raises(ExerciseError, match="changed its argument 0 in place"):
        ex.check_rollout(in_place)
    with pytest.raises(ExerciseError, match=r"raised ZeroDivisionError.*called with shapes "
                       r"\(2, 1, 2, 2, 2\)"):
        ex.check_rollout(lambda a: 1 / 0)


# ------------------------------------------------------------------------------------------------
# Zeroing heads: wrong answers
# ------------------------------------------------------------------------------------------------


def interleaved(x, heads, num_heads):
    N, L, D = x.shape
    y = x.view(N, L, D // num_heads, num_heads).clone()  # the wrong layout
    y[..., heads] = 0.0
    return y.view(N, L, D)


def keep_only(x, heads, num_heads):
    others = [h for h in range(num_heads) if h not in heads]
    return zero_heads(x, others, num_heads)


def off_by_one(x, heads, num_heads):
    return zero_heads(x, [h + 1 for h in heads if h + 1 < num_heads], num_heads)


def in_place(x, heads, num_heads):
    E = x.size(-1) // num_heads
    for h in heads:
        x[..., h * E : (h + 1) * E] = 0.0
    return x


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (interleaved, "the heads are not interleaved"),
        (keep_only, "the chosen heads were kept and all the other heads zeroed"),
        (off_by_one, "one head too far"),
        (in_place, "changed its argument 0 in place"),
        (lambda x, h, n: x[..., : x.size(-1) // n], "expected shape (2, 3, 12) (the same as x), "
         "got shape (2, 3, 3)"),
        (lambda x, h, n: x.clone(), "values differ"),
    ],
    ids=["interleaved", "keep-only", "off-by-one", "in-place", "shape", "nothing-zeroed"],
)
def test_zero_heads_mistakes(answer, expected):
    with pytest.raises(ExerciseError) as info:
        ex.check_zero_heads(answer)
    assert expected in str(info.value)


def test_checks_leave_global_random_state_alone():
    torch.manual_seed(5)
    before = torch.random.get_rng_state()
    ex.check_rollout(rollout)
    ex.check_zero_heads(zero_heads)
    assert torch.equal(before, torch.random.get_rng_state())


# ------------------------------------------------------------------------------------------------
# The template convention and Exercise 3 (a test of "the largest weight contributes most")
# ------------------------------------------------------------------------------------------------


def test_templates_are_routed_to_the_reference_solutions(capsys):
    def rollout(attentions):
        """Attention rollout, (layers, N, H, L, L) -> (N, L, L)."""
        ...  # your code here

    def zero_heads(x, heads, num_heads): ...

    def largest_weight_is_largest_contribution(weights, values): ...

    ex.check_rollout(rollout)
    used = ex.check_zero_heads(zero_heads)
    tested = ex.check_largest_weight_is_largest_contribution(largest_weight_is_largest_contribution)
    out = capsys.readouterr().out
    assert out.count("still the template") == 3 and out.count("Correct:") == 3
    assert used is ex.solution_zero_heads
    assert tested is ex.solution_largest_weight_is_largest_contribution


def test_contribution_reference_passes(capsys):
    solution = ex.solution_largest_weight_is_largest_contribution
    assert ex.check_largest_weight_is_largest_contribution(solution) is solution
    assert "right verdict on 4 heads" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("shortcut", "named"),
    [
        (lambda w, v: bool(w.argmax(-1)[0] == (w * v.norm(dim=-1)).argmax(-1)[0]),
         "check every query"),
        (lambda w, v: torch.equal(w.argmax(-1), v.norm(dim=-1).argmax().expand(w.size(0))),
         "equal length"),
        (lambda w, v: bool(w.max() > 0), "a sink"),
        (lambda w, v: torch.equal(w.argmax(-1), w.argmax(-1)), "a sink: weight 0.7 on key 0"),
    ],
)
def test_contribution_shortcuts_fail(shortcut, named):
    with pytest.raises(ExerciseError, match=named):
        ex.check_largest_weight_is_largest_contribution(shortcut)
