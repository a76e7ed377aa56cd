"""BottleneckStepper: validation, the data it sends, and its Python mirror of the browser's
arithmetic (attnlib.scaled_dot_product_attention). The browser computes the same numbers
(tests/browser/test_bottleneck.py compares them to 1e-5)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import attnlib
from attnlib.widgets import BottleneckStepper


def make(S: int = 5, L: int = 4, D: int = 8, **kwargs) -> BottleneckStepper:
    g = torch.Generator().manual_seed(0)
    args = {
        "source": list("31415")[:S],
        "output": list("5141")[:L],
        "encoder_states": torch.randn(S, D, generator=g).tanh(),
        "decoder_states": torch.randn(L, D, generator=g).tanh(),
    }
    args.update(kwargs)
    return BottleneckStepper(**args)



def data(widget) -> dict:
    """The widget's own synced state (no front end, no layout model)."""
    return {k: v for k, v in widget.get_state().items() if not k.startswith("_") and k != "layout"}

def test_state_is_small_packed_and_deterministic():
    w = make(title="T")
    state = data(w)
    assert state == data(make(title="T"))
    assert state["encoder"].count(",") == 5 * 8 - 1 and state["decoder"].count(",") == 4 * 8 - 1
    assert (state["encoder_step"], state["decoder_step"], state["dim"]) == (4, 0, 8)
    assert state["scale"] == pytest.approx(8 ** -0.5)
    assert repr(w) == "BottleneckStepper(S=5, L=4, D=8)"
    big = make(S=12, L=12, D=64, source=list("0123456789ab"), output=list("ba9876543210"))
    size = len(json.dumps(data(big)))
    assert size < 8000, size
    for name in ("encoder_step", "decoder_step", "encoder", "source"):
        assert w.trait_metadata(name, "sync") is True, name


def test_states_travel_with_three_decimals():
    enc = torch.tensor([[0.12349, -0.9996], [0.5, 0.0]])
    w = make(S=2, L=1, D=2, source=["a", "b"], output=["c"], encoder_states=enc,
             decoder_states=torch.tensor([[1.0, -1.0]]))
    assert w.encoder == "123,-1000,500,0"
    torch.testing.assert_close(w.encoder_states(), torch.tensor([[0.123, -1.0], [0.5, 0.0]],
                                                                dtype=torch.float64))


def test_attention_is_attnlibs_over_the_sent_states():
    w = make()
    contexts, weights = w.attention()
    h, s = w.encoder_states(), w.decoder_states()
    scores = s @ h.T / np.sqrt(8)
    torch.testing.assert_close(weights, torch.softmax(scores, dim=-1))
    torch.testing.assert_close(contexts, weights @ h)
    out, expected = attnlib.scaled_dot_product_attention(s[None], h[None], h[None])
    torch.testing.assert_close(weights, expected[0])
    torch.testing.assert_close(make(scale=2.0).attention()[1],
                               torch.softmax(scores * np.sqrt(8) * 2.0, dim=-1))


def test_similarities_are_cosines():
    w = make()
    sims = w.similarities()
    h = w.encoder_states()
    assert sims.shape == (5, 5)
    torch.testing.assert_close(sims.diagonal(), torch.ones(5, dtype=torch.float64))
    expected = torch.nn.functional.cosine_similarity(h[4], h[1], dim=0)
    assert sims[4, 1].item() == pytest.approx(expected.item())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"encoder_states": torch.ones(5)}, r"encoder_states must be 2-D \(S, D\), got shape"),
        ({"decoder_states": torch.ones(4, 6)},
         r"encoder_states \(5, 8\) and decoder_states \(4, 6\) must share their last size D"),
        ({"source": list("314")}, r"source has 3 entries but encoder_states \(5, 8\) has S = 5"),
        ({"output": list("51")}, r"output has 2 entries but decoder_states \(4, 8\) has L = 4"),
        ({"source": "31415"}, "source must be a list of strings"),
        ({"encoder_states": torch.full((5, 8), float("inf"))}, "encoder_states contains NaN"),
        ({"decoder_states": [["x"] * 8] * 4}, "decoder_states must be numeric"),
        ({"encoder_step": 5}, r"encoder_step must be a step in \[0, 5\), got 5"),
        ({"decoder_step": -1}, r"decoder_step must be a step in \[0, 4\), got -1"),
        ({"decoder_step": 1.5}, "decoder_step must be an int"),
        ({"scale": float("nan")}, "scale must be a finite number"),
        ({"S": 65, "D": 64, "source": ["1"] * 65},
         "encoder_states has 4160 numbers .* at most 4096"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make(**kwargs)


def test_synced_traits_are_validated_after_construction():
    w = make()
    w.encoder_step, w.decoder_step = 0, 3
    with pytest.raises(ValueError, match=r"encoder_step must be a step in \[0, 5\), got 7"):
        w.encoder_step = 7
    with pytest.raises(ValueError, match=r"decoder_step must be a step in \[0, 4\), got 4"):
        w.decoder_step = 4


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_states_on_the_gpu_are_moved_to_the_cpu():
    w = make(encoder_states=torch.zeros(5, 8, device="cuda"))
    assert w.encoder == ",".join(["0"] * 40)
