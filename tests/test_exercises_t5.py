"""The T5 chapter's self-checks accept the reference solutions and name the classic mistakes."""

from __future__ import annotations

import math

import pytest
import torch

from attnlib.exercises import ExerciseError
from attnlib.exercises import t5 as ex
from attnlib.positional import relative_position_bucket

# The reference solutions live in attnlib.exercises.t5; the chapter shows their source.
bucket = ex.solution_relative_position_bucket
relative_bias = ex.solution_relative_bias
t5_attention_with_attnlib = ex.solution_t5_attention


def t5_attention(query, key, value, bias, mask=None):  # from scratch, another right answer
    scores = query @ key.transpose(-2, -1) + bias  # (N, H, L, S), no 1/sqrt(E)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    dead = torch.isneginf(scores).all(dim=-1, keepdim=True)  # (N, H, L, 1)
    weights = torch.softmax(scores.masked_fill(dead, 0.0), dim=-1).masked_fill(dead, 0.0)
    return weights @ value, weights  # (N, H, L, Ev), (N, H, L, S)


def test_reference_solutions_pass(capsys):
    ex.check_relative_position_bucket(bucket)
    ex.check_relative_bias(relative_bias)
    ex.check_t5_attention(t5_attention)
    ex.check_t5_attention(t5_attention_with_attnlib)
    ex.check_relative_position_bucket(
        lambda r, **kw: relative_position_bucket(r, **kw)
    )
    assert capsys.readouterr().out.count("Correct:") == 5


# ------------------------------------------------------------------------------------------------
# Exercise 1: wrong buckets
# ------------------------------------------------------------------------------------------------


def check_bucket_raises(fn, match):
    with pytest.raises(ExerciseError, match=match):
        ex.check_relative_position_bucket(fn)


def test_bucket_of_i_minus_j():
    check_bucket_raises(lambda r, **kw: bucket(-r, **kw), "your buckets are those of i - j")


def test_bucket_without_clamp():
    def no_clamp(r, bidirectional=True, num_buckets=32, max_distance=128):
        buckets = torch.zeros_like(r)
        if bidirectional:
            num_buckets //= 2
            buckets = buckets + (r > 0).long() * num_buckets
        distance = r.abs() if bidirectional else (-r).clamp(min=0)
        exact = num_buckets // 2
        log_ratio = torch.log(distance.float() / exact) / math.log(max_distance / exact)
        large = exact + (log_ratio * (num_buckets - exact)).long()  # no clamp
        return buckets + torch.where(distance < exact, distance, large)

    def global_clamp(r, bidirectional=True, num_buckets=32, max_distance=128):
        return no_clamp(r, bidirectional, num_buckets, max_distance).clamp(max=num_buckets - 1)

    check_bucket_raises(no_clamp, r"bucket ids must lie in \[0, 32\), got ids from 0 to 34.*clamp")
    check_bucket_raises(global_clamp, "spill from the left side's buckets into the right")


def test_bucket_as_float():
    check_bucket_raises(lambda r, **kw: bucket(r, **kw).float(), "expected integer bucket ids")


def test_bucket_wrong_shape():
    check_bucket_raises(
        lambda r, **kw: bucket(r, **kw).flatten()[:5], r"expected shape \(601,\).*got shape \(5,\)"
    )


def test_bucket_ignores_direction():
    def always_bidirectional(r, bidirectional=True, num_buckets=32, max_distance=128):
        return bucket(r, True, num_buckets, max_distance)

    check_bucket_raises(always_bidirectional, "these are the bidirectional buckets")


def test_bucket_right_side_like_left_when_unidirectional():
    def abs_distance(r, bidirectional=True, num_buckets=32, max_distance=128):
        if bidirectional:
            return bucket(r, True, num_buckets, max_distance)
        return bucket(-r.abs(), False, num_buckets, max_distance)

    check_bucket_raises(abs_distance, "every j - i > 0 goes to bucket 0")


def test_bucket_crash_names_the_case():
    def crash(r, **kw):
        raise RuntimeError("boom")

    check_bucket_raises(crash, "distances -300..300, bidirectional.*RuntimeError: boom")


# ------------------------------------------------------------------------------------------------
# Exercise 2: wrong bias matrices
# ------------------------------------------------------------------------------------------------


def test_bias_not_permuted():
    def unpermuted(table, L, S, bidirectional=True, max_distance=128):
        return relative_bias(table, L, S, bidirectional, max_distance)[0].permute(1, 2, 0)

    with pytest.raises(ExerciseError, match=r"expected shape \(1, H, L, S\) = \(1, 4, 9, 9\), "
                       r"got shape \(9, 9, 4\).*permute\(2, 0, 1\)"):
        ex.check_relative_bias(unpermuted)


def test_bias_of_i_minus_j():
    def transposed(table, L, S, bidirectional=True, max_distance=128):
        i = torch.arange(L)[:, None]
        j = torch.arange(S)[None, :]
        b = bucket(i - j, bidirectional, table.size(0), max_distance)
        return table[b].permute(2, 0, 1)[None]

    with pytest.raises(ExerciseError, match="the bias is that of i - j"):
        ex.check_relative_bias(transposed)


