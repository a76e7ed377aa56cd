"""attnlib's Transformer layers and RMSNorm: equal to PyTorch's (and Hugging Face's); properties.

Equivalence: with weights copied by ``from_torch`` (batch_first=True, post-norm and pre-norm, ReLU
and GELU, with biases or without), both layers give PyTorch's output in eval mode to float32
rounding, over many shapes, masks and seeds, at every position (padded ones too). Every PyTorch
call is run twice on attnlib's layer: unchanged (PyTorch's names ``src_mask``,
``src_key_padding_mask``, ``tgt_mask``, ``memory_mask``, ``*_key_padding_mask`` keep PyTorch's
polarity, True = *ignore*), and with attnlib's names (``*_attend_mask``: True = may attend;
``*_token_mask``: True = a real token) holding the converted masks.

Properties: without positions a whole encoder layer is permutation-equivariant; with positions it
is not; a causal decoder stack's output at position t does not depend on later target tokens (by
perturbation and by gradients). Bad input gets clear errors.
"""

from __future__ import annotations

import contextlib

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import attnlib
from attnlib import TransformerDecoderLayer, TransformerEncoderLayer
from attnlib.masks import causal_mask, from_mha_attn_mask
from attnlib.positional import LearnedPositionalEmbedding, apply_rope, sinusoidal_encoding

F32 = {"atol": 2e-5, "rtol": 2e-5}  # float32 rounding after a few matmuls and two LayerNorms


@contextlib.contextmanager
def pytorch_slow_path():
    """Keep PyTorch's encoder layer off its fused inference kernel ("fast path").

    That kernel turns a general float ``src_mask`` (not only 0 / -inf) into NaN
    (pytorch/pytorch#118628, open); the slow path implements the documented semantics.
    """
    before = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        torch.backends.mha.set_fastpath_enabled(before)


def torch_layer(kind: str, d_model, num_heads, ff, *, norm_first, activation, seed, bias=True,
                eps=1e-5, dtype=torch.float32):
    torch.manual_seed(seed)
    cls = nn.TransformerEncoderLayer if kind == "encoder" else nn.TransformerDecoderLayer
    layer = cls(d_model, num_heads, ff, dropout=0.1, activation=activation, layer_norm_eps=eps,
                batch_first=True, norm_first=norm_first, bias=bias, dtype=dtype)
    with torch.no_grad():  # non-trivial LayerNorm affine parameters, so copying them is tested
        for name, p in layer.named_parameters():
            if "norm" in name:
                p.add_(0.1 * torch.randn_like(p))
    return layer.eval()


def ignore_mask(g: torch.Generator, *shape: int) -> torch.Tensor:
    """A random boolean mask in PyTorch's polarity (True = ignore) leaving every row a key."""
    m = torch.rand(*shape, generator=g) < 0.4
    keep = torch.randint(0, shape[-1], shape[:-1], generator=g)
    return m.scatter(-1, keep[..., None], False)


def padding(g: torch.Generator, N: int, S: int) -> torch.Tensor:
    """PyTorch's key padding mask (True = padding), each sequence at least one real token."""
    lengths = torch.randint(1, S + 1, (N,), generator=g)
    return torch.arange(S)[None, :] >= lengths[:, None]  # (N, S)


def float_mask(g: torch.Generator, *shape: int) -> torch.Tensor:
    """Additive scores: random biases, some keys at -inf, never a whole row."""
    bias = torch.randn(*shape, generator=g)
    return bias.masked_fill(ignore_mask(g, *shape), float("-inf"))


# ------------------------------------------------------------------------------------------------
# Encoder layer: equal to PyTorch's
# ------------------------------------------------------------------------------------------------

MASKS = ["none", "bool", "per-head", "float", "padding", "causal", "causal+padding",
         "bool+padding"]


