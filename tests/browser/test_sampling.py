"""SamplingExplorer in a real browser: in the built GPT chapter (over http and file://) and in a
harness page that feeds sampling.js a fake model (its arithmetic, its syncing, its handling of
hostile token text)."""

from __future__ import annotations

import math
from functools import partial

import numpy as np
import pytest

from .harness import HOSTILE, check_file_url, check_widget_page, open_harness, render_into
from .helpers import require_build, widget_pages
from .widget_checks import (
    check_chapter_reader,
    check_dark,
    check_light,
    check_one_live_region,
    check_phone_fit,
    check_print,
    focus_by_tab,
    live_text,
    set_theme,
    wait_announced,
)

WIDGET_ID = "attnlib.widgets.sampling.SamplingExplorer"
ROOT = ".se-root:not(.se-live)"  # the replaying explorer; the live GPT: test_sampling_live.py


READ_JS = """(root) => {
  const rows = Array.from(root.querySelectorAll('.se-bar-row[data-i]'));
  const other = root.querySelector('.se-bar-row.se-other');
  return {
    labels: rows.map((r) => r.querySelector('.se-bar-label').textContent),
    probs: rows.map((r) => Number(r.dataset.p)),
    other: Number(other.dataset.p),
    texts: rows.map((r) => r.querySelector('.se-bar-value').textContent),
    stats: root.querySelector('.se-stats').textContent,
    temperature: root.querySelector('.se-t-value').textContent,
    topk: root.querySelector('.se-k-value').textContent,
    topp: root.querySelector('.se-p-value').textContent,
    prompt: root.querySelector('.se-prompt-text').textContent,
    chips: Array.from(root.querySelectorAll('.se-drawn .se-chip')).map((c) => Number(c.dataset.i)),
    height: root.getBoundingClientRect().height,
  };
}"""


def read(root) -> dict:
    return root.evaluate(READ_JS)


def entropy_of(state) -> float:
    return float(state["stats"].split("entropy ")[1].split(" bits")[0])


def exercise_sampler(root, where: str) -> None:
    """Drive one rendered SamplingExplorer: temperature, top-k, draws, prompts."""
    t_slider = root.locator(".se-temperature input[type=range]")
    k_slider = root.locator(".se-topk input[type=range]")
    s0 = read(root)
    assert s0["height"] > 150, f"{where}: the widget looks blank ({s0['height']} px high)"
    assert len(s0["probs"]) > 0 and all(label for label in s0["labels"]), f"{where}: no bars"
    total = sum(s0["probs"]) + s0["other"]
    assert total <= 1 + 1e-4, f"{where}: bars add up to {total}"
    assert s0["probs"] == sorted(s0["probs"], reverse=True), f"{where}: bars not in order"

    # Cold: the top token takes (nearly) everything; hot: the tail grows and the entropy with it.
    t_slider.fill("0")
    cold = read(root)
    assert cold["temperature"] == "\u03c4 = 0.05", f"{where}: {cold['temperature']}"
    assert cold["probs"][0] > 0.99, f"{where}: at tau = 0.05 the top token has {cold['probs'][0]}"
    t_slider.fill("200")
    hot = read(root)
    assert hot["temperature"] == "\u03c4 = 5.00"
    assert hot["other"] > s0["other"] and entropy_of(hot) > entropy_of(s0) > entropy_of(cold)

    # Top-k = 1: only the first token can be drawn, whatever the temperature.
    k_slider.fill("1")
    one = read(root)
    assert one["topk"] == "k = 1", f"{where}: {one['topk']}"
    assert one["probs"][0] == pytest.approx(1.0) and one["other"] == 0
    assert all(p == 0 for p in one["probs"][1:])
    assert one["stats"].startswith("1 tokens can be drawn")
    root.locator(".se-draw").click()
    drawn = read(root)["chips"]
    assert drawn == [0, 0, 0, 0, 0], f"{where}: with top-k 1 the draws were {drawn}"
    root.locator(".se-clear").click()
    assert read(root)["chips"] == []

    # Top-k = 3 at temperature 1: three bars share the mass exactly.
    t_slider.fill("100")
    k_slider.fill("3")
    three = read(root)
    assert sum(three["probs"][:3]) == pytest.approx(1.0, abs=1e-5)
    assert all(p == 0 for p in three["probs"][3:]) and three["other"] == 0

    # Back to all tokens; another prompt changes the bars.
    max_k = int(k_slider.get_attribute("max"))
    k_slider.fill(str(max_k))
    assert read(root)["topk"] == "all"
    select = root.locator(".se-prompt select")
    n_prompts = select.locator("option").count()
    if n_prompts > 1:
        select.select_option("1")
        s1 = read(root)
        assert s1["prompt"] != s0["prompt"] and s1["labels"] != s0["labels"], where


