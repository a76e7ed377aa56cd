"""QK-norm: ``attnlib.MultiHeadAttention(..., qk_norm=True)`` normalises each head's queries and
keys with RMSNorm before the scores (the chapter "Self-attention and scaled dot-product
attention", "Logit growth, entropy collapse and QK-norm")."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from attnlib.multihead import MultiHeadAttention


def inputs(N=2, L=5, S=7, D=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(N, L, D, generator=g), torch.randn(N, S, D, generator=g)


def test_default_is_unchanged():
    torch.manual_seed(0)
    plain = MultiHeadAttention(16, 4)
    assert plain.qk_norm is False and plain.q_norm is None and plain.k_norm is None
    names = {f"{p}_proj.{w}" for p in ("q", "k", "v", "out") for w in ("weight", "bias")}
    assert set(plain.state_dict()) == names  # no new parameters unless asked for
    assert "qk_norm" not in repr(plain)


@pytest.mark.parametrize("num_kv_heads", [4, 2, 1])
def test_matches_rmsnorm_on_each_head(num_kv_heads):
    torch.manual_seed(0)
    mha = MultiHeadAttention(16, 4, num_kv_heads=num_kv_heads, qk_norm=True).eval()
    with torch.no_grad():  # gains other than 1, so that a missing gain would show
        mha.q_norm.weight.uniform_(0.5, 2.0)
        mha.k_norm.weight.uniform_(0.5, 2.0)
    x, y = inputs()
    out, weights = mha(x, y, y)
    E = mha.head_dim
    q = mha.q_proj(x).view(2, 5, 4, E).transpose(1, 2)  # (N, H, L, E)
    k = mha.k_proj(y).view(2, 7, num_kv_heads, E).transpose(1, 2)  # (N, H_kv, S, E)
    v = mha.v_proj(y).view(2, 7, num_kv_heads, E).transpose(1, 2)
    rms = lambda t: t * torch.rsqrt(t.pow(2).mean(-1, keepdim=True) + 1e-6)  # noqa: E731
    q, k = rms(q) * mha.q_norm.weight, rms(k) * mha.k_norm.weight
    groups = 4 // num_kv_heads
    k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
    expected_w = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(E), dim=-1)  # (N, H, L, S)
    expected = mha.out_proj((expected_w @ v).transpose(1, 2).reshape(2, 5, 16))
    torch.testing.assert_close(weights, expected_w)
    torch.testing.assert_close(out, expected)
    q_mha, k_mha = mha.queries_and_keys(x, y)  # what forward scores, as the chapter reads it
    torch.testing.assert_close(q_mha, q)
    torch.testing.assert_close(k_mha.repeat_interleave(groups, dim=1), k)
    assert isinstance(mha.q_norm, nn.RMSNorm) and mha.q_norm.weight.shape == (E,)
    assert "qk_norm=True" in repr(mha)


def test_scores_ignore_the_size_of_queries_and_keys():
    # RMSNorm divides the size out: scaling W_Q and W_K (and their biases) changes nothing.
    torch.manual_seed(0)
    normed = MultiHeadAttention(16, 4, qk_norm=True).eval()
    plain = MultiHeadAttention(16, 4).eval()
    plain.load_state_dict(normed.state_dict(), strict=False)
    x, _ = inputs()
    before_n, before_p = normed(x, x, x)[1], plain(x, x, x)[1]
    with torch.no_grad():
        for m in (normed, plain):
            for proj in (m.q_proj, m.k_proj):
                proj.weight.mul_(30.0)
                proj.bias.mul_(30.0)
    torch.testing.assert_close(normed(x, x, x)[1], before_n, atol=1e-5, rtol=1e-4)
    assert (plain(x, x, x)[1] - before_p).abs().max() > 0.1  # without the norm they sharpen


def test_scores_are_bounded_by_the_gains():
    # |q_hat . k_hat| / sqrt(E) <= sqrt(E) max|g_q| max|g_k|: a normalised vector has norm sqrt(E).
    torch.manual_seed(0)
    mha = MultiHeadAttention(16, 2, qk_norm=True).eval()
    with torch.no_grad():
        mha.q_norm.weight.fill_(1.5)
        mha.k_norm.weight.fill_(2.0)
        for proj in (mha.q_proj, mha.k_proj):
            proj.weight.mul_(1000.0)
    x, _ = inputs(L=12)
    E = mha.head_dim
    q = mha.q_norm(mha.split_heads(mha.q_proj(x)))
    k = mha.k_norm(mha.split_heads(mha.k_proj(x)))
    scores = q @ k.transpose(-2, -1) / math.sqrt(E)
    assert scores.abs().max() <= math.sqrt(E) * 1.5 * 2.0 + 1e-4


def test_gains_learn_and_from_torch_still_works():
    torch.manual_seed(0)
    mha = MultiHeadAttention(8, 2, qk_norm=True)
    x, _ = inputs(D=8)
    mha(x, x, x)[0].square().sum().backward()
    assert mha.q_norm.weight.grad is not None and mha.k_norm.weight.grad.abs().sum() > 0
    copy = MultiHeadAttention.from_torch(nn.MultiheadAttention(8, 2, batch_first=True))
    assert copy.qk_norm is False


@pytest.mark.parametrize("bad", ["yes", 1, None, 0.0])
def test_bad_qk_norm_is_refused(bad):
    with pytest.raises(TypeError, match="MultiHeadAttention: qk_norm must be True or False"):
        MultiHeadAttention(16, 4, qk_norm=bad)
