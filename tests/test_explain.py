"""attnlib.explain: rollout by hand, head ablation by hand, gradients by hand, and bad arguments."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from torch import nn

import attnlib
from attnlib import explain as X

# ------------------------------------------------------------------------------------------------
# A tiny encoder shaped like attnlib.models.bert.BertEncoder
# ------------------------------------------------------------------------------------------------


@dataclass
class _Output:
    last_hidden_state: torch.Tensor
    attentions: tuple[torch.Tensor, ...]


class TinyEncoder(nn.Module):
    def __init__(self, vocab: int = 20, d_model: int = 16, num_heads: int = 4, layers: int = 3):
        super().__init__()
        self.embeddings = nn.Embedding(vocab, d_model)
        self.layers = nn.ModuleList(
            attnlib.TransformerEncoderLayer(d_model, num_heads, 32, dropout=0.0, activation="gelu")
            for _ in range(layers)
        )

    def forward(self, input_ids, attention_mask=None):
        x = self.embeddings(input_ids)  # (N, L, D)
        attentions = []
        for layer in self.layers:
            x, w = layer(x, src_token_mask=attention_mask, need_weights=True)
            attentions.append(w)
        return _Output(x, tuple(attentions))


def mean_readout(out, mask):
    m = mask.to(out.last_hidden_state.dtype)[..., None]  # (N, L, 1)
    pooled = (out.last_hidden_state * m).sum(1) / m.sum(1)  # (N, D)
    return pooled @ torch.linspace(-1, 1, pooled.size(-1), dtype=pooled.dtype)  # (N,)


@pytest.fixture
def tiny():
    torch.manual_seed(0)
    model = TinyEncoder().eval()
    ids = torch.randint(0, 20, (3, 7))  # (N, L)
    mask = torch.ones(3, 7, dtype=torch.bool)
    mask[1, 5:] = False  # the second sequence has two padded positions
    return model, ids, mask


def random_attention(layers=3, N=2, H=4, L=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.softmax(torch.randn(layers, N, H, L, L, generator=g), dim=-1)


# ------------------------------------------------------------------------------------------------
# Rollout
# ------------------------------------------------------------------------------------------------


def test_rollout_matches_a_hand_computation():
    # layer 1: heads [[1, 0], [.5, .5]] and [[1, 0], [1, 0]] -> mean [[1, 0], [.75, .25]]
    # A1 = .5 mean + .5 I = [[1, 0], [.375, .625]]
    # layer 2: heads [[.5, .5], [0, 1]] (twice) -> A2 = [[.75, .25], [0, 1]]
    # rollout = A2 @ A1 = [[.75 + .25 * .375, .25 * .625], [.375, .625]]
    layer1 = torch.tensor([[[1.0, 0.0], [0.5, 0.5]], [[1.0, 0.0], [1.0, 0.0]]])  # (H, L, L)
    layer2 = torch.tensor([[[0.5, 0.5], [0.0, 1.0]], [[0.5, 0.5], [0.0, 1.0]]])  # (H, L, L)
    attentions = [layer1[None], layer2[None]]  # 2 x (N=1, H=2, L=2, L=2)
    expected = torch.tensor([[[0.84375, 0.15625], [0.375, 0.625]]])  # (1, 2, 2)
    torch.testing.assert_close(X.attention_rollout(attentions), expected)
    cumulative = X.attention_rollout(attentions, cumulative=True)  # (2, 1, 2, 2)
    torch.testing.assert_close(cumulative[0], torch.tensor([[[1.0, 0.0], [0.375, 0.625]]]))
    torch.testing.assert_close(cumulative[1], expected)


def test_rollout_rows_sum_to_one_and_order_is_later_layers_on_the_left():
    a = random_attention()
    for fusion in ("mean", "max", "min"):
        r = X.attention_rollout(a, head_fusion=fusion, cumulative=True)  # (layers, N, L, L)
        assert r.shape == (3, 2, 5, 5)
        torch.testing.assert_close(r.sum(-1), torch.ones(3, 2, 5))
    # residual = 0: the plain product of head-averaged weights, last layer leftmost
    mean = a.mean(dim=2)  # (layers, N, L, L)
    torch.testing.assert_close(X.attention_rollout(a, residual=0.0), mean[2] @ mean[1] @ mean[0])
    # residual = 1: nothing but the residual path, the identity
    torch.testing.assert_close(X.attention_rollout(a, residual=1.0), torch.eye(5).expand(2, 5, 5))
    # a tuple of per-layer tensors gives the same as the stacked tensor
    torch.testing.assert_close(X.attention_rollout(tuple(a)), X.attention_rollout(a))


def test_raw_attention_and_pooled_scores():
    a = random_attention()
    torch.testing.assert_close(X.raw_attention(a), a[-1].mean(1))
    torch.testing.assert_close(X.raw_attention(a, layer=0, head=2), a[0, :, 2])
    w = X.raw_attention(a)  # (N, L, L)
    torch.testing.assert_close(X.pooled_scores(w, pooling="cls"), w[:, 0])
    torch.testing.assert_close(X.pooled_scores(w), w.mean(1))
    mask = torch.tensor([[True] * 5, [True, True, True, False, False]])
    pooled = X.pooled_scores(w, mask)
    torch.testing.assert_close(pooled[1], w[1, :3].mean(0))
    torch.testing.assert_close(pooled.sum(-1), torch.ones(2))


def test_attention_maps_stacks_the_model_attentions(tiny):
    model, ids, mask = tiny
    maps = X.attention_maps(model, ids, mask)
    assert maps.shape == (3, 3, 4, 7, 7)
    torch.testing.assert_close(maps.sum(-1), torch.ones(3, 3, 4, 7))
    assert (maps[:, 1, :, :, 5:] == 0).all()  # padded keys get no weight


# ------------------------------------------------------------------------------------------------
# Head ablation
# ------------------------------------------------------------------------------------------------


def attention_by_hand(attn: attnlib.MultiHeadAttention, x: torch.Tensor, zero: list[int]):
    """Multi-head self-attention computed step by step, with the listed heads' slices zeroed."""
    q = attn.split_heads(attn.q_proj(x))  # (N, H, L, E)
    k = attn.split_heads(attn.k_proj(x))  # (N, H, L, E)
    v = attn.split_heads(attn.v_proj(x))  # (N, H, L, E)
    heads, _ = attnlib.scaled_dot_product_attention(q, k, v)  # (N, H, L, E)
    concat = attn.merge_heads(heads).clone()  # (N, L, H*E)
    E = attn.head_dim
    for h in zero:
        concat[..., h * E : (h + 1) * E] = 0.0
    return attn.out_proj(concat)  # (N, L, D)