# --- the built chapter ------------------------------------------------------------------------


def chapter_page():
    require_build()
    pages = widget_pages(WIDGET_ID)
    if not pages:
        pytest.skip("the built book has no page with a SamplingExplorer (chapter 9 not built)")
    return pages[0]


def test_chapter_sampler_responds(book_server, open_page):
    page_path = chapter_page()
    check_widget_page(
        open_page, book_server, page_path, ROOT, exercise_sampler, "SamplingExplorer"
    )


def test_chapter_sampler_shows_paris_first(book_server, open_page):
    page_path = chapter_page()
    page, watch = open_page(book_server.url(page_path), (book_server.base,))
    root = page.locator(ROOT).first
    root.scroll_into_view_if_needed()
    state = read(root)
    assert state["prompt"] == "The capital of France is"
    assert state["labels"][0] == " Paris" and 0.5 < state["probs"][0] < 0.95
    assert not watch.problems(), "\n".join(watch.problems())


def test_sampler_works_over_file_urls(open_page):
    page_path = chapter_page()
    check_file_url(open_page, page_path, ROOT, exercise_sampler, "SamplingExplorer")


# --- a harness page: sampling.js with a fake anywidget model ----------------------------------

# A newline token too: the widget shows it as a visible mark.
TOKENS = HOSTILE + ["\n"]


def state_for(prompts, candidates, logits, tails, **overrides) -> dict:
    state = {
        "title": "",
        "prompts": prompts,
        "candidates": candidates,
        "logits": logits,
        "tail": tails,
        "vocab_size": len(candidates[0]) + sum(c for _, c in tails[0]),
        "shown": min(12, len(candidates[0])),
        "prompt": 0,
        "temperature": 1.0,
        "top_k": 0,
    }
    state.update(overrides)
    return state


@pytest.fixture
def harness(harness_dir, harness_server, open_page):
    return open_harness(open_page, harness_dir, harness_server, "sampling", "SamplingExplorer")


render = partial(render_into, root_selector=".se-root")  # render(page, element_id, state) -> root


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max())
    return e / e.sum()


