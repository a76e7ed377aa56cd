"""MaskExplorer: validation, the data it sends, the Python mirror of its arithmetic, and a static
check of its JavaScript. The browser-side arithmetic is checked in a real browser
(tests/browser/test_masks_widget.py)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

import attnlib
from attnlib.widgets.masks import KINDS, MaskExplorer, allowed_pattern, masked_softmax

JS = Path(__file__).parents[1] / "src" / "attnlib" / "widgets" / "masks.js"
TOKENS = ["the", "cat", "sat", "<pad>"]


def make(**kwargs) -> MaskExplorer:
    g = torch.Generator().manual_seed(0)
    args = {"scores": torch.randn(4, 4, generator=g)}
    args.update(kwargs)
    return MaskExplorer(TOKENS, **args)


# --- the data sent to the browser ---------------------------------------------------------------


def test_state_is_rounded_lists_and_defaults():
    scores = torch.tensor([[0.123456, -0.0000001], [1.0, 2.0]])
    w = MaskExplorer(["a", "b"], scores, title="T")
    state = w.get_state()
    assert state["scores"] == [[0.1235, 0.0], [1.0, 2.0]]
    assert str(state["scores"][0][1]) == "0.0"  # -0.0 became 0.0
    assert state["kind"] == "causal" and state["length"] == 2 and state["window"] == 1
    assert state["causal"] is False and state["title"] == "T"
    assert state["custom"] == [[True, False], [True, True]]  # the starting kind's pattern
    assert state["tokens"] == state["key_tokens"] == ["a", "b"]
    assert repr(w) == "MaskExplorer(L=2, S=2, kind='causal')"
    assert "0x" not in w._repr_mimebundle_()[0]["text/plain"]


def test_cross_attention_shape_and_custom_pattern():
    custom = torch.tensor([[True, False, True], [False, False, False]])
    w = MaskExplorer(["x", "y"], np.zeros((2, 3)), key_tokens=["a", "b", "c"], kind="custom",
                     custom=custom)
    assert w.shape == (2, 3)
    assert w.custom == custom.tolist()
    assert torch.equal(w.allowed(), custom)
    weights = w.weights()
    assert torch.allclose(weights[0], torch.tensor([0.5, 0.0, 0.5], dtype=torch.float64))
    assert torch.equal(weights[1], torch.zeros(3, dtype=torch.float64))  # no key: zeros


def test_synced_traits_are_tagged_for_sync():
    w = make()
    for name in ("kind", "length", "window", "causal", "custom", "scores", "tokens"):
        assert w.trait_metadata(name, "sync") is True, name


def test_esm_and_css_are_the_package_files():
    w = make()
    assert "export default { render }" in w._esm
    assert ".me-root" in w._css


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_scores_on_the_gpu_are_moved_to_the_cpu():
    w = make(scores=torch.ones(4, 4, device="cuda"))
    assert w.scores == [[1.0] * 4] * 4


# --- the patterns --------------------------------------------------------------------------------


def test_patterns_match_attnlib_masks():
    L = 5
    assert torch.equal(allowed_pattern("causal", L, L), attnlib.masks.causal_mask(L))
    assert torch.equal(allowed_pattern("causal", 3, 5), attnlib.masks.causal_mask(3, 5))
    assert torch.equal(allowed_pattern("bidirectional", L, L), torch.ones(L, L, dtype=torch.bool))
    pad = allowed_pattern("padding", L, L, length=3)
    assert torch.equal(pad, attnlib.masks.padding_mask([3], L)[0, 0].expand(L, L))
    both = allowed_pattern("padding", L, L, length=3, causal=True)
    assert torch.equal(both, attnlib.masks.combine(attnlib.masks.causal_mask(L), pad))


def test_window_pattern():
    w1 = allowed_pattern("window", 4, 4, window=1)
    assert w1.int().tolist() == [[1, 1, 0, 0], [1, 1, 1, 0], [0, 1, 1, 1], [0, 0, 1, 1]]
    w0 = allowed_pattern("window", 3, 3, window=0)
    assert torch.equal(w0, torch.eye(3, dtype=torch.bool))
    causal_window = allowed_pattern("window", 4, 4, window=1, causal=True)
    assert causal_window.int().tolist() == [[1, 0, 0, 0], [1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1]]


def test_masked_softmax_matches_attnlib_and_gives_zero_rows():
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(1, 2, 4, 3, generator=g) for _ in range(3))
    allowed = torch.rand(4, 4, generator=g) < 0.5
    allowed[2] = False
    _, expected = attnlib.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
    scores = q @ k.transpose(-2, -1) / 3 ** 0.5  # (1, 2, L, S)
    got = masked_softmax(scores, allowed)
    torch.testing.assert_close(got, expected)
    assert torch.all(got[..., 2, :] == 0) and not torch.isnan(got).any()


def test_weights_follow_the_traits():
    w = make(kind="padding", length=2)
    weights = w.weights()
    assert torch.all(weights[:, 2:] == 0)
    torch.testing.assert_close(weights.sum(-1), torch.ones(4, dtype=torch.float64))
    w.length = 0
    assert torch.equal(w.weights(), torch.zeros(4, 4, dtype=torch.float64))
    w.kind = "bidirectional"
    assert torch.all(w.weights() > 0)
    w.causal = True
    assert torch.equal(w.allowed(), attnlib.masks.causal_mask(4))


# --- validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"scores": torch.ones(4)}, r"scores must be 2-D \(L, S\), got shape \(4,\)"),
        ({"scores": torch.ones(3, 4)}, r"tokens has 4 entries but scores \(3, 4\) has L = 3"),
        ({"scores": torch.ones(4, 4), "key_tokens": ["a"]}, "key_tokens has 1 entries .* S = 4"),
        ({"scores": torch.full((4, 4), float("-inf"))}, "scores must be finite.*before masking"),
        ({"scores": [["a"] * 4] * 4}, "scores must be numeric"),
        ({"kind": "diagonal"}, "kind must be one of bidirectional, causal, padding, window, "
                               "custom; got 'diagonal'"),
        ({"length": 5}, r"length must be in \[0, 4\], got 5"),
        ({"length": -1}, r"length must be in \[0, 4\], got -1"),
        ({"length": 2.5}, "length must be an int"),
        ({"window": 4}, r"window must be in \[0, 3\], got 4"),
        ({"kind": "custom"}, r"kind 'custom' needs a custom \(L, S\) pattern"),
        ({"custom": torch.ones(4, 3, dtype=torch.bool)}, r"custom must be an \(L, S\) = \(4, 4\) "
                                                         r"pattern, got shape \(4, 3\)"),
        ({"custom": torch.ones(4, 4)}, r"custom must be boolean \(True = may attend\), got dtype "
                                       "float32"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make(**kwargs)


def test_tokens_must_not_be_one_string():
    with pytest.raises(ValueError, match="tokens must be a list of strings"):
        MaskExplorer("abcd", torch.ones(4, 4))


def test_synced_traits_are_validated_after_construction():
    w = make()
    with pytest.raises(ValueError, match="kind must be one of"):
        w.kind = "everything"
    with pytest.raises(ValueError, match=r"length must be in \[0, 4\], got 9"):
        w.length = 9
    with pytest.raises(ValueError, match=r"window must be in \[0, 3\], got -2"):
        w.window = -2
    with pytest.raises(ValueError, match=r"custom must be an \(L, S\) = \(4, 4\) pattern"):
        w.custom = [[True]]
    w.kind, w.length, w.window = "window", 1, 3
    assert (w.kind, w.length, w.window) == ("window", 1, 3)
    assert KINDS == ("bidirectional", "causal", "padding", "window", "custom")


# --- the JavaScript never parses data as HTML ---------------------------------------------------


def test_javascript_never_builds_html_from_strings():
    code = JS.read_text()
    code_no_comments = re.sub(r"//[^\n]*|/\*.*?\*/", "", code, flags=re.S)
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(",
                 "new Function", "createContextualFragment", "DOMParser", "srcdoc"):
        assert sink not in code_no_comments, f"masks.js uses {sink}"
    assert "textContent" in code_no_comments


def test_javascript_offers_the_same_kinds():
    code = JS.read_text()
    kinds = re.search(r"export const KINDS = \[(.*?)\];", code).group(1)
    assert tuple(re.findall(r'"(\w+)"', kinds)) == KINDS
