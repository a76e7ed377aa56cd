"""Head ablation on the Llama decoder (the chapter "Attention is not explanation", induction heads).

:func:`attnlib.explain.ablate_heads` and :func:`attnlib.explain.scale_heads` hook the layer that
receives the heads' outputs side by side; in :class:`attnlib.models.llama.LlamaDecoder` it is
``self_attn.o_proj``. A tiny random decoder stands in for SmolLM2 so the tests stay fast. The
reference is independent of the hooks: zeroing head ``h`` before ``o_proj`` is the same as zeroing
the columns ``h*E : (h+1)*E`` of ``o_proj``'s weight.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from attnlib import explain as X
from attnlib.models.llama import LlamaConfig, LlamaDecoder


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=40, d_model=16, num_layers=3, num_heads=4, num_kv_heads=2,
                         dim_feedforward=24, context_length=32)
    model = LlamaDecoder(config).eval()
    ids = torch.randint(0, 40, (2, 10), generator=torch.Generator().manual_seed(1))  # (N, L)
    return model, ids


def logits(model, ids):
    with torch.no_grad():
        return model(ids).logits  # (N, L, vocab_size)


def columns_zeroed(model, heads):
    """A copy of the model whose o_proj ignores the given (layer, head) pairs."""
    E = model.config.head_dim
    other = copy.deepcopy(model)
    with torch.no_grad():
        for layer, head in heads:
            other.layers[layer].self_attn.o_proj.weight[:, head * E : (head + 1) * E] = 0.0
    return other


@pytest.mark.parametrize("heads", [[(1, 2)], [(0, 0), (0, 3), (2, 1)], [(2, h) for h in range(4)]])
def test_ablate_heads_on_llama_equals_zeroed_output_columns(tiny, heads):
    model, ids = tiny
    with X.ablate_heads(model, heads):
        got = logits(model, ids)
    torch.testing.assert_close(got, logits(columns_zeroed(model, heads), ids))
    assert not torch.allclose(got, logits(model, ids))  # the ablation changed something


def test_ablate_heads_on_llama_removes_its_hooks_and_changes_no_weight(tiny):
    model, ids = tiny
    before = logits(model, ids)
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    with X.ablate_heads(model, [(0, 1), (2, 3)]):
        assert len(model.layers[0].self_attn.o_proj._forward_pre_hooks) == 1
    assert all(len(b.self_attn.o_proj._forward_pre_hooks) == 0 for b in model.layers)
    assert all(torch.equal(v, weights[k]) for k, v in model.state_dict().items())
    torch.testing.assert_close(logits(model, ids), before, rtol=0, atol=0)


def test_the_ablated_decoder_stays_causal(tiny):
    """With a head ablated, editing the tokens from position 6 on changes no earlier logit."""
    model, ids = tiny
    changed = ids.clone()
    changed[:, 6:] = (changed[:, 6:] + 1) % 40  # (N, L): edit the tail only
    with X.ablate_heads(model, [(1, 0)]):
        a, b = logits(model, ids), logits(model, changed)
    torch.testing.assert_close(a[:, :6], b[:, :6])


def test_scale_heads_on_llama_with_zero_gates_equals_ablation(tiny):
    model, ids = tiny
    gates = torch.ones(3, 4)
    gates[1, 2] = 0.0
    with X.scale_heads(model, gates):
        scaled = logits(model, ids)
    with X.ablate_heads(model, [(1, 2)]):
        ablated = logits(model, ids)
    torch.testing.assert_close(scaled, ablated)


def test_bad_heads_on_llama_name_the_problem(tiny):
    model, _ = tiny
    with pytest.raises(ValueError, match="head 4 does not exist; layer 0 has 4 heads"):
        with X.ablate_heads(model, [(0, 4)]):
            pass
    with pytest.raises(ValueError, match="layer 3 does not exist; the model has 3"):
        with X.ablate_heads(model, [(3, 0)]):
            pass


def test_a_layer_without_an_output_projection_is_refused():
    class Attention(nn.Module):
        num_heads, head_dim = 2, 3

    class Layer(nn.Module):
        def __init__(self):
            super().__init__()
            self.self_attn = Attention()

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleList([Layer()])

    with pytest.raises(TypeError, match=r"output projection \.out_proj or \.o_proj"):
        with X.ablate_heads(Model(), [(0, 1)]):
            pass