def encoder_masks(kind: str, g: torch.Generator, N: int, H: int, L: int):
    """(PyTorch's keyword arguments, attnlib's), the same masking in the two conventions."""
    if kind == "none":
        return {}, {}
    if kind == "bool":
        m = ignore_mask(g, L, L)
        return {"src_mask": m}, {"src_attend_mask": from_mha_attn_mask(m)}
    if kind == "per-head":  # PyTorch's (N * H, L, L) layout; attnlib's (N, H, L, L)
        m = ignore_mask(g, N * H, L, L)
        return {"src_mask": m}, {"src_attend_mask": ~m.view(N, H, L, L)}
    if kind == "float":
        m = float_mask(g, L, L)
        return {"src_mask": m}, {"src_attend_mask": m}
    if kind == "padding":
        p = padding(g, N, L)
        return {"src_key_padding_mask": p}, {"src_token_mask": ~p}
    if kind == "causal":
        m = nn.Transformer.generate_square_subsequent_mask(L)  # float, -inf above the diagonal
        return {"src_mask": m, "is_causal": True}, {"is_causal": True}
    if kind == "causal+padding":
        p = padding(g, N, L)
        m = ~causal_mask(L)  # PyTorch's polarity
        return (
            {"src_mask": m, "src_key_padding_mask": p, "is_causal": True},
            {"is_causal": True, "src_token_mask": ~p},
        )
    if kind == "per-head+padding":
        m, p = ignore_mask(g, N * H, L, L), padding(g, N, L)
        m[..., 0] = False
        return (
            {"src_mask": m, "src_key_padding_mask": p},
            {"src_attend_mask": ~m.view(N, H, L, L), "src_token_mask": ~p},
        )
    if kind == "bool+padding":
        m, p = ignore_mask(g, L, L), padding(g, N, L)
        # keep a key in every row of every sequence: the first one is real and allowed
        m[:, 0] = False
        return (
            {"src_mask": m, "src_key_padding_mask": p},
            {"src_attend_mask": ~m, "src_token_mask": ~p},
        )
    raise AssertionError(kind)


@st.composite
def layer_shapes(draw):
    H = draw(st.sampled_from([1, 2, 4]))
    return {
        "N": draw(st.integers(1, 3)),
        "L": draw(st.integers(1, 9)),
        "S": draw(st.integers(1, 9)),
        "H": H,
        "D": H * draw(st.sampled_from([1, 2, 4, 8])),
        "ff": draw(st.integers(1, 40)),
        "norm_first": draw(st.booleans()),
        "activation": draw(st.sampled_from(["relu", "gelu"])),
        "bias": draw(st.booleans()),
        "seed": draw(st.integers(0, 2**16)),
    }


def test_per_head_mask_with_padding():
    """PyTorch's per-head (N * H, L, L) src_mask together with a key padding mask (a regression
    test: the per-head mask must be reshaped to (N, H, L, L) before the padding is merged in)."""
    check_encoder({"N": 3, "L": 5, "H": 2, "D": 8, "ff": 16, "norm_first": False,
                   "activation": "relu", "bias": True, "seed": 0}, "per-head+padding")


def check_encoder(c: dict, mask_kind: str, *, dtype=torch.float32, tol=F32) -> None:
    N, L, H, D = c["N"], c["L"], c["H"], c["D"]
    ref = torch_layer("encoder", D, H, c["ff"], norm_first=c["norm_first"],
                      activation=c["activation"], seed=c["seed"], bias=c["bias"], dtype=dtype)
    ours = TransformerEncoderLayer.from_torch(ref)
    assert not ours.training
    g = torch.Generator().manual_seed(c["seed"])
    x = torch.randn(N, L, D, generator=g, dtype=dtype)
    theirs_kw, ours_kw = encoder_masks(mask_kind, g, N, H, L)
    with torch.no_grad():
        got = ours(x, **ours_kw)
        with pytorch_slow_path():
            expected = ref(x, **theirs_kw)
        torch.testing.assert_close(got, expected, **tol)  # every position, padded ones too
        # PyTorch's call, unchanged, on attnlib's layer: PyTorch's names keep PyTorch's polarity.
        torch.testing.assert_close(ours(x, **theirs_kw), expected, **tol)
        if mask_kind != "float":  # PyTorch's fused kernel too (see pytorch_slow_path)
            torch.testing.assert_close(got, ref(x, **theirs_kw), **tol)


