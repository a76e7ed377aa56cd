"""The T5 chapter's tiny T5: relative buckets, the bias, masks, causality, shapes, bad input."""

from __future__ import annotations

import math

import pytest
import torch

import attnlib
from attnlib.layers import RMSNorm
from attnlib.models.t5 import (
    Generation,
    T5Attentions,
    T5Config,
    T5Model,
    shift_right,
    train_t5,
)
from attnlib.positional import RelativePositionBias, relative_position_bucket

VOCAB_SIZE = 20  # a small vocabulary: 0 pad, 1 start, 2 eos, 3.. tokens


def tiny(seed: int = 0, **kw) -> T5Model:
    attnlib.seed(seed)
    cfg = T5Config(vocab_size=VOCAB_SIZE, d_model=16, num_heads=2, dim_feedforward=32, **kw)
    return T5Model(cfg).eval()


def ids(*rows: list[int]) -> torch.Tensor:
    width = max(len(r) for r in rows)
    return torch.tensor([r + [0] * (width - len(r)) for r in rows], dtype=torch.long)


# ------------------------------------------------------------------------------------------------
# Relative position buckets, against T5's reference formula worked by hand
# ------------------------------------------------------------------------------------------------

# T5's settings: 32 buckets, max distance 128. Bidirectional: 16 buckets per side, 8 exact
# distances (0..7), then 8 logarithmic buckets up to distance 128: bucket(d) = 8 +
# floor(log(d / 8) / log(128 / 8) * 8); keys to the right (j - i > 0) add 16.
BIDIRECTIONAL = {
    0: 0, -1: 1, -7: 7, 1: 17, 7: 23,
    -8: 8, 8: 24,  # log(1) = 0: the first logarithmic bucket
    -12: 9,  # 8 + floor(log(1.5) / log(16) * 8) = 8 + floor(1.17)
    -32: 12,  # 8 + log(4) / log(16) * 8 = 8 + 4
    32: 28,  # the same, on the right: + 16
    -64: 14,  # 8 + log(8) / log(16) * 8 = 8 + 6
    -127: 15, -128: 15, -1000: 15,  # clamped to the last bucket of the left side
    1000: 31,  # and of the right side
}  # fmt: skip
# Unidirectional (the decoder): 32 buckets for the left, 16 exact distances (0..15), then
# 16 + floor(log(d / 16) / log(128 / 16) * 16); every key to the right shares bucket 0.
UNIDIRECTIONAL = {
    0: 0, 1: 0, 5: 0, 1000: 0,
    -1: 1, -15: 15, -16: 16,
    -32: 21,  # 16 + floor(log(2) / log(8) * 16) = 16 + floor(5.33)
    -64: 26,  # 16 + floor(log(4) / log(8) * 16) = 16 + floor(10.67)
    -127: 31, -128: 31, -1000: 31,
}  # fmt: skip


@pytest.mark.parametrize(
    ("bidirectional", "table"), [(True, BIDIRECTIONAL), (False, UNIDIRECTIONAL)]
)
def test_buckets_match_hand_examples(bidirectional, table):
    rel = torch.tensor(list(table))
    got = relative_position_bucket(rel, bidirectional=bidirectional)
    assert got.dtype == torch.long
    assert dict(zip(table, got.tolist(), strict=True)) == table


def test_small_bucket_settings_by_hand():
    # 8 buckets, max distance 16, bidirectional: 4 per side, 2 exact (0, 1), then
    # 2 + floor(log(d / 2) / log(8) * 2): d = 2, 3 -> 2; d = 4..15 -> 2 + floor(0.67..1.97) = 2 or 3
    rel = torch.tensor([0, -1, -2, -3, -4, -15, -16, -100, 1, 2, 4, 100])
    got = relative_position_bucket(rel, bidirectional=True, num_buckets=8, max_distance=16)
    assert got.tolist() == [0, 1, 2, 2, 2, 3, 3, 3, 5, 6, 6, 7]


def test_buckets_match_transformers_reference():
    t5 = pytest.importorskip("transformers.models.t5.modeling_t5")
    rel = torch.arange(-300, 301)
    for bidirectional in (True, False):
        for num_buckets, max_distance in ((32, 128), (16, 32), (8, 20), (6, 7)):
            expected = t5.T5Attention._relative_position_bucket(
                rel, bidirectional=bidirectional, num_buckets=num_buckets,
                max_distance=max_distance,
            )
            got = relative_position_bucket(
                rel, bidirectional=bidirectional, num_buckets=num_buckets,
                max_distance=max_distance,
            )
            assert torch.equal(got, expected), (bidirectional, num_buckets, max_distance)


