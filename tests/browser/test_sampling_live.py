"""SamplingExplorer's live mode in a real browser: a character GPT (attnlib.models.gpt.CharGPT)
runs in the page on the reader's own prompt. The page's forward pass (with and without its KV
cache) is compared with PyTorch's on fixed prompts, greedy generation in the page with
attnlib.generation.generate, and the page is fed hostile, unknown and empty prompts."""

from __future__ import annotations

import time
from functools import partial

import numpy as np
import pytest

from .harness import (
    HOSTILE,
    assert_clean,
    check_file_url,
    check_widget_page,
    open_harness,
    render_into,
)
from .test_sampling import chapter_page, stored_sampler_state
from .widget_checks import (
    check_chapter_reader,
    check_dark,
    check_light,
    check_one_live_region,
    check_phone_fit,
    check_print,
    set_theme,
)

torch = pytest.importorskip("torch")
from attnlib.models import gpt  # noqa: E402
from attnlib.widgets._pack import unpack_tensors  # noqa: E402
from attnlib.widgets.sampling import SamplingExplorer  # noqa: E402

VOCAB = ["\n", *(chr(c) for c in range(32, 127) if chr(c) not in "<>&")]  # no <, >, &
TEXT_TRAITS = ("title", "prompts", "candidates", "logits", "tail", "vocab_size", "shown",
               "prompt", "temperature", "top_k", "top_p", "text", "seed", "length",
               "vocabulary", "net", "manifest", "weights")
PROMPTS = ["Hello, world", "ROMEO:\nWhat light", "a", "The quick brown fox jumps over the dog"]


def tiny_model(positions: str = "alibi", context_length: int = 96, seed: int = 0, d_model=32):
    """A random CharGPT whose logits are far apart (weights ~ N(0, 0.3)), so that the argmax is
    never a near tie that float32 rounding could flip."""
    torch.manual_seed(seed)
    config = gpt.GPTConfig(vocab_size=len(VOCAB), context_length=context_length, d_model=d_model,
                           num_heads=4, num_layers=2, positions=positions)
    model = gpt.CharGPT(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.3)
    return model


def ids_of(text: str) -> list[int]:
    return [VOCAB.index(c) for c in text]


def state_of(widget: SamplingExplorer, **overrides) -> dict:
    state = {name: getattr(widget, name) for name in TEXT_TRAITS}
    state.update(overrides)
    return state


@pytest.fixture
def harness(harness_dir, harness_server, open_page):
    return open_harness(open_page, harness_dir, harness_server, "sampling", "SamplingExplorer")


render = partial(render_into, root_selector=".se-root")


def load_in_page(page, widget) -> None:
    page.evaluate(
        "(s) => { window.gpt = window.sampling.loadGPT(s.net, s.manifest, s.weights); }",
        {"net": widget.net, "manifest": widget.manifest, "weights": widget.weights},
    )


def torch_forward(model, ids):
    """logits (L, V), each block's output (L, D) and weights (H, L, L), from PyTorch."""
    hidden = []
    hooks = [b.register_forward_hook(lambda _m, _i, out: hidden.append(out[0][0]))
             for b in model.blocks]
    try:
        with torch.no_grad():
            out = model(torch.tensor([ids]), need_weights=True)
    finally:
        for h in hooks:
            h.remove()
    return out.logits[0].numpy(), [h.numpy() for h in hidden], [a[0].numpy() for a in
                                                                  out.attentions]


PAGE_FORWARD = """([ids, chunks]) => {
  const g = window.gpt;
  const V = g.config.vocab_size, D = g.config.d_model, H = g.config.num_heads;
  const L = ids.length;
  const logits = [], hidden = g.config.num_layers ? [] : [], att = [];
  for (let b = 0; b < g.config.num_layers; b++) { hidden.push([]); att.push([]); }
  if (!chunks) {
    const r = window.sampling.gptForward(g, ids, null);
    return { logits: Array.from(r.logits), hidden: r.hidden.map((x) => Array.from(x)),
             att: r.attentions.map((w) => Array.from(w)), cache: null };
  }
  // With the cache, in chunks: each chunk's rows of logits, hidden states and weights.
  const cache = window.sampling.newGPTCache(g);
  const outLogits = [], outHidden = hidden.map(() => []), outAtt = att.map(() => []);
  let at = 0;
  for (const n of chunks) {
    const piece = ids.slice(at, at + n);
    const r = window.sampling.gptForward(g, piece, cache);
    const S = at + n;
    outLogits.push(...r.logits);
    r.hidden.forEach((x, b) => outHidden[b].push(...x));
    // weights (H, n, S): pad each row to L keys with zeros, into (H, L, L) order later
    r.attentions.forEach((w, b) => outAtt[b].push({ at, n, S, w: Array.from(w) }));
    at = S;
  }
  return { logits: outLogits, hidden: outHidden, att: outAtt, cache: cache.length };
}"""