def test_ablating_a_head_equals_zeroing_its_slice_and_restores(tiny):
    model, ids, mask = tiny
    attn = model.layers[1].self_attn
    x = torch.randn(2, 6, 16)
    before, _ = attn(x, x, x)
    with torch.no_grad():
        with X.ablate_heads(model, [(1, 2), (1, 0), (1, 2)]):
            ablated, _ = attn(x, x, x)
        after, _ = attn(x, x, x)
        by_hand = attention_by_hand(attn, x, [0, 2])
    torch.testing.assert_close(ablated, by_hand)
    assert not torch.allclose(ablated, before)
    assert torch.equal(after, before)
    for layer in model.layers:
        assert len(layer.self_attn.out_proj._forward_pre_hooks) == 0


def test_ablation_restores_even_after_an_error(tiny):
    model, ids, mask = tiny
    with pytest.raises(RuntimeError, match="inside"), X.ablate_heads(model, [(0, 1)]):
        raise RuntimeError("inside")
    assert all(len(layer.self_attn.out_proj._forward_pre_hooks) == 0 for layer in model.layers)


def test_ablating_every_head_of_a_layer_leaves_only_the_bias(tiny):
    model, _, _ = tiny
    attn = model.layers[0].self_attn
    x = torch.randn(1, 4, 16)
    with torch.no_grad(), X.ablate_heads(model, [(0, h) for h in range(4)]):
        out, _ = attn(x, x, x)
    torch.testing.assert_close(out, attn.out_proj.bias.expand(1, 4, 16))


def test_scale_heads_with_zero_gates_equals_ablation(tiny):
    model, ids, mask = tiny
    gates = torch.ones(3, 4)
    gates[2, 3] = 0.0
    with torch.no_grad():
        with X.scale_heads(model, gates):
            gated = model(ids, mask).last_hidden_state
        with X.ablate_heads(model, [(2, 3)]):
            ablated = model(ids, mask).last_hidden_state
    torch.testing.assert_close(gated, ablated)


# ------------------------------------------------------------------------------------------------
# Gradients and occlusion
# ------------------------------------------------------------------------------------------------