def test_buckets_are_monotone_in_distance_and_in_range():
    d = torch.arange(0, 500)
    for bidirectional in (True, False):
        left = relative_position_bucket(-d, bidirectional=bidirectional)
        assert bool((left[1:] >= left[:-1]).all())
        assert int(left.min()) == 0 and int(left.max()) == (15 if bidirectional else 31)
    right = relative_position_bucket(d[1:], bidirectional=True)
    assert int(right.min()) == 17 and int(right.max()) == 31


# ------------------------------------------------------------------------------------------------
# The bias
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bidirectional", [True, False])
def test_bias_depends_only_on_j_minus_i(bidirectional):
    attnlib.seed(0)
    rpb = RelativePositionBias(3, bidirectional=bidirectional, num_buckets=8, max_distance=16)
    bias = rpb(7, 9)  # (1, H, L, S)
    assert bias.shape == (1, 3, 7, 9)
    # constant along every diagonal: (i, j) and (i + 1, j + 1) have the same j - i
    assert torch.equal(bias[0, :, 1:, 1:], bias[0, :, :-1, :-1])
    # and equal to the value for that distance
    for i in range(7):
        for j in range(9):
            assert torch.equal(bias[0, :, i, j], rpb.by_distance(torch.tensor([j - i]))[:, 0])
    # a real function of the distance: different distances (different buckets) differ
    assert not torch.equal(bias[0, :, 0, 0], bias[0, :, 1, 0])  # distance 0 vs -1


def test_bias_left_and_right_differ_only_when_bidirectional():
    attnlib.seed(0)
    enc = RelativePositionBias(2, bidirectional=True)
    dec = RelativePositionBias(2, bidirectional=False)
    d = torch.tensor([-3, 3])
    assert not torch.equal(enc.by_distance(d)[:, 0], enc.by_distance(d)[:, 1])
    # the decoder puts every key on the right in bucket 0, the query's own
    assert torch.equal(dec.by_distance(d)[:, 1], dec.by_distance(torch.tensor([0]))[:, 0])


def test_one_bias_per_stack_shared_by_every_layer():
    model = tiny(num_encoder_layers=3, num_decoder_layers=3)
    tables = [m for m in model.modules() if isinstance(m, RelativePositionBias)]
    assert len(tables) == 2  # one for the encoder, one for the decoder, whatever the depth
    # the cross-attention gets no bias, and the layers own no bias table of their own
    for layer in [*model.encoder_layers, *model.decoder_layers]:
        assert not any(isinstance(m, RelativePositionBias) for m in layer.modules())


def test_attention_is_unscaled_and_adds_the_bias():
    model = tiny()
    src = ids([5, 6, 7, 8, 9])
    _, att = model(src, ids([1, 4, 5]), need_weights=True)
    layer = model.encoder_layers[0]
    x = layer.norm1(model.embed(src))  # (N, S, D)
    attn = layer.self_attn
    q, k = attn.split_heads(attn.q_proj(x)), attn.split_heads(attn.k_proj(x))  # (N, H, S, E)
    bias = model.encoder_bias(5)  # (1, H, S, S)
    unscaled = torch.softmax(q @ k.transpose(-2, -1) + bias, dim=-1)  # (N, H, S, S)
    scaled = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.size(-1)) + bias, dim=-1)
    torch.testing.assert_close(att.encoder[0], unscaled)
    assert not torch.allclose(att.encoder[0], scaled, atol=1e-4)


def test_initialisation_folds_the_scale_into_the_queries():
    attnlib.seed(0)
    cfg = T5Config(vocab_size=VOCAB_SIZE, d_model=256, num_heads=4, dim_feedforward=64)
    model = T5Model(cfg)
    E = 256 // 4
    attn = model.encoder_layers[0].self_attn
    assert abs(attn.q_proj.weight.std().item() * math.sqrt(256 * E) - 1) < 0.02
    assert abs(attn.k_proj.weight.std().item() * math.sqrt(256) - 1) < 0.02
    # unit-RMS inputs: scores q . k (no scale) have variance about 1
    x = attnlib.randn(64, 32, 256)
    x = x / x.pow(2).mean(-1, keepdim=True).sqrt()
    q, k = attn.split_heads(attn.q_proj(x)), attn.split_heads(attn.k_proj(x))
    var = (q @ k.transpose(-2, -1)).var().item()
    assert 0.8 < var < 1.25