@pytest.mark.parametrize("mask_kind", MASKS)
@settings(max_examples=20, deadline=None)
@given(c=layer_shapes())
def test_encoder_layer_equals_pytorch(c, mask_kind):
    check_encoder(c, mask_kind)


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
@pytest.mark.parametrize("mask_kind", ["none", "padding", "causal+padding"])
def test_encoder_layer_equals_pytorch_float64(norm_first, activation, mask_kind):
    c = {"N": 2, "L": 7, "H": 4, "D": 32, "ff": 48, "norm_first": norm_first,
         "activation": activation, "bias": True, "seed": 5}
    check_encoder(c, mask_kind, dtype=torch.float64, tol={"atol": 1e-12, "rtol": 1e-12})


def test_bert_sized_layer_equals_pytorch():
    """BERT's (MiniLM's) layer: post-norm, 384 wide, 12 heads, GELU, LayerNorm eps 1e-12."""
    ref = torch_layer("encoder", 384, 12, 1536, norm_first=False, activation="gelu", seed=0,
                      eps=1e-12)
    ours = TransformerEncoderLayer.from_torch(ref)
    assert ours.norm1.eps == 1e-12 and ours.self_attn.head_dim == 32
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 11, 384, generator=g)
    p = torch.tensor([[False] * 11, [False] * 6 + [True] * 5])
    with torch.no_grad():
        torch.testing.assert_close(
            ours(x, src_token_mask=~p), ref(x, src_key_padding_mask=p), **F32
        )
        torch.testing.assert_close(
            ours(x, src_key_padding_mask=p), ref(x, src_key_padding_mask=p), **F32
        )


def test_encoder_attention_weights_are_pytorchs_per_head():
    ref = torch_layer("encoder", 16, 4, 32, norm_first=True, activation="relu", seed=1)
    ours = TransformerEncoderLayer.from_torch(ref)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 6, 16, generator=g)
    p = torch.tensor([[False] * 6, [False] * 4 + [True] * 2])  # PyTorch's: True = padding
    with torch.no_grad():
        out, weights = ours(x, src_token_mask=~p, need_weights=True)
        _, expected = ref.self_attn(ref.norm1(x), ref.norm1(x), ref.norm1(x), key_padding_mask=p,
                                    need_weights=True, average_attn_weights=False)
    assert weights.shape == (2, 4, 6, 6)
    torch.testing.assert_close(weights, expected, **F32)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 4, 6))
    assert torch.equal(weights[1, ..., 4:], torch.zeros(4, 6, 2))  # padded keys: exactly 0
    with torch.no_grad():
        torch.testing.assert_close(out, ours(x, src_token_mask=~p))


@pytest.mark.parametrize("norm_first", [False, True])
def test_training_mode_gradients_equal_pytorch(norm_first):
    """In training mode (dropout 0, so both are deterministic) the gradients agree too."""
    torch.manual_seed(2)
    ref = nn.TransformerEncoderLayer(16, 2, 24, dropout=0.0, batch_first=True,
                                     norm_first=norm_first, activation="gelu")
    ours = TransformerEncoderLayer.from_torch(ref)
    assert ours.training
    x = torch.randn(3, 5, 16)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    ref(x1, is_causal=True, src_mask=~causal_mask(5)).square().sum().backward()
    ours(x2, is_causal=True).square().sum().backward()
    torch.testing.assert_close(x2.grad, x1.grad, **F32)
    torch.testing.assert_close(ours.linear1.weight.grad, ref.linear1.weight.grad, **F32)
    torch.testing.assert_close(ours.norm2.weight.grad, ref.norm2.weight.grad, **F32)
    wq, wk, wv = ref.self_attn.in_proj_weight.grad.split(16)
    torch.testing.assert_close(ours.self_attn.q_proj.weight.grad, wq, **F32)
    torch.testing.assert_close(ours.self_attn.v_proj.weight.grad, wv, **F32)


def test_from_torch_copies_and_does_not_share():
    ref = torch_layer("encoder", 8, 2, 16, norm_first=True, activation="gelu", seed=3)
    ours = TransformerEncoderLayer.from_torch(ref)
    assert ours.norm_first and isinstance(ours.self_attn, attnlib.MultiHeadAttention)
    assert ours.dropout.p == 0.1 and ours.linear1.out_features == 16
    with torch.no_grad():
        ours.linear1.weight.zero_()
    assert ref.linear1.weight.abs().sum() > 0  # a copy, not the same tensors


