"""attnlib.generation (the KV cache, sampling, the generation loop), ALiBi (attnlib.positional),
the tiny character GPT (attnlib.models.gpt); and the sampling widget's Python half
(attnlib.widgets.sampling)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from attnlib import generation
from attnlib.masks import causal_mask
from attnlib.models import gpt
from attnlib.widgets.sampling import TAIL_BIN, SamplingExplorer, summarise


def tiny(positions: str = "alibi", context_length: int = 64, seed: int = 0) -> gpt.CharGPT:
    torch.manual_seed(seed)
    config = gpt.GPTConfig(
        vocab_size=11, context_length=context_length, d_model=16, num_heads=4, num_layers=2,
        positions=positions,
    )
    return gpt.CharGPT(config).eval()


# --- masks ----------------------------------------------------------------------------------------


def test_causal_mask_with_past():
    assert torch.equal(generation.causal_mask_with_past(5), causal_mask(5))
    m = generation.causal_mask_with_past(2, 3)  # 2 new queries at positions 3 and 4
    assert m.shape == (2, 5)
    assert m.tolist() == [[True, True, True, True, False], [True, True, True, True, True]]


# --- the model: causal, cached, trainable ---------------------------------------------------------


@pytest.mark.parametrize("positions", ["alibi", "learned"])
def test_output_does_not_depend_on_later_tokens(positions):
    model = tiny(positions)
    ids = torch.randint(0, 11, (2, 10), generator=torch.Generator().manual_seed(1))
    changed = ids.clone()
    changed[:, 6:] = (changed[:, 6:] + 1) % 11
    with torch.no_grad():
        a, b = model(ids).logits, model(changed).logits
    assert torch.equal(a[:, :6], b[:, :6])
    assert not torch.allclose(a[:, 6:], b[:, 6:])


@pytest.mark.parametrize("positions", ["alibi", "learned"])
def test_cache_gives_the_same_logits(positions):
    model = tiny(positions)
    ids = torch.randint(0, 11, (2, 9), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        full = model(ids, need_weights=True)
        cache = model.new_cache()
        parts = [model(ids[:, :4], cache=cache).logits]
        parts += [model(ids[:, t : t + 1], cache=cache).logits for t in range(4, 9)]
    torch.testing.assert_close(torch.cat(parts, dim=1), full.logits, atol=1e-5, rtol=1e-5)
    assert cache.length() == 9 and cache.keys[1].shape == (2, 4, 9, 4)
    assert cache.nbytes() == 2 * 2 * (2 * 4 * 9 * 4) * 4  # layers, k and v, float32
    w = full.attentions[0]
    assert w.shape == (2, 4, 9, 9)
    assert torch.all(w.triu(1) == 0)
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 4, 9))


@pytest.mark.parametrize("positions", ["alibi", "learned"])
def test_generation_with_and_without_cache_is_identical(positions):
    model = tiny(positions)
    prompt = torch.tensor([[1, 2, 3], [4, 5, 6]])
    for kwargs in ({"temperature": 0}, {"temperature": 1.3, "top_k": 5}, {"temperature": 0.7}):
        outs = [
            model.generate(prompt, 40, generator=torch.Generator().manual_seed(7),
                           use_cache=c, **kwargs)
            for c in (True, False)
        ]
        assert torch.equal(outs[0], outs[1]), kwargs
        assert outs[0].shape == (2, 43) and torch.equal(outs[0][:, :3], prompt)


def test_generate_checks_its_input():
    model = tiny(context_length=16)
    with pytest.raises(ValueError, match="exceed the model's context length 16"):
        model.generate(torch.zeros(1, 4, dtype=torch.long), 13)
    with pytest.raises(ValueError, match=r"\(N, L\) with L >= 1"):
        model.generate(torch.zeros(1, 0, dtype=torch.long), 3)
    with pytest.raises(ValueError, match="context length 16"):
        model(torch.zeros(1, 17, dtype=torch.long))
    with pytest.raises(ValueError, match="positions must be"):
        gpt.CharGPT(gpt.GPTConfig(vocab_size=5, positions="sinusoidal"))


def test_stop_token_ends_generation():
    class Counter:  # a "model" whose next token is always the last token + 1
        context_length = 100

        def new_cache(self):
            return generation.KVCache(1)

        def __call__(self, ids, cache=None):
            logits = torch.nn.functional.one_hot((ids + 1) % 10, 10).float() * 10
            return generation.DecoderOutput(logits)

    out = generation.generate(Counter(), torch.tensor([[2], [6]]), 20, temperature=0, stop_token=8)
    # row 0 reaches 8 after six steps; row 1 after two steps, then repeats the stop token
    assert out.tolist() == [[2, 3, 4, 5, 6, 7, 8], [6, 7, 8, 8, 8, 8, 8]]


def test_training_learns_a_pattern():
    torch.set_num_threads(1)
    model = tiny(context_length=32)
    data = torch.tensor([0, 1, 2, 3, 4, 5, 6] * 200)  # a 7-cycle
    before = gpt.evaluate_loss(model, data, batch_size=8, length=16, n_batches=2)
    assert before == pytest.approx(math.log(11), abs=0.1)  # small init: close to uniform
    losses = gpt.train_char_gpt(model, data, steps=150, batch_size=8, length=16, lr=1e-2)
    assert len(losses) == 150 and losses[-1] < 0.1
    after = gpt.evaluate_loss(model, data, batch_size=8, length=16, n_batches=2)
    assert after < 0.1
    assert after == gpt.evaluate_loss(model, data, batch_size=8, length=16, n_batches=2)
    out = model.generate(torch.tensor([[3, 4]]), 10, temperature=0)
    assert out[0].tolist() == [3, 4, 5, 6, 0, 1, 2, 3, 4, 5, 6, 0]


def test_alibi_model_reads_beyond_its_training_length():
    """Trained on windows of 16, an ALiBi model keeps its loss on windows of 48."""
    torch.set_num_threads(1)
    model = tiny("alibi", context_length=64)
    data = torch.tensor([0, 1, 2, 3, 4, 5, 6] * 200)
    gpt.train_char_gpt(model, data, steps=150, batch_size=8, length=16, lr=1e-2)
    assert gpt.evaluate_loss(model, data, batch_size=4, length=48, n_batches=2) < 0.1


def test_get_batch_targets_are_shifted_inputs():
    data = torch.arange(100)
    x, y = gpt.get_batch(data, 4, 10, torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (4, 10)
    assert torch.equal(y, x + 1)
    with pytest.raises(ValueError, match="too few"):
        gpt.get_batch(torch.arange(5), 1, 5, torch.Generator())


# --- choosing the next token ----------------------------------------------------------------------


def test_top_k_filter():
    logits = torch.tensor([[1.0, 3.0, 2.0, 3.0, -1.0]])
    out = generation.top_k_filter(logits, 2)
    assert torch.isneginf(out).tolist() == [[True, False, True, False, True]]
    assert torch.isneginf(generation.top_k_filter(logits, 3)).tolist() == [
        [True, False, False, False, True]  # 3.0, 3.0 and 2.0 survive
    ]
    assert torch.equal(generation.top_k_filter(logits, 9), logits)
    tie = generation.top_k_filter(torch.tensor([1.0, 3.0, 3.0]), 1)  # ties with the k-th are kept
    assert torch.isneginf(tie).tolist() == [True, False, False]
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="positive int"):
            generation.top_k_filter(logits, bad)


def test_next_token_probs_temperature_and_top_k():
    logits = torch.tensor([2.0, 1.0, 0.0, -1.0])
    p1 = generation.next_token_probs(logits)
    torch.testing.assert_close(p1, torch.softmax(logits, -1))
    cold, hot = generation.next_token_probs(logits, 0.1), generation.next_token_probs(logits, 10.0)
    assert cold[0] > 0.9999 and hot.max() - hot.min() < 0.1
    p2 = generation.next_token_probs(logits, 1.0, top_k=2)
    assert p2[2:].sum() == 0 and torch.isclose(p2.sum(), torch.tensor(1.0))
    torch.testing.assert_close(p2[:2], torch.softmax(logits[:2], -1))
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="temperature must be a positive number"):
            generation.next_token_probs(logits, bad)


def test_top_p_filter_keeps_the_smallest_nucleus_holding_p():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05], [0.05, 0.15, 0.3, 0.5]])
    logits = probs.log()
    kept = lambda p: (~torch.isneginf(generation.top_p_filter(logits, p))).tolist()  # noqa: E731
    assert kept(0.5) == [[True, False, False, False], [False, False, False, True]]
    assert kept(0.6) == [[True, True, False, False], [False, False, True, True]]  # 0.5 + 0.3
    assert kept(0.95) == [[True, True, True, False], [False, True, True, True]]
    assert kept(1.0) == [[True] * 4] * 2
    assert kept(1e-6) == kept(0.5)  # the most likely token always survives
    flat = torch.zeros(1, 10)  # a flat row needs many tokens for the same mass
    assert (~torch.isneginf(generation.top_p_filter(flat, 0.5))).sum() == 5
    for bad in (0, 0.0, -0.1, 1.5, True, "0.9"):
        with pytest.raises(ValueError, match="top_p_filter: p must be in"):
            generation.top_p_filter(logits, bad)


def test_top_p_comes_after_the_temperature():
    logits = torch.tensor([2.0, 1.0, 0.0, -1.0])
    # At tau = 1 the top token holds 0.64 of the mass: p = 0.6 keeps it alone. At tau = 4 the
    # distribution is flatter (0.35, 0.27, ...), and the same p needs two tokens.
    assert (generation.next_token_probs(logits, 1.0, top_p=0.6) > 0).sum() == 1
    hot = generation.next_token_probs(logits, 4.0, top_p=0.6)
    assert (hot > 0).sum() == 2 and torch.isclose(hot.sum(), torch.tensor(1.0))
    both = generation.next_token_probs(logits, 4.0, top_k=2, top_p=0.6)
    assert (both > 0).tolist() == [True, True, False, False]


def test_sample_next_follows_the_distribution():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]])).expand(20000, 4)
    g = torch.Generator().manual_seed(0)
    ids = generation.sample_next(logits, temperature=1.0, generator=g)
    freq = torch.bincount(ids, minlength=4).float() / len(ids)
    assert torch.allclose(freq, torch.tensor([0.5, 0.3, 0.15, 0.05]), atol=0.015)
    greedy = generation.sample_next(logits[:3], temperature=0)
    assert torch.equal(greedy, torch.zeros(3, dtype=torch.long))
    top1 = generation.sample_next(logits[:50], temperature=2.0, top_k=1, generator=g)
    assert torch.all(top1 == 0)
    nucleus = generation.sample_next(logits[:2000], top_p=0.7, generator=g)  # 0.5 + 0.3 >= 0.7
    assert set(nucleus.tolist()) == {0, 1}
    a = generation.sample_next(logits[:30], generator=torch.Generator().manual_seed(5))
    b = generation.sample_next(logits[:30], generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


# --- the sampling widget (Python half; the browser half is tests/browser/test_sampling.py) --------


def test_summarise_sends_the_top_tokens_and_a_histogram_of_the_rest():
    logits = np.array([0.0, 3.0, 1.0, 1.02, -2.0, 2.5])
    ids, top, tail = summarise(logits, 2)
    assert ids == [1, 5] and top == [3.0, 2.5]
    assert tail == [[-2.0, 1], [0.0, 1], [1.0, 2]]  # 1.0 and 1.02 share the bin at 1.0
    assert all(abs(v / TAIL_BIN - round(v / TAIL_BIN)) < 1e-6 for v, _ in tail)


def test_widget_probabilities_match_next_token_probs():
    g = torch.Generator().manual_seed(0)
    logits = 3 * torch.randn(2, 500, generator=g)  # (P, vocab_size)
    w = SamplingExplorer(["a", "b"], logits, [f"t{i}" for i in range(500)], top=20)
    for tau in (0.3, 1.0, 2.5):
        w.temperature = tau
        probs, other = w.probabilities(1)
        exact = generation.next_token_probs(logits[1], tau).double()  # (vocab_size,)
        top = exact.sort(descending=True).values
        np.testing.assert_allclose(probs, top[:20].numpy(), rtol=1e-3, atol=1e-6)
        # the tail, summarised by bins of 0.05, is within a few percent of the exact mass
        assert other == pytest.approx(top[20:].sum().item(), rel=0.02 / tau + 1e-3)
        assert probs.sum() + other == pytest.approx(1.0)
    w.top_k = 5
    probs, other = w.probabilities(0)
    assert other == 0 and np.all(probs[5:] == 0)
    exact5 = generation.next_token_probs(logits[0], w.temperature, top_k=5)
    np.testing.assert_allclose(np.sort(probs[:5])[::-1], exact5.sort(descending=True).values[:5],
                               rtol=1e-3)
    assert w.candidates[0][0] == f"t{int(logits[0].argmax())}"
    assert repr(w) == "SamplingExplorer(prompts=2, vocab_size=500, top=20)"


def test_widget_rejects_bad_input():
    logits = torch.zeros(2, 30)
    names = [str(i) for i in range(30)]
    with pytest.raises(ValueError, match="2 prompts but logits has 1 rows"):
        SamplingExplorer(["a", "b"], logits[:1], names, top=10)
    with pytest.raises(ValueError, match="list of strings, not one string"):
        SamplingExplorer("ab", logits, names, top=10)
    with pytest.raises(ValueError, match="NaN or infinite"):
        SamplingExplorer(["a", "b"], torch.full((2, 30), float("nan")), names, top=10)
    with pytest.raises(ValueError, match="vocab_size = 30 tokens"):
        SamplingExplorer(["a", "b"], logits, names[:5], top=10)
    with pytest.raises(ValueError, match="top must be an int"):
        SamplingExplorer(["a", "b"], logits, names, top=31)
    with pytest.raises(ValueError, match="top_k must be 0"):
        SamplingExplorer(["a", "b"], logits, names, top=10, top_k=11)
    w = SamplingExplorer(["a", "b"], logits, names.__getitem__, top=10)
    with pytest.raises(Exception, match="positive number"):
        w.temperature = 0.0
    with pytest.raises(Exception, match="prompt must be in"):
        w.prompt = 2
    with pytest.raises(Exception, match="top_k must be 0"):
        w.top_k = 11


def test_extend_cache_and_past_length():
    k, v = torch.ones(1, 2, 3, 4), torch.zeros(1, 2, 3, 5)
    assert generation.extend_cache(None, 0, k, v) == (k, v, 0)
    cache = generation.KVCache(2)
    generation.extend_cache(cache, 1, k, v)
    keys, values, past = generation.extend_cache(cache, 1, k[:, :, :1], v[:, :, :1])
    assert past == 3 and keys.shape == (1, 2, 4, 4) and values.shape == (1, 2, 4, 5)
    assert cache.length(1) == 4 and cache.length(0) == 0
    assert generation.past_length(None, 5, 5, "M") == 0
    with pytest.raises(ValueError, match="M: 0 cached \\+ 6 new positions exceed"):
        generation.past_length(None, 6, 5, "M")
    with pytest.raises(ValueError, match="KVCache: num_layers must be a positive int"):
        generation.KVCache(0)


def test_widget_top_p_matches_next_token_probs():
    g = torch.Generator().manual_seed(1)
    logits = 3 * torch.randn(1, 400, generator=g)  # (P, vocab_size)
    w = SamplingExplorer(["a"], logits, [f"t{i}" for i in range(400)], top=40, top_p=0.9)
    for tau, k, p in [(1.0, 0, 0.9), (0.5, 0, 0.5), (1.0, 10, 0.7), (0.3, 0, 0.01)]:
        w.temperature, w.top_k, w.top_p = tau, k, p
        probs, other = w.probabilities(0)
        exact = generation.next_token_probs(logits[0], tau, k or None, p)
        top = exact.sort(descending=True).values.double().numpy()
        assert (probs > 0).sum() == (top[:40] > 0).sum()
        # the tail, binned by 0.05, joins the nucleus within a bin's rounding of the exact mass
        assert other == pytest.approx(top[40:].sum(), rel=0.05, abs=1e-6)
        np.testing.assert_allclose(probs, top[:40], rtol=1e-3, atol=1e-6)
    for bad in (0, 1.5, True, "0.9"):
        with pytest.raises(ValueError, match="top_p must be in"):
            SamplingExplorer(["a"], logits, [f"t{i}" for i in range(400)], top_p=bad)
