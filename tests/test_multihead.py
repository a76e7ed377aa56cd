"""attnlib.MultiHeadAttention equals torch.nn.MultiheadAttention once the weights are copied.

PyTorch's module and ours differ in three conventions, and every test here crosses them on
purpose:

- mask names and polarity: PyTorch's ``key_padding_mask`` and boolean ``attn_mask`` say True =
  *ignore*. attnlib accepts those names with that meaning (so a call copied from PyTorch gives
  PyTorch's output: ``compare`` runs every PyTorch call on attnlib's module as it is), and has its
  own names for its own polarity, ``attend_mask`` (True = may attend) and ``token_mask`` (True =
  a real token), converted with attnlib.masks.from_key_padding_mask and from_mha_attn_mask or by
  ``~``. Both names of one mask at once are a TypeError;
- weights: PyTorch averages them over heads unless ``average_attn_weights=False``; attnlib always
  returns ``(N, H, L, S)``;
- a query with no allowed key: PyTorch returns NaN, attnlib zero weights (so the heads' output is
  0 and the layer's output is the output projection's bias).

Grouped-query attention (``num_kv_heads``), which PyTorch's module lacks, is checked against
``F.scaled_dot_product_attention(enable_gqa=True)`` and against repeating the key/value heads.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from attnlib import masks
from attnlib.multihead import MultiHeadAttention

ATOL, RTOL = 2e-5, 1e-4


def make_pair(D, H, *, kdim=None, vdim=None, bias=True, seed=0, randomise_biases=True):
    """A PyTorch module (eval mode) and its attnlib copy. PyTorch initialises the biases to 0;
    random biases make the comparison stricter."""
    torch.manual_seed(seed)
    ref = nn.MultiheadAttention(D, H, bias=bias, kdim=kdim, vdim=vdim, batch_first=True).eval()
    if bias and randomise_biases:
        with torch.no_grad():
            ref.in_proj_bias.normal_()
            ref.out_proj.bias.normal_()
    return ref, MultiHeadAttention.from_torch(ref).eval()


def inputs(N, L, S, D, kdim, vdim, seed):
    g = torch.Generator().manual_seed(seed)
    query = torch.randn(N, L, D, generator=g)  # (N, L, D)
    key = torch.randn(N, S, kdim, generator=g)  # (N, S, kdim)
    value = torch.randn(N, S, vdim, generator=g)  # (N, S, vdim)
    return query, key, value


def compare(ref, ours, query, key, value, torch_kwargs, our_kwargs):
    """Run both; compare outputs and per-head weights. Rows PyTorch leaves NaN (no allowed key)
    must be zero weights in attnlib and an output equal to the output projection's bias."""
    out_t, w_t = ref(query, key, value, need_weights=True, average_attn_weights=False,
                     **torch_kwargs)  # (N, L, D), (N, H, L, S)
    out_a, w_a = ours(query, key, value, need_weights=True, **our_kwargs)
    assert out_a.shape == out_t.shape and w_a.shape == w_t.shape
    # The PyTorch call itself, unchanged, on attnlib's module: PyTorch's names, PyTorch's polarity.
    out_p, w_p = ours(query, key, value, need_weights=True, **torch_kwargs)
    torch.testing.assert_close(out_p, out_a)
    torch.testing.assert_close(w_p, w_a)
    assert torch.isfinite(out_a).all() and torch.isfinite(w_a).all()

    dead = torch.isnan(w_t).any(dim=-1)  # (N, H, L): rows PyTorch could not normalise
    live_w = ~torch.isnan(w_t)
    torch.testing.assert_close(w_a[live_w], w_t[live_w], atol=ATOL, rtol=RTOL)
    assert torch.all(w_a[dead] == 0)

    dead_query = dead.any(dim=1)  # (N, L): a query whose output PyTorch made NaN
    torch.testing.assert_close(out_a[~dead_query], out_t[~dead_query], atol=ATOL, rtol=RTOL)
    if dead.any():
        fully = dead.all(dim=1)  # (N, L): every head empty -> the output is the bias alone
        bias = ours.out_proj.bias if ours.out_proj.bias is not None else torch.zeros(ours.embed_dim)
        torch.testing.assert_close(out_a[fully], bias.detach().expand_as(out_a[fully]))
    # Averaged over heads, attnlib's weights are PyTorch's default output.
    _, w_avg = ref(query, key, value, need_weights=True, **torch_kwargs)  # (N, L, S)
    live = ~torch.isnan(w_avg)
    torch.testing.assert_close(w_a.mean(dim=1)[live], w_avg[live], atol=ATOL, rtol=RTOL)
    return out_a, w_a


