"""ALBERT's parameter sharing and factorised embeddings: fewer parameters, the same arithmetic."""

from __future__ import annotations

import pytest
import torch

from attnlib import albert
from attnlib.layers import TransformerEncoderLayer

SMALL = {"vocab_size": 500, "d_model": 32, "num_layers": 3, "num_heads": 4, "dim_feedforward": 64,
         "context_length": 16}


@pytest.fixture
def models():
    torch.manual_seed(0)
    bert = albert.SmallEncoder(albert.bert_config(**SMALL))
    lite = albert.SmallEncoder(albert.albert_config(embed_size=8, **SMALL))
    return bert, lite


def test_configs():
    b, a = albert.bert_config(), albert.albert_config()
    assert (b.embedding_dim, b.factorised, b.share_layers) == (256, False, False)
    assert (a.embedding_dim, a.factorised, a.share_layers) == (64, True, True)
    sizes = ("d_model", "num_layers", "dim_feedforward")
    assert [getattr(a, n) for n in sizes] == [getattr(b, n) for n in sizes]


def test_shared_layers_are_one_module(models):
    bert, lite = models
    assert len(lite.layers) == len(bert.layers) == 3
    assert all(layer is lite.layers[0] for layer in lite.layers)
    assert len({id(layer) for layer in bert.layers}) == 3
    assert isinstance(lite.layers[0], TransformerEncoderLayer)


@pytest.mark.parametrize("share", [False, True])
@pytest.mark.parametrize("embed_size", [None, 8])
def test_parameter_count_matches_the_formula(share, embed_size):
    config = albert.EncoderConfig(**SMALL, embed_size=embed_size, share_layers=share)
    model = albert.SmallEncoder(config)
    assert albert.count_parameters(model) == albert.parameters_analytic(config)


def test_albert_cuts_parameters_of_the_default_shape():
    b, a = albert.bert_config(), albert.albert_config()
    pb, pa = albert.parameters_analytic(b), albert.parameters_analytic(a)
    assert pa["layers"] * b.num_layers == pb["layers"]  # one layer's weights instead of six
    vocab_size, e, D = b.vocab_size, a.embedding_dim, b.d_model
    assert pa["embeddings"] - pb["embeddings"] == (
        (vocab_size + b.context_length) * (e - D) + 2 * (e - D) + (e * D + D)
    )
    assert pb["total"] / pa["total"] > 4


@pytest.mark.parametrize("seq_len", [8, 16])
def test_flops_formula_matches_what_pytorch_multiplies(models, seq_len):
    bert, lite = models
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, SMALL["vocab_size"], (2, seq_len), generator=g)
    for model in (bert, lite):
        expected = albert.flops_per_token(model.config, seq_len)["total"]
        assert albert.measured_flops(model, ids) == expected


def test_albert_does_not_cut_compute_per_token():
    b, a = albert.bert_config(), albert.albert_config()
    for L in (16, 128):
        fb, fa = albert.flops_per_token(b, L), albert.flops_per_token(a, L)
        assert fa["layers"] == fb["layers"]
        assert fa["total"] >= fb["total"]  # the projection E -> D even adds a little


def test_forward_shapes_and_gradients_reach_the_shared_layer(models):
    bert, lite = models
    ids = torch.randint(0, SMALL["vocab_size"], (2, 10), generator=torch.Generator().manual_seed(1))
    for model in (bert, lite):
        out = model(ids)
        assert out.shape == (2, 10, SMALL["d_model"])
    lite(ids).sum().backward()
    assert lite.layers[0].linear1.weight.grad is not None
    assert lite.token.weight.grad.shape == (SMALL["vocab_size"], 8)


def test_sharing_is_not_the_same_as_one_layer(models):
    _, lite = models
    ids = torch.randint(0, SMALL["vocab_size"], (1, 6), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        x = lite.project(lite.norm(lite.token(ids) + lite.position(torch.arange(6))))
        once = lite.layers[0](x)
        assert not torch.allclose(lite(ids), once)  # the shared layer runs three times


def test_time_forward_returns_a_positive_median(models):
    bert, _ = models
    ids = torch.zeros(1, 4, dtype=torch.long)
    assert albert.time_forward(bert, ids, repeats=3) > 0
