"""AttentionExplorer: validation, the data it sends, and a static check of its JavaScript.

The browser-side arithmetic is checked in a real browser (tests/browser/).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from attnlib.widgets import AttentionExplorer

JS = Path(__file__).parents[1] / "src" / "attnlib" / "widgets" / "explorer.js"
TOKENS = ["The", "cat", "sat"]


def make(**kwargs) -> AttentionExplorer:
    torch.manual_seed(0)
    args = {"query": torch.randn(3, 4), "key": torch.randn(3, 4)}
    args.update(kwargs)
    return AttentionExplorer(TOKENS, **args)


# --- the data sent to the browser ---------------------------------------------------------------


def test_query_key_state_is_rounded_lists_and_default_scale():
    q = torch.tensor([[0.123456, -0.0000001], [1.0, 2.0]])
    k = torch.tensor([[1.0, 0.5], [0.25, -1.0], [3.0, 0.0]])
    w = AttentionExplorer(["a", "b"], q, k, key_tokens=["x", "y", "z"], title="T")
    state = w.get_state()
    assert state["mode"] == "qk"
    assert state["query"] == [[0.1235, 0.0], [1.0, 2.0]]
    assert str(state["query"][0][1]) == "0.0"  # -0.0 became 0.0
    assert state["key"] == [[1.0, 0.5], [0.25, -1.0], [3.0, 0.0]]
    assert state["weights"] == []
    assert state["tokens"] == ["a", "b"] and state["key_tokens"] == ["x", "y", "z"]
    assert state["scale"] == pytest.approx(1 / np.sqrt(2))
    assert state["layer_labels"] == ["matrix 0"]
    assert state["title"] == "T"
    assert all(type(v) is float for row in state["query"] for v in row)


def test_weights_stack_state_and_labels():
    weights = np.full((2, 3, 3), 1 / 3)
    w = AttentionExplorer(TOKENS, weights=weights, layer_labels=["head 0", "head 1"], causal=True)
    state = w.get_state()
    assert state["mode"] == "weights"
    assert state["weights"] == [[[0.3333] * 3] * 3] * 2
    assert state["query"] == [] and state["key"] == []
    assert state["layer_labels"] == ["head 0", "head 1"]
    assert state["causal"] is True
    assert w.shape == (2, 3, 3)


def test_two_d_weights_become_a_stack_of_one():
    w = AttentionExplorer(TOKENS, weights=torch.eye(3))
    assert w.get_state()["weights"] == [np.eye(3).tolist()]
    assert repr(w) == "AttentionExplorer(L=3, S=3, matrices=1)"


def test_explicit_scale_and_numpy_input():
    w = AttentionExplorer(TOKENS, np.ones((3, 2)), np.ones((3, 2)), scale=0.25, temperature=2.0)
    assert w.scale == 0.25 and w.temperature == 2.0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_tensors_on_the_gpu_are_moved_to_the_cpu():
    w = make(query=torch.ones(3, 2, device="cuda"), key=torch.ones(3, 2, device="cuda"))
    assert w.query == [[1.0, 1.0]] * 3


def test_tensor_with_grad_and_half_precision():
    q = torch.randn(3, 4, requires_grad=True)
    w = make(query=q, key=torch.randn(3, 4).half())
    assert len(w.query) == 3 and len(w.key[0]) == 4


def test_repr_is_stable_and_has_no_address():
    w = make()
    text = w._repr_mimebundle_()[0]["text/plain"]
    assert text == repr(w) == "AttentionExplorer(L=3, S=3, matrices=1)"
    assert "0x" not in text


def test_synced_traits_are_tagged_for_sync():
    w = make()
    for name in ("temperature", "causal", "selected", "layer"):
        assert w.trait_metadata(name, "sync") is True, name


def test_esm_and_css_are_the_package_files():
    w = make()
    assert "export default { render }" in w._esm
    assert ".ae-root" in w._css


# --- validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, r"give either query \(L, E\) and key \(S, E\), or weights"),
        ({"query": torch.ones(3, 2)}, "key is missing"),
        ({"key": torch.ones(3, 2)}, "query is missing"),
        (
            {"query": torch.ones(3, 2), "key": torch.ones(3, 2), "weights": torch.eye(3)},
            "not both",
        ),
        ({"query": torch.ones(3), "key": torch.ones(3, 2)}, r"query must be 2-D \(L, E\)"),
        ({"query": torch.ones(3, 2), "key": torch.ones(2, 3, 2)}, r"key must be 2-D \(S, E\)"),
        (
            {"query": torch.ones(3, 2), "key": torch.ones(3, 5)},
            r"query \(3, 2\) and key \(3, 5\) must share their last size E",
        ),
        ({"query": torch.ones(4, 2), "key": torch.ones(4, 2)}, "tokens has 3 entries .* L = 4"),
        (
            {"query": torch.ones(3, 2), "key": torch.ones(5, 2)},
            r"key_tokens has 3 entries but there are S = 5 keys \(key \(5, 2\)\)",
        ),
        ({"weights": torch.ones(3)}, r"weights must be 2-D \(L, S\) or 3-D \(H, L, S\)"),
        ({"weights": torch.ones(1, 1, 3, 3)}, r"got shape \(1, 1, 3, 3\)"),
        ({"weights": -torch.eye(3)}, "weights must be non-negative"),
        ({"weights": torch.full((3, 3), float("nan"))}, "weights contains NaN"),
        ({"weights": torch.eye(3), "scale": 0.5}, "scale applies to query and key"),
        ({"weights": torch.ones(2, 3, 3), "layer_labels": ["a"]}, "layer_labels has 1 names"),
        ({"weights": torch.eye(3), "temperature": 0.0}, "temperature must be a positive number"),
        ({"weights": torch.eye(3), "temperature": -1}, "temperature must be a positive number"),
        ({"weights": [["a", "b"]]}, "weights must be numeric"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AttentionExplorer(TOKENS, **kwargs)


def test_key_tokens_must_match_S():
    with pytest.raises(ValueError, match=r"key_tokens has 2 entries .* S = 3"):
        AttentionExplorer(TOKENS, weights=torch.eye(3), key_tokens=["a", "b"])


def test_tokens_must_not_be_one_string():
    with pytest.raises(ValueError, match="tokens must be a list of strings"):
        AttentionExplorer("abc", weights=torch.eye(3))


def test_synced_traits_are_validated_after_construction():
    w = make()
    with pytest.raises(ValueError, match="temperature must be a positive number"):
        w.temperature = 0
    with pytest.raises(ValueError, match=r"selected must be a query row in \[0, 3\), got 3"):
        w.selected = 3
    with pytest.raises(ValueError, match=r"layer must be in \[0, 1\), got 1"):
        w.layer = 1
    w.temperature, w.selected, w.causal = 0.5, 2, True
    assert (w.temperature, w.selected, w.causal) == (0.5, 2, True)


# --- the JavaScript never parses data as HTML ---------------------------------------------------


def test_javascript_never_builds_html_from_strings():
    code = JS.read_text()
    code_no_comments = re.sub(r"//[^\n]*|/\*.*?\*/", "", code, flags=re.S)
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(",
                 "new Function", "createContextualFragment", "DOMParser", "srcdoc"):
        assert sink not in code_no_comments, f"explorer.js uses {sink}"
    assert "textContent" in code_no_comments