def random_bool(shape, p_masked, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=g) < p_masked  # PyTorch polarity: True = ignore


# --- fixed cases ---------------------------------------------------------------------------------


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize(
    ("N", "L", "S", "D", "H"),
    [(1, 1, 1, 4, 1), (2, 5, 5, 8, 2), (3, 4, 7, 12, 3), (2, 7, 3, 16, 4), (1, 6, 6, 16, 16)],
)
def test_no_mask_matches_pytorch(N, L, S, D, H, bias):
    ref, ours = make_pair(D, H, bias=bias, seed=N + L + S)
    q, k, v = inputs(N, L, S, D, D, D, seed=1)
    compare(ref, ours, q, k, v, {}, {})


def test_self_attention_with_one_tensor_matches_pytorch():
    ref, ours = make_pair(8, 2)
    x = inputs(2, 5, 5, 8, 8, 8, seed=3)[0]
    compare(ref, ours, x, x, x, {}, {})


@pytest.mark.parametrize(("kdim", "vdim"), [(5, 5), (3, 7), (8, 4)])
def test_kdim_vdim_match_pytorch(kdim, vdim):
    ref, ours = make_pair(8, 2, kdim=kdim, vdim=vdim, seed=kdim)
    assert ours.k_proj.in_features == kdim and ours.v_proj.in_features == vdim
    q, k, v = inputs(2, 4, 6, 8, kdim, vdim, seed=2)
    compare(ref, ours, q, k, v, {}, {})


def test_bool_attn_mask_matches_after_conversion():
    ref, ours = make_pair(8, 2, seed=4)
    q, k, v = inputs(2, 5, 6, 8, 8, 8, seed=4)
    ignore = random_bool((5, 6), 0.4, seed=4)  # (L, S), PyTorch's polarity
    compare(ref, ours, q, k, v, {"attn_mask": ignore},
            {"attend_mask": masks.from_mha_attn_mask(ignore)})
    compare(ref, ours, q, k, v, {"attn_mask": ignore}, {"attend_mask": ~ignore})


def test_per_head_bool_mask_matches():
    N, H, L, S = 2, 2, 4, 5
    ref, ours = make_pair(8, H, seed=5)
    q, k, v = inputs(N, L, S, 8, 8, 8, seed=5)
    ignore = random_bool((N * H, L, S), 0.5, seed=5)  # (N*H, L, S), PyTorch's layout
    # attnlib's attend_mask takes attnlib's layout for the same mask: (N, H, L, S).
    compare(ref, ours, q, k, v, {"attn_mask": ignore},
            {"attend_mask": masks.from_mha_attn_mask(ignore).view(N, H, L, S)})
    compare(ref, ours, q, k, v, {"attn_mask": ignore},
            {"attend_mask": ~ignore.view(N, H, L, S)})


def test_float_attn_mask_matches():
    ref, ours = make_pair(8, 4, seed=6)
    q, k, v = inputs(3, 4, 4, 8, 8, 8, seed=6)
    g = torch.Generator().manual_seed(6)
    bias = torch.randn(4, 4, generator=g)  # (L, S): an additive bias, like ALiBi or T5's
    bias[0, 1:] = float("-inf")
    compare(ref, ours, q, k, v, {"attn_mask": bias}, {"attend_mask": bias})
    # from_mha_attn_mask leaves a float mask as it is.
    assert masks.from_mha_attn_mask(bias) is bias


