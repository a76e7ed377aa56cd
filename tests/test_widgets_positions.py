"""PositionExplorer: validation, the data it sends, and its Python mirror of the browser's
arithmetic, checked against attnlib.positional. The browser computes the same numbers
(tests/browser/test_positions.py compares them to 1e-5)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from attnlib.positional import apply_rope, sinusoidal_encoding
from attnlib.widgets import PositionExplorer


def make(**kwargs) -> PositionExplorer:
    g = torch.Generator().manual_seed(0)
    args = {"query": torch.randn(32, generator=g), "key": torch.randn(32, generator=g)}
    args.update(kwargs)
    return PositionExplorer(**args)



def data(widget) -> dict:
    """The widget's own synced state (no front end, no layout model)."""
    return {k: v for k, v in widget.get_state().items() if not k.startswith("_") and k != "layout"}

def test_state_is_small_rounded_and_deterministic():
    w = make(title="T")
    state = data(w)
    assert state == data(make(title="T"))
    assert len(state["query"]) == 32 and all(round(v, 3) == v for v in state["query"])
    assert (state["dim"], state["base"], state["position"], state["pair"]) == (16, 10000.0, 20, 0)
    assert state["length"] == 64 and state["offsets"] == [-4, -1, 0, 1, 4]
    assert len(json.dumps(state)) < 2000
    assert repr(w) == "PositionExplorer(dim=16, base=10000, position=20, pair=0, length=64)"
    for name in ("dim", "base", "position", "pair", "query", "key"):
        assert w.trait_metadata(name, "sync") is True, name


def test_sinusoidal_dots_depend_on_the_offset_only():
    w = make(dim=24, position=10)
    dots = w.sinusoidal_dots()
    pe = sinusoidal_encoding(64, 24, dtype=torch.float64)
    torch.testing.assert_close(dots, pe @ pe[10])
    assert dots[10].item() == pytest.approx(12.0)  # dim / 2 at j = i
    torch.testing.assert_close(dots[10 - 4], dots[10 + 4])  # symmetric in the offset
    w.position = 30
    torch.testing.assert_close(w.sinusoidal_dots()[30 - 7 : 30 + 8], dots[10 - 7 : 10 + 8])


def test_rope_scores_are_apply_ropes_and_relative():
    w = make(dim=8, base=500.0, position=5)
    q = apply_rope(torch.tensor(w.query[:8], dtype=torch.float64)[None], torch.tensor([5]),
                   base=500.0)
    k = apply_rope(torch.tensor(w.key[:8], dtype=torch.float64).expand(64, 8), base=500.0)
    torch.testing.assert_close(w.rope_scores(), k @ q[0])
    scores_5 = w.rope_scores()
    w.position = 25
    torch.testing.assert_close(w.rope_scores()[25 - 3 : 25 + 4], scores_5[5 - 3 : 5 + 4],
                               atol=1e-4, rtol=0)  # float32 angles, as in apply_rope
    assert not torch.allclose(scores_5[5 + 3], scores_5[5 - 3])  # the direction counts


def test_pair_terms_sum_to_the_curves():
    w = make(dim=12)
    sin_terms, rope_terms = [], []
    for p in range(6):
        w.pair = p
        s, r = w.pair_terms()
        sin_terms.append(s)
        rope_terms.append(r)
    torch.testing.assert_close(sum(sin_terms), w.sinusoidal_dots())
    torch.testing.assert_close(sum(rope_terms), w.rope_scores())
    offsets = torch.arange(64) - w.position
    torch.testing.assert_close(sin_terms[0], torch.cos(offsets.double()))  # omega_0 = 1
    w.pair = 3
    assert w.wavelength() == pytest.approx(2 * math.pi * 10000 ** 0.5)


def test_shrinking_dim_keeps_a_valid_pair():
    w = make(dim=32, pair=15)
    w.dim = 6
    assert w.pair == 2
    w.dim = 32
    assert w.pair == 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"query": torch.ones(3)}, r"query must have an even size >= 2 .* shape \(3,\)"),
        ({"query": torch.ones(2, 4)}, r"query must be 1-D \(E,\), got shape \(2, 4\)"),
        ({"key": torch.ones(30)}, r"query \(32,\) and key \(30,\) must have the same size E"),
        ({"query": [float("nan")] * 32}, "query contains NaN"),
        ({"key": ["a"] * 32}, "key must be numeric"),
        ({"dim": 7}, "dim must be even"),
        ({"dim": 34}, r"dim must be an even size in \[2, 32\], got 34"),
        ({"dim": 16.0}, "dim must be an int"),
        ({"base": 1.0}, r"base must be in \[10, 1e\+06\]"),
        ({"base": "10000"}, "base must be a number"),
        ({"position": 64}, r"position must be in \[0, 63\], got 64"),
        ({"pair": 8}, r"pair must be in \[0, 7\], got 8"),
        ({"length": 4}, r"length must be in \[8, 256\], got 4"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make(**kwargs)


def test_synced_traits_are_validated_after_construction():
    w = make()
    with pytest.raises(ValueError, match="position must be in"):
        w.position = -1
    with pytest.raises(ValueError, match="dim must be even"):
        w.dim = 5
    with pytest.raises(ValueError, match="base must be"):
        w.base = 0.5
    with pytest.raises(ValueError, match=r"pair must be in \[0, 7\]"):
        w.pair = 9


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_vectors_on_the_gpu_are_moved_to_the_cpu():
    w = make(query=torch.ones(8, device="cuda"), key=torch.ones(8, device="cuda"), dim=8)
    assert w.query == [1.0] * 8