# ------------------------------------------------------------------------------------------------
# Decoder layer: equal to PyTorch's
# ------------------------------------------------------------------------------------------------

DECODER_MASKS = ["none", "causal", "causal-bool", "memory", "padding", "all", "float"]


def decoder_masks(kind: str, g: torch.Generator, N: int, H: int, L: int, S: int):
    theirs: dict = {}
    ours: dict = {}
    if kind == "causal":  # PyTorch's is_causal is only a hint: it needs the mask as well
        theirs |= {"tgt_mask": nn.Transformer.generate_square_subsequent_mask(L),
                   "tgt_is_causal": True}
        ours |= {"tgt_is_causal": True}
    if kind == "all":  # boolean like the padding masks (PyTorch warns on mixed mask types)
        theirs |= {"tgt_mask": ~causal_mask(L), "tgt_is_causal": True}
        ours |= {"tgt_is_causal": True}
    if kind == "causal-bool":  # a boolean causal mask passed as a mask, no flag
        theirs |= {"tgt_mask": ~causal_mask(L)}
        ours |= {"tgt_attend_mask": causal_mask(L)}
    if kind in ("memory", "all"):
        m = ignore_mask(g, L, S)
        theirs |= {"memory_mask": m}
        ours |= {"memory_attend_mask": ~m}
    if kind in ("padding", "all"):
        pt, pm = padding(g, N, L), padding(g, N, S)
        if kind == "all":
            theirs["memory_mask"][:, 0] = False  # the first source token is real: keep it
            ours["memory_attend_mask"][:, 0] = True
        theirs |= {"tgt_key_padding_mask": pt, "memory_key_padding_mask": pm}
        ours |= {"tgt_token_mask": ~pt, "memory_token_mask": ~pm}
    if kind == "float":
        mt, mm = float_mask(g, L, L), float_mask(g, L, S)
        theirs |= {"tgt_mask": mt, "memory_mask": mm}
        ours |= {"tgt_attend_mask": mt, "memory_attend_mask": mm}
    return theirs, ours


@pytest.mark.parametrize("mask_kind", DECODER_MASKS)
@settings(max_examples=20, deadline=None)
@given(c=layer_shapes())
def test_decoder_layer_equals_pytorch(c, mask_kind):
    N, L, S, H, D = c["N"], c["L"], c["S"], c["H"], c["D"]
    ref = torch_layer("decoder", D, H, c["ff"], norm_first=c["norm_first"],
                      activation=c["activation"], seed=c["seed"], bias=c["bias"])
    ours = TransformerDecoderLayer.from_torch(ref)
    g = torch.Generator().manual_seed(c["seed"])
    tgt = torch.randn(N, L, D, generator=g)
    memory = torch.randn(N, S, D, generator=g)
    theirs_kw, ours_kw = decoder_masks(mask_kind, g, N, H, L, S)
    with torch.no_grad():
        expected = ref(tgt, memory, **theirs_kw)
        torch.testing.assert_close(ours(tgt, memory, **ours_kw), expected, **F32)
        # PyTorch's call, unchanged, on attnlib's layer: PyTorch's names keep PyTorch's polarity.
        torch.testing.assert_close(ours(tgt, memory, **theirs_kw), expected, **F32)


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_decoder_stack_equals_pytorchs_transformer_decoder(norm_first, activation):
    torch.manual_seed(4)
    layer = nn.TransformerDecoderLayer(24, 3, 40, dropout=0.1, activation=activation,
                                       batch_first=True, norm_first=norm_first)
    ref = nn.TransformerDecoder(layer, num_layers=3).eval()
    ours = [TransformerDecoderLayer.from_torch(m) for m in ref.layers]
    tgt, memory = torch.randn(2, 6, 24), torch.randn(2, 9, 24)
    pm = torch.tensor([[False] * 9, [False] * 5 + [True] * 4])
    with torch.no_grad():
        expected = ref(tgt, memory, tgt_mask=nn.Transformer.generate_square_subsequent_mask(6),
                       tgt_is_causal=True, memory_key_padding_mask=pm)
        x = tgt
        for m in ours:
            x = m(x, memory, tgt_is_causal=True, memory_token_mask=~pm)
    torch.testing.assert_close(x, expected, **F32)