def test_key_padding_mask_matches_both_ways():
    ref, ours = make_pair(8, 2, seed=7)
    q, k, v = inputs(3, 4, 6, 8, 8, 8, seed=7)
    lengths = torch.tensor([6, 3, 1])
    padding = torch.arange(6)[None, :] >= lengths[:, None]  # (N, S), True = padding (PyTorch)
    torch_kwargs = {"key_padding_mask": padding}
    # 1. attnlib's key_padding_mask argument, in attnlib's polarity (True = real token).
    compare(ref, ours, q, k, v, torch_kwargs, {"token_mask": ~padding})
    # 2. converted at the boundary into an attn_mask (N, 1, 1, S).
    converted = masks.from_key_padding_mask(padding)
    assert converted.shape == (3, 1, 1, 6)
    compare(ref, ours, q, k, v, torch_kwargs, {"attend_mask": converted})
    # 3. the same mask built from the lengths.
    compare(ref, ours, q, k, v, torch_kwargs, {"attend_mask": masks.padding_mask(lengths, 6)})
    # Padded keys get exactly zero weight.
    _, w = ours(q, k, v, token_mask=~padding)
    assert torch.all(w.masked_select(padding[:, None, None, :].expand_as(w)) == 0)


def test_float_key_padding_mask_converts_to_an_attn_mask():
    ref, ours = make_pair(8, 2, seed=8)
    q, k, v = inputs(2, 3, 5, 8, 8, 8, seed=8)
    additive = torch.zeros(2, 5)
    additive[0, 3:] = float("-inf")
    additive[1, 0] = -2.0
    compare(ref, ours, q, k, v, {"key_padding_mask": additive},
            {"attend_mask": masks.from_key_padding_mask(additive)})


def test_attn_mask_and_key_padding_mask_together():
    ref, ours = make_pair(8, 2, seed=9)
    q, k, v = inputs(2, 5, 5, 8, 8, 8, seed=9)
    future = torch.ones(5, 5, dtype=torch.bool).triu(1)  # (L, S), True = not allowed (PyTorch)
    padding = torch.tensor([[False] * 5, [False, False, False, True, True]])  # (N, S)
    compare(ref, ours, q, k, v, {"attn_mask": future, "key_padding_mask": padding},
            {"attend_mask": ~future, "token_mask": ~padding})
    compare(ref, ours, q, k, v, {"attn_mask": future, "key_padding_mask": padding},
            {"is_causal": True, "token_mask": ~padding})


def test_float_attn_mask_with_bool_key_padding_mask():
    ref, ours = make_pair(8, 2, seed=10)
    q, k, v = inputs(2, 4, 4, 8, 8, 8, seed=10)
    additive = torch.zeros(4, 4).masked_fill(torch.ones(4, 4, dtype=torch.bool).triu(1), -math.inf)
    padding = torch.tensor([[False] * 4, [False, False, True, True]])
    compare(ref, ours, q, k, v, {"attn_mask": additive, "key_padding_mask": padding.float()
                                 .masked_fill(padding, -math.inf)},
            {"attend_mask": additive, "token_mask": ~padding})


def test_is_causal_equals_pytorch_with_its_causal_mask():
    ref, ours = make_pair(12, 3, seed=11)
    q, k, v = inputs(2, 6, 6, 12, 12, 12, seed=11)
    torch_mask = nn.Transformer.generate_square_subsequent_mask(6)  # float, -inf above diagonal
    out, w = compare(ref, ours, q, k, v, {"attn_mask": torch_mask, "is_causal": True},
                     {"is_causal": True})
    assert torch.all(w.triu(1) == 0)
    compare(ref, ours, q, k, v, {"attn_mask": torch_mask}, {"attend_mask": torch_mask})
    compare(ref, ours, q, k, v, {"attn_mask": torch_mask},
            {"attend_mask": masks.causal_mask(6)})