def test_browser_arithmetic_matches_numpy(harness):
    page, watch = harness
    rng = np.random.default_rng(0)
    vocab_size, M = 200, 15
    z = np.sort(rng.normal(scale=2.0, size=vocab_size))[::-1].round(4)  # largest first
    tail = [[float(v), 1] for v in z[M:]]  # one bin per tail logit: exact

    def js(temperature, top_k):
        args = {"logits": z[:M].tolist(), "tail": tail, "temperature": temperature,
                "topK": top_k, "vocabSize": vocab_size}
        return page.evaluate("(a) => window.sampling.distribution(a)", args)

    for tau in (0.05, 0.3, 1.0, 2.5):
        got = js(tau, 0)
        exact = softmax(z / tau)
        np.testing.assert_allclose(got["probs"], exact[:M], rtol=1e-9, atol=1e-12)
        assert got["other"] == pytest.approx(exact[M:].sum(), rel=1e-9, abs=1e-12)
        p = exact[exact > 0]
        assert got["entropy"] == pytest.approx(-(p * np.log2(p)).sum(), rel=1e-9)
        assert got["possible"] == vocab_size
    for k in (1, 4, M):
        got = js(0.7, k)
        exact = softmax(z[:k] / 0.7)
        np.testing.assert_allclose(got["probs"][:k], exact, rtol=1e-9)
        assert all(p == 0 for p in got["probs"][k:]) and got["other"] == 0
        assert got["possible"] == k
    # Huge logits stay finite: everything is computed relative to the largest one.
    big = page.evaluate(
        "() => window.sampling.distribution({logits: [1e4, 9e3], tail: [[0, 5]],"
        " temperature: 0.05, topK: 0, vocabSize: 7})"
    )
    assert big["probs"] == [1, 0] and big["other"] == 0
    # draw(): walks the cumulative distribution; u beyond the named tokens lands in the tail.
    draws = page.evaluate(
        "() => [0, 0.49, 0.5, 0.79, 0.85, 0.99].map((u) =>"
        " window.sampling.draw([0.5, 0.3], 0.2, u))"
    )
    assert draws == [0, 0, 1, 1, -1, -1]
    # The temperature slider's log scale spans 0.05 to 5.
    ends = page.evaluate(
        "() => [0, 200].map((v) => window.sampling.sliderToTemperature(v))"
        ".concat([0.01, 99].map((t) => window.sampling.temperatureToSlider(t)))"
    )
    assert ends == [0.05, 5.0, 0, 200]
    shown = page.evaluate("() => ['\\n', '\\tx', '', ' a', '  '].map(window.sampling.shown)")
    assert shown == ["\u21b5", "\u21e5x", "\u2205", " a", "\u2423\u2423"]
    assert not watch.problems(), "\n".join(watch.problems())


def test_view_and_model_stay_in_sync(harness):
    page, watch = harness
    logits = [[3.0, 2.0, 1.0, 0.5], [1.0, 0.9, 0.8, 0.7]]
    tails = [[[-1.0, 10]], [[0.0, 3]]]
    root = render(
        page, "b",
        state_for(["first prompt", "second prompt"], [["a", "b", "c", "d"]] * 2, logits, tails,
                  shown=3),
    )
    model = "window.models.b"
    s = read(root)
    assert s["labels"] == ["a", "b", "c"] and s["prompt"] == "first prompt"
    z = np.array([3.0, 2.0, 1.0, 0.5] + [-1.0] * 10)
    exact = softmax(z)
    np.testing.assert_allclose(s["probs"], exact[:3], atol=1e-6)
    assert s["other"] == pytest.approx(exact[3:].sum(), abs=1e-6)  # "d" joins the others
    # View -> model: the sliders and the selector reach the model and are saved.
    root.locator(".se-temperature input[type=range]").fill("40")
    root.locator(".se-topk input[type=range]").fill("2")
    root.locator(".se-prompt select").select_option("1")
    state = page.evaluate(f"() => ({{...{model}.state, saved: {model}.saved}})")
    assert state["temperature"] == page.evaluate("() => window.sampling.sliderToTemperature(40)")
    assert state["top_k"] == 2 and state["prompt"] == 1 and state["saved"] == 3
    root.locator(".se-topk input[type=range]").fill("5")  # the rightmost position: no limit
    assert page.evaluate(f"() => {model}.state.top_k") == 0
    # Model -> view: what Python sets, the view shows.
    page.evaluate(
        f"() => {{ {model}.set('temperature', 2); {model}.set('top_k', 3);"
        f" {model}.set('prompt', 0); }}"
    )
    s = read(root)
    assert s["temperature"] == "\u03c4 = 2.00" and s["topk"] == "k = 3"
    assert s["prompt"] == "first prompt"
    np.testing.assert_allclose(s["probs"], softmax(np.array([3.0, 2.0, 1.0]) / 2), atol=1e-6)
    assert not watch.problems(), "\n".join(watch.problems())