def test_gradient_saliency_matches_autograd_by_hand(tiny):
    model, ids, mask = tiny
    sal = X.gradient_saliency(model, ids, mean_readout, mask)
    assert sal.shape == (3, 7)
    assert torch.isfinite(sal).all() and (sal >= 0).all()
    assert (sal[1, 5:] == 0).all() and (sal[1, :5] > 0).all()
    assert all(p.grad is None for p in model.parameters())
    # by hand: run the layers on an embedding tensor that requires grad
    x = model.embeddings(ids).detach().requires_grad_(True)  # (N, L, D)
    h = x
    for layer in model.layers:
        h = layer(h, src_token_mask=mask)
    y = mean_readout(_Output(h, ()), mask)
    (g,) = torch.autograd.grad(y.sum(), x)
    torch.testing.assert_close(sal, (g * x).norm(dim=-1) * mask)
    grad_only = X.gradient_saliency(model, ids, mean_readout, mask, times_input=False)
    torch.testing.assert_close(grad_only, g.norm(dim=-1) * mask)


def test_gradient_saliency_works_under_no_grad(tiny):
    model, ids, mask = tiny
    with torch.no_grad():
        sal = X.gradient_saliency(model, ids, mean_readout, mask)
    assert torch.isfinite(sal).all() and sal.shape == (3, 7)


def test_occlusion_equals_hiding_each_token_by_hand(tiny):
    model, ids, mask = tiny
    occ = X.occlusion(model, ids, mean_readout, mask)
    assert occ.shape == (3, 7)
    assert (occ[1, 5:] == 0).all()  # padded positions are never hidden
    with torch.no_grad():
        base = mean_readout(model(ids, mask), mask)
        hidden = mask.clone()
        hidden[2, 3] = False
        y = mean_readout(model(ids, hidden), hidden)
    torch.testing.assert_close(occ[2, 3], base[2] - y[2])
    only = X.occlusion(model, ids, mean_readout, mask, positions=[1])
    assert (only[:, [0, 2, 3, 4, 5, 6]] == 0).all()
    torch.testing.assert_close(only[:, 1], occ[:, 1])


def test_head_importance_matches_finite_differences(tiny):
    model, ids, mask = tiny
    model = model.double()
    imp = X.head_importance(model, ids, mean_readout, mask)
    assert imp.shape == (3, 4) and (imp >= 0).all()
    eps = 1e-5
    for layer, head in [(0, 1), (2, 3)]:
        diffs = []
        for n in range(3):
            ys = []
            for sign in (1, -1):
                gates = torch.ones(3, 4, dtype=torch.double)
                gates[layer, head] += sign * eps
                with torch.no_grad(), X.scale_heads(model, gates):
                    ys.append(mean_readout(model(ids[n : n + 1], mask[n : n + 1]), mask[n : n + 1]))
            diffs.append(((ys[0] - ys[1]) / (2 * eps)).abs())
        torch.testing.assert_close(imp[layer, head], torch.cat(diffs).mean(), rtol=1e-5, atol=1e-7)


# ------------------------------------------------------------------------------------------------
# Rank correlation
# ------------------------------------------------------------------------------------------------


def test_rank_correlation_known_values():
    a = torch.tensor([0.1, 0.5, 0.3, 0.9])
    assert X.rank_correlation(a, a * 10 + 1).item() == pytest.approx(1.0)
    assert X.rank_correlation(a, -a).item() == pytest.approx(-1.0)
    # ranks (0, 2, 1, 3) against (0, 1, 2, 3): 1 - 6 * 2 / (4 * 15) = 0.8
    assert X.rank_correlation(a, torch.arange(4.0)).item() == pytest.approx(0.8)
    # ties share their average rank: (0.5, 0.5, 2, 3) against (0, 1, 2, 3)
    tied = torch.tensor([1.0, 1.0, 2.0, 3.0])
    assert X.rank_correlation(tied, torch.arange(4.0)).item() == pytest.approx(0.9486833, 1e-6)
    batched = X.rank_correlation(torch.stack([a, -a]), torch.stack([a, a]))
    torch.testing.assert_close(batched, torch.tensor([1.0, -1.0]))


