"""HeadView's live mode in a real browser: MiniLM's forward pass in the page (_bert.js on _nn.js)
against attnlib's PyTorch model, the tokens the reader sees against Hugging Face ``tokenizers``,
int8 against float32, hostile and over-long input, and a page that stays responsive.

The weights reach the harness page as a running notebook gives them (the fake model's send()
answers with the manifest and the bytes, as HeadView._on_custom does); the built book's
<script src> path is tested in test_live_bert_book.py.
"""

from __future__ import annotations

import base64
import json
from functools import partial

import numpy as np
import pytest
import torch

from attnlib.models.bert import encode
from attnlib.weights import load_minilm
from attnlib.widgets._pack import pack_tensors
from attnlib.widgets.heads import (
    MAX_LENGTH,
    HeadView,
    _minilm_tensors,
    minilm_pack,
    minilm_tensors,
)

from .harness import HOSTILE, assert_clean, open_harness, render_into

SENTENCES = [
    "The animal didn't cross the street because it was too tired.",
    "Attention is all you need.",
    "Café crème, naïve résumé: 12,345 déjà-vu!!",
    "unbelievably antidisestablishmentarianism",
]

# The int8 pack's largest attention difference from float32 on SENTENCES is asserted below this
# bound; the measured value is printed (and the BERT chapter prints its own measurement).
INT8_ATTENTION_BOUND = 0.05

render = partial(render_into, root_selector=".hv-root")


@pytest.fixture(scope="module")
def minilm():
    return load_minilm()


@pytest.fixture(scope="module")
def live_state(minilm):
    """The state HeadView.live sends, as a dict the fake model can hold."""
    model, tokenizer = minilm
    view = HeadView.live(model, tokenizer, SENTENCES[0], layer=3, head=1)
    state = view.get_state()
    return {k: v for k, v in state.items() if not k.startswith("_")}


@pytest.fixture(scope="module")
def packs(harness_dir, minilm):
    """The float32 and the int8 packs as files beside the harness page: manifest + raw bytes."""
    model, _ = minilm
    for name, (manifest, blob) in (
        ("f32", pack_tensors(_minilm_tensors(model))),
        ("int8", minilm_pack(int8=True)),
    ):
        (harness_dir / f"minilm-{name}.bin").write_bytes(base64.b64decode(blob))
        (harness_dir / f"minilm-{name}.json").write_text(json.dumps(manifest), encoding="utf-8")
    return harness_dir


@pytest.fixture
def harness(harness_dir, harness_server, open_page, packs):
    page, watch = open_harness(open_page, harness_dir, harness_server, "heads", "HeadView")
    page.evaluate(LOAD_JS)
    return page, watch


# Loads a pack (fetch over the harness's http server), and gives every fake model a send() that
# answers "load-minilm" as the kernel does: {kind: "minilm", manifest} with the bytes as a buffer.
LOAD_JS = """async () => {
  window.pack = async (name) => {
    const manifest = await (await fetch(`minilm-${name}.json`)).json();
    const bytes = await (await fetch(`minilm-${name}.bin`)).arrayBuffer();
    return { manifest, bytes };
  };
  window.tensorsOf = async (name) => {
    const { manifest, bytes } = await window.pack(name);
    return window.heads.unpackTensors(manifest, new Uint8Array(bytes));
  };
  window.kernel = (id, name = "int8") => {
    const model = window.models[id];
    model.sent = [];
    model.send = async (msg) => {
      model.sent.push(msg);
      const { manifest, bytes } = await window.pack(name);
      for (const f of model.handlers["msg:custom"] || []) {
        f({ kind: "minilm", manifest }, [new DataView(bytes)]);
      }
    };
  };
}"""

FORWARD_JS = """async ([name, ids, mask]) => {
  const h = window.heads;
  window.cache ||= {};
  window.cache[name] ||= await window.tensorsOf(name);
  const t = window.cache[name];
  const sizes = h.bertSizes(t, 12);
  const out = await h.bertForward(t, ids, sizes, { tokenMask: mask });
  return {
    hidden: out.hidden.map((x) => Array.from(x)),
    attentions: out.attentions.map((a) => Array.from(a)),
    sizes,
  };
}"""


def page_forward(page, name: str, ids: list[int], mask: list[bool] | None = None):
    out = page.evaluate(FORWARD_JS, [name, ids, mask])
    L, D, H = len(ids), out["sizes"]["dModel"], out["sizes"]["heads"]
    hidden = np.array(out["hidden"], dtype=np.float64).reshape(-1, L, D)
    att = np.array(out["attentions"], dtype=np.float64).reshape(-1, H, L, L)
    return hidden, att


@torch.no_grad()
def torch_forward(model, ids: list[int], mask: list[bool] | None = None):
    x = torch.tensor([ids])
    m = None if mask is None else torch.tensor([mask])
    out = model(x, m)
    hidden = torch.stack([h[0] for h in out.hidden_states]).double().numpy()
    att = torch.stack([a[0] for a in out.attentions]).double().numpy()
    return hidden, att