def test_fully_masked_rows_are_zero_not_nan():
    ref, ours = make_pair(8, 2, seed=12)
    q, k, v = inputs(2, 3, 4, 8, 8, 8, seed=12)
    padding = torch.tensor([[False] * 4, [True] * 4])  # the second sequence has no real key
    out_t, _ = ref(q, k, v, key_padding_mask=padding)
    assert torch.isnan(out_t[1]).all()  # PyTorch: NaN
    out_a, w_a = ours(q, k, v, token_mask=~padding)
    assert torch.all(w_a[1] == 0)
    torch.testing.assert_close(out_a[1], ours.out_proj.bias.detach().expand(3, 8))
    compare(ref, ours, q, k, v, {"key_padding_mask": padding}, {"token_mask": ~padding})


def test_gradients_match_pytorch():
    ref, ours = make_pair(8, 2, seed=13)
    q, k, v = inputs(2, 4, 5, 8, 8, 8, seed=13)
    ignore = random_bool((4, 5), 0.3, seed=13)
    ignore[:, 0] = False  # every query keeps a key
    qa, qt = q.clone().requires_grad_(), q.clone().requires_grad_()
    out_t, _ = ref(qt, k, v, attn_mask=ignore)
    out_a, _ = ours(qa, k, v, attend_mask=~ignore)
    g = torch.Generator().manual_seed(0)
    upstream = torch.randn(out_t.shape, generator=g)
    (out_t * upstream).sum().backward()
    (out_a * upstream).sum().backward()
    torch.testing.assert_close(qa.grad, qt.grad, atol=ATOL, rtol=RTOL)
    D = 8
    wq, wk, wv = ref.in_proj_weight.grad.split(D)
    torch.testing.assert_close(ours.q_proj.weight.grad, wq, atol=ATOL, rtol=RTOL)
    torch.testing.assert_close(ours.k_proj.weight.grad, wk, atol=ATOL, rtol=RTOL)
    torch.testing.assert_close(ours.v_proj.weight.grad, wv, atol=ATOL, rtol=RTOL)
    torch.testing.assert_close(ours.out_proj.weight.grad, ref.out_proj.weight.grad,
                               atol=ATOL, rtol=RTOL)


def test_float64_matches_tightly():
    torch.manual_seed(14)
    ref = nn.MultiheadAttention(8, 4, batch_first=True, dtype=torch.float64).eval()
    ours = MultiHeadAttention.from_torch(ref).eval()
    assert ours.q_proj.weight.dtype == torch.float64
    x = torch.randn(2, 5, 8, dtype=torch.float64)
    out_t, w_t = ref(x, x, x, average_attn_weights=False)
    out_a, w_a = ours(x, x, x)
    torch.testing.assert_close(out_a, out_t, atol=1e-12, rtol=1e-10)
    torch.testing.assert_close(w_a, w_t, atol=1e-12, rtol=1e-10)


def test_need_weights_false_returns_none_and_the_same_output():
    ref, ours = make_pair(8, 2, seed=15)
    q, k, v = inputs(1, 3, 3, 8, 8, 8, seed=15)
    out, w = ours(q, k, v, need_weights=False)
    assert w is None
    torch.testing.assert_close(out, ours(q, k, v)[0])


def test_custom_scale_matches_sdpa_by_hand():
    _, ours = make_pair(8, 2, seed=16)
    q, k, v = inputs(2, 3, 4, 8, 8, 8, seed=16)
    out, w = ours(q, k, v, scale=0.1)
    qh = ours.split_heads(ours.q_proj(q))  # (N, H, L, E)
    kh = ours.split_heads(ours.k_proj(k))  # (N, H, S, E)
    expected = torch.softmax(qh @ kh.transpose(-2, -1) * 0.1, dim=-1)  # (N, H, L, S)
    torch.testing.assert_close(w, expected)


def test_split_and_merge_heads_are_inverse_and_use_blocks():
    _, ours = make_pair(12, 3)
    x = torch.arange(2 * 4 * 12, dtype=torch.float32).view(2, 4, 12)  # (N, L, D)
    heads = ours.split_heads(x)  # (N, H, L, E)
    assert heads.shape == (2, 3, 4, 4)
    torch.testing.assert_close(heads[:, 1], x[:, :, 4:8])  # head 1 owns features 4..7
    torch.testing.assert_close(ours.merge_heads(heads), x)