def test_hostile_tokens_are_shown_as_text(harness):
    page, watch = harness
    n = len(TOKENS)
    root = render(
        page, "a",
        state_for(["<b>prompt?</b>", "<i>two</i>"], [TOKENS, TOKENS[::-1]],
                  [list(np.linspace(2, 0, n)), list(np.linspace(1, 0, n))], [[[0.0, 3]]] * 2,
                  title="<b>bold?</b>"),
    )
    root.locator(".se-draw").click()
    root.locator(".se-temperature input[type=range]").fill("30")
    root.locator(".se-prompt select").select_option("1")
    page.wait_for_timeout(300)  # give any injected element time to fire
    found = page.evaluate(
        """() => {
          const el = document.getElementById('a');
          return {
            injected: el.querySelectorAll('img, script, svg, b, i').length,
            labels: Array.from(el.querySelectorAll('.se-bar-row[data-i] .se-bar-label'))
              .map((x) => x.textContent),
            title: el.querySelector('.se-title').textContent,
            options: Array.from(el.querySelectorAll('option')).map((o) => o.textContent),
            prompt: el.querySelector('.se-prompt-text').textContent,
          };
        }"""
    )
    assert found["injected"] == 0, "token text was parsed as HTML"
    assert found["labels"] == [t.replace("\n", "\u21b5") for t in TOKENS[::-1]]
    assert found["title"] == "<b>bold?</b>"
    assert found["options"] == ["<b>prompt?</b>", "<i>two</i>"]
    assert found["prompt"] == "<i>two</i>"
    assert not watch.dialogs, f"a dialog fired: {watch.dialogs}"
    assert not watch.problems(), "\n".join(watch.problems())


# --- the reader: dark theme, a phone, the keyboard, print ---------------------------------------

TEXT = ".se-bar-label, .se-bar-value, .se-stats, .se-help"  # no heatmap here: its text


def test_chapter_sampler_follows_theme_phone_and_print(book_server, open_page):
    found = check_chapter_reader(
        open_page, book_server, chapter_page(), ROOT, "09_gpt", heat_selector=TEXT,
        min_cells=3,
    )
    for theme, colours in found.items():  # shown with -s: the measured contrast figures
        ratios = [c["ratio"] for c in colours["cells"]]
        print(f"sampling {theme}: text {min(ratios):.2f}..{max(ratios):.2f} "
              f"over {len(ratios)} labels")


def test_keyboard_drives_the_sampler_and_it_announces(harness):
    page, watch = harness
    logits = [[3.0, 2.0, 1.0, 0.5]]
    root = render(page, "a", state_for(["a prompt"], [["a", "b", "c", "d"]], logits, [[[-1.0, 5]]]))
    model = "window.models.a"
    check_one_live_region(root, "sampling")
    live = live_text(root)
    # Top-k starts at "all"; one ArrowLeft keeps the 4 named tokens only.
    focus_by_tab(page, "#a .se-topk input")
    page.keyboard.press("ArrowLeft")
    assert page.evaluate(f"() => {model}.state.top_k") == 4 and read(root)["other"] == 0
    live = wait_announced(root, live, contains="top 4")
    page.keyboard.press("Home")
    assert page.evaluate(f"() => {model}.state.top_k") == 1
    live = wait_announced(root, live, contains="top 1")
    # Enter on "Draw 5 tokens": five draws, all of the one token top-1 leaves.
    focus_by_tab(page, "#a .se-draw")
    page.keyboard.press("Enter")
    assert read(root)["chips"] == [0] * 5
    wait_announced(root, live, contains="Drew a, a, a, a, a")
    assert not watch.problems(), "\n".join(watch.problems())


def test_sampler_in_the_dark_theme_and_on_a_phone(harness):
    page, watch = harness
    prompts = ["Once upon a time, in a kingdom far away, there lived a very long prompt that"]
    names = ["extraordinarily", " the", " a", "\n", " kingdom"]
    root = render(page, "a", state_for(prompts, [names], [[4.0, 3.0, 2.5, 1.0, 0.5]],
                                       [[[-1.0, 100]]]))
    check_light(root, "sampling light", TEXT, min_cells=3)
    set_theme(page, "dark")
    check_dark(root, "sampling dark", TEXT, min_cells=3)
    check_print(page, root, "sampling print", TEXT)
    check_phone_fit(page, root, "sampling 390 px")
    assert not watch.problems(), "\n".join(watch.problems())


