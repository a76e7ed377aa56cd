"""attnlib.positional: sinusoidal, learned and rotary position information (chapter 7).

What is tested: the formulas (against the paper's definition and against Hugging Face's Llama
rotary code), the properties the chapter relies on (self-attention without positions is
permutation-equivariant, with any of the three encodings it is not; RoPE scores depend only on
m - n; rotations keep lengths), and clear errors on bad input.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import attnlib
from attnlib.positional import (
    LearnedPositionalEmbedding,
    SinusoidalPositionalEncoding,
    apply_rope,
    rope_cos_sin,
    rope_frequencies,
    rotate_half,
    sinusoidal_encoding,
)

# ------------------------------------------------------------------------------------------------
# Sinusoidal encoding
# ------------------------------------------------------------------------------------------------


def paper_encoding(length: int, dim: int, base: float = 10000.0) -> torch.Tensor:
    """The definition in Vaswani et al. (2017), one entry at a time, in float64."""
    pe = torch.empty(length, dim, dtype=torch.float64)
    for p in range(length):
        for i in range(dim // 2):
            angle = p / base ** (2 * i / dim)
            pe[p, 2 * i] = math.sin(angle)
            pe[p, 2 * i + 1] = math.cos(angle)
    return pe


@pytest.mark.parametrize(("length", "dim"), [(1, 2), (5, 4), (17, 10), (50, 64)])
def test_sinusoidal_matches_the_paper(length, dim):
    pe = sinusoidal_encoding(length, dim)
    assert pe.shape == (length, dim) and pe.dtype == torch.float32
    torch.testing.assert_close(pe.double(), paper_encoding(length, dim), atol=1e-7, rtol=0)


def test_sinusoidal_dtype_base_and_empty():
    pe64 = sinusoidal_encoding(9, 8, dtype=torch.float64, base=100.0)
    assert pe64.dtype == torch.float64
    torch.testing.assert_close(pe64, paper_encoding(9, 8, base=100.0))
    assert sinusoidal_encoding(0, 6).shape == (0, 6)


def test_sinusoidal_position_zero_and_range():
    pe = sinusoidal_encoding(200, 32)
    assert torch.equal(pe[0, 0::2], torch.zeros(16)) and torch.equal(pe[0, 1::2], torch.ones(16))
    assert pe.abs().max() <= 1.0
    # every (sin, cos) pair lies on the unit circle, so every row has norm sqrt(D / 2)
    torch.testing.assert_close(pe.norm(dim=-1), torch.full((200,), math.sqrt(16.0)))


def test_sinusoidal_shift_is_a_fixed_rotation():
    """PE[p + k] is a linear function of PE[p] (a rotation of every pair), the same for every p:
    the property the paper gives for choosing sinusoids."""
    dim, k = 16, 7
    pe = sinusoidal_encoding(60, dim, dtype=torch.float64)
    freqs = 10000.0 ** (-torch.arange(0, dim, 2, dtype=torch.float64) / dim)  # (D/2,)
    c, s = (k * freqs).cos(), (k * freqs).sin()
    sin_p, cos_p = pe[:-k, 0::2], pe[:-k, 1::2]  # (L-k, D/2)
    torch.testing.assert_close(pe[k:, 0::2], sin_p * c + cos_p * s)  # sin(a + b)
    torch.testing.assert_close(pe[k:, 1::2], cos_p * c - sin_p * s)  # cos(a + b)


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((5, 7), {}, "dim must be even"),
        ((5, 0), {}, "dim must be an int >= 2"),
        ((-1, 4), {}, "length must be an int >= 0"),
        ((5.0, 4), {}, "length must be an int"),
        ((5, 4), {"base": 1.0}, "base must be a number > 1"),
    ],
)
def test_sinusoidal_bad_input(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        sinusoidal_encoding(*args, **kwargs)


# ------------------------------------------------------------------------------------------------
# The two additive modules
# ------------------------------------------------------------------------------------------------


def test_sinusoidal_module_adds_the_table():
    module = SinusoidalPositionalEncoding(32, 8)
    x = torch.randn(3, 10, 8)
    torch.testing.assert_close(module(x), x + sinusoidal_encoding(10, 8))
    torch.testing.assert_close(module(x, offset=5), x + sinusoidal_encoding(15, 8)[5:])
    assert list(module.parameters()) == [] and module.state_dict() == {}
    assert "max_len=32, dim=8" in repr(module)


def test_learned_module_adds_its_rows_and_trains():
    torch.manual_seed(0)
    module = LearnedPositionalEmbedding(16, 6)
    assert module.weight.shape == (16, 6) and module.weight.requires_grad
    assert 0.01 < module.weight.std().item() < 0.03  # init_std = 0.02
    x = torch.randn(2, 4, 6)
    torch.testing.assert_close(module(x), x + module.weight[:4])
    torch.testing.assert_close(module(x, offset=12), x + module.weight[12:])
    module(x).sum().backward()
    grad = module.weight.grad
    assert torch.equal(grad[:4], torch.full((4, 6), 2.0)) and not grad[4:].any()


@pytest.mark.parametrize("cls", [SinusoidalPositionalEncoding, LearnedPositionalEmbedding])
def test_additive_modules_bad_input(cls):
    module = cls(8, 4)
    with pytest.raises(ValueError, match=r"positions 6 \.\. 9 are needed but only max_len = 8"):
        module(torch.zeros(1, 4, 4), offset=6)
    with pytest.raises(ValueError, match=r"only max_len = 8 positions exist"):
        module(torch.zeros(2, 9, 4))
    with pytest.raises(ValueError, match=r"x has D = 5 features but the encoding has dim = 4"):
        module(torch.zeros(2, 3, 5))
    with pytest.raises(ValueError, match=r"expected embeddings x of shape \(N, L, D\)"):
        module(torch.zeros(3, 4))
    with pytest.raises(ValueError, match=r"dtype torch.int64"):
        module(torch.zeros(2, 3, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="max_len must be a positive int"):
        cls(0, 4)


# ------------------------------------------------------------------------------------------------
# Rotary embeddings
# ------------------------------------------------------------------------------------------------


def test_rope_frequencies():
    f = rope_frequencies(8)
    torch.testing.assert_close(f, torch.tensor([1.0, 0.1, 0.01, 0.001]))
    assert rope_frequencies(64, base=100000.0).shape == (32,)
    with pytest.raises(ValueError, match="dim must be even"):
        rope_frequencies(7)


def test_rotate_half_is_a_quarter_turn():
    x = torch.arange(1.0, 7.0)  # pairs (1, 4), (2, 5), (3, 6)
    assert torch.equal(rotate_half(x), torch.tensor([-4.0, -5.0, -6.0, 1.0, 2.0, 3.0]))
    assert torch.equal(rotate_half(rotate_half(x)), -x)


def _hf_llama_rope(x, positions, base):
    """Hugging Face's Llama rotary embedding (the reference for the rotate-half layout)."""
    modeling_llama = pytest.importorskip("transformers.models.llama.modeling_llama")
    E = x.size(-1)
    inv_freq = 1.0 / (base ** (torch.arange(0, E, 2, dtype=torch.int64).float() / E))
    freqs = positions[..., None].float() * inv_freq  # (N, L, E/2), as LlamaRotaryEmbedding
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos().to(x.dtype), emb.sin().to(x.dtype)
    q, _ = modeling_llama.apply_rotary_pos_emb(x, x, cos, sin)
    return q


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("base", [10000.0, 100000.0])
def test_rope_equals_hugging_face_llama(seed, base):
    g = torch.Generator().manual_seed(seed)
    N, H, L, E = 2, 3, 1 + seed * 5, (8, 16, 64, 2)[seed]
    x = torch.randn(N, H, L, E, generator=g)
    positions = torch.arange(L).expand(N, L)
    expected = _hf_llama_rope(x, positions, base)
    torch.testing.assert_close(apply_rope(x, base=base), expected, atol=0, rtol=0)
    torch.testing.assert_close(apply_rope(x, positions, base=base), expected, atol=0, rtol=0)
    # per-sequence positions (a left-padded batch): each row gets its own angles
    shifted = torch.stack((torch.arange(L) + 3, torch.arange(L)))  # (N, L)
    torch.testing.assert_close(
        apply_rope(x, shifted, base=base), _hf_llama_rope(x, shifted, base), atol=0, rtol=0
    )