def test_weights_rows_sum_to_one_over_keys_per_head():
    _, ours = make_pair(16, 4, seed=17)
    q, k, v = inputs(2, 3, 7, 16, 16, 16, seed=17)
    _, w = ours(q, k, v)  # (N, H, L, S)
    torch.testing.assert_close(w.sum(dim=-1), torch.ones(2, 4, 3))
    assert not torch.allclose(w.sum(dim=1), torch.ones(2, 3, 7))  # heads are not normalised


def test_from_torch_keeps_training_mode_and_dropout():
    torch.manual_seed(18)
    ref = nn.MultiheadAttention(8, 2, dropout=0.25, batch_first=True)
    ours = MultiHeadAttention.from_torch(ref)
    assert ours.training and ours.dropout == 0.25
    x = torch.randn(1, 6, 8)
    _, w = ours(x, x, x)  # weights are returned before dropout: still distributions
    torch.testing.assert_close(w.sum(-1), torch.ones(1, 2, 6))
    ref.eval(), ours.eval()
    compare(ref, ours, x, x, x, {}, {})


def test_per_head_mask_with_key_padding_mask():
    N, H, L, S = 2, 2, 3, 4
    ref, ours = make_pair(8, H, seed=19)
    q, k, v = inputs(N, L, S, 8, 8, 8, seed=19)
    ignore = random_bool((N * H, L, S), 0.3, seed=19)
    padding = torch.tensor([[False] * 4, [False, False, True, True]])
    compare(ref, ours, q, k, v, {"attn_mask": ignore, "key_padding_mask": padding},
            {"attend_mask": ~ignore.view(N, H, L, S), "token_mask": ~padding})


# --- hypothesis: many shapes, masks and seeds ----------------------------------------------------

MASK_KINDS = ("none", "bool", "float", "per_head", "padding", "padding+bool", "causal")


@settings(max_examples=80, deadline=None)
@given(
    N=st.integers(1, 3),
    H=st.sampled_from([1, 2, 3, 4]),
    E=st.integers(1, 4),
    L=st.integers(1, 6),
    S=st.integers(1, 6),
    kdim=st.one_of(st.none(), st.integers(1, 6)),
    vdim=st.one_of(st.none(), st.integers(1, 6)),
    bias=st.booleans(),
    kind=st.sampled_from(MASK_KINDS),
    seed=st.integers(0, 2**16),
)
def test_matches_pytorch_property(N, H, E, L, S, kdim, vdim, bias, kind, seed):
    D = H * E
    ref, ours = make_pair(D, H, kdim=kdim, vdim=vdim, bias=bias, seed=seed)
    q, k, v = inputs(N, L, S, D, kdim or D, vdim or D, seed=seed)
    g = torch.Generator().manual_seed(seed)
    torch_kwargs, our_kwargs = {}, {}
    if kind == "bool":
        ignore = torch.rand(L, S, generator=g) < 0.4
        torch_kwargs, our_kwargs = {"attn_mask": ignore}, {"attend_mask": ~ignore}
    elif kind == "float":
        additive = torch.randn(L, S, generator=g)
        additive[torch.rand(L, S, generator=g) < 0.3] = float("-inf")
        torch_kwargs, our_kwargs = {"attn_mask": additive}, {"attend_mask": additive}
    elif kind == "per_head" and N * H > 1:
        ignore = torch.rand(N * H, L, S, generator=g) < 0.4
        torch_kwargs = {"attn_mask": ignore}
        our_kwargs = {"attend_mask": masks.from_mha_attn_mask(ignore).view(N, H, L, S)}
    elif kind == "padding":
        lengths = torch.randint(0, S + 1, (N,), generator=g)
        padding = torch.arange(S)[None, :] >= lengths[:, None]  # (N, S), True = padding
        torch_kwargs, our_kwargs = {"key_padding_mask": padding}, {"token_mask": ~padding}
    elif kind == "padding+bool":
        padding = torch.rand(N, S, generator=g) < 0.3
        ignore = torch.rand(L, S, generator=g) < 0.3
        torch_kwargs = {"key_padding_mask": padding, "attn_mask": ignore}
        our_kwargs = {
            "attend_mask": masks.combine(masks.from_key_padding_mask(padding),
                                       masks.from_mha_attn_mask(ignore)),
        }
    elif kind == "causal":
        future = torch.ones(L, S, dtype=torch.bool).triu(1)  # top-left aligned, True = ignore
        torch_kwargs, our_kwargs = {"attn_mask": future}, {"is_causal": True}
    compare(ref, ours, q, k, v, torch_kwargs, our_kwargs)


