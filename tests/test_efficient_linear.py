"""Linear attention: the parallel form equals the same model run as a recurrent network, and both
equal attention whose weights are phi(q) . phi(k), normalised."""

from __future__ import annotations

import pytest
import torch

from attnlib.efficient import linear_attention, linear_attention_recurrent
from attnlib.efficient.linear import elu_feature_map
from attnlib.masks import causal_mask


def rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def by_weights(q, k, v, allowed=None):
    """Linear attention the slow way: the (L, S) weights phi(q_i) . phi(k_j), normalised."""
    w = elu_feature_map(q) @ elu_feature_map(k).transpose(-2, -1)  # (..., L, S), all positive
    if allowed is not None:
        w = w.masked_fill(~allowed, 0.0)
    return (w / w.sum(dim=-1, keepdim=True)) @ v


@pytest.mark.parametrize(("L", "S"), [(7, 7), (5, 9), (9, 5), (1, 1)])
def test_linear_attention_equals_its_weights_written_out(L, S):
    q, k, v = rand(2, 3, L, 4), rand(2, 3, S, 4, seed=1), rand(2, 3, S, 6, seed=2)
    torch.testing.assert_close(linear_attention(q, k, v), by_weights(q, k, v))
    causal = linear_attention(q, k, v, is_causal=True)
    torch.testing.assert_close(causal, by_weights(q, k, v, causal_mask(L, S)))


def test_the_recurrence_computes_the_parallel_causal_result_with_a_constant_state():
    q, k, v = rand(2, 3, 12, 4), rand(2, 3, 12, 4, seed=1), rand(2, 3, 12, 5, seed=2)
    out, (kv, z) = linear_attention_recurrent(q, k, v)
    torch.testing.assert_close(out, linear_attention(q, k, v, is_causal=True))
    assert kv.shape == (2, 3, 4, 5) and z.shape == (2, 3, 4)  # (E, Ev) and (E,): no L in them
    # Continuing from a state: the first 5 positions, then the other 7, give the same outputs.
    first, state = linear_attention_recurrent(q[..., :5, :], k[..., :5, :], v[..., :5, :])
    rest, (kv2, z2) = linear_attention_recurrent(
        q[..., 5:, :], k[..., 5:, :], v[..., 5:, :], state=state
    )
    torch.testing.assert_close(torch.cat([first, rest], dim=-2), out)
    torch.testing.assert_close(kv2, kv)
    torch.testing.assert_close(z2, z)


def test_later_tokens_do_not_change_earlier_outputs():
    q, k, v = rand(1, 1, 10, 4), rand(1, 1, 10, 4, seed=1), rand(1, 1, 10, 3, seed=2)
    v2 = v.clone()
    v2[..., 6:, :] += 100.0
    a, b = linear_attention(q, k, v, True), linear_attention(q, k, v2, True)
    assert torch.equal(a[..., :6, :], b[..., :6, :]) and not torch.allclose(
        a[..., 6:, :], b[..., 6:, :]
    )


def test_no_keys_give_zeros_and_bad_inputs_clear_errors():
    q, k, v = rand(1, 2, 3, 4), rand(1, 2, 0, 4), rand(1, 2, 0, 5)
    for causal in (False, True):
        assert torch.equal(
            linear_attention(q, k, v, causal), torch.zeros(1, 2, 3, 5, dtype=q.dtype)
        )
    with pytest.raises(ValueError, match="linear_attention"):
        linear_attention(rand(1, 3, 4), rand(1, 3, 5), rand(1, 3, 4))
    with pytest.raises(ValueError, match="same length"):
        linear_attention_recurrent(rand(1, 3, 4), rand(1, 5, 4), rand(1, 5, 4))
    with pytest.raises(ValueError, match=r"state must be"):
        linear_attention_recurrent(
            rand(1, 3, 4), rand(1, 3, 4), rand(1, 3, 4), state=(torch.zeros(4, 4), torch.zeros(4))
        )