def int8_model(model):
    """attnlib's model with the int8 pack's weights, dequantised (what the page computes with)."""
    copy = type(model)(model.config).eval()
    copy.load_state_dict(model.state_dict())
    with torch.no_grad():
        for name, t in minilm_tensors(*minilm_pack(int8=True), model).items():
            copy.state_dict()[name].copy_(t)
    return copy


# --- the forward pass ---------------------------------------------------------------------------


def test_float32_forward_equals_attnlib(harness, minilm):
    page, watch = harness
    model, tokenizer = minilm
    worst_h = worst_a = 0.0
    for text in SENTENCES:
        ids = tokenizer.encode(text).ids
        js_h, js_a = page_forward(page, "f32", ids)
        pt_h, pt_a = torch_forward(model, ids)
        assert js_h.shape == pt_h.shape == (7, len(ids), 384), text
        assert js_a.shape == pt_a.shape == (6, 12, len(ids), len(ids)), text
        worst_h = max(worst_h, np.abs(js_h - pt_h).max())
        worst_a = max(worst_a, np.abs(js_a - pt_a).max())
        np.testing.assert_allclose(js_h, pt_h, atol=1e-4, rtol=0, err_msg=text)
        np.testing.assert_allclose(js_a, pt_a, atol=1e-4, rtol=0, err_msg=text)
    print(f"\nfloat32 page vs PyTorch: max |Δ| hidden {worst_h:.2e}, attention {worst_a:.2e}")
    assert_clean(watch)


def test_float32_forward_with_padding_equals_attnlib(harness, minilm):
    """A padded input: padding is hidden as a key, as BertEncoder's attention_mask does."""
    page, _ = harness
    model, tokenizer = minilm
    ids, mask = encode(tokenizer, [SENTENCES[1], SENTENCES[0]])
    row, keep = ids[0].tolist(), mask[0].tolist()
    assert not all(keep)
    js_h, js_a = page_forward(page, "f32", row, keep)
    pt_h, pt_a = torch_forward(model, row, keep)
    np.testing.assert_allclose(js_a, pt_a, atol=1e-4, rtol=0)
    real = np.array(keep)
    np.testing.assert_allclose(js_h[:, real], pt_h[:, real], atol=1e-4, rtol=0)
    assert np.abs(js_a[..., ~real]).max() == 0.0  # no weight on a padded key


def test_int8_attention_is_within_0_01_of_float32(harness, minilm):
    page, watch = harness
    model, tokenizer = minilm
    quantised = int8_model(model)
    worst_a = worst_h = worst_pt = 0.0
    for text in SENTENCES:
        ids = tokenizer.encode(text).ids
        f_h, f_a = page_forward(page, "f32", ids)
        q_h, q_a = page_forward(page, "int8", ids)
        worst_a = max(worst_a, np.abs(q_a - f_a).max())
        worst_h = max(worst_h, np.abs(q_h - f_h).max())
        pt_h, pt_a = torch_forward(quantised, ids)  # the same int8 weights in PyTorch
        worst_pt = max(worst_pt, np.abs(q_a - pt_a).max(), np.abs(q_h - pt_h).max())
    print(
        f"\nint8 vs float32 in the page: max |Δ| attention {worst_a:.4f}, hidden {worst_h:.4f}; "
        f"int8 page vs int8 PyTorch: {worst_pt:.2e}"
    )
    assert worst_a < INT8_ATTENTION_BOUND
    assert worst_pt < 1e-4  # the page computes with exactly the dequantised weights
    assert_clean(watch)


# --- the widget ---------------------------------------------------------------------------------

READ_JS = """(root) => ({
  pieces: Array.from(root.querySelectorAll('.hv-piece')).map((t) => t.textContent),
  note: root.querySelector('.hv-note').textContent,
  cut: root.querySelector('.hv-note').classList.contains('hv-cut'),
  state: root.dataset.live,
  load: root.querySelector('.hv-load').textContent,
  loadHidden: root.querySelector('.hv-load').hidden,
  heads: Array.from(root.querySelectorAll('.hv-headview .hv-q')).map((t) => t.textContent),
  thumbs: root.querySelectorAll('.hv-thumb').length,
  which: root.querySelector('.hv-which').textContent,
  status: root.querySelector('.hv-status').textContent,
  sentenceHidden: root.querySelector('.hv-sentence').hidden,
  imgs: root.querySelectorAll('img, script, svg foreignObject').length,
})"""


def read(root) -> dict:
    return root.evaluate(READ_JS)


def type_text(root, text: str) -> None:
    box = root.locator(".hv-input")
    box.fill(text)


def wait_ready(root, previous_ms: str | None = None) -> None:
    root.page.wait_for_function(
        "([r, prev]) => r.dataset.live === 'ready' && r.dataset.forwardMs !== prev",
        arg=[root.element_handle(), previous_ms],
        timeout=60000,
    )


