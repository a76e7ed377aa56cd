"""attnlib.masks: polarity, shapes, conversion from nn.MultiheadAttention, errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from attnlib import scaled_dot_product_attention as sdpa
from attnlib.masks import (
    causal_mask,
    combine,
    from_key_padding_mask,
    from_mha_attn_mask,
    padding_mask,
    to_key_padding_mask,
    to_mha_attn_mask,
)


def test_causal_mask_is_lower_triangular_true_means_allowed():
    m = causal_mask(3)
    assert m.dtype == torch.bool
    assert m.tolist() == [[True, False, False], [True, True, False], [True, True, True]]


@pytest.mark.parametrize("L,S", [(2, 5), (5, 2), (4, 4)])
def test_causal_mask_matches_pytorch_is_causal(L, S):
    g = torch.Generator().manual_seed(0)
    q, k, v = torch.randn(1, L, 4, generator=g), torch.randn(1, S, 4, generator=g), torch.randn(
        1, S, 4, generator=g
    )
    m = causal_mask(L, S)
    assert m.shape == (L, S)
    expected = F.scaled_dot_product_attention(q[:, : min(L, S)], k, v, is_causal=True)
    got, _ = sdpa(q[:, : min(L, S)], k, v, attn_mask=m[: min(L, S)])
    torch.testing.assert_close(got, expected)


def test_causal_mask_device_and_errors():
    assert causal_mask(2, device="cpu").device.type == "cpu"
    with pytest.raises(ValueError, match=r"causal_mask: L must be an int >= 0, got -1"):
        causal_mask(-1)
    with pytest.raises(ValueError, match="causal_mask: S must be"):
        causal_mask(2, 2.5)


def test_padding_mask_shape_and_values():
    m = padding_mask([3, 1, 0], S=4)
    assert m.shape == (3, 1, 1, 4) and m.dtype == torch.bool
    assert m[:, 0, 0].tolist() == [
        [True, True, True, False],
        [True, False, False, False],
        [False, False, False, False],
    ]
    assert padding_mask(torch.tensor([2, 5])).shape == (2, 1, 1, 5)


def test_padded_keys_get_exactly_zero_weight():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 2, 5, 8, generator=g)  # (N, H, L, E)
    _, w = sdpa(x, x, x, attn_mask=padding_mask([5, 2], S=5))
    assert torch.all(w[1, :, :, 2:] == 0)


@pytest.mark.parametrize(
    "lengths,S,message",
    [
        ([3, 5], 4, r"every length must be in \[0, S=4\], got lengths \[3, 5\]"),
        ([-1, 2], None, "every length must be in"),
        ([[1, 2]], None, "lengths must be a 1-D sequence of ints"),
        ([1.5, 2.0], None, "lengths must be a 1-D sequence of ints"),
    ],
)
def test_padding_mask_errors(lengths, S, message):
    with pytest.raises(ValueError, match=message):
        padding_mask(lengths, S)


def test_from_key_padding_mask_flips_pytorch_polarity():
    kpm = torch.tensor([[False, False, True], [False, True, True]])  # True = padding (PyTorch)
    allowed = from_key_padding_mask(kpm)
    assert allowed.shape == (2, 1, 1, 3)
    assert torch.equal(allowed, padding_mask([2, 1], S=3))


def test_from_key_padding_mask_agrees_with_nn_multihead_attention():
    torch.manual_seed(0)
    mha = torch.nn.MultiheadAttention(8, 2, batch_first=True, bias=False).eval()
    x = torch.randn(2, 4, 8)
    kpm = torch.tensor([[False, False, False, True], [False, True, True, True]])
    _, w_torch = mha(x, x, x, key_padding_mask=kpm, average_attn_weights=False)
    # the same computation by hand, with our polarity
    q, k, v = (x @ w.T for w in mha.in_proj_weight.chunk(3))
    q, k = (t.view(2, 4, 2, 4).transpose(1, 2) for t in (q, k))  # (N, H, L, E)
    v = v.view(2, 4, 2, 4).transpose(1, 2)
    _, w_ours = sdpa(q, k, v, attn_mask=from_key_padding_mask(kpm))
    torch.testing.assert_close(w_ours, w_torch)


def test_from_key_padding_mask_float_and_errors():
    f = torch.tensor([[0.0, float("-inf")]])
    assert torch.equal(from_key_padding_mask(f), f[:, None, None, :])
    with pytest.raises(ValueError, match=r"key_padding_mask must be a 2-D tensor \(N, S\), got "
                                         r"shape \(2, 1, 3\)"):
        from_key_padding_mask(torch.zeros(2, 1, 3, dtype=torch.bool))
    with pytest.raises(TypeError, match="key_padding_mask must be boolean"):
        from_key_padding_mask(torch.zeros(2, 3, dtype=torch.int32))


def test_from_mha_attn_mask():
    mha_mask = torch.triu(torch.ones(3, 3, dtype=torch.bool), diagonal=1)  # True = not allowed
    assert torch.equal(from_mha_attn_mask(mha_mask), causal_mask(3))
    f = torch.zeros(3, 3)
    assert from_mha_attn_mask(f) is f
    with pytest.raises(ValueError, match="attn_mask must be a tensor"):
        from_mha_attn_mask(torch.zeros(3, dtype=torch.bool))


def test_combine_causal_and_padding():
    m = combine(causal_mask(3), padding_mask([3, 2], S=3))
    assert m.shape == (2, 1, 3, 3)
    assert m[1, 0].tolist() == [[True, False, False], [True, True, False], [True, True, False]]
    with pytest.raises(TypeError, match=r"combine: mask 1 must be a boolean \(True = may attend\) "
                                        r"or floating tensor, got torch.int64"):
        combine(causal_mask(3), torch.zeros(3, 3, dtype=torch.int64))
    with pytest.raises(ValueError, match="do not broadcast"):
        combine(causal_mask(3), causal_mask(4))
    with pytest.raises(ValueError, match="at least one mask"):
        combine()


def test_combine_a_float_bias_with_boolean_masks():
    bias = torch.tensor([[0.5, -1.0, 2.0], [1.0, 0.0, -3.0], [0.25, 0.75, 1.5]])  # (L, S)
    pad = padding_mask([3, 2], S=3)  # (N, 1, 1, S)
    m = combine(bias, causal_mask(3), pad)  # (N, 1, L, S)
    assert m.dtype == torch.float32 and m.shape == (2, 1, 3, 3)
    allowed = combine(causal_mask(3), pad)
    assert torch.equal(torch.isneginf(m), ~allowed)
    assert torch.equal(m[allowed], bias.expand(2, 1, 3, 3)[allowed])
    # softmax of the combined mask is softmax of the bias over the allowed keys only
    expected = torch.softmax(bias.masked_fill(~allowed, float("-inf")), dim=-1)
    torch.testing.assert_close(torch.softmax(m, dim=-1), expected)


def test_to_functions_undo_the_from_functions():
    g = torch.Generator().manual_seed(0)
    padding = torch.rand(3, 5, generator=g) < 0.5  # (N, S), PyTorch: True = padding
    token_mask = from_key_padding_mask(padding)[:, 0, 0]  # (N, S), True = a real token
    assert torch.equal(token_mask, ~padding)
    assert torch.equal(to_key_padding_mask(token_mask), padding)
    ignore = torch.rand(4, 5, generator=g) < 0.5  # (L, S), PyTorch MHA: True = not allowed
    assert torch.equal(to_mha_attn_mask(from_mha_attn_mask(ignore)), ignore)
    bias = torch.randn(4, 5, generator=g)
    assert to_mha_attn_mask(bias) is bias
    with pytest.raises(TypeError, match=r"to_key_padding_mask: token_mask must be boolean"):
        to_key_padding_mask(torch.ones(3, 5))
    with pytest.raises(ValueError, match=r"token_mask must be a 2-D tensor \(N, S\)"):
        to_key_padding_mask(torch.ones(3, 1, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"attend_mask must be a tensor \(L, S\) or \(N\*H"):
        to_mha_attn_mask(torch.ones(5, dtype=torch.bool))