def test_decoder_weights():
    ref = torch_layer("decoder", 16, 4, 32, norm_first=False, activation="relu", seed=6)
    ours = TransformerDecoderLayer.from_torch(ref)
    assert ours.multihead_attn.num_heads == 4 and hasattr(ours, "norm3")
    g = torch.Generator().manual_seed(6)
    tgt, memory = torch.randn(2, 5, 16, generator=g), torch.randn(2, 7, 16, generator=g)
    real = ~torch.tensor([[False] * 7, [False] * 3 + [True] * 4])  # attnlib's: True = real
    with torch.no_grad():
        out, (self_w, cross_w) = ours(tgt, memory, tgt_is_causal=True,
                                      memory_token_mask=real, need_weights=True)
    assert self_w.shape == (2, 4, 5, 5) and cross_w.shape == (2, 4, 5, 7)
    assert torch.equal(self_w.triu(1), torch.zeros_like(self_w))  # nothing from the future
    assert torch.equal(cross_w[1, ..., 3:], torch.zeros(4, 5, 4))  # nothing from padding
    torch.testing.assert_close(cross_w.sum(-1), torch.ones(2, 4, 5))
    with torch.no_grad():
        torch.testing.assert_close(
            out, ours(tgt, memory, tgt_is_causal=True, memory_token_mask=real)
        )


def test_memory_is_causal_equals_pytorchs_memory_mask():
    """memory_is_causal: query i of the target sees memory positions j <= i (top-left aligned)."""
    ref = torch_layer("decoder", 16, 4, 32, norm_first=True, activation="gelu", seed=9)
    ours = TransformerDecoderLayer.from_torch(ref)
    g = torch.Generator().manual_seed(9)
    tgt, memory = torch.randn(2, 5, 16, generator=g), torch.randn(2, 7, 16, generator=g)
    with torch.no_grad():
        expected = ref(tgt, memory, memory_mask=~causal_mask(5, 7))  # PyTorch: True = blocked
        out, (_, cross_w) = ours(tgt, memory, memory_is_causal=True, need_weights=True)
    torch.testing.assert_close(out, expected, **F32)
    assert torch.equal(cross_w.triu(1), torch.zeros_like(cross_w))