def test_tokens_appear_as_the_reader_types_and_equal_minilms_own(harness, live_state, minilm):
    page, watch = harness
    _, tokenizer = minilm
    root = render(page, "a", live_state)
    s0 = read(root)
    assert s0["load"].startswith("Load MiniLM (") and s0["load"].endswith(" MB)"), s0["load"]
    assert s0["state"] == "idle" and s0["sentenceHidden"]
    assert s0["pieces"] == tokenizer.encode(SENTENCES[0]).tokens
    assert s0["heads"] == s0["pieces"]  # the stored picture of the same sentence
    for text in [*SENTENCES, "东京 and Zürich 🤗 tokenisation", "x" * 150]:
        type_text(root, text)
        assert read(root)["pieces"] == tokenizer.encode(text).tokens, text
        assert page.evaluate("() => window.models.a.get('text')") == text  # synced to Python
    assert_clean(watch)


def test_live_pass_draws_the_readers_sentence(harness, live_state, minilm):
    page, watch = harness
    model, tokenizer = minilm
    root = render(page, "a", live_state)
    page.evaluate("() => window.kernel('a')")
    root.locator(".hv-load").click()
    wait_ready(root)
    assert page.evaluate("() => window.models.a.sent") == [{"kind": "load-minilm"}]
    text = "The bank raised its rates."
    before = root.evaluate("(r) => r.dataset.forwardMs")
    type_text(root, text)
    wait_ready(root, before)
    s = read(root)
    assert s["loadHidden"] and s["heads"] == tokenizer.encode(text).tokens, s
    assert s["thumbs"] == 72 and s["which"] == "Layer 3, head 1"
    # What the head view draws is the page's pass, in thousandths, for layer 3, head 1.
    drawn = root.evaluate(
        "(r) => Array.from(r.querySelectorAll('.hv-line')).map((l) => "
        "[Number(l.dataset.i), Number(l.dataset.j), Number(l.dataset.w)])"
    )
    _, pt_a = torch_forward(int8_model(model), tokenizer.encode(text).ids)
    for i, j, w in drawn:
        assert abs(w - pt_a[3, 1, i, j]) <= 0.0015, (i, j, w, pt_a[3, 1, i, j])
    # Setting the text from Python (a change event from the kernel) updates the box and the pass.
    before = root.evaluate("(r) => r.dataset.forwardMs")
    page.evaluate("() => window.models.a.set('text', 'Paris is lovely.')")
    wait_ready(root, before)
    assert root.locator(".hv-input").input_value() == "Paris is lovely."
    assert read(root)["heads"] == tokenizer.encode("Paris is lovely.").tokens
    assert_clean(watch)


def test_empty_hostile_and_over_long_input(harness, live_state, minilm):
    page, watch = harness
    _, tokenizer = minilm
    root = render(page, "a", live_state)
    page.evaluate("() => window.kernel('a')")
    root.locator(".hv-load").click()
    wait_ready(root)
    type_text(root, "   ")
    s = read(root)
    assert "empty" in s["note"], s["note"]
    for text in HOSTILE:
        before = root.evaluate("(r) => r.dataset.forwardMs")
        type_text(root, text)
        wait_ready(root, before)
        s = read(root)
        assert s["imgs"] == 0, text  # nothing was parsed as markup
        assert s["pieces"] == tokenizer.encode(text).tokens, text
    long = " ".join(["attention"] * 400)
    before = root.evaluate("(r) => r.dataset.forwardMs")
    type_text(root, long)
    wait_ready(root, before)
    s = read(root)
    assert s["cut"] and str(MAX_LENGTH) in s["note"], s["note"]
    assert len(s["pieces"]) == MAX_LENGTH and s["pieces"][-1] == "[SEP]"
    assert len(s["heads"]) == MAX_LENGTH
    assert page.evaluate("() => window.dialogs === undefined")
    assert_clean(watch)


def test_page_stays_responsive_during_a_long_pass(harness, live_state):
    """While a 128-token pass runs, timers keep firing (the page is never frozen for the whole
    pass) and a newer input replaces the running one."""
    page, watch = harness
    root = render(page, "a", live_state)
    page.evaluate("() => window.kernel('a')")
    root.locator(".hv-load").click()
    wait_ready(root)
    out = page.evaluate("""async () => {
      const root = document.querySelector('#a .hv-root');
      const box = root.querySelector('.hv-input');
      const before = root.dataset.forwardMs;
      const ticks = [];
      let last = performance.now();
      const timer = setInterval(() => { const now = performance.now(); ticks.push(now - last);
        last = now; }, 10);
      const started = performance.now();
      box.value = Array(300).fill('attention').join(' ');
      box.dispatchEvent(new Event('input'));
      while (root.dataset.forwardMs === before) await new Promise((r) => setTimeout(r, 5));
      clearInterval(timer);
      return { ticks: ticks.length, longest: Math.max(...ticks),
               total: performance.now() - started, forward: Number(root.dataset.forwardMs) };
    }""")
    print(
        f"\n128-token pass: {out['forward']:.0f} ms; {out['ticks']} timer ticks during it, "
        f"longest gap {out['longest']:.0f} ms"
    )
    assert out["ticks"] >= 3, out  # the page ran its timers during the pass, not only after
    assert_clean(watch)
