"""attnlib.efficient: exact tiled attention (PyTorch and Triton) equals SDPA; each approximation
returns to exact attention as its knob grows; bad inputs get clear errors; the tile widget sends
what it should."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

import attnlib
from attnlib.efficient import (
    bigbird_attention,
    bigbird_blocks,
    bigbird_pattern,
    flash_attention,
    largest_tensor,
    linformer_attention,
    linformer_projection,
    longformer_attention,
    longformer_pattern,
    online_softmax_trace,
    performer_attention,
    performer_features,
    performer_random_features,
    triton_flash,  # a plain import: fails loudly, never skips
)
from attnlib.widgets.tiles import OnlineSoftmaxTiles


def rand(*shape, seed=0, dtype=torch.float32):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def qkv(N=2, H=3, L=37, S=53, E=16, Ev=8, seed=0, dtype=torch.float32):
    return (rand(N, H, L, E, seed=seed, dtype=dtype), rand(N, H, S, E, seed=seed + 1, dtype=dtype),
            rand(N, H, S, Ev, seed=seed + 2, dtype=dtype))


def sdpa(q, k, v, is_causal=False, **kw):
    return F.scaled_dot_product_attention(q, k, v, is_causal=is_causal, **kw)


# --- flash_attention ----------------------------------------------------------------------------


@pytest.mark.parametrize("is_causal", [False, True])
@pytest.mark.parametrize(
    ("L", "S", "block"),
    [(37, 53, 7), (64, 64, 16), (53, 37, (8, 5)), (5, 130, (256, 512)), (130, 5, 3), (1, 1, 1),
     (100, 100, (100, 100)), (17, 16, (4, 16))],
)
def test_flash_attention_equals_sdpa(L, S, block, is_causal):
    q, k, v = qkv(L=L, S=S)
    out = flash_attention(q, k, v, is_causal, block_size=block)
    torch.testing.assert_close(out, sdpa(q, k, v, is_causal), atol=2e-6, rtol=1e-5)


def test_flash_attention_default_blocks_scale_3d_and_broadcast():
    q, k, v = qkv(N=1, H=2, L=300, S=520, E=16, Ev=16)  # default blocks (256, 512): ragged
    for causal in (False, True):
        torch.testing.assert_close(flash_attention(q, k, v, causal), sdpa(q, k, v, causal),
                                   atol=2e-6, rtol=1e-5)
    torch.testing.assert_close(flash_attention(q, k, v, scale=0.3), sdpa(q, k, v, scale=0.3),
                               atol=2e-6, rtol=1e-5)
    q3, k3, v3 = q[0], k[0], v[0]  # (H, L, E): any number of leading dimensions
    torch.testing.assert_close(flash_attention(q3, k3, v3, block_size=64), sdpa(q3, k3, v3),
                               atol=2e-6, rtol=1e-5)
    shared_k, shared_v = k[:, :1], v[:, :1]  # (N, 1, S, E): one key head shared by all
    torch.testing.assert_close(
        flash_attention(q, shared_k, shared_v, block_size=100),
        sdpa(q, shared_k.expand_as(k), shared_v.expand_as(v)), atol=2e-6, rtol=1e-5)


def test_flash_attention_float64_and_half_precision():
    q, k, v = qkv(dtype=torch.float64)
    torch.testing.assert_close(flash_attention(q, k, v, True, block_size=9), sdpa(q, k, v, True))
    for dtype in (torch.float16, torch.bfloat16):
        out = flash_attention(q.to(dtype), k.to(dtype), v.to(dtype), block_size=9)
        assert out.dtype == dtype
        ref = sdpa(*(t.to(dtype).double() for t in (q, k, v)))  # the same rounded inputs
        torch.testing.assert_close(out.double(), ref, atol=1e-2, rtol=1e-2)


@pytest.mark.parametrize("is_causal", [False, True])
def test_flash_attention_when_later_tiles_hold_far_larger_scores(is_causal):
    # Scores in the thousands, growing from tile to tile: the reference maximum must rise, and
    # exp must never overflow (the classic path of the update, not the fast one).
    q, k, v = qkv(N=1, H=2, L=40, S=70, E=8, Ev=4, dtype=torch.float64)
    k = k * torch.linspace(1.0, 400.0, 70, dtype=torch.float64)[:, None]  # later keys longer
    out = flash_attention(q, k, v, is_causal, block_size=(16, 8))
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, sdpa(q, k, v, is_causal))
    q32, k32, v32 = q.float(), k.float(), v.float()
    torch.testing.assert_close(flash_attention(q32, k32, v32, is_causal, block_size=(16, 8)),
                               sdpa(q32, k32, v32, is_causal), atol=1e-5, rtol=1e-5)
    tiny = flash_attention(q * 1e-3, k * 1e-3, v, is_causal, block_size=(16, 8))  # near uniform
    torch.testing.assert_close(tiny, sdpa(q * 1e-3, k * 1e-3, v, is_causal))


@pytest.mark.parametrize("is_causal", [False, True])
def test_flash_attention_when_the_reference_score_is_far_below_the_first_tiles_maximum(is_causal):
    # m starts as each query's score with a key it certainly sees (its own position); here that
    # key is short and a key in the SAME tile scores hundreds higher: the first tile already needs
    # the classic update, and float32 must not overflow.
    q, k, v = qkv(N=1, H=1, L=8, S=8, E=4, Ev=3)
    q = q.abs() * 10
    k = k.abs() * 0.01
    k[..., 0, :] = 100.0  # key 0: seen by every query (causal too), far above each query's own
    out = flash_attention(q, k, v, is_causal, block_size=8)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, sdpa(q, k, v, is_causal), atol=1e-5, rtol=1e-5)


def test_flash_attention_is_forward_only():
    q, k, v = (t.requires_grad_() for t in qkv(L=9, S=11))
    out = flash_attention(q, k, v, block_size=4)
    assert not out.requires_grad
    torch.testing.assert_close(out, sdpa(q, k, v).detach(), atol=2e-6, rtol=1e-5)


def test_flash_attention_no_keys_gives_zeros_and_no_queries_an_empty_result():
    q, k, v = qkv(L=4, S=0)
    assert torch.equal(flash_attention(q, k, v), torch.zeros(2, 3, 4, 8))
    q, k, v = qkv(L=0, S=5)
    assert flash_attention(q, k, v, True).shape == (2, 3, 0, 8)


def test_flash_attention_never_builds_the_score_matrix():
    N, H, n, E = 1, 2, 1024, 16
    q, k, v = qkv(N=N, H=H, L=n, S=n, E=E, Ev=E)
    _, largest, _ = largest_tensor(flash_attention, q, k, v, block_size=(64, 128))
    scores = N * H * n * n
    assert largest <= max(N * H * 64 * 128, N * H * n * (E + 1))
    assert largest * 32 <= scores  # 32 times smaller than one (L, S) score matrix
    _, naive, shape = largest_tensor(attnlib.scaled_dot_product_attention, q, k, v)
    assert naive == scores and shape[-2:] == (n, n)  # matmul works on (N * H, L, S)


# --- flash_attention with a sliding window --------------------------------------------------------


def band(L, S, window):
    return attnlib.masks.causal_mask(L, S, window=window)  # (L, S): i - window < j <= i


@pytest.mark.parametrize(
    ("L", "S", "window", "block"),
    [(37, 37, 1, 8), (37, 37, 5, (8, 8)), (53, 53, 17, (16, 8)), (37, 37, 100, 8),
     (64, 64, 16, 16), (1, 1, 1, 4), (30, 50, 7, (16, 8)), (50, 30, 7, (8, 16)),
     (300, 300, 64, (256, 512))],
)
def test_windowed_flash_attention_equals_sdpa_with_the_band_mask(L, S, window, block):
    q, k, v = qkv(L=L, S=S)
    out = flash_attention(q, k, v, is_causal=True, window=window, block_size=block)
    expected = sdpa(q, k, v, attn_mask=band(L, S, window))
    torch.testing.assert_close(out, expected, atol=2e-6, rtol=1e-5)


def test_windowed_flash_attention_with_large_scores_and_rows_that_see_nothing():
    q, k, v = qkv(N=1, H=2, L=40, S=70, E=8, Ev=4, dtype=torch.float64)
    k = k * torch.linspace(1.0, 400.0, 70, dtype=torch.float64)[:, None]  # scores in the thousands
    out = flash_attention(q, k, v, is_causal=True, window=6, block_size=(16, 8))
    torch.testing.assert_close(out, sdpa(q, k, v, attn_mask=band(40, 70, 6)))
    # Ten keys, window 3: queries 12 and later (of 20) see no key at all and get zeros, not NaN.
    q, k, v = qkv(L=20, S=10)
    out = flash_attention(q, k, v, is_causal=True, window=3, block_size=4)
    assert torch.isfinite(out).all() and torch.equal(out[:, :, 12:], torch.zeros(2, 3, 8, 8))
    allowed = band(20, 10, 3)
    assert not allowed[12:].any() and allowed[:12].any(dim=-1).all()
    torch.testing.assert_close(out[:, :, :12], sdpa(q, k, v, attn_mask=allowed)[:, :, :12])


def test_a_window_longer_than_the_sequence_is_plain_causal_attention():
    q, k, v = qkv(L=45, S=45)
    wide = flash_attention(q, k, v, is_causal=True, window=45, block_size=8)
    torch.testing.assert_close(wide, flash_attention(q, k, v, True, block_size=8))


def _tiles_visited(fn, *args, **kwargs) -> int:
    from torch.utils._python_dispatch import TorchDispatchMode

    class Count(TorchDispatchMode):
        n = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            Count.n += func.overloadpacket.__name__ == "bmm"  # one score product per tile
            return func(*args, **(kwargs or {}))

    with Count():
        fn(*args, **kwargs)
    return Count.n


def test_windowed_flash_attention_skips_the_tiles_outside_the_band():
    n, block, window = 1024, 64, 64
    q, k, v = qkv(N=1, H=1, L=n, S=n, E=8, Ev=8)
    causal = _tiles_visited(flash_attention, q, k, v, True, block_size=block)
    banded = _tiles_visited(flash_attention, q, k, v, True, block_size=block, window=window)
    blocks = n // block
    assert causal == blocks * (blocks + 1) // 2  # every tile on or below the diagonal
    assert banded == 2 * blocks - 1  # the diagonal tile and the one before it (none before 0)


@pytest.mark.parametrize("window", [0, -3, 2.5, True, "8"])
def test_windowed_flash_attention_bad_window_gets_a_clear_error(window):
    q, k, v = qkv(L=8, S=8)
    with pytest.raises(ValueError, match=r"flash_attention: window .*must be a positive int"):
        flash_attention(q, k, v, is_causal=True, window=window)


def test_a_window_needs_is_causal():
    q, k, v = qkv(L=8, S=8)
    with pytest.raises(ValueError, match=r"window=4 needs is_causal=True"):
        flash_attention(q, k, v, window=4)


def test_online_softmax_trace_steps_and_final_output():
    q, k, v = rand(5, 4), rand(7, 4, seed=1), rand(7, 3, seed=2)
    steps = online_softmax_trace(q, k, v, block_size=(2, 3))
    assert len(steps) == 3 * 3
    assert [s.key_block for s in steps[:3]] == [(0, 3), (3, 6), (6, 7)]
    exact, _ = attnlib.scaled_dot_product_attention(q.double(), k.double(), v.double())
    torch.testing.assert_close(steps[-1].output, exact)
    ms = torch.stack([s.m for s in steps])  # (steps, L)
    assert bool((ms.diff(dim=0).nan_to_num(0.0) >= 0).all())  # the running maximum never falls
    causal = online_softmax_trace(q, k, v, True, block_size=2)
    assert [(s.query_block, s.key_block) for s in causal][:3] == [((0, 2), (0, 2)),
                                                                 ((2, 4), (0, 2)),
                                                                 ((2, 4), (2, 4))]
    exact_c, _ = attnlib.scaled_dot_product_attention(q.double(), k.double(), v.double(),
                                                      is_causal=True)
    torch.testing.assert_close(causal[-1].output, exact_c)
    assert torch.isneginf(causal[0].scores[0, 1])  # key 1 is after query 0: masked


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda q, k, v: flash_attention(q, k[..., :4], v), ValueError,
         r"query and key must have the same last dimension E .* got query \(2, 3, 6, 5\) and "
         r"key \(2, 3, 7, 4\)"),
        (lambda q, k, v: flash_attention(q, k, v[..., :5, :]), ValueError,
         r"key and value must have the same length S .* got key \(2, 3, 7, 5\) and value "
         r"\(2, 3, 5, 3\)"),
        (lambda q, k, v: flash_attention(q, k, v, block_size=0), ValueError,
         r"block_size must be a positive int or a pair .* got 0"),
        (lambda q, k, v: flash_attention(q, k, v, block_size=(4, 2.5)), ValueError,
         r"block_size .* got \(4, 2.5\)"),
        (lambda q, k, v: flash_attention(q, k, v, scale=float("nan")), ValueError,
         r"scale must be a finite number"),
        (lambda q, k, v: flash_attention(q.long(), k, v), TypeError,
         r"query must be a floating-point tensor, got dtype torch.int64"),
        (lambda q, k, v: flash_attention(q[0, 0, 0], k, v), ValueError,
         r"query must have at least 2 dimensions .* got shape \(5,\)"),
        (lambda q, k, v: online_softmax_trace(q, k, v), ValueError,
         r"online_softmax_trace: query must be 2-D \(one head\), got shape \(2, 3, 6, 5\)"),
    ],
)
def test_flash_bad_inputs_get_clear_errors(call, error, message):
    q, k, v = qkv(L=6, S=7, E=5, Ev=3)
    with pytest.raises(error, match=message):
        call(q, k, v)


# --- the Triton kernel (interpreted on a CPU, compiled on a GPU) --------------------------------

TRITON_DEVICE = "cpu" if triton_flash.INTERPRETED else "cuda"


@pytest.mark.parametrize("is_causal", [False, True])
@pytest.mark.parametrize(
    ("N", "H", "L", "S", "E", "Ev"),
    [(1, 2, 37, 53, 16, 16), (1, 1, 48, 17, 32, 32), (2, 1, 20, 45, 8, 24), (1, 1, 1, 1, 4, 4)],
)
def test_triton_flash_attention_equals_sdpa(N, H, L, S, E, Ev, is_causal):
    q, k, v = (t.to(TRITON_DEVICE) for t in qkv(N, H, L, S, E, Ev))
    out = triton_flash.triton_flash_attention(q, k, v, is_causal)
    torch.testing.assert_close(out, sdpa(q, k, v, is_causal), atol=2e-6, rtol=1e-5)


def test_triton_flash_attention_half_precision_scale_and_no_keys():
    q, k, v = (t.to(TRITON_DEVICE) for t in qkv(1, 2, 32, 40, 16, 16))
    for dtype in (torch.float16, torch.bfloat16):
        out = triton_flash.triton_flash_attention(q.to(dtype), k.to(dtype), v.to(dtype), True)
        assert out.dtype == dtype
        ref = sdpa(*(t.to(dtype).float() for t in (q, k, v)), is_causal=True)
        tol = 2e-3 if dtype == torch.float16 else 2e-2
        torch.testing.assert_close(out.float(), ref, atol=tol, rtol=tol)
    out = triton_flash.triton_flash_attention(q, k, v, scale=0.7)
    torch.testing.assert_close(out, sdpa(q, k, v, scale=0.7), atol=2e-6, rtol=1e-5)
    empty = triton_flash.triton_flash_attention(q, k[:, :, :0], v[:, :, :0])
    assert empty.shape == (1, 2, 32, 16) and not empty.any()


def test_triton_flash_bad_inputs_get_clear_errors():
    q, k, v = (t.to(TRITON_DEVICE) for t in qkv(1, 1, 8, 8, 4, 4))
    with pytest.raises(TypeError, match=r"supports float16, bfloat16 and float32 inputs, got "
                                        r"torch.float64"):
        triton_flash.triton_flash_attention(q.double(), k.double(), v.double())
    with pytest.raises(ValueError, match=r"query and key must have the same last dimension"):
        triton_flash.triton_flash_attention(q, k[..., :2], v)
    big = torch.zeros(1, 1, 2, 300, device=TRITON_DEVICE)
    with pytest.raises(ValueError, match=r"head sizes up to 256 .* got E = 300"):
        triton_flash.triton_flash_attention(big, big, big)
    if triton_flash.INTERPRETED:
        with pytest.raises(ValueError, match=r"interpreter .* needs CPU tensors; got query on "
                                             r"meta"):
            triton_flash.triton_flash_attention(q.to("meta"), k.to("meta"), v.to("meta"))


@pytest.mark.skipif(not triton_flash.INTERPRETED, reason="only the interpreter cares")
def test_triton_imported_too_early_gets_a_clear_error():
    code = "import triton\nimport attnlib.efficient.triton_flash"
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.returncode != 0
    assert "Triton was imported before TRITON_INTERPRET=1 was set" in done.stderr


# --- Longformer ---------------------------------------------------------------------------------


def masked_reference(q, k, v, pattern):
    return attnlib.scaled_dot_product_attention(q, k, v, attn_mask=pattern)[0]


@pytest.mark.parametrize("window", [0, 1, 3, 10, 49])
@pytest.mark.parametrize("glob", [(), (0,), (3, 17, 49)])
def test_longformer_equals_attention_masked_by_its_pattern(window, glob):
    q, k, v = qkv(N=2, H=2, L=50, S=50, E=8, Ev=4)
    pattern = longformer_pattern(50, window, glob)
    torch.testing.assert_close(longformer_attention(q, k, v, window, glob),
                               masked_reference(q, k, v, pattern), atol=2e-6, rtol=1e-5)


def test_longformer_pattern_and_convergence():
    p = longformer_pattern(6, 1, (0,))
    assert p.dtype == torch.bool and p.shape == (6, 6)
    assert p[0].all() and p[:, 0].all()  # the global token sees and is seen by all
    assert p[3].tolist() == [True, False, True, True, True, False]
    assert longformer_pattern(40, 39, ()).all()
    q, k, v = qkv(L=40, S=40)
    errors = [(longformer_attention(q, k, v, w, (0,)) - sdpa(q, k, v)).abs().max().item()
              for w in (1, 4, 16, 39)]
    assert errors[-1] < 1e-5 and errors[0] > errors[1] > errors[2] > errors[3]


# --- BigBird ------------------------------------------------------------------------------------


@pytest.mark.parametrize("block", [4, 7, 16, 50])
@pytest.mark.parametrize(("window", "n_global", "n_random"),
                         [(1, 1, 1), (0, 0, 0), (2, 0, 3), (1, 2, 0), (100, 0, 0), (0, 0, 100)])
def test_bigbird_equals_attention_masked_by_its_pattern(block, window, n_global, n_random):
    q, k, v = qkv(N=1, H=2, L=50, S=50, E=8, Ev=4)
    pattern = bigbird_pattern(50, block, window, n_global, n_random, seed=3)
    out = bigbird_attention(q, k, v, block, window, n_global, n_random, seed=3)
    torch.testing.assert_close(out, masked_reference(q, k, v, pattern), atol=2e-6, rtol=1e-5)


def test_bigbird_blocks_are_seeded_and_cover_window_global_and_random():
    lists = bigbird_blocks(8, window=1, num_global=1, num_random=2, seed=0)
    assert lists[0] == list(range(8))  # a global block sees everything
    for a, seen in enumerate(lists[1:], start=1):
        assert 0 in seen and {a - 1, a} <= set(seen)  # the global block and the window
        assert len(seen) == len({0, a - 1, a, min(a + 1, 7)}) + 2  # plus 2 random blocks
    assert bigbird_blocks(8, 1, 1, 2, seed=0) == lists
    assert bigbird_blocks(8, 1, 1, 2, seed=1) != lists
    assert bigbird_pattern(50, 5, 1, 0, 10).all()  # random blocks can cover everything


def test_bigbird_converges_as_random_blocks_grow():
    q, k, v = qkv(L=64, S=64)
    errors = [(bigbird_attention(q, k, v, 8, 0, 1, r) - sdpa(q, k, v)).abs().max().item()
              for r in (0, 2, 4, 6)]
    assert errors[-1] < 1e-5 and errors[0] > errors[1] > errors[2] > errors[3]


# --- Linformer ----------------------------------------------------------------------------------


def smooth_qkv(L=64, E=8, seed=0):
    """Keys and values that vary slowly along the sequence, where pooling loses little."""
    x = rand(1, 2, L, E, seed=seed).cumsum(dim=2) / math.sqrt(L)  # (N, H, L, E)
    return rand(1, 2, L, E, seed=seed + 1), x, x.flip(-1)


def test_linformer_exact_with_identity_projection_or_k_equal_to_s():
    q, k, v = qkv(L=20, S=30)
    torch.testing.assert_close(linformer_attention(q, k, v, 30, projection=torch.eye(30)),
                               sdpa(q, k, v), atol=2e-6, rtol=1e-5)
    torch.testing.assert_close(linformer_attention(q, k, v, 30), sdpa(q, k, v), atol=2e-6,
                               rtol=1e-5)
    assert torch.equal(linformer_projection(30, 30), torch.eye(30))


def test_linformer_error_falls_as_k_grows():
    q, k, v = smooth_qkv()
    errors = [(linformer_attention(q, k, v, r) - sdpa(q, k, v)).abs().max().item()
              for r in (2, 8, 32, 64)]
    assert errors[-1] < 1e-5 and errors[0] > errors[1] > errors[2] > errors[3]
    proj = linformer_projection(10, 3)
    assert torch.allclose(proj.sum(dim=1), torch.ones(3)) and (proj > 0).sum() == 10
    random = linformer_projection(10, 3, "random", seed=1)
    assert torch.equal(random, linformer_projection(10, 3, "random", seed=1))
    out = linformer_attention(q, k, v, 16, projection="random")
    assert out.shape == q.shape and torch.isfinite(out).all()


# --- Performer ----------------------------------------------------------------------------------


def test_performer_features_estimate_the_softmax_kernel_without_bias():
    x, y = rand(4, 8) * 0.4, rand(5, 8, seed=1) * 0.4
    omega = performer_random_features(8, 2**15, seed=0, dtype=torch.float64)
    est = performer_features(x.double(), omega, stabilize="none") @ performer_features(
        y.double(), omega, stabilize="none").T  # (4, 5)
    exact = torch.exp(x.double() @ y.double().T)
    relative = ((est - exact) / exact).abs()  # (4, 5)
    assert relative.mean() < 0.03 and relative.max() < 0.15  # heavy tails: see chapter 12
    assert bool((performer_features(x, omega.float()) > 0).all())  # positive features
    blocks = performer_random_features(8, 16, seed=0, dtype=torch.float64)
    gram = blocks[:8] @ blocks[:8].T  # one block of orthogonal directions
    off_diagonal = gram - torch.diag(gram.diagonal())
    assert off_diagonal.abs().max() < 1e-10


def test_performer_error_falls_as_m_grows():
    q, k, v = qkv(L=50, S=50, E=8)
    q, k = q * 0.5, k * 0.5

    def mean_error(m):
        return sum((performer_attention(q, k, v, m, seed=s) - sdpa(q, k, v)).abs().mean().item()
                   for s in range(3)) / 3

    errors = [mean_error(m) for m in (16, 256, 4096)]
    assert errors[0] > errors[1] > errors[2] and errors[2] < 0.01
    assert torch.equal(performer_attention(q, k, v, 64, seed=5),
                       performer_attention(q, k, v, 64, seed=5))  # seeded


# --- bad inputs to the approximations -----------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda q, k, v: linformer_attention(q, k, v, 40), r"k = 40 summaries of S = 30 keys: "
                                                           r"k must be <= S"),
        (lambda q, k, v: linformer_attention(q, k, v, 4, projection=torch.ones(4, 29)),
         r"projection must have shape \(k, S\) = \(4, 30\), got \(4, 29\)"),
        (lambda q, k, v: linformer_attention(q, k, v, 4, projection="pool"),
         r"kind must be 'mean' or 'random', got 'pool'"),
        (lambda q, k, v: linformer_attention(q, k, v, 0), r"k must be a positive int, got 0"),
        (lambda q, k, v: longformer_attention(q, k, v, 2),
         r"longformer_attention: the pattern is defined for self-attention, L = S; got query "
         r"\(1, 2, 20, 8\) and key \(1, 2, 30, 8\)"),
        (lambda q, k, v: longformer_attention(q, q, q, -1), r"window must be an int >= 0, got -1"),
        (lambda q, k, v: longformer_attention(q, q, q, 2, (0, 20)),
         r"every global token must be a position in \[0, L=20\), got 20"),
        (lambda q, k, v: bigbird_attention(q, q, q, 0),
         r"block_size must be a positive int, got 0"),
        (lambda q, k, v: bigbird_attention(q, k, v, 4), r"bigbird_attention: the pattern is "
                                                        r"defined for self-attention"),
        (lambda q, k, v: performer_attention(q, k, v, 0), r"m must be a positive int, got 0"),
        (lambda q, k, v: performer_attention(q, k[..., :3], v),
         r"query and key must have the same last dimension E"),
    ],
)
def test_approximations_bad_inputs_get_clear_errors(call, message):
    q, k, v = qkv(N=1, H=2, L=20, S=30, E=8, Ev=4)
    with pytest.raises(ValueError, match=message):
        call(q, k, v)


# --- the tile widget (its browser half is tested in tests/browser/test_tiles.py) ----------------


def test_tile_widget_state():
    q, k, v = rand(5, 4), rand(7, 4, seed=1), rand(7, 2, seed=2)
    w = OnlineSoftmaxTiles(q, k, v, block_size=(2, 3), tokens=list("abcde"))
    state = w.get_state()
    assert len(state["steps"]) == w.num_steps == 9 and state["block"] == [2, 3]
    assert state["key_tokens"] == [str(i) for i in range(7)]
    first = state["steps"][0]
    assert first["rows"] == [0, 2] and first["cols"] == [0, 3]
    assert first["m"][2:] == [None, None, None]  # -inf travels as null
    assert all(type(x) is float for x in first["l"])
    exact = attnlib.scaled_dot_product_attention(q, k, v)[0]
    sent = torch.tensor(state["exact"], dtype=torch.float64)  # (L, Ev), rounded to 4 places
    assert torch.allclose(sent, exact.double(), atol=6e-5)
    assert state["steps"][-1]["out"] == state["exact"]
    assert repr(w) == "OnlineSoftmaxTiles(L=5, S=7, block=(2, 3), steps=9)"
    w.step = 8
    with pytest.raises(Exception, match=r"step must be in \[0, 9\), got 9"):
        w.step = 9
    causal = OnlineSoftmaxTiles(q, k, v, block_size=2, is_causal=True)
    assert causal.causal and causal.num_steps == 1 + 2 + 3


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"query": torch.zeros(2, 3, 4)}, r"query must be 2-D \(L, E\) \(one head\), got shape "
                                          r"\(2, 3, 4\)"),
        ({"tokens": ["a", "b"]}, r"tokens has 2 entries but there are 5 queries"),
        ({"tokens": "abcde"}, r"tokens must be a list of strings, not one string"),
        ({"query": torch.zeros(30, 4)}, r"at most 24 queries and keys fit on screen, got L = 30"),
        ({"block_size": (2, 0)}, r"block_size must be a positive int or a pair"),
        ({"value": torch.full((7, 2), float("nan"))}, r"value contains NaN or infinite values"),
    ],
)
def test_tile_widget_bad_inputs(kwargs, message):
    args = {"query": rand(5, 4), "key": rand(7, 4, seed=1), "value": rand(7, 2, seed=2)}
    args.update(kwargs)
    q, k, v = args.pop("query"), args.pop("key"), args.pop("value")
    with pytest.raises(ValueError, match=message):
        OnlineSoftmaxTiles(q, k, v, **args)