def test_bias_wrong_values():
    def shifted(table, L, S, bidirectional=True, max_distance=128):
        return relative_bias(table, L, S, bidirectional, max_distance) + 0.5

    with pytest.raises(ExerciseError, match="values differ; largest difference 0.5"):
        ex.check_relative_bias(shifted)


# ------------------------------------------------------------------------------------------------
# Exercise 3: wrong attention
# ------------------------------------------------------------------------------------------------


def check_attention_raises(fn, match):
    with pytest.raises(ExerciseError, match=match):
        ex.check_t5_attention(fn)


def test_attention_with_the_usual_scale():
    def scaled(q, k, v, bias, mask=None):
        return t5_attention(q / math.sqrt(q.size(-1)), k, v, bias, mask)

    check_attention_raises(scaled, r"scaled by 1/sqrt\(E\) = 1/sqrt\(8\); T5 folds")


def test_attention_without_bias():
    check_attention_raises(
        lambda q, k, v, b, m=None: t5_attention(q, k, v, torch.zeros_like(b), m),
        "the weights ignore the bias",
    )


def test_attention_bias_after_softmax():
    def after(q, k, v, bias, mask=None):
        _, w = t5_attention(q, k, v, torch.zeros_like(bias), mask)
        w = w + bias
        return w @ v, w

    check_attention_raises(after, "added to the weights after the softmax")


def test_attention_inverted_mask():
    check_attention_raises(
        lambda q, k, v, b, m=None: t5_attention(q, k, v, b, None if m is None else ~m),
        "the mask's polarity is inverted",
    )


def test_attention_ignores_mask():
    check_attention_raises(
        lambda q, k, v, b, m=None: t5_attention(q, k, v, b, None), "the weights ignore the mask"
    )


def test_attention_nan_for_a_query_with_no_key():
    def naive(q, k, v, bias, mask=None):
        scores = q @ k.transpose(-2, -1) + bias
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        w = torch.softmax(scores, dim=-1)
        return w @ v, w

    check_attention_raises(naive, "NaN in the row of the query that may attend to no key")


def test_attention_wrong_shapes_and_types():
    check_attention_raises(
        lambda q, k, v, b, m=None: t5_attention(q, k, v, b, m)[1],
        "expected a pair \\(output, weights\\)",
    )
    check_attention_raises(
        lambda q, k, v, b, m=None: (t5_attention(q, k, v, b, m)[0], t5_attention(q, k, v, b, m)[
            1].transpose(-2, -1)),
        r"weights: expected shape \(2, 3, 4, 6\), got shape \(2, 3, 6, 4\)",
    )


# ------------------------------------------------------------------------------------------------
# The template convention and Exercise 4 (a test of "the bias depends only on j - i")
# ------------------------------------------------------------------------------------------------


def test_templates_are_routed_to_the_reference_solutions(capsys):
    def my_bucket(relative_position, bidirectional=True, num_buckets=32, max_distance=128):
        """The bucket of each distance j - i."""
        ...  # your code here

    def my_bias(table, L, S, bidirectional=True, max_distance=128): ...

    def my_t5_attention(query, key, value, bias, mask=None): ...

    def depends_only_on_offset(bias): ...

    ex.check_relative_position_bucket(my_bucket)
    ex.check_relative_bias(my_bias)
    ex.check_t5_attention(my_t5_attention)
    used = ex.check_depends_only_on_offset(depends_only_on_offset)
    out = capsys.readouterr().out
    assert out.count("still the template") == 4 and out.count("Correct: ") == 4
    assert used is ex.solution_depends_only_on_offset


def test_offset_reference_passes_and_holds_for_the_library_bias(capsys):
    from attnlib.positional import RelativePositionBias

    assert ex.check_depends_only_on_offset(ex.solution_depends_only_on_offset) is (
        ex.solution_depends_only_on_offset
    )
    assert "right verdict on 5 biases" in capsys.readouterr().out
    torch.manual_seed(0)
    with torch.no_grad():
        bias = RelativePositionBias(num_heads=2, bidirectional=True)(9)  # (1, 2, 9, 9)
        assert ex.solution_depends_only_on_offset(bias)


@pytest.mark.parametrize(
    ("shortcut", "named"),
    [
        (lambda b: bool((b[0, 0, 0, :-1] == b[0, 0, 1, 1:]).all()), "not only the first row"),
        (lambda b: torch.equal(b[0, 0, 1:, 1:], b[0, 0, :-1, :-1]), "not only head 0"),
        (lambda b: torch.equal(b, b.transpose(-1, -2)), "T5's bias, L = S = 8, 3 heads"),
        (lambda b: bool((b.diff(dim=-1)[..., 1:, :] == b.diff(dim=-1)[..., :-1, :]).all()),
         "T5's bias, L = S = 8"),
    ],
)
def test_offset_shortcuts_fail(shortcut, named):
    with pytest.raises(ExerciseError, match=named):
        ex.check_depends_only_on_offset(shortcut)


def test_offset_a_non_bool_is_refused():
    with pytest.raises(ExerciseError, match="expected a bool"):
        ex.check_depends_only_on_offset(lambda b: b[..., 1:, 1:] == b[..., :-1, :-1])