# --- bad input gets clear errors -----------------------------------------------------------------


@pytest.mark.parametrize(("D", "H"), [(10, 3), (8, 3), (6, 4)])
def test_embed_dim_not_divisible_by_num_heads(D, H):
    with pytest.raises(ValueError, match=rf"embed_dim \({D}\) must be divisible by num_heads "
                                         rf"\({H}\)"):
        MultiHeadAttention(D, H)


@pytest.mark.parametrize(("D", "H"), [(0, 1), (8, 0), (-4, 2)])
def test_sizes_must_be_positive(D, H):
    with pytest.raises(ValueError, match=r"MultiHeadAttention: (embed_dim|num_heads) must be a "
                                         r"positive int"):
        MultiHeadAttention(D, H)


def test_attend_mask_of_the_wrong_shape():
    mha = MultiHeadAttention(8, 2)
    x = torch.randn(2, 4, 8)
    with pytest.raises(ValueError, match=r"attend_mask of shape \(5, 4\) does not broadcast to "
                                         r"the scores' shape \(N, H, L, S\) = \(2, 2, 4, 4\)"):
        mha(x, x, x, attend_mask=torch.ones(5, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"\(N, H, L, S\) = \(2, 2, 4, 4\)"):
        mha(x, x, x, attend_mask=torch.zeros(3, 4, 4))  # not (H, L, S)
    with pytest.raises(ValueError, match=r"\(N, H, L, S\) = \(2, 2, 4, 4\)"):
        mha(x, x, x, attend_mask=torch.zeros(3, 2, 2, 4, 4))  # would grow the scores
    with pytest.raises(ValueError, match=r"for PyTorch's \(N\*H, L, S\) layout use "
                                         r"attend_mask.view\(N, H, L, S\)"):
        mha(x, x, x, attend_mask=torch.ones(4, 4, 4, dtype=torch.bool))  # (N*H, L, S)


def test_pytorch_attn_mask_of_the_wrong_shape():
    mha = MultiHeadAttention(8, 2)
    x = torch.randn(2, 4, 8)
    with pytest.raises(ValueError, match=r"attn_mask \(PyTorch's polarity\) must be \(L, S\) = "
                                         r"\(4, 4\) or \(N\*H, L, S\) = \(4, 4, 4\).*attend_mask"):
        mha(x, x, x, attn_mask=torch.ones(2, 2, 4, 4, dtype=torch.bool))


@pytest.mark.parametrize("name", ["attend_mask", "attn_mask"])
def test_mask_of_the_wrong_dtype(name):
    mha = MultiHeadAttention(8, 2)
    x = torch.randn(1, 3, 8)
    with pytest.raises(TypeError, match=r"must be a? ?boolean .* or .*float.* got dtype "
                                        r"torch.int64"):
        mha(x, x, x, **{name: torch.ones(3, 3, dtype=torch.long)})


@pytest.mark.parametrize("dtype", [torch.float32, torch.int64, torch.uint8])
def test_token_mask_of_the_wrong_dtype(dtype):
    mha = MultiHeadAttention(8, 2)
    x = torch.randn(2, 3, 8)
    with pytest.raises(TypeError, match=r"token_mask must be a boolean tensor \(N, S\) with True "
                                        r"= a real token .*key_padding_mask"):
        mha(x, x, x, token_mask=torch.ones(2, 3, dtype=dtype))


@pytest.mark.parametrize("shape", [(3, 2), (2,), (2, 3, 1), (1, 3)])
@pytest.mark.parametrize("name", ["token_mask", "key_padding_mask"])
def test_token_mask_of_the_wrong_shape(shape, name):
    mha = MultiHeadAttention(8, 2)
    x = torch.randn(2, 3, 8)
    with pytest.raises(ValueError, match=rf"{name}( \(PyTorch's polarity: True = padding\))? must "
                                         rf"have shape \(N, S\) = \(2, 3\), got "
                                         rf"{__import__('re').escape(str(shape))}"):
        mha(x, x, x, **{name: torch.ones(shape, dtype=torch.bool)})


@pytest.mark.parametrize(("ours", "theirs", "convert"), [
    ("attend_mask", "attn_mask", "from_mha_attn_mask"),
    ("token_mask", "key_padding_mask", "from_key_padding_mask"),
])
def test_both_names_of_one_mask_is_a_type_error(ours, theirs, convert):
    mha = MultiHeadAttention(8, 2)
    x = torch.randn(2, 3, 8)
    shape = (3, 3) if ours == "attend_mask" else (2, 3)
    m = torch.ones(shape, dtype=torch.bool)
    with pytest.raises(TypeError, match=rf"got both {ours} .*and {theirs} .*PyTorch's polarity.*"
                                        rf"attnlib.masks.{convert}"):
        mha(x, x, x, **{ours: m, theirs: ~m})


def test_pytorch_names_mean_the_opposite_of_attnlib_names():
    """The trap, spelled out: the same boolean tensor under the two names selects opposite keys."""
    _, ours = make_pair(8, 2, seed=20)
    x = inputs(2, 4, 4, 8, 8, 8, seed=20)[0]
    real = torch.tensor([[True, True, True, True], [True, True, False, False]])  # (N, S)
    _, w_token = ours(x, x, x, token_mask=real)
    _, w_padding = ours(x, x, x, key_padding_mask=real)  # PyTorch: True = padding
    assert torch.all(w_token[1, :, :, 2:] == 0) and torch.all(w_token[1, :, :, :2] > 0)
    assert torch.all(w_padding[1, :, :, :2] == 0) and torch.all(w_padding[1, :, :, 2:] > 0)
    causal = masks.causal_mask(4)  # True = may attend
    _, w_attend = ours(x, x, x, attend_mask=causal)
    _, w_attn = ours(x, x, x, attn_mask=causal)  # PyTorch: True = not allowed
    assert torch.all(w_attend.triu(1) == 0) and torch.all(w_attn.tril() == 0)


def test_inputs_of_the_wrong_shape():
    mha = MultiHeadAttention(8, 2, kdim=5)
    x = torch.randn(2, 3, 8)
    with pytest.raises(ValueError, match=r"query must have shape \(N, length, 8\) \(batch-first\)"):
        mha(torch.randn(3, 8), x, x)
    with pytest.raises(ValueError, match=r"key must have shape \(N, length, 5\)"):
        mha(x, x, x)
    mha = MultiHeadAttention(8, 2)
    with pytest.raises(ValueError, match="share the batch size N"):
        mha(x, torch.randn(1, 3, 8), torch.randn(1, 3, 8))
    with pytest.raises(ValueError, match="key and value must have the same length S"):
        mha(x, torch.randn(2, 4, 8), torch.randn(2, 5, 8))


def test_from_torch_refuses_what_it_cannot_copy():
    with pytest.raises(ValueError, match="batch_first=True"):
        MultiHeadAttention.from_torch(nn.MultiheadAttention(8, 2))
    with pytest.raises(ValueError, match="add_bias_kv and add_zero_attn are not supported"):
        MultiHeadAttention.from_torch(nn.MultiheadAttention(8, 2, add_bias_kv=True,
                                                            batch_first=True))
    with pytest.raises(TypeError, match="must be a torch.nn.MultiheadAttention"):
        MultiHeadAttention.from_torch(nn.Linear(8, 8))


def test_mask_conversion_rejects_bad_masks():
    with pytest.raises(ValueError, match=r"key_padding_mask must be a 2-D tensor \(N, S\)"):
        masks.from_key_padding_mask(torch.ones(2, 1, 3, dtype=torch.bool))
    with pytest.raises(TypeError, match="boolean .True = padding. or floating, got dtype "
                                        "torch.int64"):
        masks.from_key_padding_mask(torch.ones(2, 3, dtype=torch.long))


# --- grouped-query attention (num_kv_heads) ------------------------------------------------------


@pytest.mark.parametrize(("D", "H", "H_kv"), [(8, 4, 1), (12, 6, 2), (16, 4, 2), (8, 2, 2)])
@pytest.mark.parametrize("masked", [False, True])
def test_num_kv_heads_matches_torch_sdpa_and_repeated_heads(D, H, H_kv, masked):
    torch.manual_seed(D + H + H_kv)
    ours = MultiHeadAttention(D, H, num_kv_heads=H_kv).eval()
    E = D // H
    assert ours.k_proj.out_features == ours.v_proj.out_features == H_kv * E
    assert ours.q_proj.out_features == ours.out_proj.in_features == D
    N, L, S = 2, 5, 6
    q, k, v = inputs(N, L, S, D, D, D, seed=H_kv)
    real = torch.tensor([[True] * S, [True] * 3 + [False] * (S - 3)])  # (N, S)
    kwargs = {"token_mask": real, "is_causal": True} if masked else {}
    out, w = ours(q, k, v, **kwargs)
    assert out.shape == (N, L, D) and w.shape == (N, H, L, S)

    qh = ours.split_heads(ours.q_proj(q))  # (N, H, L, E)
    kh = ours.split_heads(ours.k_proj(k), H_kv)  # (N, H_kv, S, E)
    vh = ours.split_heads(ours.v_proj(v), H_kv)  # (N, H_kv, S, E)
    torch_mask = None
    if masked:
        torch_mask = masks.combine(real[:, None, None, :], masks.causal_mask(L, S))  # (N, 1, L, S)
    by_torch = torch.nn.functional.scaled_dot_product_attention(
        qh, kh, vh, attn_mask=torch_mask, enable_gqa=True
    )  # (N, H, L, E)
    torch.testing.assert_close(out, ours.out_proj(ours.merge_heads(by_torch)), atol=ATOL, rtol=RTOL)

    # Full multi-head attention whose key/value heads are each group's head repeated.
    full = MultiHeadAttention(D, H).eval()
    groups = H // H_kv
    with torch.no_grad():
        full.q_proj.load_state_dict(ours.q_proj.state_dict())
        full.out_proj.load_state_dict(ours.out_proj.state_dict())
        for mine, theirs in ((full.k_proj, ours.k_proj), (full.v_proj, ours.v_proj)):
            w_kv = theirs.weight.view(H_kv, E, D).repeat_interleave(groups, dim=0)  # (H, E, D)
            mine.weight.copy_(w_kv.reshape(D, D))
            mine.bias.copy_(theirs.bias.view(H_kv, E).repeat_interleave(groups, dim=0).reshape(D))
    out_full, w_full = full(q, k, v, **kwargs)
    torch.testing.assert_close(out, out_full, atol=ATOL, rtol=RTOL)
    torch.testing.assert_close(w, w_full, atol=ATOL, rtol=RTOL)


def test_num_kv_heads_errors_and_repr():
    with pytest.raises(ValueError, match=r"num_kv_heads \(3\) must divide num_heads \(4\)"):
        MultiHeadAttention(8, 4, num_kv_heads=3)
    with pytest.raises(ValueError, match=r"num_kv_heads must be a positive int, got 0"):
        MultiHeadAttention(8, 4, num_kv_heads=0)
    mha = MultiHeadAttention(8, 4, num_kv_heads=2)
    assert "num_kv_heads=2" in repr(mha) and mha.num_kv_heads == 2
    assert MultiHeadAttention(8, 4).num_kv_heads == 4
