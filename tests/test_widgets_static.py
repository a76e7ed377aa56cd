"""Every widget's stored static picture: its display bundle carries an ``image/png`` of its
current state (what an EPUB shows in place of the live view), with alt text; the same state
gives the same bytes, and another state gives another picture."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
import torch
from PIL import Image

from attnlib.widgets import (
    AttentionExplorer,
    BottleneckStepper,
    DecodingStepper,
    HeadView,
    MaskExplorer,
    OnlineSoftmaxTiles,
    PositionExplorer,
    SamplingExplorer,
)

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def _randn(*dims: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*dims, generator=torch.Generator().manual_seed(seed))


def _softmax(*dims: int, seed: int = 0) -> torch.Tensor:
    return torch.softmax(_randn(*dims, seed=seed), dim=-1)


# (build the widget, change its state in place) for each widget class
CASES = {
    "explorer": (
        lambda: AttentionExplorer(list("abcd"), _randn(4, 3), _randn(4, 3, seed=1)),
        lambda w: setattr(w, "temperature", 0.2),
    ),
    "explorer-stack": (
        lambda: AttentionExplorer(list("abc"), weights=_softmax(2, 3, 3)),
        lambda w: setattr(w, "layer", 1),
    ),
    "masks": (
        lambda: MaskExplorer(list("abcd"), _randn(4, 4), kind="causal"),
        lambda w: setattr(w, "kind", "bidirectional"),
    ),
    "decoding": (
        lambda: DecodingStepper([("abc", "xy", _softmax(2, 3)), ("ab", "z", _softmax(1, 2))]),
        lambda w: setattr(w, "example", 1),
    ),
    "heads": (
        lambda: HeadView(list("abc"), _softmax(2, 2, 3, 3)),
        lambda w: setattr(w, "head", 1),
    ),
    "sampling": (
        lambda: SamplingExplorer(["a", "b"], _randn(2, 60), [f"t{i}" for i in range(60)],
                                 top=10, shown=5),
        lambda w: setattr(w, "temperature", 3.0),
    ),
    "tiles": (
        lambda: OnlineSoftmaxTiles(_randn(4, 2), _randn(4, 2, seed=1), _randn(4, 2, seed=2),
                                   block_size=2),
        lambda w: setattr(w, "step", 2),
    ),
    "bottleneck": (
        lambda: BottleneckStepper(list("abc"), list("xy"), _randn(3, 4), _randn(2, 4, seed=1)),
        lambda w: setattr(w, "decoder", ",".join(["500"] * 8)),
    ),
    "positions": (
        lambda: PositionExplorer(_randn(8), _randn(8, seed=1), dim=8, length=32, position=5),
        lambda w: setattr(w, "position", 12),
    ),
}


def _png(widget) -> tuple[bytes, dict]:
    data, metadata = widget._repr_mimebundle_()
    assert WIDGET_VIEW in data and "text/plain" in data, "the live view must stay in the bundle"
    assert "image/png" in data, f"{type(widget).__name__} has no static picture"
    return base64.b64decode(data["image/png"]), metadata


@pytest.mark.parametrize("name", sorted(CASES))
def test_bundle_has_a_deterministic_png_with_alt_text(name):
    build, _ = CASES[name]
    png, metadata = _png(build())
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(png) < 60_000, f"the picture is {len(png)} bytes; keep it a few tens of kB"
    alt = metadata["image/png"]["alt"]
    assert isinstance(alt, str) and len(alt) > 20, alt
    image = Image.open(io.BytesIO(png))
    assert image.size == (400, 280)
    assert image.text.get("Description") == alt, "the alt text travels inside the PNG too"
    assert "Software" not in image.text, "no matplotlib version in the picture"
    again, _ = _png(build())  # a new widget in the same state
    assert again == png, "the same state must give the same bytes (nbval, stable notebooks)"


@pytest.mark.parametrize("name", sorted(CASES))
def test_png_follows_the_state(name):
    build, change = CASES[name]
    widget = build()
    before, _ = _png(widget)
    change(widget)
    after, _ = _png(widget)
    assert after != before, "the picture must show the widget's current state"
    pixels = [np.asarray(Image.open(io.BytesIO(p)).convert("L")) for p in (before, after)]
    assert (pixels[0] != pixels[1]).any()


def test_every_widget_class_is_covered():
    import attnlib.widgets as widgets
    from attnlib.widgets._base import Widget

    classes = {getattr(widgets, n) for n in widgets.__all__}
    classes = {c for c in classes if isinstance(c, type) and issubclass(c, Widget)}
    built = [build() for build, _ in CASES.values()]
    missing = [c.__name__ for c in classes if not any(isinstance(w, c) for w in built)]
    assert not missing, f"widgets without a static-picture test: {missing}"
