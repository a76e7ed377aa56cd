"""attnlib.scaled_dot_product_attention against PyTorch's, its properties, and its errors."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import attnlib
from attnlib import scaled_dot_product_attention as sdpa
from attnlib.masks import causal_mask, padding_mask


def _qkv(*batch, L=4, S=5, E=8, Ev=6, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(*batch, L, E, generator=g, dtype=dtype)
    k = torch.randn(*batch, S, E, generator=g, dtype=dtype)
    v = torch.randn(*batch, S, Ev, generator=g, dtype=dtype)
    return q, k, v


SHAPES = [
    dict(batch=(), L=3, S=3, E=4, Ev=4),  # no batch at all
    dict(batch=(2,), L=4, S=7, E=8, Ev=3),  # (N, L, E)
    dict(batch=(2, 3), L=5, S=5, E=16, Ev=16),  # (N, H, L, E)
    dict(batch=(1, 2, 3), L=1, S=9, E=2, Ev=5),  # extra leading dimension, one query
    dict(batch=(2, 4), L=6, S=2, E=32, Ev=1),  # fewer keys than queries
]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s['batch']}-L{s['L']}-S{s['S']}")
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_pytorch_without_mask(shape, seed):
    q, k, v = _qkv(*shape["batch"], L=shape["L"], S=shape["S"], E=shape["E"], Ev=shape["Ev"],
                   seed=seed)
    out, w = sdpa(q, k, v)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v))
    assert w.shape == (*shape["batch"], shape["L"], shape["S"])
    # the weights really are the ones used: output = weights @ value
    torch.testing.assert_close(out, w @ v)


@pytest.mark.parametrize("shape", SHAPES[1:], ids=lambda s: f"{s['batch']}-L{s['L']}-S{s['S']}")
def test_matches_pytorch_with_boolean_mask(shape):
    q, k, v = _qkv(*shape["batch"], L=shape["L"], S=shape["S"], E=shape["E"], Ev=shape["Ev"])
    g = torch.Generator().manual_seed(3)
    mask = torch.rand(shape["L"], shape["S"], generator=g) > 0.4
    mask[:, 0] = True  # every query sees at least one key (empty rows are tested below)
    out, w = sdpa(q, k, v, attn_mask=mask)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask))
    assert torch.all(w.masked_select(~mask.expand_as(w)) == 0)


def test_matches_pytorch_with_float_mask():
    q, k, v = _qkv(2, 3, L=4, S=6)
    g = torch.Generator().manual_seed(4)
    bias = torch.randn(2, 1, 4, 6, generator=g)  # e.g. a relative-position bias
    bias[..., 2] = float("-inf")
    out, w = sdpa(q, k, v, attn_mask=bias)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=bias))
    assert torch.all(w[..., 2] == 0)


@pytest.mark.parametrize("L,S", [(5, 5), (3, 7), (7, 3)])
def test_matches_pytorch_causal(L, S):
    q, k, v = _qkv(2, 2, L=L, S=S)
    out, w = sdpa(q, k, v, is_causal=True)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, is_causal=True))
    assert torch.all(w.masked_select(~causal_mask(L, S)) == 0)
    # is_causal=True is the same as passing causal_mask explicitly
    torch.testing.assert_close(sdpa(q, k, v, attn_mask=causal_mask(L, S))[0], out)


@pytest.mark.parametrize("scale", [0.05, 1.0, 3.0])
def test_matches_pytorch_custom_scale(scale):
    q, k, v = _qkv(2, 3)
    out, _ = sdpa(q, k, v, scale=scale)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, scale=scale))


def test_default_scale_is_one_over_sqrt_key_size_not_length():
    q, k, v = _qkv(1, L=4, S=50, E=8)
    _, w_default = sdpa(q, k, v)
    _, w_e = sdpa(q, k, v, scale=1 / math.sqrt(8))
    _, w_n = sdpa(q, k, v, scale=1 / math.sqrt(50))
    torch.testing.assert_close(w_default, w_e)
    assert not torch.allclose(w_default, w_n)


def test_mask_broadcasts_over_batch_and_heads():
    q, k, v = _qkv(3, 2, L=4, S=6)
    mask = padding_mask([6, 3, 1], S=6)  # (N, 1, 1, S)
    out, w = sdpa(q, k, v, attn_mask=mask)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask))
    assert torch.all(w[1, :, :, 3:] == 0) and torch.all(w[2, :, :, 1:] == 0)
    torch.testing.assert_close(w[2, :, :, 0], torch.ones(2, 4))


def test_batch_dimensions_broadcast_between_query_and_key():
    g = torch.Generator().manual_seed(5)
    q = torch.randn(2, 4, 3, 8, generator=g)  # (N, H, L, E)
    k = torch.randn(2, 1, 5, 8, generator=g)  # one key/value head shared by all query heads
    v = torch.randn(2, 1, 5, 8, generator=g)
    out, w = sdpa(q, k, v)
    ref = F.scaled_dot_product_attention(q, k.expand(2, 4, 5, 8), v.expand(2, 4, 5, 8))
    torch.testing.assert_close(out, ref)
    assert w.shape == (2, 4, 3, 5)


def test_float64_stays_float64():
    q, k, v = _qkv(2, dtype=torch.float64)
    out, w = sdpa(q, k, v)
    assert out.dtype == w.dtype == torch.float64
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v))


def test_dropout_zeroes_some_contributions_and_keeps_weights_a_distribution():
    q, k, v = _qkv(4, 2, L=8, S=8)
    torch.manual_seed(0)
    out, w = sdpa(q, k, v, dropout_p=0.5)
    torch.testing.assert_close(w.sum(-1), torch.ones(4, 2, 8))  # weights are pre-dropout
    assert not torch.allclose(out, w @ v)  # the output used dropped-out weights


# --- rows with no allowed key: zeros, never NaN -------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_fully_masked_rows_give_zeros_not_nan(dtype):
    q, k, v = _qkv(2, 2, L=4, S=5, dtype=dtype)
    mask = torch.ones(4, 5, dtype=torch.bool)
    mask[1] = False  # query 1 may attend to nothing
    out, w = sdpa(q, k, v, attn_mask=mask)
    assert out.dtype == w.dtype == dtype
    assert not torch.isnan(out).any() and not torch.isnan(w).any()
    assert torch.all(w[..., 1, :] == 0) and torch.all(out[..., 1, :] == 0)
    ones = torch.ones(2, 2, 3, dtype=dtype)
    torch.testing.assert_close(w[..., [0, 2, 3], :].sum(-1), ones, atol=1e-2, rtol=1e-2)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_fully_masked_rows_with_float_mask(dtype):
    q, k, v = _qkv(1, L=2, S=3, dtype=dtype)
    bias = torch.zeros(2, 3, dtype=dtype)
    bias[0] = float("-inf")
    out, w = sdpa(q, k, v, attn_mask=bias)
    assert torch.all(w[:, 0] == 0) and torch.all(out[:, 0] == 0)
    assert not torch.isnan(out).any()


def test_gradients_through_fully_masked_rows_are_finite():
    q, k, v = (t.requires_grad_() for t in _qkv(1, L=3, S=3))
    mask = torch.tensor([[True, False, False], [False, False, False], [True, True, True]])
    out, _ = sdpa(q, k, v, attn_mask=mask)
    out.sum().backward()
    for t in (q, k, v):
        assert torch.isfinite(t.grad).all()


def test_no_keys_at_all():
    q = torch.randn(2, 3, 4)
    k = torch.randn(2, 0, 4)
    v = torch.randn(2, 0, 5)
    out, w = sdpa(q, k, v)
    assert out.shape == (2, 3, 5) and w.shape == (2, 3, 0)
    assert torch.all(out == 0)


# --- properties (hypothesis) --------------------------------------------------------------------

dims = st.integers(min_value=1, max_value=6)


@settings(max_examples=60, deadline=None)
@given(N=dims, L=dims, S=dims, E=dims, seed=st.integers(0, 2**16), p=st.floats(0.0, 1.0))
def test_rows_sum_to_one_where_any_key_is_allowed(N, L, S, E, seed, p):
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(N, n, E, generator=g) for n in (L, S, S))
    mask = torch.rand(N, L, S, generator=g) >= p
    _, w = sdpa(q, k, v, attn_mask=mask)
    sums = w.sum(-1)
    alive = mask.any(-1)
    torch.testing.assert_close(sums[alive], torch.ones_like(sums[alive]))
    assert torch.all(sums[~alive] == 0)
    assert torch.all(w >= 0)


@settings(max_examples=40, deadline=None)
@given(N=dims, L=st.integers(2, 8), E=dims, seed=st.integers(0, 2**16))
def test_self_attention_is_permutation_equivariant(N, L, E, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(N, L, E, generator=g, dtype=torch.float64)
    perm = torch.randperm(L, generator=g)
    out, w = sdpa(x, x, x)
    out_p, w_p = sdpa(x[:, perm], x[:, perm], x[:, perm])
    torch.testing.assert_close(out_p, out[:, perm])
    torch.testing.assert_close(w_p, w[:, perm][:, :, perm])


@settings(max_examples=30, deadline=None)
@given(L=st.integers(2, 7), t=st.integers(0, 6), seed=st.integers(0, 2**16))
def test_causal_output_ignores_later_tokens(L, t, seed):
    t = t % L
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(1, L, 4, generator=g)
    y = x.clone()
    y[:, t + 1 :] = torch.randn(1, L - t - 1, 4, generator=g)  # change everything after t
    out_x, _ = sdpa(x, x, x, is_causal=True)
    out_y, _ = sdpa(y, y, y, is_causal=True)
    torch.testing.assert_close(out_x[:, : t + 1], out_y[:, : t + 1])


# --- bad input: clear errors naming the argument and the shapes ---------------------------------


def test_error_query_key_size_differ():
    q, k, v = torch.randn(2, 3, 8), torch.randn(2, 5, 6), torch.randn(2, 5, 6)
    pattern = r"query and key .*last dimension.*\(2, 3, 8\).*\(2, 5, 6\)"
    with pytest.raises(ValueError, match=pattern):
        sdpa(q, k, v)


def test_error_key_value_lengths_differ():
    q, k, v = torch.randn(2, 3, 8), torch.randn(2, 5, 8), torch.randn(2, 4, 8)
    with pytest.raises(ValueError, match=r"key and value .*length S.*\(2, 5, 8\).*\(2, 4, 8\)"):
        sdpa(q, k, v)


def test_error_mask_does_not_broadcast():
    q, k, v = _qkv(2, 3, L=4, S=5)
    with pytest.raises(ValueError, match=r"attn_mask of shape \(4, 4\) does not broadcast.*"
                                         r"\(2, 3, 4, 5\)"):
        sdpa(q, k, v, attn_mask=torch.ones(4, 4, dtype=torch.bool))


def test_error_mask_that_would_grow_the_batch():
    q, k, v = _qkv(2, L=4, S=5)
    with pytest.raises(ValueError, match="attn_mask"):
        sdpa(q, k, v, attn_mask=torch.ones(3, 2, 4, 5, dtype=torch.bool))


@pytest.mark.parametrize("bad", ["query", "key", "value"])
def test_error_non_floating_dtype(bad):
    q, k, v = _qkv(2)
    args = {"query": q, "key": k, "value": v}
    args[bad] = args[bad].long()
    with pytest.raises(TypeError, match=rf"{bad} must be a floating-point tensor, got dtype "
                                        r"torch.int64"):
        sdpa(**args)


def test_error_integer_mask():
    q, k, v = _qkv(2)
    with pytest.raises(TypeError, match="attn_mask must be a boolean mask .* or a float mask"):
        sdpa(q, k, v, attn_mask=torch.ones(4, 5, dtype=torch.int64))


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5])
def test_error_dropout_out_of_range(p):
    q, k, v = _qkv(2)
    with pytest.raises(ValueError, match=r"dropout_p must be in \[0, 1\)"):
        sdpa(q, k, v, dropout_p=p)


def test_error_causal_with_mask():
    q, k, v = _qkv(2)
    with pytest.raises(ValueError, match="either attn_mask or is_causal"):
        sdpa(q, k, v, attn_mask=torch.ones(4, 5, dtype=torch.bool), is_causal=True)


def test_error_mixed_dtypes_and_too_few_dimensions():
    q, k, v = _qkv(2)
    with pytest.raises(TypeError, match="share one dtype"):
        sdpa(q.double(), k, v)
    with pytest.raises(ValueError, match=r"query must have at least 2 dimensions.*\(8,\)"):
        sdpa(torch.randn(8), k, v)


def test_error_batch_dimensions_do_not_broadcast():
    q = torch.randn(2, 3, 4, 8)
    k = torch.randn(3, 3, 5, 8)
    v = torch.randn(3, 3, 5, 8)
    with pytest.raises(ValueError, match=r"leading .* do not broadcast"):
        sdpa(q, k, v)


# --- runtime helpers ----------------------------------------------------------------------------


def test_device_seed_randn_rounded():
    assert attnlib.device().type in {"cpu", "cuda"}
    attnlib.seed(7)
    a = attnlib.randn(3, 4)
    attnlib.seed(7)
    b = attnlib.randn(3, 4, device=attnlib.device())
    torch.testing.assert_close(a, b.cpu())  # drawn on the CPU, so identical everywhere
    r = attnlib.rounded(torch.tensor([-0.0001, 1.23456, -2.5]), 2)
    assert torch.equal(r, torch.tensor([0.0, 1.23, -2.5])) and str(r[0].item()) == "0.0"
    with pytest.raises(ValueError, match="seed: n must be"):
        attnlib.seed(-1)


def test_fmt_rounds_and_keeps_structure():
    assert attnlib.fmt(torch.tensor(0.12345)) == "0.123"
    assert attnlib.fmt(torch.tensor([1.0, -0.0001]), 2) == "[1.00, 0.00]"  # no "-0.00"
    assert attnlib.fmt(torch.tensor([[1.0, 2.0], [3.0, 4.0]]), 1) == "[[1.0, 2.0],\n [3.0, 4.0]]"
    assert attnlib.fmt(torch.tensor([3, 4])) == "[3, 4]"
    assert attnlib.fmt(torch.tensor([True, False])) == "[True, False]"


# --- grouped-query attention (enable_gqa) --------------------------------------------------------

GQA_SHAPES = [(1, 4, 1), (2, 4, 2), (2, 6, 3), (1, 8, 8), (3, 6, 1)]  # (N, H, H_kv)


@pytest.mark.parametrize(("N", "H", "H_kv"), GQA_SHAPES)
@pytest.mark.parametrize("mask", ["none", "bool", "float", "causal"])
def test_enable_gqa_matches_pytorch_and_repeating_the_heads(N, H, H_kv, mask):
    g = torch.Generator().manual_seed(H * 10 + H_kv)
    L, S, E, Ev = 5, 7, 8, 6
    q = torch.randn(N, H, L, E, generator=g)
    k = torch.randn(N, H_kv, S, E, generator=g)
    v = torch.randn(N, H_kv, S, Ev, generator=g)
    kwargs = {}
    if mask == "bool":
        m = torch.rand(N, 1, L, S, generator=g) < 0.7
        m[..., 0] = True  # every query keeps a key, so PyTorch has no NaN row
        kwargs = {"attn_mask": m}
    elif mask == "float":
        kwargs = {"attn_mask": torch.randn(L, S, generator=g)}
    elif mask == "causal":
        kwargs = {"is_causal": True}
    out, w = sdpa(q, k, v, enable_gqa=True, **kwargs)
    assert out.shape == (N, H, L, Ev) and w.shape == (N, H, L, S)
    expected = F.scaled_dot_product_attention(q, k, v, enable_gqa=True, **kwargs)
    torch.testing.assert_close(out, expected)
    # The same as giving every query head its own copy of its group's key/value head.
    groups = H // H_kv
    k_full, v_full = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
    out_full, w_full = sdpa(q, k_full, v_full, **kwargs)
    torch.testing.assert_close(out, out_full)
    torch.testing.assert_close(w, w_full)
    # Query heads 0 .. groups-1 share key head 0: with equal queries they give equal weights.
    q_same = q[:, :1].expand(N, H, L, E)
    _, w_same = sdpa(q_same, k, v, enable_gqa=True, **kwargs)
    for h in range(H):
        torch.testing.assert_close(w_same[:, h], w_same[:, (h // groups) * groups])


def test_enable_gqa_with_equal_heads_changes_nothing():
    q, k, v = _qkv(2, 3)
    out, w = sdpa(q, k, v, enable_gqa=True)
    out0, w0 = sdpa(q, k, v)
    assert torch.equal(out, out0) and torch.equal(w, w0)


def test_repeat_kv_heads_is_repeat_interleave():
    x = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).view(2, 3, 4, 5)  # (N, H_kv, S, E)
    assert torch.equal(attnlib.attention.repeat_kv_heads(x, 4), x.repeat_interleave(4, dim=1))
    assert attnlib.attention.repeat_kv_heads(x, 1) is x


def test_enable_gqa_errors():
    q = torch.randn(2, 6, 4, 8)
    with pytest.raises(ValueError, match=r"scaled_dot_product_attention: enable_gqa=True needs "
                                         r"key and value with the same number of heads H_kv, and "
                                         r"H_kv dividing the query's H; got H=6"):
        sdpa(q, torch.randn(2, 4, 5, 8), torch.randn(2, 4, 5, 8), enable_gqa=True)
    with pytest.raises(ValueError, match="same number of heads"):
        sdpa(q, torch.randn(2, 3, 5, 8), torch.randn(2, 2, 5, 8), enable_gqa=True)
    with pytest.raises(ValueError, match=r"enable_gqa=True needs heads in dimension -3"):
        sdpa(torch.randn(4, 8), torch.randn(5, 8), torch.randn(5, 8), enable_gqa=True)
    with pytest.raises(ValueError, match=r"leading .* do not broadcast"):  # without enable_gqa
        sdpa(q, torch.randn(2, 3, 5, 8), torch.randn(2, 3, 5, 8))