def test_rmsnorm():
    norm = RMSNorm(8)
    x = attnlib.randn(3, 5, 8) * 4 + 2
    y = norm(x)
    torch.testing.assert_close(y.pow(2).mean(-1), torch.ones(3, 5), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(y, x / (x.pow(2).mean(-1, keepdim=True) + 1e-6).sqrt())
    # no centring: unlike LayerNorm, the mean is not removed
    assert not torch.allclose(y, torch.nn.functional.layer_norm(x, (8,)), atol=0.1)


# ------------------------------------------------------------------------------------------------
# Masks: causality and padding
# ------------------------------------------------------------------------------------------------


def test_decoder_is_causal():
    model = tiny()
    src = ids([5, 6, 7, 8])
    tgt_in = ids([1, 9, 10, 11, 12, 13])
    base = model(src, tgt_in)
    for k in range(1, 6):
        changed = tgt_in.clone()
        changed[0, k] = 4  # perturb the decoder input at position k
        out = model(src, changed)
        torch.testing.assert_close(out[:, :k], base[:, :k], atol=0, rtol=0)  # earlier: identical
        assert not torch.allclose(out[:, k], base[:, k])  # from k on: changed


def test_decoder_self_attention_weights_are_lower_triangular():
    model = tiny()
    _, att = model(ids([5, 6, 7]), ids([1, 9, 10, 11]), need_weights=True)
    for w in att.decoder_self:
        assert bool((w.triu(diagonal=1) == 0).all())
        torch.testing.assert_close(w.sum(-1), torch.ones(w.shape[:-1]))


def test_encoder_is_bidirectional():
    model = tiny()
    src = ids([5, 6, 7, 8, 9])
    changed = src.clone()
    changed[0, 4] = 10  # the last source token
    a, _ = model.encode(src)
    b, _ = model.encode(changed)
    assert not torch.allclose(a[:, 0], b[:, 0])  # the first position sees the last one


def test_padded_keys_get_zero_weight_and_change_nothing():
    model = tiny()
    src = ids([5, 6, 7, 8, 9, 10], [5, 6, 7])  # the second row padded with 3 zeros
    tgt_in = ids([1, 11, 12, 13], [1, 11, 12, 13])
    logits, att = model(src, tgt_in, need_weights=True)
    for w in (*att.encoder, *att.cross):
        assert bool((w[1, :, :, 3:] == 0).all())  # exactly zero on the padding
        torch.testing.assert_close(w.sum(-1), torch.ones(w.shape[:-1]))
    # the padded row gives what the unpadded sequence gives alone
    alone = model(ids([5, 6, 7]), tgt_in[1:])
    torch.testing.assert_close(logits[1:], alone, atol=1e-5, rtol=1e-5)


def test_source_of_only_padding_gives_zero_cross_weights_not_nan():
    model = tiny()
    src = ids([5, 6, 7], [0])  # the second source is empty
    logits, att = model(src, ids([1, 8], [1, 8]), need_weights=True)
    assert bool(torch.isfinite(logits).all())
    for w in (*att.encoder, *att.cross):
        assert bool(torch.isfinite(w).all())
        assert bool((w[1] == 0).all())


# ------------------------------------------------------------------------------------------------
# Shapes, generation, training
# ------------------------------------------------------------------------------------------------


def test_shapes():
    model = tiny(num_encoder_layers=3, num_decoder_layers=2)
    src = torch.randint(3, VOCAB_SIZE, (4, 7))
    tgt_in = torch.randint(3, VOCAB_SIZE, (4, 5))
    logits = model(src, tgt_in)
    assert logits.shape == (4, 5, VOCAB_SIZE)
    logits, att = model(src, tgt_in, need_weights=True)
    assert isinstance(att, T5Attentions)
    assert [tuple(w.shape) for w in att.encoder] == [(4, 2, 7, 7)] * 3
    assert [tuple(w.shape) for w in att.decoder_self] == [(4, 2, 5, 5)] * 2
    assert [tuple(w.shape) for w in att.cross] == [(4, 2, 5, 7)] * 2
    memory, _ = model.encode(src)
    assert memory.shape == (4, 7, 16)


def test_generate_returns_the_cross_attention_of_every_step():
    model = tiny()
    src = ids([5, 6, 7, 8], [9, 10])
    gen = model.generate(src, max_len=6)
    assert isinstance(gen, Generation)
    N, L = gen.ids.shape
    assert N == 2 and 1 <= L <= 6
    assert gen.cross_attention.shape == (2, 2, 2, L, 4)  # (layers, N, H, L, S)
    # step t's row equals the teacher-forced map on the generated prefix (the decoder is causal)
    tgt_in = shift_right(gen.ids, model.config.start_id)
    _, att = model(src, tgt_in, need_weights=True)
    for n in range(2):
        eos = (gen.ids[n] == model.config.eos_id).nonzero()
        live = int(eos[0]) + 1 if len(eos) else L  # steps up to and including eos
        for layer in range(2):
            torch.testing.assert_close(
                gen.cross_attention[layer, n, :, :live], att.cross[layer][n, :, :live]
            )
        assert bool((gen.cross_attention[:, n, :, live:] == 0).all())  # zeros after eos
    assert bool((gen.cross_attention[:, 1, :, :, 2:] == 0).all())  # padding of row 1


def test_generate_stops_once_every_sequence_has_ended():
    model = tiny()

    class Scripted(torch.nn.Module):  # row 0 says eos at once; row 1 says 7, 7, then eos
        def forward(self, y):  # y: (N, t, D)
            logits = torch.zeros(*y.shape[:2], VOCAB_SIZE)  # (N, t, vocab_size)
            logits[0, :, 2] = 1.0
            logits[1, :, 7 if y.size(1) < 3 else 2] = 1.0
            return logits

    model.lm_head = Scripted()
    gen = model.generate(ids([5, 6], [7, 8]), max_len=10)
    assert gen.ids.tolist() == [[2, 0, 0], [7, 7, 2]]
    assert gen.cross_attention.shape == (2, 2, 2, 3, 2)
    assert bool((gen.cross_attention[:, 0, :, 1:] == 0).all())  # after row 0's eos
    assert bool((gen.cross_attention[:, 1] > 0).any(dim=-1).all())  # every live row attends


def test_shift_right():
    tgt = ids([7, 8, 2], [9, 2])
    assert shift_right(tgt, 1).tolist() == [[1, 7, 8], [1, 9, 2]]



def test_training_learns_to_copy(one_thread):
    model = tiny()
    g = torch.Generator().manual_seed(0)
    src = torch.randint(3, VOCAB_SIZE, (256, 5), generator=g)
    tgt = torch.cat([src, torch.full((256, 1), 2)], dim=1)  # copy, then eos
    losses = train_t5(model, src, tgt, steps=100, batch_size=32, lr=1e-2, warmup=10)
    assert len(losses) == 100
    assert sum(losses[-10:]) / 10 < 0.6 * sum(losses[:10]) / 10
    assert not model.training


# ------------------------------------------------------------------------------------------------
# Bad arguments
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_buckets": 7}, "num_buckets must be even"),
        ({"num_buckets": 2}, "need at least 2"),
        ({"max_distance": 8}, "max_distance must exceed the 8 distances"),
        ({"num_buckets": 0}, "num_buckets must be an int >= 2"),
    ],
)
def test_bad_bucket_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        relative_position_bucket(torch.tensor([1]), **kwargs)