def assembled_weights(pieces, H: int, L: int) -> np.ndarray:
    """The (H, L, L) weights from the cached chunks (each (H, n, S)), future keys zero."""
    full = np.zeros((H, L, L))
    for piece in pieces:
        at, n, S = piece["at"], piece["n"], piece["S"]
        w = np.array(piece["w"]).reshape(H, n, S)
        full[:, at:at + n, :S] = w
    return full


@pytest.mark.parametrize("positions", ["alibi", "learned", "none"])
def test_page_forward_equals_chargpt_with_and_without_cache(harness, positions):
    page, watch = harness
    try:
        model = tiny_model(positions)
    except ValueError:
        pytest.skip(f"this attnlib's CharGPT has no positions={positions!r}")
    widget = SamplingExplorer.live(model, VOCAB, PROMPTS[0])
    load_in_page(page, widget)
    V, D, H = len(VOCAB), model.config.d_model, model.config.num_heads
    for text in PROMPTS:
        ids = ids_of(text)
        L = len(ids)
        logits, hidden, weights = torch_forward(model, ids)
        for chunks in (None, [L], [1] * L, [min(3, L)] + [1] * max(0, L - 3),
                       [L // 2, L - L // 2] if L > 1 else [1]):
            got = page.evaluate(PAGE_FORWARD, [ids, chunks])
            where = f"{positions} {text!r} chunks {chunks}"
            np.testing.assert_allclose(np.array(got["logits"]).reshape(L, V), logits,
                                       atol=1e-4, rtol=0, err_msg=where)
            for b in range(model.config.num_layers):
                np.testing.assert_allclose(np.array(got["hidden"][b]).reshape(L, D), hidden[b],
                                           atol=1e-4, rtol=0, err_msg=where)
                w = (np.array(got["att"][b]).reshape(H, L, L) if chunks is None
                     else assembled_weights(got["att"][b], H, L))
                np.testing.assert_allclose(w, weights[b], atol=1e-4, rtol=0, err_msg=where)
            if chunks is not None:
                assert got["cache"] == L, where
    assert_clean(watch)


def run_in_page(page, root, element: str, *, timeout: float = 20.0) -> dict:
    """Press Generate and wait for the run to end; returns what the page shows."""
    root.locator(".se-generate").click()
    page.wait_for_function(
        f"() => document.querySelector('#{element} .se-root').dataset.state === 'done'",
        timeout=timeout * 1000,
    )
    return read_live(root)


READ_LIVE = """(root) => ({
  generated: root.dataset.generated || "",
  cache: Number(root.dataset.cache),
  state: root.dataset.state,
  problem: root.dataset.problem,
  message: root.querySelector('.se-message').hidden ? "" :
    root.querySelector('.se-message').textContent,
  status: root.querySelector('.se-live-status').textContent,
  prompt: root.querySelector('.se-prompt-text').textContent,
  generate: !root.querySelector('.se-generate').disabled,
  speed: Number(root.dataset.charsPerSecond || 0),
  rows: root.querySelectorAll('.se-attn-cells').length,
  cells: root.querySelectorAll('.se-attn-cell').length,
  weights: Array.from(root.querySelectorAll('.se-attn-cells'),
    (c) => c.dataset.weights ? c.dataset.weights.split(' ').map(Number) : []),
  bars: Array.from(root.querySelectorAll('.se-bar-row[data-i]'),
    (r) => [r.querySelector('.se-bar-label').textContent, Number(r.dataset.p)]),
})"""


def read_live(root) -> dict:
    return root.evaluate(READ_LIVE)


@pytest.mark.parametrize("positions", ["alibi", "learned"])
def test_greedy_generation_in_the_page_equals_generate(harness, positions):
    page, watch = harness
    model = tiny_model(positions)
    n = 40
    widget = SamplingExplorer.live(model, VOCAB, PROMPTS[0], length=n, top_k=1)
    root = render(page, "a", state_of(widget))
    load_in_page(page, widget)
    for text in PROMPTS:
        ids = ids_of(text)
        want = model.generate(torch.tensor([ids]), n, temperature=0)[0, len(ids):].tolist()
        # the Python path: the model's text trait changes, the page reruns the prompt
        page.evaluate("(t) => window.models.a.set('text', t)", text)
        shown = run_in_page(page, root, "a")
        assert shown["prompt"] == text and shown["problem"] == "0"
        assert shown["generated"] == "".join(VOCAB[i] for i in want), (positions, text)
        assert shown["cache"] == len(ids) + n  # every character, the last one too, is cached
        # the same loop without the page: generateIds
        direct = page.evaluate("([ids, n]) => window.sampling.generateIds(window.gpt, ids, n,"
                               " { topK: 1, temperature: 0.7 })", [ids, n])
        assert direct == want
        # the newest character's attention, per head, is PyTorch's last row
        _, _, weights = torch_forward(model, ids + want)
        L = len(ids) + n
        for r, w in enumerate(shown["weights"]):
            b, h = divmod(r, model.config.num_heads)
            np.testing.assert_allclose(w, weights[b][h, -1, L - len(w):], atol=1e-4)
        assert shown["rows"] == model.config.num_layers * model.config.num_heads
    assert_clean(watch)


def test_seeded_sampling_repeats_and_follows_the_seed(harness):
    page, watch = harness
    model = tiny_model()
    widget = SamplingExplorer.live(model, VOCAB, "Once", length=30, temperature=1.5, seed=7)
    root = render(page, "a", state_of(widget))
    first = run_in_page(page, root, "a")["generated"]
    again = run_in_page(page, root, "a")["generated"]
    assert len(first) == 30 and first == again
    root.locator(".se-seed-input").fill("8")
    root.locator(".se-seed-input").dispatch_event("change")
    assert page.evaluate("() => window.models.a.state.seed") == 8
    other = run_in_page(page, root, "a")["generated"]
    assert other != first
    assert_clean(watch)


def test_unknown_hostile_and_empty_prompts_show_a_message(harness):
    page, watch = harness
    model = tiny_model()
    widget = SamplingExplorer.live(model, VOCAB, "Hi", length=5)
    root = render(page, "a", state_of(widget, title="<b>live?</b>"))
    box = root.locator(".se-live-input")
    for text in [*HOSTILE, "caf\u00e9 \U0001f600", "tab\there"]:
        box.fill(text)
        s = read_live(root)
        assert page.evaluate("() => window.models.a.state.text") == text
        assert s["prompt"] == text, "the prompt is shown as typed"
        unknown = [c for c in dict.fromkeys(text) if c not in VOCAB]
        if unknown:
            assert s["problem"] == "1" and s["message"].startswith("Not in the model's vocabulary")
            assert not s["generate"], "Generate is off while the prompt cannot run"
        else:
            assert s["problem"] == "0", text
    # Python says the same as the page
    widget.text = "caf\u00e9 \U0001f600"
    page.evaluate("(t) => window.models.a.set('text', t)", widget.text)
    assert read_live(root)["message"] == widget.live_problem()
    box.fill("")
    s = read_live(root)
    assert s["message"].startswith("Type a prompt") and not s["generate"]
    page.wait_for_timeout(300)  # time for an injected element to fire
    injected = page.evaluate("() => document.querySelectorAll('#a img, #a script, #a svg b,"
                             " #a b').length")
    assert injected == 0, "reader text was parsed as HTML"
    assert root.locator(".se-title").text_content() == "<b>live?</b>"
    assert not watch.dialogs and not watch.problems(), watch.problems()


def test_context_length_stops_generation_as_generate_does(harness):
    page, watch = harness
    model = tiny_model(context_length=24)
    prompt = "To be, or not to be"  # 19 characters: 5 more fit
    widget = SamplingExplorer.live(model, VOCAB, prompt, length=20, top_k=1)
    root = render(page, "a", state_of(widget))
    s = run_in_page(page, root, "a")
    want = model.generate(torch.tensor([ids_of(prompt)]), 5, temperature=0)[0, 19:].tolist()
    assert s["generated"] == "".join(VOCAB[i] for i in want) and s["cache"] == 24
    assert "full" in s["status"] and root.locator(".se-more").is_disabled()
    with pytest.raises(ValueError, match="exceed the model's context length"):
        model.generate(torch.tensor([ids_of(prompt)]), 6, temperature=0)
    page.evaluate("(t) => window.models.a.set('text', t)", "x" * 24)
    assert read_live(root)["message"].startswith("The prompt has 24 characters")
    assert_clean(watch)


def test_long_run_keeps_the_page_responsive_and_stops(harness):
    page, watch = harness
    model = tiny_model(context_length=2048, d_model=96)  # 2000 characters: seconds of work
    widget = SamplingExplorer.live(model, VOCAB, "Long", length=2000, temperature=1.0)
    root = render(page, "a", state_of(widget))
    root.locator(".se-generate").click()
    t0 = time.perf_counter()
    lag = page.evaluate("() => new Promise((done) => { const t = performance.now();"
                        " setTimeout(() => done(performance.now() - t), 0); })")
    root.locator(".se-stop").click()
    s = read_live(root)
    assert s["state"] == "stopped" and len(s["generated"]) < 2000
    print(f"main thread answered a timer after {lag:.0f} ms during generation; Stop after "
          f"{time.perf_counter() - t0:.2f} s with {len(s['generated'])} characters")
    assert_clean(watch)


def test_speed_of_generation_in_the_page(harness):
    """Printed, never asserted: characters per second in this Chromium (-s shows it)."""
    page, watch = harness
    model = tiny_model(context_length=512)
    widget = SamplingExplorer.live(model, VOCAB, "Speed", length=400, temperature=0.8)
    root = render(page, "a", state_of(widget))
    s = run_in_page(page, root, "a", timeout=60)
    load_in_page(page, widget)
    compute = page.evaluate("() => { const t = performance.now();"
                            " const n = window.sampling.generateIds(window.gpt, [1, 2, 3], 400,"
                            " { temperature: 0.8 }).length;"
                            " return n / ((performance.now() - t) / 1000); }")
    print(f"live GPT (D=32, 2 layers): {s['speed']:.0f} characters/s with the page drawn, "
          f"{compute:.0f} characters/s for the model alone")
    assert len(s["generated"]) == 400
    assert_clean(watch)


def test_live_gpt_in_the_dark_theme_on_a_phone_and_in_print(harness):
    page, watch = harness
    model = tiny_model()
    widget = SamplingExplorer.live(model, VOCAB, "Once upon a time, in a land far away", length=20)
    root = render(page, "a", state_of(widget))
    run_in_page(page, root, "a")
    text = ".se-attn-cell, .se-bar-label, .se-stats, .se-help, .se-generated"
    check_light(root, "live light", text, min_cells=5)
    set_theme(page, "dark")
    check_dark(root, "live dark", text, min_cells=5)
    check_print(page, root, "live print", text)
    check_phone_fit(page, root, "live 390 px", expect_scroll=True)
    check_one_live_region(root, "live")
    assert_clean(watch)


# --- the built chapter ------------------------------------------------------------------------


def model_from_state(state) -> gpt.CharGPT:
    """The CharGPT the page carries, rebuilt in PyTorch from its packed weights."""
    net = state["net"]
    config = gpt.GPTConfig(vocab_size=net["vocab_size"], context_length=net["context_length"],
                           d_model=net["d_model"], num_heads=net["num_heads"],
                           num_layers=net["num_layers"], positions=net["positions"])
    model = gpt.CharGPT(config).eval()
    tensors = unpack_tensors(state["manifest"], state["weights"])
    model.load_state_dict({k: torch.from_numpy(v) for k, v in tensors.items()}, strict=False)
    return model


def exercise_live(root, where: str, state: dict) -> None:
    """Type a prompt, greedy (top-k 1), Generate: the page writes what generate() writes."""
    page = root.page
    model = model_from_state(state)
    vocab = state["vocabulary"]
    prompt = "JULIET:\n"
    root.locator(".se-live-input").fill(prompt)
    root.locator(".se-topk input[type=range]").fill("1")
    root.locator(".se-length-input").fill("60")
    root.locator(".se-length-input").dispatch_event("change")
    root.locator(".se-generate").click()
    page.wait_for_function("(r) => r.dataset.state === 'done'", arg=root.element_handle(),
                           timeout=30000)
    s = read_live(root)
    ids = torch.tensor([[vocab.index(c) for c in prompt]])
    want = model.generate(ids, 60, temperature=0)[0, len(prompt):].tolist()
    assert s["generated"] == "".join(vocab[i] for i in want), where
    assert s["cache"] == len(prompt) + 60 and s["rows"] == 8, where
    root.locator(".se-live-input").fill("caf\u00e9")
    assert read_live(root)["message"].startswith("Not in the model's vocabulary"), where


def test_chapter_live_gpt_writes_what_generate_writes(book_server, open_page):
    page_path = chapter_page()
    state = stored_sampler_state(page_path, live=True)
    assert len(state["weights"]) < 2_000_000
    check_widget_page(open_page, book_server, page_path, ".se-root.se-live",
                      partial(exercise_live, state=state), "live GPT", count=1)


def test_chapter_live_gpt_over_file_urls(open_page):
    page_path = chapter_page()
    state = stored_sampler_state(page_path, live=True)
    check_file_url(open_page, page_path, ".se-root.se-live", partial(exercise_live, state=state),
                   "live GPT")


def test_chapter_live_gpt_follows_theme_phone_and_print(book_server, open_page):
    check_chapter_reader(open_page, book_server, chapter_page(), ".se-root.se-live", "09_gpt live",
                         heat_selector=".se-attn-cell, .se-bar-label, .se-stats, .se-help",
                         min_cells=3)