def test_rope_matches_the_rotation_matrix_per_pair():
    """The rotate-half formula is the 2x2 rotation of the docstring, applied to pairs (i, i+E/2)."""
    E, m = 6, 5
    x = torch.randn(E, dtype=torch.float64)
    got = apply_rope(x[None], torch.tensor([m]))[0]
    for i, theta in enumerate(rope_frequencies(E).double()):
        c, s = math.cos(m * theta), math.sin(m * theta)
        a, b = x[i].item(), x[i + E // 2].item()
        assert got[i].item() == pytest.approx(c * a - s * b, abs=1e-6)
        assert got[i + E // 2].item() == pytest.approx(s * a + c * b, abs=1e-6)


def test_rope_keeps_norms_position_zero_and_dtype():
    x = torch.randn(2, 4, 9, 32, dtype=torch.float64)
    out = apply_rope(x)
    assert out.dtype == torch.float64 and out.shape == x.shape
    torch.testing.assert_close(out.norm(dim=-1), x.norm(dim=-1))
    torch.testing.assert_close(out[..., 0, :], x[..., 0, :])  # position 0: no rotation
    assert not torch.allclose(out[..., 1:, :], x[..., 1:, :])
    half = apply_rope(x.to(torch.bfloat16))
    assert half.dtype == torch.bfloat16


def test_rope_cos_sin_layout():
    cos, sin = rope_cos_sin(torch.arange(5), 8)
    assert cos.shape == sin.shape == (5, 8)
    assert torch.equal(cos[:, :4], cos[:, 4:]) and torch.equal(sin[:, :4], sin[:, 4:])


@settings(max_examples=60, deadline=None)
@given(
    m=st.integers(0, 200),
    n=st.integers(0, 200),
    shift=st.integers(0, 200),
    half=st.integers(1, 16),
    seed=st.integers(0, 2**16),
)
def test_rope_scores_depend_only_on_the_offset(m, n, shift, half, seed):
    """R_m q . R_n k = R_{m+t} q . R_{n+t} k: the score sees m - n, not m and n."""
    g = torch.Generator().manual_seed(seed)
    E = 2 * half
    q, k = torch.randn(2, 1, 1, E, generator=g, dtype=torch.float64).unbind(0)  # (1, 1, E)

    def score(a, b):
        qa = apply_rope(q, torch.tensor([a]))  # (1, 1, E)
        kb = apply_rope(k, torch.tensor([b]))
        return (qa * kb).sum().item()

    reference = (q * apply_rope(k, torch.tensor([n - m]))).sum().item()  # q . R_{n-m} k
    scale = q.norm().item() * k.norm().item()
    # The angles are float32: each of m * theta, n * theta (up to 400 rad) is off by up to ~2.4e-5
    # rad, and a score moves by at most |q| |k| times the error of its angle difference.
    tol = 2e-4 * scale
    assert score(m, n) == pytest.approx(reference, abs=tol)
    assert score(m + shift, n + shift) == pytest.approx(score(m, n), abs=tol)


def test_rope_scores_of_a_whole_sequence_depend_only_on_the_offset():
    """All scores at once: shifting every position by the same amount changes no score."""
    g = torch.Generator().manual_seed(1)
    q, k = torch.randn(2, 1, 2, 12, 16, generator=g).unbind(0)  # (N, H, L, E) each
    pos = torch.arange(12)

    def scores(p):
        return apply_rope(q, p) @ apply_rope(k, p).transpose(-2, -1)  # (N, H, L, L)

    torch.testing.assert_close(scores(pos + 37), scores(pos), atol=1e-4, rtol=1e-4)
    # ... and each score is a function of (m - n) only: compare with q . R_{n-m} k directly
    rel = pos[None, :] - pos[:, None]  # (L, L): n - m
    direct = torch.stack([
        (q[..., m, None, :] * apply_rope(k, rel[m])).sum(-1) for m in range(12)
    ], dim=-2)  # (N, H, L, L)
    torch.testing.assert_close(scores(pos), direct, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize(
    ("x", "positions", "error", "message"),
    [
        (torch.zeros(1, 2, 4, 5), None, ValueError, "head size E must be even"),
        (torch.zeros(1, 2, 4, 6, dtype=torch.long), None, ValueError, "floating tensor"),
        (torch.zeros(6), None, ValueError, r"got shape \(6,\)"),
        (torch.zeros(1, 2, 4, 6), torch.arange(5), ValueError, r"L = 4.*got shape \(5,\)"),
        (torch.zeros(1, 2, 4, 6), torch.zeros(2, 4), ValueError, r"need x of shape \(N, H, L, E\) "
         r"with the same N"),
        (torch.zeros(1, 2, 4, 6), torch.ones(4, dtype=torch.bool), TypeError, "dtype torch.bool"),
    ],
    ids=["odd-E", "int-x", "1-D-x", "positions-length", "positions-batch", "bool-positions"],
)
def test_rope_bad_input(x, positions, error, message):
    with pytest.raises(error, match=message):
        apply_rope(x, positions)


# ------------------------------------------------------------------------------------------------
# Permutation: attention alone cannot see order; any of the three encodings lets it
# ------------------------------------------------------------------------------------------------


class SelfAttention(nn.Module):
    """One head of self-attention with learned projections; optionally RoPE on q and k."""

    def __init__(self, dim: int, rope: bool = False) -> None:
        super().__init__()
        self.q, self.k, self.v = (nn.Linear(dim, dim) for _ in range(3))
        self.rope = rope

    def forward(self, x):  # (N, L, D)
        q, k, v = self.q(x)[:, None], self.k(x)[:, None], self.v(x)[:, None]  # (N, 1, L, D)
        if self.rope:
            q, k = apply_rope(q), apply_rope(k)
        out, _ = attnlib.scaled_dot_product_attention(q, k, v)  # (N, 1, L, D)
        return out[:, 0]  # (N, L, D)


@settings(max_examples=40, deadline=None)
@given(L=st.integers(2, 12), dim=st.sampled_from([4, 8, 16]), seed=st.integers(0, 2**16))
def test_self_attention_without_positions_is_permutation_equivariant(L, dim, seed):
    torch.manual_seed(seed)
    attn = SelfAttention(dim)
    x = torch.randn(2, L, dim)
    perm = torch.randperm(L)
    with torch.no_grad():
        torch.testing.assert_close(attn(x[:, perm]), attn(x)[:, perm], atol=1e-5, rtol=1e-5)


def _permutation_changes_output(model, add_positions, L=8, dim=16, seed=0) -> bool:
    """Whether permuting the tokens changes the output by more than moving it around."""
    torch.manual_seed(seed)
    x = torch.randn(2, L, dim)
    perm = torch.roll(torch.arange(L), 1)  # no token stays in place
    with torch.no_grad():
        permuted_first = model(add_positions(x[:, perm]))
        permuted_after = model(add_positions(x))[:, perm]
    return not torch.allclose(permuted_first, permuted_after, atol=1e-3)


@pytest.mark.parametrize("seed", range(3))
def test_each_encoding_breaks_the_equivariance(seed):
    torch.manual_seed(seed)
    L, dim = 8, 16
    plain = SelfAttention(dim)
    learned = LearnedPositionalEmbedding(L, dim, init_std=1.0)
    sinusoidal = SinusoidalPositionalEncoding(L, dim)
    assert not _permutation_changes_output(plain, lambda x: x, L, dim, seed)
    assert _permutation_changes_output(plain, sinusoidal, L, dim, seed)
    assert _permutation_changes_output(plain, learned, L, dim, seed)
    assert _permutation_changes_output(SelfAttention(dim, rope=True), lambda x: x, L, dim, seed)


# ------------------------------------------------------------------------------------------------
# ALiBi: a distance penalty on the scores (T5's relative bias is tested in tests/test_models_t5.py)
# ------------------------------------------------------------------------------------------------


def test_alibi_bias():
    slopes = attnlib.positional.alibi_slopes(4)
    assert torch.allclose(slopes, torch.tensor([0.25, 1 / 16, 1 / 64, 1 / 256]))
    bias = attnlib.positional.alibi_causal_bias(slopes, 3)  # (H, L, S)
    assert bias.shape == (4, 3, 3)
    assert bias[0].tolist() == [
        [0.0, float("-inf"), float("-inf")],
        [-0.25, 0.0, float("-inf")],
        [-0.5, -0.25, 0.0],
    ]
    # the newest of 5 positions, 4 of them cached
    with_past = attnlib.positional.alibi_causal_bias(slopes, 1, past_length=4)
    assert with_past.shape == (4, 1, 5)
    assert torch.allclose(with_past[:, 0], bias.new_tensor([4, 3, 2, 1, 0]) * -slopes[:, None])
    # the rows of a full bias equal the cached version's, row by row
    full = attnlib.positional.alibi_causal_bias(slopes, 5)
    assert torch.equal(full[:, 4:], with_past)
    with pytest.raises(ValueError, match="alibi_slopes: num_heads must be a positive int"):
        attnlib.positional.alibi_slopes(0)
