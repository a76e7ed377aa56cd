"""SamplingExplorer.live: the state that carries a character GPT to the page (its weights, sizes
and vocabulary), the checks of what a learner passes in, and the page's messages said in Python.
The page's arithmetic is tested in tests/browser/test_sampling_live.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attnlib.models import gpt
from attnlib.widgets._pack import unpack_tensors
from attnlib.widgets.sampling import SamplingExplorer

VOCAB = ["\n", *(chr(c) for c in range(32, 127))]


def model_of(positions="alibi", context_length=64):
    torch.manual_seed(0)
    config = gpt.GPTConfig(vocab_size=len(VOCAB), context_length=context_length, d_model=32,
                           num_heads=4, num_layers=2, positions=positions)
    return gpt.CharGPT(config).eval()


@pytest.mark.parametrize("positions", ["alibi", "learned"])
def test_state_carries_the_weights_once_as_float32(positions):
    model = model_of(positions)
    w = SamplingExplorer.live(model, VOCAB, "Hi there", seed=3, length=10)
    tensors = unpack_tensors(w.manifest, w.weights)
    assert "lm_head.weight" not in tensors  # tied to tok_embed.weight: sent once
    for name, t in model.state_dict().items():
        if name != "lm_head.weight":
            np.testing.assert_array_equal(tensors[name], t.numpy())
    assert sum(t.size for t in tensors.values()) == model.num_parameters()
    assert w.net["positions"] == positions and w.net["context_length"] == 64
    assert len(w.net["slopes"]) == (4 if positions == "alibi" else 0)
    assert w.text == "Hi there" and w.seed == 3 and w.length == 10 and w.vocabulary == VOCAB
    # the bars Python computes are those of the model's next-character logits
    with torch.no_grad():
        logits = model(torch.tensor([[VOCAB.index(c) for c in "Hi there"]])).logits[0, -1]
    probs, other = w.probabilities()
    want = torch.softmax(logits, -1).sort(descending=True).values.numpy()
    np.testing.assert_allclose(probs, want, atol=1e-3)
    assert other == 0


def test_setting_the_text_from_python_follows():
    model = model_of()
    w = SamplingExplorer.live(model, VOCAB, "a")
    w.text = "To be"
    assert w.prompts == ["To be"] and w.live_problem() == ""
    png, alt = w.static_picture()
    assert png and "To be" in alt
    w.text = "caf\u00e9"
    unknown = "Not in the model's vocabulary of 96 characters: \u201c\u00e9\u201d"
    assert w.live_problem().startswith(unknown)
    assert "message" in w.static_picture()[1]
    w.text = ""
    assert w.live_problem().startswith("Type a prompt")
    w.text = "x" * 64
    assert w.live_problem().startswith("The prompt has 64 characters; the model reads at most 64")


def test_bad_arguments_name_themselves():
    model = model_of()
    with pytest.raises(ValueError, match="vocabulary must give the model's 96 characters"):
        SamplingExplorer.live(model, VOCAB[:-1])
    with pytest.raises(ValueError, match="vocabulary has a character twice"):
        SamplingExplorer.live(model, VOCAB[:-1] + ["a"])
    with pytest.raises(ValueError, match=r"length must be an int in \[1, 64\]"):
        SamplingExplorer.live(model, VOCAB, length=65)
    with pytest.raises(ValueError, match="seed must be an int"):
        SamplingExplorer.live(model, VOCAB, seed=-1)
    with pytest.raises(ValueError, match="model must be an attnlib.models.gpt.CharGPT"):
        SamplingExplorer.live(torch.nn.Linear(2, 2), VOCAB)
    for option in ({"sink": "learned"}, {"gated": True}):
        config = gpt.GPTConfig(vocab_size=len(VOCAB), context_length=8, d_model=8, num_heads=2,
                               num_layers=1, **option)
        with pytest.raises(ValueError, match=f"the page runs CharGPTs with {next(iter(option))}"):
            SamplingExplorer.live(gpt.CharGPT(config), VOCAB)
    w = SamplingExplorer.live(model, VOCAB)
    assert w.length == 64  # the default, 200, cut to the context length
    with pytest.raises(ValueError, match="seed must be in"):
        w.seed = 2**32