# --- top-p (nucleus): the browser's arithmetic is attnlib.generation's ---------------------------


def test_browser_top_p_matches_next_token_probs(harness):
    """distribution() with topP, and the top-p slider in the page, keep the tokens and give the
    probabilities of attnlib.generation.next_token_probs(logits, temperature, top_k, top_p)."""
    torch = pytest.importorskip("torch")
    from attnlib import generation

    page, watch = harness
    rng = np.random.default_rng(1)
    vocab_size, M = 300, 40
    z = np.sort(rng.normal(scale=2.5, size=vocab_size))[::-1].round(4)  # largest first
    tail = [[float(v), 1] for v in z[M:][::-1]]  # one bin per tail logit, ascending: exact

    def exact(tau, top_k, top_p):
        return generation.next_token_probs(torch.tensor(z), tau, top_k or None, top_p).double()

    for tau, top_k, top_p in [(1.0, 0, 0.5), (0.7, 0, 0.9), (2.0, 0, 0.95), (1.0, 10, 0.8),
                              (0.3, 0, 0.01), (1.5, 25, 0.99), (3.0, 0, 0.999)]:
        args = {"logits": z[:M].tolist(), "tail": tail, "temperature": tau, "topK": top_k,
                "topP": top_p, "vocabSize": vocab_size}
        got = page.evaluate("(a) => window.sampling.distribution(a)", args)
        want = exact(tau, top_k, top_p).numpy()
        np.testing.assert_allclose(got["probs"], want[:M], atol=1e-6)
        assert got["other"] == pytest.approx(want[M:].sum(), abs=1e-6), (tau, top_k, top_p)
        assert got["possible"] == int((want > 0).sum()), (tau, top_k, top_p)
    # topP = 1 is off: the same as no top-p at all.
    args = {"logits": z[:M].tolist(), "tail": tail, "temperature": 1.0, "topK": 0,
            "vocabSize": vocab_size}
    off = page.evaluate("(a) => window.sampling.distribution({...a, topP: 1})", args)
    assert off == page.evaluate("(a) => window.sampling.distribution(a)", args)

    # In the page: the slider sets top_p, and the bars show the nucleus of next_token_probs.
    root = render(page, "b", state_for(["a prompt"], [[f"t{i}" for i in range(M)]],
                                       [z[:M].tolist()], [tail], shown=M))
    model = "window.models.b"
    assert read(root)["topp"] == "off"
    root.locator(".se-temperature input[type=range]").fill("100")  # tau = 0.5
    tau = page.evaluate(f"() => {model}.state.temperature")
    root.locator(".se-topk input[type=range]").fill("20")
    for position in (1, 60, 90, 99):
        root.locator(".se-topp input[type=range]").fill(str(position))
        assert page.evaluate(f"() => {model}.state.top_p") == position / 100
        s = read(root)
        assert s["topp"] == f"p = {position / 100:.2f}"
        want = exact(tau, 20, position / 100).numpy()
        kept = [i for i, p in enumerate(s["probs"]) if p > 0]
        assert kept == np.flatnonzero(want).tolist(), position
        np.testing.assert_allclose(s["probs"], want[:M], atol=1e-6)
        assert s["other"] == 0 and s["stats"].startswith(f"{len(kept)} tokens can be drawn")
    root.locator(".se-topp input[type=range]").fill("100")
    assert page.evaluate(f"() => {model}.state.top_p") == 1 and read(root)["topp"] == "off"
    assert not watch.problems(), "\n".join(watch.problems())