# ------------------------------------------------------------------------------------------------
# Properties: permutation equivariance, causal independence
# ------------------------------------------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(c=layer_shapes(), pad=st.booleans())
def test_encoder_layer_without_positions_is_permutation_equivariant(c, pad):
    """Permute the tokens (and their padding flags): the output is permuted the same way."""
    N, L, H, D = c["N"], c["L"], c["H"], c["D"]
    torch.manual_seed(c["seed"])
    layer = TransformerEncoderLayer(D, H, c["ff"], dropout=0.0, activation=c["activation"],
                                    norm_first=c["norm_first"], bias=c["bias"]).eval()
    x = torch.randn(N, L, D)
    real = ~padding(torch.Generator().manual_seed(c["seed"]), N, L) if pad else None
    perm = torch.randperm(L)
    with torch.no_grad():
        y = layer(x, src_key_padding_mask=real)
        y_perm = layer(x[:, perm], src_key_padding_mask=None if real is None else real[:, perm])
    torch.testing.assert_close(y_perm, y[:, perm], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("encoding", ["sinusoidal", "learned", "rope"])
def test_positions_break_the_equivariance_of_a_layer(encoding):
    torch.manual_seed(0)
    N, L, D, H = 2, 8, 16, 2
    layer = TransformerEncoderLayer(D, H, 32, dropout=0.0).eval()
    x = torch.randn(N, L, D)
    perm = torch.roll(torch.arange(L), 1)  # every token moves
    learned = LearnedPositionalEmbedding(L, D, init_std=1.0)

    def model(tokens):
        if encoding == "sinusoidal":
            return layer(tokens + sinusoidal_encoding(L, D))
        if encoding == "learned":
            return layer(learned(tokens))
        # RoPE acts inside attention: rotate the heads' queries and keys
        attn = layer.self_attn
        q = apply_rope(attn.split_heads(attn.q_proj(tokens)))  # (N, H, L, E)
        k = apply_rope(attn.split_heads(attn.k_proj(tokens)))  # (N, H, L, E)
        v = attn.split_heads(attn.v_proj(tokens))  # (N, H, L, E)
        out, _ = attnlib.scaled_dot_product_attention(q, k, v)  # (N, H, L, E)
        return attn.out_proj(attn.merge_heads(out))  # (N, L, D)

    with torch.no_grad():
        assert torch.allclose(layer(x[:, perm]), layer(x)[:, perm], atol=1e-5)  # no positions
        assert not torch.allclose(model(x[:, perm]), model(x)[:, perm], atol=1e-3)


def _decoder_stack(D, H, ff, norm_first, seed, layers=2):
    torch.manual_seed(seed)
    return nn.ModuleList(
        TransformerDecoderLayer(D, H, ff, dropout=0.0, norm_first=norm_first)
        for _ in range(layers)
    ).eval()


def _run_stack(stack, tgt, memory, real_memory=None):
    x = tgt
    for layer in stack:
        x = layer(x, memory, tgt_is_causal=True, memory_key_padding_mask=real_memory)
    return x


@settings(max_examples=30, deadline=None)
@given(c=layer_shapes(), t=st.integers(0, 8), layers=st.integers(1, 3))
def test_causal_decoder_stack_ignores_later_targets(c, t, layers):
    """Change every target token after position t: outputs at 0..t do not move."""
    N, L, S, H, D = c["N"], c["L"], c["S"], c["H"], c["D"]
    t = min(t, L - 1)
    stack = _decoder_stack(D, H, c["ff"], c["norm_first"], c["seed"], layers)
    g = torch.Generator().manual_seed(c["seed"])
    tgt, memory = torch.randn(N, L, D, generator=g), torch.randn(N, S, D, generator=g)
    changed = tgt.clone()
    changed[:, t + 1 :] = 10.0 * torch.randn(N, L - t - 1, D, generator=g)
    real = ~padding(g, N, S)
    with torch.no_grad():
        before = _run_stack(stack, tgt, memory, real)
        after = _run_stack(stack, changed, memory, real)
    torch.testing.assert_close(after[:, : t + 1], before[:, : t + 1], atol=1e-6, rtol=1e-6)
    if t + 1 < L and D >= 4:  # (a LayerNorm over D = 1 feature outputs its bias, whatever comes in)
        assert not torch.allclose(after[:, t + 1 :], before[:, t + 1 :])


@pytest.mark.parametrize("norm_first", [False, True])
def test_causal_decoder_stack_gradients(norm_first):
    """d output[t] / d target[t'] is exactly zero for every t' > t, and not for t' <= t."""
    N, L, S, D = 1, 6, 4, 8
    stack = _decoder_stack(D, 2, 16, norm_first, seed=7, layers=3)
    tgt = torch.randn(N, L, D, requires_grad=True)
    memory = torch.randn(N, S, D)
    out = _run_stack(stack, tgt, memory)
    readout = torch.randn(D)  # not out.sum(): a LayerNorm's outputs sum to a constant
    for t in range(L):
        (grad,) = torch.autograd.grad(out[:, t] @ readout, tgt, retain_graph=True)
        influence = grad.abs().sum(dim=(0, 2))  # (L,): how much each target position matters
        assert torch.equal(influence[t + 1 :], torch.zeros(L - t - 1))
        assert bool((influence[: t + 1] > 0).all())


def test_encoder_padding_does_not_leak():
    """Real tokens' outputs do not depend on what sits in the padded positions."""
    torch.manual_seed(8)
    layer = TransformerEncoderLayer(16, 4, 32, dropout=0.0).eval()
    x = torch.randn(2, 7, 16)
    real = attnlib.masks.padding_mask([7, 4])[:, 0, 0]  # (N, L) True = real
    junk = x.clone()
    junk[1, 4:] = 100.0
    with torch.no_grad():
        a = layer(x, src_token_mask=real)
        b = layer(junk, src_token_mask=real)
    torch.testing.assert_close(a[1, :4], b[1, :4])
    torch.testing.assert_close(a[0], b[0])


# ------------------------------------------------------------------------------------------------
# Bad input
# ------------------------------------------------------------------------------------------------


def test_bad_construction():
    with pytest.raises(ValueError, match=r"embed_dim \(10\) must be divisible by num_heads \(4\)"):
        TransformerEncoderLayer(10, 4)
    with pytest.raises(ValueError, match="activation must be 'relu', 'gelu' or a callable"):
        TransformerDecoderLayer(8, 2, activation="tanh")
    with pytest.raises(TypeError, match="torch.nn.TransformerEncoderLayer, got Linear"):
        TransformerEncoderLayer.from_torch(nn.Linear(2, 2))
    with pytest.raises(TypeError, match="torch.nn.TransformerDecoderLayer, got Transformer"):
        TransformerDecoderLayer.from_torch(nn.TransformerEncoderLayer(8, 2, batch_first=True))
    with pytest.raises(ValueError, match="batch_first=True"):
        TransformerEncoderLayer.from_torch(nn.TransformerEncoderLayer(8, 2))
    with pytest.raises(ValueError, match="batch_first=True"):
        TransformerDecoderLayer.from_torch(nn.TransformerDecoderLayer(8, 2))


@pytest.fixture
def encoder():
    torch.manual_seed(0)
    return TransformerEncoderLayer(8, 2, 16, dropout=0.0).eval()


@pytest.fixture
def decoder():
    torch.manual_seed(0)
    return TransformerDecoderLayer(8, 2, 16, dropout=0.0).eval()


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"src": torch.zeros(3, 8)}, ValueError, r"src must have shape \(N, length, d_model=8\)"),
        ({"src": torch.zeros(2, 3, 6)}, ValueError,
         r"d_model=8\) \(batch-first\), got \(2, 3, 6\)"),
        ({"src": [[0.0] * 8]}, TypeError, "src must be a torch.Tensor, got list"),
        ({"src_token_mask": torch.ones(2, 4)}, TypeError,
         "token_mask must be a boolean tensor"),
        ({"src_token_mask": torch.ones(2, 4, dtype=torch.long)}, TypeError,
         "True = a real token"),
        ({"src_token_mask": torch.ones(2, 5, dtype=torch.bool)}, ValueError,
         r"token_mask must have shape \(N, S\) = \(2, 4\), got \(2, 5\)"),
        ({"src_key_padding_mask": torch.ones(2, 5, dtype=torch.bool)}, ValueError,
         r"key_padding_mask \(PyTorch's polarity: True = padding\) must have shape \(N, S\) = "
         r"\(2, 4\), got \(2, 5\)"),
        ({"src_attend_mask": torch.ones(4, 5, dtype=torch.bool)}, ValueError,
         r"attend_mask of shape \(4, 5\) does not broadcast to the scores' shape \(N, H, L, S\) "
         r"= \(2, 2, 4, 4\)"),
        ({"src_mask": torch.ones(4, 5, dtype=torch.bool)}, ValueError,
         r"attn_mask \(PyTorch's polarity\) must be \(L, S\) = \(4, 4\)"),
        ({"src_attend_mask": torch.ones(4, 4, dtype=torch.long)}, TypeError,
         "attend_mask must be a boolean mask"),
        ({"src_mask": torch.ones(4, 4, dtype=torch.long)}, TypeError,
         "attn_mask must be boolean"),
        ({"src_mask": torch.ones(4, 4, dtype=torch.bool),
          "src_attend_mask": torch.ones(4, 4, dtype=torch.bool)}, TypeError,
         r"TransformerEncoderLayer: got both src_attend_mask .* and src_mask .*from_mha_attn_mask"),
        ({"src_key_padding_mask": torch.zeros(2, 4, dtype=torch.bool),
          "src_token_mask": torch.ones(2, 4, dtype=torch.bool)}, TypeError,
         r"got both src_token_mask .* and src_key_padding_mask .*from_key_padding_mask"),
    ],
    ids=["2-D", "wrong-D", "list", "float-token", "long-token", "token-shape", "padding-shape",
         "attend-shape", "mask-shape", "attend-dtype", "mask-dtype", "both-masks",
         "both-paddings"],
)
def test_encoder_bad_input(encoder, kwargs, error, message):
    kwargs = {"src": torch.zeros(2, 4, 8)} | kwargs
    with pytest.raises(error, match=message):
        encoder(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"memory": torch.zeros(3, 5, 8)}, ValueError, "tgt and memory must share the batch"),
        ({"memory": torch.zeros(2, 5, 4)}, ValueError, r"memory must have shape"),
        ({"memory_token_mask": torch.ones(2, 4, dtype=torch.bool)}, ValueError,
         r"\(N, S\) = \(2, 5\), got \(2, 4\)"),
        ({"memory_key_padding_mask": torch.ones(2, 4, dtype=torch.bool)}, ValueError,
         r"\(N, S\) = \(2, 5\), got \(2, 4\)"),
        ({"tgt_token_mask": torch.zeros(2, 4)}, TypeError, "must be a boolean tensor"),
        ({"memory_attend_mask": torch.ones(4, 4, dtype=torch.bool)}, ValueError,
         r"does not broadcast to the scores' shape \(N, H, L, S\) = \(2, 2, 4, 5\)"),
        ({"memory_mask": torch.ones(4, 4, dtype=torch.bool)}, ValueError,
         r"must be \(L, S\) = \(4, 5\) or \(N\*H, L, S\) = \(4, 4, 5\)"),
        ({"tgt_mask": torch.ones(4, 4, dtype=torch.bool),
          "tgt_attend_mask": torch.ones(4, 4, dtype=torch.bool)}, TypeError,
         r"TransformerDecoderLayer: got both tgt_attend_mask .* and tgt_mask"),
        ({"memory_key_padding_mask": torch.zeros(2, 5, dtype=torch.bool),
          "memory_token_mask": torch.ones(2, 5, dtype=torch.bool)}, TypeError,
         r"got both memory_token_mask .* and memory_key_padding_mask"),
    ],
    ids=["batch", "memory-D", "memory-token-shape", "memory-padding-shape", "float-token",
         "memory-attend-shape", "memory-mask-shape", "both-tgt-masks", "both-memory-paddings"],
)
def test_decoder_bad_input(decoder, kwargs, error, message):
    kwargs = {"tgt": torch.zeros(2, 4, 8), "memory": torch.zeros(2, 5, 8)} | kwargs
    with pytest.raises(error, match=message):
        decoder(**kwargs)