def test_bucket_rejects_float_positions():
    with pytest.raises(TypeError, match="integer tensor of distances j - i"):
        relative_position_bucket(torch.tensor([1.0]))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"d_model": 30, "num_heads": 4}, r"d_model \(30\) must be divisible by num_heads \(4\)"),
        ({"vocab_size": 0}, "T5Config: vocab_size must be a positive int"),
        ({"dropout": 1.0}, r"dropout must be in \[0, 1\)"),
        ({"eos_id": 99}, r"eos_id must be an id in \[0, vocab_size=20\)"),
        ({"num_buckets": 9}, "num_buckets must be even"),
    ],
)
def test_bad_config(kwargs, message):
    args = {"vocab_size": VOCAB_SIZE, **kwargs}
    with pytest.raises(ValueError, match=message):
        T5Config(**args)


def test_bad_inputs():
    model = tiny()
    with pytest.raises(ValueError, match=r"src_ids must be a long tensor of token ids \(N, "):
        model(torch.zeros(2, 3), ids([1, 4]))
    with pytest.raises(ValueError, match=r"src_ids must be a long tensor"):
        model(torch.tensor([5, 6]), ids([1, 4]))
    with pytest.raises(ValueError, match=r"ids outside \[0, vocab_size=20\): min 5, max 20"):
        model(ids([5, 20]), ids([1, 4]))
    with pytest.raises(ValueError, match="same batch size N, got 1 and 2"):
        model(ids([5, 6], [7]), ids([1, 4]))
    with pytest.raises(ValueError, match="T5Model.generate: max_len must be a positive int, got 0"):
        model.generate(ids([5, 6]), max_len=0)
    with pytest.raises(TypeError, match="config must be a T5Config"):
        T5Model({"vocab_size": VOCAB_SIZE})
    with pytest.raises(ValueError, match=r"tgt_ids must be an integer tensor \(N, L\)"):
        shift_right(torch.zeros(2, 3), 1)
    with pytest.raises(ValueError, match="must be 2-D with the same M"):
        train_t5(model, ids([5, 6]), ids([7, 2], [8, 2]), steps=1)
