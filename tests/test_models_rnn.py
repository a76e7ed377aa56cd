"""attnlib.rnn: shapes, masking of source padding, the attention formulas, determinism, errors."""

from __future__ import annotations

import pytest
import torch

import attnlib
from attnlib import rnn
from attnlib.data import toy
from attnlib.data.dates import CharVocab
from attnlib.scoring import additive_scores

V_SRC, V_TGT, D, EMB = 20, 9, 16, 8


def _model(kind, seed=0, **kw):
    attnlib.seed(seed)
    return rnn.build(kind, V_SRC, V_TGT, embed_size=EMB, hidden_size=D, **kw).eval()


def _batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([5, 2, 7])
    src = torch.randint(4, V_SRC, (3, 7), generator=g)
    src[torch.arange(7)[None, :] >= lengths[:, None]] = 0  # padding
    tgt = torch.randint(3, V_TGT, (3, 6), generator=g)
    tgt[:, 0] = 1
    return src, lengths, tgt


@pytest.mark.parametrize("kind", rnn.KINDS)
def test_forward_shapes(kind):
    model = _model(kind)
    src, lengths, tgt = _batch()
    logits, weights = model(src, lengths, tgt)
    assert logits.shape == (3, 6, V_TGT)
    if kind == "none":
        assert weights is None and not model.attends
    else:
        assert weights.shape == (3, 6, 7) and model.attends
        torch.testing.assert_close(weights.sum(-1), torch.ones(3, 6))