# ------------------------------------------------------------------------------------------------
# RMSNorm
# ------------------------------------------------------------------------------------------------


def rms_norm_reference(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """Hugging Face's LlamaRMSNorm / T5LayerNorm arithmetic, written out: float32, rsqrt, cast."""
    x32 = x.float()
    x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)
    return weight * x32.to(x.dtype)


@pytest.mark.parametrize("shape", [(2, 5, 16), (3, 64), (1, 7, 384)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_rms_norm_matches_the_reference_arithmetic(shape, dtype):
    torch.manual_seed(0)
    norm = attnlib.layers.RMSNorm(shape[-1], eps=1e-5)
    with torch.no_grad():
        norm.weight.copy_(torch.randn(shape[-1]))
    x = (3 * torch.randn(shape)).to(dtype)
    out = norm(x)
    assert out.shape == x.shape
    assert torch.equal(out, rms_norm_reference(x, norm.weight, 1e-5))
    # x / sqrt(mean(x^2) + eps) * g, divided instead of multiplied: equal to float32 rounding
    x32 = x.float()
    divided = x32 / x32.pow(2).mean(-1, keepdim=True).add(1e-5).sqrt() * norm.weight
    tol = F32 if dtype == torch.float32 else {"atol": 5e-2, "rtol": 2e-2}
    torch.testing.assert_close(out.float(), divided, **tol)


def test_rms_norm_gives_unit_root_mean_square_and_no_bias():
    norm = attnlib.layers.RMSNorm(8)
    assert [name for name, _ in norm.named_parameters()] == ["weight"]
    assert norm.eps == 1e-6
    x = torch.randn(4, 8) * 10 + 3  # not centred: RMSNorm does not subtract the mean
    y = norm(x)
    torch.testing.assert_close(y.pow(2).mean(-1), torch.ones(4), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(y / y.norm(dim=-1, keepdim=True), x / x.norm(dim=-1, keepdim=True))
