"""The chapter's character GPT running in the page: how fast it writes, in headless Chromium.

    .venv/bin/python benchmarks/inpage_gpt.py                  # 3 rounds of 500 characters
    .venv/bin/python benchmarks/inpage_gpt.py --rounds 5 --chars 300

Builds a CharGPT of the GPT chapter's sizes (84 characters, D = 96, 4 heads, 2 blocks, ALiBi,
context 512; random weights: the speed does not depend on their values), makes
``SamplingExplorer.live`` of it and opens sampling.js in Debian's chromium (the browser tests'
flags) on a local page with a stand-in for the notebook's widget model. Measures, per round:

* ``load``: decoding and unpacking the base64 weights in the page (``loadGPT``);
* ``model``: characters per second of ``generateIds`` alone (the prompt through the KV cache,
  then one position per character, no drawing);
* ``page``: characters per second of the widget's own Generate, with every slice drawn (the
  text, each head's attention row, the bars), and the longest the main thread was busy between
  two timer ticks meanwhile (what a reader's click could wait at most).

Prints the medians and writes them to benchmarks/results/inpage_gpt.json. Timings are never
asserted in tests.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import platform
import statistics
import sys
import tempfile
import threading
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from attnlib.models import gpt  # noqa: E402
from attnlib.widgets._frontend import build_css, build_esm  # noqa: E402
from attnlib.widgets.sampling import SamplingExplorer  # noqa: E402
from tests.browser.harness import harness_page  # noqa: E402
from tests.browser.helpers import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

RESULT = ROOT / "benchmarks" / "results" / "inpage_gpt.json"
TRAITS = ("title", "prompts", "candidates", "logits", "tail", "vocab_size", "shown", "prompt",
          "temperature", "top_k", "top_p", "text", "seed", "length", "vocabulary", "net",
          "manifest", "weights")
PROMPT = "ROMEO:\n"

MEASURE_PAGE = """async (n) => {
  const root = document.querySelector('#a .se-root');
  let last = performance.now(), worst = 0;
  const probe = setInterval(() => {
    const now = performance.now();
    worst = Math.max(worst, now - last);
    last = now;
  }, 4);
  window.models.a.set('length', n);
  root.querySelector('.se-generate').click();
  await new Promise((done) => {
    const check = () => (root.dataset.state === 'done' ? done() : setTimeout(check, 20));
    check();
  });
  clearInterval(probe);
  return { perSecond: Number(root.dataset.charsPerSecond),
           written: root.dataset.generated.length, worstGapMs: worst };
}"""

MEASURE_MODEL = """([net, manifest, weights, prompt, n]) => {
  const t0 = performance.now();
  const g = window.sampling.loadGPT(net, manifest, weights);
  const t1 = performance.now();
  const out = window.sampling.generateIds(g, prompt, n, { temperature: 0.8, seed: 1 });
  const t2 = performance.now();
  return { loadMs: t1 - t0, perSecond: out.length / ((t2 - t1) / 1000), written: out.length };
}"""


def chapter_sized_widget(chars: int) -> SamplingExplorer:
    torch.manual_seed(0)
    vocab = ["\n", *(chr(c) for c in range(32, 115))]  # 84 characters, as the chapter's text
    config = gpt.GPTConfig(vocab_size=len(vocab), context_length=512, d_model=96, num_heads=4,
                           num_layers=2)
    return SamplingExplorer.live(gpt.CharGPT(config).eval(), vocab, PROMPT, length=chars,
                                 temperature=0.8)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        pass


def serve(directory: Path):
    handler = functools.partial(_Quiet, directory=str(directory))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--chars", type=int, default=500, help="characters per run (<= 505)")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    widget = chapter_sized_widget(args.chars)
    state = {name: getattr(widget, name) for name in TRAITS}
    prompt_ids = [widget.vocabulary.index(c) for c in PROMPT]
    rounds = []
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        folder = Path(tmp)
        (folder / "sampling.js").write_text(build_esm("sampling"), encoding="utf-8")
        (folder / "sampling.css").write_text(build_css("sampling"), encoding="utf-8")
        (folder / "bench.html").write_text(
            harness_page("sampling.js", "sampling.css", "in-page GPT", "sampling"), "utf-8"
        )
        httpd = serve(folder)
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{httpd.server_address[1]}/bench.html")
            page.wait_for_function("window.harnessReady === true")
            args_model = [widget.net, widget.manifest, widget.weights, prompt_ids, args.chars]
            page.evaluate(MEASURE_MODEL, args_model)  # warm-up
            page.evaluate("(s) => window.renderInto('a', s)", state)
            page.evaluate(MEASURE_PAGE, args.chars)  # warm-up
            for _ in range(args.rounds):
                model = page.evaluate(MEASURE_MODEL, args_model)
                shown = page.evaluate(MEASURE_PAGE, args.chars)
                rounds.append({"load_ms": model["loadMs"], "model_chars_per_s": model["perSecond"],
                               "page_chars_per_s": shown["perSecond"],
                               "worst_main_thread_gap_ms": shown["worstGapMs"],
                               "written": shown["written"]})
            version = browser.version
        finally:
            browser.close()
            httpd.shutdown()
    medians = {k: statistics.median(r[k] for r in rounds) for k in rounds[0] if k != "written"}
    result = {
        "what": "the GPT chapter's CharGPT sizes in SamplingExplorer.live, headless chromium",
        "weights_base64_bytes": len(widget.weights),
        "parameters": sum(torch.Size(e["shape"]).numel() for e in widget.manifest),
        "characters_per_run": args.chars,
        "rounds": args.rounds,
        "chromium": version,
        "machine": f"{platform.machine()}, {platform.system()}",
        "medians": {k: round(v, 1) for k, v in medians.items()},
        "runs": rounds,
    }
    print(f"weights in the page: {len(widget.weights) / 1e6:.2f} MB of base64 "
          f"({result['parameters']:,} float32 parameters); chromium {version}")
    print(f"load {medians['load_ms']:.0f} ms; model alone {medians['model_chars_per_s']:.0f} "
          f"characters/s; in the page, drawn as it goes, {medians['page_chars_per_s']:.0f} "
          f"characters/s, the main thread busy at most {medians['worst_main_thread_gap_ms']:.0f} "
          f"ms at a time (medians of {args.rounds} rounds of {args.chars} characters)")
    RESULT.parent.mkdir(exist_ok=True)
    RESULT.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