@pytest.mark.parametrize("kind", rnn.KINDS[1:])
def test_padding_gets_exactly_zero_weight_and_changes_nothing(kind):
    model = _model(kind)
    src, lengths, tgt = _batch()
    logits, weights = model(src, lengths, tgt)
    real = torch.arange(7)[None, :] < lengths[:, None]  # (N, S)
    assert torch.all(weights.masked_select(~real[:, None, :].expand_as(weights)) == 0)
    # Whatever sits in the padding, and however much of it there is, nothing changes.
    noisy = src.clone()
    noisy[~real] = 5
    torch.testing.assert_close(model(noisy, lengths, tgt)[0], logits)
    alone_logits, alone_w = model(src[1:2, :2], lengths[1:2], tgt[1:2])
    torch.testing.assert_close(alone_logits, logits[1:2], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(alone_w, weights[1:2, :, :2], atol=1e-5, rtol=1e-5)


def test_bottleneck_ignores_padding_too():
    model = _model("none")
    src, lengths, tgt = _batch()
    logits, _ = model(src, lengths, tgt)
    alone, _ = model(src[1:2, :2], lengths[1:2], tgt[1:2])
    torch.testing.assert_close(alone, logits[1:2], atol=1e-5, rtol=1e-5)


def test_encoder_memory_is_zero_on_padding_and_summary_joins_both_directions():
    model = _model("bahdanau")
    src, lengths, _ = _batch()
    memory, summary, mask = model.encode(src, lengths)
    assert memory.shape == (3, 7, D) and summary.shape == (3, D) and mask.shape == (3, 1, 7)
    assert mask.dtype == torch.bool and mask[1, 0].tolist() == [True, True] + [False] * 5
    assert torch.all(memory[1, 2:] == 0)
    # forward half of the summary = forward state at the last real position;
    # backward half = backward state at position 0
    for n, L in enumerate(lengths.tolist()):
        torch.testing.assert_close(summary[n, : D // 2], memory[n, L - 1, : D // 2])
        torch.testing.assert_close(summary[n, D // 2 :], memory[n, 0, D // 2 :])


def test_bahdanau_step_follows_its_formula():
    model = _model("bahdanau")
    src, lengths, tgt = _batch()
    memory, summary, mask = model.encode(src, lengths)
    dec = model.decoder
    state = dec.start(memory, summary)
    s_prev = state["s"]
    e = dec.embed(tgt[:, 0])
    logits, new_state, w = dec.step(e, state, memory, dec.prepare(memory), mask)
    sc = dec.score
    scores = additive_scores(s_prev[:, None, :], memory, sc.W_q, sc.W_k, sc.v)[:, 0]  # (N, S)
    scores = scores.masked_fill(~mask[:, 0], float("-inf"))
    alpha = torch.softmax(scores, dim=-1)  # (N, S)
    torch.testing.assert_close(w, alpha)
    c = (alpha[:, :, None] * memory).sum(1)  # (N, D)
    s = dec.cell(torch.cat([e, c], -1), s_prev)
    torch.testing.assert_close(new_state["s"], s)
    torch.testing.assert_close(logits, dec.out(torch.cat([s, c], -1)))


@pytest.mark.parametrize("score", ["dot", "general", "concat"])
def test_luong_step_scores_the_new_state(score):
    model = _model(f"luong-{score}")
    src, lengths, tgt = _batch()
    memory, summary, mask = model.encode(src, lengths)
    dec = model.decoder
    state = dec.start(memory, summary)
    e = dec.embed(tgt[:, 0])
    logits, new_state, w = dec.step(e, state, memory, dec.prepare(memory), mask)
    s = dec.cell(torch.cat([e, state["h_tilde"]], -1), state["s"])  # s_t first, then look
    expected = torch.softmax(
        dec.score(s[:, None, :], memory)[:, 0].masked_fill(~mask[:, 0], float("-inf")), -1
    )
    torch.testing.assert_close(w, expected)
    c = expected[:, None, :] @ memory  # (N, 1, D)
    h_tilde = torch.tanh(dec.combine(torch.cat([c[:, 0], s], -1)))
    torch.testing.assert_close(new_state["h_tilde"], h_tilde)
    torch.testing.assert_close(logits, dec.out(h_tilde))


def test_parameter_counts_differ_by_the_score_parameters():
    counts = {k: rnn.count_parameters(_model(k)) for k in rnn.KINDS}
    assert counts["luong-general"] - counts["luong-dot"] == D * D
    assert counts["luong-concat"] - counts["luong-dot"] == D * 2 * D + D  # W (h, 2D), v (h,)
    bottleneck_extra = counts["bahdanau"] - counts["none"]
    assert bottleneck_extra == 2 * D * D + D  # only the additive score: W_q, W_k, v
    model = _model("bahdanau", score_size=5)
    assert rnn.count_parameters(model) == counts["none"] + 2 * 5 * D + 5


def test_greedy_decode_returns_the_weights_of_every_step():
    model = _model("bahdanau")
    src, lengths, _ = _batch()
    ids, weights = rnn.greedy_decode(model, src, lengths, max_len=6)
    assert ids.dtype == torch.long and ids.shape[0] == 3 and ids.shape[1] <= 6
    assert weights.shape == (3, ids.shape[1], 7)
    real = torch.arange(7)[None, None, :] < lengths[:, None, None]
    assert torch.all(weights.masked_select(~real.expand_as(weights)) == 0)
    # before eos every step's weights sum to 1; after it, they are zeros
    for n in range(3):
        row = ids[n].tolist()
        end = row.index(2) + 1 if 2 in row else len(row)
        torch.testing.assert_close(weights[n, :end].sum(-1), torch.ones(end))
        assert torch.all(weights[n, end:] == 0) and all(i == 0 for i in row[end:])
    # the first greedy step equals teacher forcing's first step
    logits, w_tf = model(src, lengths, torch.ones(3, 1, dtype=torch.long))
    assert torch.equal(ids[:, 0], logits[:, 0].argmax(-1))
    torch.testing.assert_close(weights[:, 0], w_tf[:, 0])
    ids_none, w_none = rnn.greedy_decode(_model("none"), src, lengths, max_len=4)
    assert w_none is None and ids_none.shape[0] == 3


def test_determinism_for_a_seed():
    a, b = _model("luong-concat", seed=4), _model("luong-concat", seed=4)
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)
    src, lengths, tgt = _batch()
    assert torch.equal(a(src, lengths, tgt)[0], b(src, lengths, tgt)[0])
    c = _model("luong-concat", seed=5)
    assert not torch.equal(a(src, lengths, tgt)[0], c(src, lengths, tgt)[0])



def _tiny_task():
    pairs = toy.reversal_pairs(300, [2, 3, 4], alphabet="abcdef", seed=0)
    vocab = CharVocab.build(["abcdef"])
    return pairs, vocab, rnn.encode_pairs(pairs, vocab, vocab)


def test_training_is_deterministic_and_learns(one_thread):
    pairs, vocab, data = _tiny_task()
    runs = []
    for _ in range(2):
        attnlib.seed(0)
        model = rnn.build("bahdanau", len(vocab), len(vocab), embed_size=8, hidden_size=16)
        runs.append(rnn.train(model, data, steps=40, batch_size=32, lr=1e-2, seed=1))
    assert runs[0].losses == runs[1].losses
    assert runs[0].steps == 40 and runs[0].seconds > 0
    first, last = sum(runs[0].losses[:5]) / 5, sum(runs[0].losses[-5:]) / 5
    assert last < 0.8 * first
    assert not model.training  # train() leaves the model in eval mode


def test_translate_and_exact_match_agree(one_thread):
    pairs, vocab, data = _tiny_task()
    attnlib.seed(0)
    model = rnn.build("luong-dot", len(vocab), len(vocab), embed_size=8, hidden_size=16)
    outputs, weights = rnn.translate(model, [s for s, _ in pairs], vocab, vocab, max_len=6)
    expected = sum(o == t for o, (_, t) in zip(outputs, pairs, strict=True)) / len(pairs)
    assert rnn.exact_match(model, data, batch_size=64) == pytest.approx(expected)
    for (source, _), w in zip(pairs, weights, strict=True):
        assert w.shape[1] == len(source)


def test_reversal_pairs():
    pairs = toy.reversal_pairs(50, [3, 5], alphabet="xy", seed=2)
    assert pairs == toy.reversal_pairs(50, [3, 5], alphabet="xy", seed=2)
    assert all(t == s[::-1] and len(s) in (3, 5) and set(s) <= {"x", "y"} for s, t in pairs)


def test_bad_arguments_are_rejected_with_clear_messages():
    with pytest.raises(ValueError, match="build: kind must be one of"):
        rnn.build("transformer", 5, 5)
    with pytest.raises(ValueError, match="build: src_vocab must be a positive int, got 0"):
        rnn.build("none", 0, 5)
    with pytest.raises(ValueError, match="Encoder: hidden_size must be even"):
        rnn.build("none", 5, 5, hidden_size=15)
    with pytest.raises(ValueError, match="LuongDecoder: score must be"):
        rnn.LuongDecoder(5, 4, 8, score="additive")
    model = _model("bahdanau")
    src, lengths, tgt = _batch()
    with pytest.raises(ValueError, match=r"src must be a long tensor \(N, S\)"):
        model(src.float(), lengths, tgt)
    with pytest.raises(ValueError, match=r"lengths must be a tensor \(N,\) = \(3,\)"):
        model(src, lengths[:2], tgt)
    with pytest.raises(ValueError, match=r"every length must be in \[1, S=7\]"):
        model(src, torch.tensor([5, 0, 7]), tgt)
    with pytest.raises(ValueError, match="greedy_decode: max_len must be a positive int"):
        rnn.greedy_decode(model, src, lengths, 0)
    pairs, vocab, data = _tiny_task()
    with pytest.raises(ValueError, match="train: steps must be a positive int"):
        rnn.train(model, data, steps=0)
    with pytest.raises(TypeError, match="train: data must be a Batch"):
        rnn.train(model, pairs, steps=1)
    with pytest.raises(ValueError, match="encode_pairs: pairs is empty"):
        rnn.encode_pairs([], vocab, vocab)
    with pytest.raises(ValueError, match="reversal_pairs: lengths must be positive ints"):
        toy.reversal_pairs(3, [0, 2])


# --- the DecodingStepper widget's Python side (its browser side: tests/browser/test_decoding.py)


def test_decoding_stepper_from_model_and_add():
    from attnlib.widgets.decoding import EOS, SCALE, DecodingStepper

    pairs, vocab, _ = _tiny_task()
    attnlib.seed(0)
    model = rnn.build("bahdanau", len(vocab), len(vocab), embed_size=8, hidden_size=16)
    texts = ["abc", "fedcb"]
    stepper = DecodingStepper.from_model(model, texts, vocab, vocab, labels=["one", "two"],
                                         max_len=6)  # fmt: skip
    assert [e["label"] for e in stepper.examples] == ["one", "two"]
    assert [e["source"] for e in stepper.examples] == [list("abc"), list("fedcb")]
    src, lengths = vocab.encode(texts)
    ids, weights = rnn.greedy_decode(model, src, lengths, 6)  # (2, L), (2, L, S)
    for n, ex in enumerate(stepper.examples):
        row = ids[n].tolist()
        L = row.index(model.eos_id) + 1 if model.eos_id in row else len(row)
        assert ex["output"] == [EOS if i == model.eos_id else vocab.itos[i] for i in row[:L]]
        w = weights[n, :L, : len(texts[n])]
        parsed = [int(v) for v in ex["weights"].split(",")]
        assert parsed == torch.round(w * SCALE).long().flatten().tolist()
        torch.testing.assert_close(
            torch.as_tensor(stepper.weights_of(n)), w.double(), atol=6e-4, rtol=0
        )
    assert (stepper.example, stepper.step) == (0, 0)
    stepper.step = 2
    index = stepper.add("jih", label="added")
    assert index == 2 and stepper.example == 2 and stepper.step == 0
    assert stepper.examples[2]["label"] == "added" and len(stepper.examples) == 3
    assert repr(stepper) == "DecodingStepper(examples=3)"


def test_decoding_stepper_validates_its_input_and_traits():
    from attnlib.widgets.decoding import DecodingStepper

    w = torch.full((2, 3), 1 / 3)
    stepper = DecodingStepper(
        [("abc", "xy", w), ("abcd", ["p", "q", "r"], torch.full((3, 4), 0.25))]
    )
    assert stepper.examples[0]["label"] == "abc" and stepper.examples[0]["weights"].count(",") == 5
    stepper.example = 1
    stepper.step = 2
    stepper.example = 0  # a shorter example: the step is clamped into range
    assert stepper.step == 1
    with pytest.raises(Exception, match=r"step must be in \[0, 2\), got 5"):
        stepper.step = 5
    with pytest.raises(Exception, match=r"example must be in \[0, 2\), got 2"):
        stepper.example = 2
    with pytest.raises(ValueError, match="examples must be a non-empty list"):
        DecodingStepper([])
    with pytest.raises(ValueError, match="example 0 has 3 output tokens but weights for 2 steps"):
        DecodingStepper([("abc", "xyz", w)])
    with pytest.raises(ValueError, match="example 0 has 2 source tokens but weights over 3"):
        DecodingStepper([("ab", "xy", w)])
    with pytest.raises(
        ValueError, match=r"weights must be 2-D \(output steps L, source length S\)"
    ):
        DecodingStepper([("abc", "xy", torch.zeros(3))])
    with pytest.raises(ValueError, match="finite and non-negative"):
        DecodingStepper([("abc", "xy", -w)])
    with pytest.raises(ValueError, match=r"must be \(source, output, weights\)"):
        DecodingStepper([("abc", "xy")])
    with pytest.raises(RuntimeError, match="needs a model"):
        stepper.add("abc")
    _, vocab, _ = _tiny_task()
    attnlib.seed(0)
    plain = rnn.build("none", len(vocab), len(vocab), embed_size=8, hidden_size=16)
    with pytest.raises(ValueError, match="the model has no attention weights"):
        DecodingStepper.from_model(plain, ["abc"], vocab, vocab)
