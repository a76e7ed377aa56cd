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
    ex.check_rescale_test(ex.solution_rescale_test)
    out = capsys.readouterr().out
    assert out.count("Correct:") == 4


def _template_update(m, l, acc, scores, values):  # noqa: E741
    """Fold one tile into the running state."""
    ...


def _template_tiled(query, key, value, block_size): ...


def _template_window(L, window, global_tokens):
    pass


def _template_test(update) -> bool:
    """True when `update` is correct."""
    ...


@pytest.mark.parametrize(
    "check, template",
    [
        (ex.check_online_update, _template_update),
        (ex.check_tiled_attention, _template_tiled),
        (ex.check_sliding_window, _template_window),
        (ex.check_rescale_test, _template_test),
    ],
)
def test_a_template_is_routed_to_the_reference_solution(check, template, capsys):
    check(template)  # would raise if the template itself were checked: it returns None
    out = capsys.readouterr().out
    assert "still the template" in out and "Correct:" in out


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

    def naive_exp(query, key, value, block_size):  # tiled, but exp without the maximum
        ell, acc = torch.zeros(query.size(0), 1), torch.zeros(query.size(0), value.size(-1))
        for j in range(0, key.size(0), block_size):
            w = torch.exp(query @ key[j:j + block_size].T / math.sqrt(query.size(-1)))
            ell, acc = ell + w.sum(-1, keepdim=True), acc + w @ value[j:j + block_size]
        return acc / ell

    with pytest.raises(ExerciseError, match="NaN or inf"):
        ex.check_tiled_attention(naive_exp)


def test_tiled_attention_that_builds_the_score_matrix_is_refused():
    # the shortcut the exercise rules out: exact attention all at once. Its numbers are right.
    def all_at_once(query, key, value, block_size):
        scores = query @ key.T / math.sqrt(query.size(-1))  # (L, S)
        return torch.softmax(scores, dim=-1) @ value

    with pytest.raises(ExerciseError, match=r"as large as the whole \(L, S\) = \(4, 7\) score"):
        ex.check_tiled_attention(all_at_once)

    # tiles computed one at a time but kept, then glued into the whole matrix: refused as well
    def glued(query, key, value, block_size):
        tiles = [query @ key[j:j + block_size].T for j in range(0, key.size(0), block_size)]
        scores = torch.cat(tiles, dim=-1) / math.sqrt(query.size(-1))  # (L, S)
        return torch.softmax(scores, dim=-1) @ value

    with pytest.raises(ExerciseError, match="one tile of scores at a time"):
        ex.check_tiled_attention(glued)


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


# --- exercise 4 ---------------------------------------------------------------------------------


def _fold(update, scores, values):
    """Fold the tiles of two keys of ``scores`` into the empty state; return acc / l."""
    L, Ev = scores.size(0), values.size(-1)
    state = (torch.full((L,), float("-inf")), torch.zeros(L), torch.zeros(L, Ev))
    for j in range(0, scores.size(1), 2):
        state = update(*state, scores[:, j:j + 2], values[j:j + 2])
    _, ell, acc = state
    return acc / ell[:, None]


def _test_on(scores):
    values = torch.randn(scores.size(1), 3, generator=torch.Generator().manual_seed(0))

    def test(update):
        out = _fold(update, scores, values)
        return bool(torch.allclose(out, torch.softmax(scores, dim=-1) @ values, atol=1e-5))

    return test


def test_every_broken_update_is_right_somewhere_and_wrong_on_the_reference_tiles():
    falling = torch.tensor([[3.0, 2.0, 1.0, 0.0, -1.0, -2.0]])  # the maximum never rises
    rising = torch.tensor([[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]])  # every tile raises it
    right_on = {"never rescales": falling, "rescales l but not acc": falling,
                "subtracts each tile": rising}
    for update, what, _ in ex.BROKEN_UPDATES:
        assert not ex.solution_rescale_test(update), what
        for start, scores in right_on.items():
            if what.startswith(start):
                assert _test_on(scores)(update), what  # so a test needs both kinds of tile


def test_a_test_without_a_rising_maximum_is_refused():
    with pytest.raises(ExerciseError, match="never rescales.*exceed the maximum so far"):
        ex.check_rescale_test(_test_on(torch.tensor([[3.0, 2.0, 1.0, 0.0, -1.0, -2.0]])))