def test_keyboard_drives_top_p_and_it_announces(harness):
    page, watch = harness
    root = render(page, "a", state_for(["a prompt"], [["a", "b", "c", "d"]], [[3.0, 2.0, 1.0, 0.5]],
                                       [[[-1.0, 5]]]))
    model = "window.models.a"
    live = live_text(root)
    focus_by_tab(page, "#a .se-topp input")
    page.keyboard.press("Home")  # p = 0.01: the most likely token alone
    assert page.evaluate(f"() => {model}.state.top_p") == 0.01
    s = read(root)
    assert s["probs"][0] == pytest.approx(1.0) and s["other"] == 0
    assert s["stats"].startswith("1 tokens can be drawn")
    live = wait_announced(root, live, contains="top-p 0.01")
    page.keyboard.press("End")
    assert page.evaluate(f"() => {model}.state.top_p") == 1
    wait_announced(root, live, contains="top-p off")
    assert not watch.problems(), "\n".join(watch.problems())


def stored_sampler_state(page_path, *, live: bool = False) -> dict:
    """A SamplingExplorer's synced state as the built page stores it (its widget-state JSON): the
    one that replays stored logits, or with ``live`` the one that carries a model's weights."""
    import json
    import re

    html = page_path.read_text(encoding="utf-8")
    for block in re.findall(
        r'<script type="application/vnd\.jupyter\.widget-state\+json">(.*?)</script>', html, re.S
    ):
        for model in json.loads(block)["state"].values():
            state = model.get("state", {})
            if state.get("_anywidget_id") == WIDGET_ID and bool(state.get("weights")) == live:
                return state
    kind = "live " if live else ""
    pytest.fail(f"{page_path.name} stores no {kind}SamplingExplorer state", pytrace=False)


def test_chapter_sampler_top_p_matches_next_token_probs(book_server, open_page):
    """In the built chapter: set the temperature, top-k and top-p in the page; the kept tokens and
    their probabilities are those of attnlib's next_token_probs on the logits the page holds."""
    torch = pytest.importorskip("torch")
    from attnlib import generation

    page_path = chapter_page()
    state = stored_sampler_state(page_path)
    page, watch = open_page(book_server.url(page_path), (book_server.base,))
    root = page.locator(ROOT).first
    root.scroll_into_view_if_needed()
    select = root.locator(".se-prompt select")
    for prompt, t_pos, k_pos, p_pos in [(0, 130, None, 90), (1, 130, 20, 50), (1, 100, None, 60),
                                        (0, 100, 5, 99)]:
        select.select_option(str(prompt))
        root.locator(".se-temperature input[type=range]").fill(str(t_pos))
        k_slider = root.locator(".se-topk input[type=range]")
        k_slider.fill(str(k_pos) if k_pos else k_slider.get_attribute("max"))
        root.locator(".se-topp input[type=range]").fill(str(p_pos))
        s = read(root)
        tau = math.floor(0.05 * 100 ** (t_pos / 200) * 1000 + 0.5) / 1000  # sliderToTemperature
        assert s["temperature"] == f"\u03c4 = {tau:.2f}" and s["topk"] == (
            f"k = {k_pos}" if k_pos else "all")
        top_k, top_p = k_pos, p_pos / 100
        assert s["topp"] == f"p = {top_p:.2f}"
        # The page's logits: the named tokens, then every tail token at its bin's value.
        named = state["logits"][prompt]
        tail = [v for v, c in state["tail"][prompt] for _ in range(c)]
        logits = torch.tensor(named + tail, dtype=torch.float64)
        exact = generation.next_token_probs(logits, tau, top_k, top_p).double().numpy()
        kept = [i for i, p in enumerate(s["probs"]) if p > 0]
        assert kept == [i for i in range(len(s["probs"])) if exact[i] > 0], (prompt, kept)
        np.testing.assert_allclose(s["probs"], exact[: len(s["probs"])], atol=1e-6)
        assert s["stats"].startswith(f"{int((exact > 0).sum()):,} tokens can be drawn")
    assert not watch.problems(), "\n".join(watch.problems())