# ------------------------------------------------------------------------------------------------
# Bad arguments
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: X.attention_rollout(torch.rand(2, 3, 3)), ValueError,
         r"attentions must have shape \(layers, N, H, L, S\)"),
        (lambda: X.attention_rollout(torch.rand(2, 1, 2, 3, 4)), ValueError, "must be square"),
        (lambda: X.attention_rollout(random_attention(), residual=2), ValueError,
         "residual must be a number in"),
        (lambda: X.attention_rollout(random_attention(), head_fusion="median"), ValueError,
         "head_fusion must be 'mean', 'max' or 'min'"),
        (lambda: X.attention_rollout([]), TypeError, "non-empty sequence"),
        (lambda: X.attention_rollout([torch.rand(1, 2, 3, 3), torch.rand(1, 2, 4, 4)]),
         ValueError, "same shape"),
        (lambda: X.raw_attention(random_attention(), layer=3), ValueError,
         r"layer must be an int in \[-3, 3\)"),
        (lambda: X.raw_attention(random_attention(), head=4), ValueError,
         r"head must be None or an int in \[0, 4\)"),
        (lambda: X.pooled_scores(torch.rand(2, 3, 3), pooling="max"), ValueError,
         "pooling must be 'mean' or 'cls'"),
        (lambda: X.pooled_scores(torch.rand(3, 3)), ValueError, r"weights must be a \(N, L, S\)"),
        (lambda: X.pooled_scores(torch.rand(2, 3, 3), torch.ones(2, 4, dtype=torch.bool)),
         ValueError, r"attention_mask must have shape \(N, L\) = \(2, 3\)"),
        (lambda: X.rank_correlation(torch.rand(3), torch.rand(4)), ValueError, "same shape"),
    ],
    ids=["rollout-dims", "rollout-square", "residual", "fusion", "empty", "ragged", "layer",
         "head", "pooling", "pooled-dims", "pooled-mask", "rank-shapes"],
)
def test_bad_arguments_on_weights(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_bad_arguments_on_models(tiny):
    model, ids, mask = tiny
    with pytest.raises(ValueError, match=r"layer 3 does not exist; the model has 3"):
        with X.ablate_heads(model, [(3, 0)]):
            pass
    with pytest.raises(ValueError, match="head 4 does not exist; layer 0 has 4 heads"):
        with X.ablate_heads(model, [(0, 4)]):
            pass
    with pytest.raises(ValueError, match=r"heads must be \(layer, head\) pairs of ints, got 5"):
        with X.ablate_heads(model, [5]):
            pass
    with pytest.raises(TypeError, match="model must have .layers"):
        with X.ablate_heads(nn.Linear(2, 2), [(0, 0)]):
            pass
    with pytest.raises(ValueError, match=r"gates must have shape \(layers, H\) = \(3, 4\)"):
        with X.scale_heads(model, torch.ones(3, 5)):
            pass
    with pytest.raises(ValueError, match=r"target must return one number per sequence, shape "
                       r"\(N,\) = \(3,\), got \(3, 16\)"):
        X.gradient_saliency(model, ids, lambda out, m: out.last_hidden_state.mean(1), mask)
    with pytest.raises(TypeError, match="target must be a function"):
        X.occlusion(model, ids, "logit", mask)
    with pytest.raises(ValueError, match="attention_mask must have the shape of input_ids"):
        X.gradient_saliency(model, ids, mean_readout, mask[:, :3])
    with pytest.raises(ValueError, match=r"input_ids must be a \(N, L\) tensor"):
        X.head_importance(model, ids[0], mean_readout)
    with pytest.raises(ValueError, match=r"positions must lie in \[0, 7\), got \[9\]"):
        X.occlusion(model, ids, mean_readout, mask, positions=[9])
    with pytest.raises(ValueError, match="has no .attentions"):
        X.attention_maps(lambda i, m: _Output(torch.zeros(1), ()), ids, mask)


# ------------------------------------------------------------------------------------------------
# The real model (skipped when its package is absent)
# ------------------------------------------------------------------------------------------------


def test_on_minilm():
    from attnlib.models.bert import encode, mean_pool
    from attnlib.weights import ModelPackageError, load_minilm

    try:
        model, tokenizer = load_minilm()
    except ModelPackageError as err:
        pytest.skip(str(err))
    ids, mask = encode(tokenizer, ["the film was wonderful .", "a dull , slow lecture ."])
    maps = X.attention_maps(model, ids, mask)
    assert maps.shape[:3] == (6, 2, 12)
    rollout = X.attention_rollout(maps)
    torch.testing.assert_close(rollout.sum(-1), torch.ones(rollout.shape[:2]))
    with torch.no_grad():
        base = model(ids, mask).last_hidden_state
        with X.ablate_heads(model, [(5, 9)]):
            ablated = model(ids, mask).last_hidden_state
        again = model(ids, mask).last_hidden_state
    assert not torch.allclose(base, ablated) and torch.equal(base, again)

    def target(out, m):
        return mean_pool(out.last_hidden_state, m)[:, 0]

    sal = X.gradient_saliency(model, ids, target, mask)
    assert sal.shape == ids.shape and torch.isfinite(sal).all()