def test_a_test_whose_maximum_always_rises_is_refused():
    with pytest.raises(ExerciseError, match="tile's own maximum.*stay below the maximum so far"):
        ex.check_rescale_test(_test_on(torch.tensor([[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]])))


def test_a_test_that_only_checks_l_is_refused():
    scores = torch.tensor([[0.0, 1.0, 3.0, -1.0, 2.0, 0.5]])

    def checks_l_only(update):
        state = (torch.full((1,), float("-inf")), torch.zeros(1), torch.zeros(1, 2))
        for j in range(0, 6, 2):
            state = update(*state, scores[:, j:j + 2], torch.ones(2, 2))
        expected_l = torch.exp(scores - scores.max()).sum(-1)
        return bool(torch.allclose(state[1], expected_l))

    with pytest.raises(ExerciseError, match="rescales l but not acc.*compare the final output"):
        ex.check_rescale_test(checks_l_only)


def test_a_test_with_exact_float_equality_rejects_a_correct_update():
    scores = torch.tensor([[0.0, 1.0, 3.0, -1.0, 2.0, 0.5]])
    values = torch.randn(6, 3, generator=torch.Generator().manual_seed(1))

    def exact_equality(update):
        reference = _fold(online_update, scores, values)
        return bool(torch.equal(_fold(update, scores, values), reference))

    with pytest.raises(ExerciseError, match="rejected a correct update computed in float64"):
        ex.check_rescale_test(exact_equality)


def test_a_test_that_rejects_everything_or_returns_no_bool_is_refused():
    def rejects_everything(update):
        return update is None

    with pytest.raises(ExerciseError, match="rejected the reference update"):
        ex.check_rescale_test(rejects_everything)
    with pytest.raises(ExerciseError, match="returned Tensor"):
        ex.check_rescale_test(lambda update: torch.tensor(True))
    with pytest.raises(ExerciseError, match=r"raised TypeError.*update\(m, l, acc, scores"):
        ex.check_rescale_test(lambda update: update(torch.zeros(2)))


def test_an_asserting_test_counts_as_rejecting():
    def asserting(update):
        assert ex.solution_rescale_test(update)
        return True

    ex.check_rescale_test(asserting)


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


# Exercise 5: one step of linear attention as a recurrent network
linear_attention_step = ex.solution_linear_attention_step


def test_linear_attention_step_reference_and_template(capsys):
    ex.check_linear_attention_step(linear_attention_step)

    def template(kv, z, query, key, value):
        """One step of causal linear attention."""
        ...

    ex.check_linear_attention_step(template)
    out = capsys.readouterr().out
    assert out.count("Correct:") == 2 and "still the template" in out


def _phi(x):
    return torch.nn.functional.elu(x) + 1


@pytest.mark.parametrize(
    "wrong, named",
    [
        (  # reads the state before adding this position
            lambda kv, z, q, k, v: (
                (_phi(q) @ kv) / (_phi(q) @ z),
                kv + _phi(k)[:, None] * v[None, :],
                z + _phi(k),
            ),
            "before",
        ),
        (  # no normaliser
            lambda kv, z, q, k, v: (
                _phi(q) @ (kv + _phi(k)[:, None] * v[None, :]),
                kv + _phi(k)[:, None] * v[None, :],
                z + _phi(k),
            ),
            "not normalised",
        ),
        (  # no feature map
            lambda kv, z, q, k, v: (
                (q @ (kv + k[:, None] * v[None, :])) / (q @ (z + k)),
                kv + k[:, None] * v[None, :],
                z + k,
            ),
            "feature map",
        ),
    ],
)
def test_linear_attention_step_mistakes_are_named(wrong, named):
    with pytest.raises(ExerciseError, match=named):
        ex.check_linear_attention_step(wrong)


def test_linear_attention_step_in_place_state_and_wrong_state_are_caught():
    def in_place(kv, z, query, key, value):
        phi_q, phi_k = _phi(query), _phi(key)
        kv += phi_k[:, None] * value[None, :]  # changes the caller's state
        z += phi_k
        return (phi_q @ kv) / (phi_q @ z), kv, z

    with pytest.raises(ExerciseError, match="in place"):
        ex.check_linear_attention_step(in_place)

    def stale_z(kv, z, query, key, value):
        out, kv_new, _ = linear_attention_step(kv, z, query, key, value)
        return out, kv_new, z  # forgets to update z

    with pytest.raises(ExerciseError, match="z: values differ"):
        ex.check_linear_attention_step(stale_z)
