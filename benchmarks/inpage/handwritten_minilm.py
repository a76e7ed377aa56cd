"""MiniLM on the course's hand-written forward pass (_nn.js + _bert.js), measured exactly as
ort_minilm.py measures onnxruntime-web, for a same-run comparison.

    .venv/bin/python benchmarks/inpage/handwritten_minilm.py

Writes a site into a temporary folder: the widgets' JavaScript (_base.js, _nn.js,
_wordpiece.js, _bert.js joined as a classic script) and the int8 weights file the book build
writes (attnlib.widgets.heads.minilm_script(): `window.attnlibMiniLM = {manifest, data}`,
loaded by `<script src>`, as the chapter's "Load MiniLM" button does), and opens it over http
and over file://. Each run: load-to-ready (from adding the weights' script tag to the end of a
first pass: download, base64 decoding, dequantising, one pass), then 5 untimed and `--repeat`
timed passes over the same 16 tokens as ort_minilm.py (median), twice: as the view runs it
(bertForward, which yields to the page between half-layers) and straight through (the same
functions with no pause), and the largest difference from PyTorch float32.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import statistics
import tempfile
import threading
from pathlib import Path

import numpy as np
import torch
from playwright.sync_api import sync_playwright

from attnlib.weights.minilm import load_minilm
from attnlib.widgets.heads import minilm_script

ROOT = Path(__file__).resolve().parents[2]
WIDGETS = ROOT / "src" / "attnlib" / "widgets"
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--disable-background-networking"]
SIXTEEN = "The quick brown fox jumps over the lazy dog near the river bank."

PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>hand-written MiniLM</title>
<link rel="icon" href="data:,"><script src="nn.js"></script></head><body><script>
window.load = async () => {
  const t0 = performance.now();
  await new Promise((ok, fail) => {
    const s = document.createElement("script");
    s.src = "minilm-int8.js"; s.onload = ok; s.onerror = () => fail(new Error("no weights"));
    document.head.appendChild(s);
  });
  const { manifest, data } = window.attnlibMiniLM;
  window.T = unpackTensors(manifest, decodeBase64(data));
  window.SIZES = bertSizes(window.T);
  await bertForward(window.T, window.IDS, window.SIZES);
  return performance.now() - t0;
};
function straight(ids) {
  const L = ids.length; const attentions = [];
  let x = bertEmbeddings(window.T, ids, window.SIZES);
  for (let l = 0; l < window.SIZES.layers; l++) {
    const sa = bertSelfAttention(window.T, l, x, L, window.SIZES);
    attentions.push(sa.weights);
    x = bertFeedForward(window.T, l, sa.x, L, window.SIZES);
  }
  return { x, attentions };
}
window.bench = async (n) => {
  const viewTimes = [], straightTimes = [];
  for (let k = 0; k < 5; k++) await bertForward(window.T, window.IDS, window.SIZES);
  let out;
  for (let k = 0; k < n; k++) {
    const t0 = performance.now();
    out = await bertForward(window.T, window.IDS, window.SIZES);
    viewTimes.push(performance.now() - t0);
  }
  for (let k = 0; k < 5 + n; k++) {
    const t0 = performance.now();
    straight(window.IDS);
    if (k >= 5) straightTimes.push(performance.now() - t0);
  }
  return { viewTimes, straightTimes, att: out.attentions.map((a) => Array.from(a)),
           hidden: Array.from(out.hidden[out.hidden.length - 1]) };
};
</script></body></html>
"""


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        pass


def write_site(site: Path, ids: list[int]) -> dict:
    parts = [(WIDGETS / f).read_text(encoding="utf-8")
             for f in ("_base.js", "_nn.js", "_wordpiece.js", "_bert.js")]
    script = "\n".join(parts).replace("\nexport function ", "\nfunction ")
    (site / "nn.js").write_text(script, encoding="utf-8")
    (site / "minilm-int8.js").write_text(minilm_script(), encoding="utf-8")
    (site / "index.html").write_text(
        PAGE.replace("<body>", f"<body><script>window.IDS = {ids};</script>"), encoding="utf-8")
    return {p.name: p.stat().st_size for p in sorted(site.iterdir())}


def run(browser, url: str, repeat: int, want) -> dict:
    page = browser.new_page()
    problems = []
    page.on("console", lambda m: m.type == "error" and problems.append(m.text))
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("requestfailed", lambda r: problems.append(f"failed: {r.url} {r.failure}"))
    page.goto(url, wait_until="load")
    ready = page.evaluate("() => window.load()")
    out = page.evaluate("(n) => window.bench(n)", repeat)
    page.close()
    pairs = zip(out["att"], want[1:], strict=True)
    att = max(float(np.abs(np.array(a) - w.ravel()).max()) for a, w in pairs)
    hidden = float(np.abs(np.array(out["hidden"]) - want[0].ravel()).max())
    return {"url": url.split(":")[0], "works": not problems, "ready_ms": ready,
            "view_ms": statistics.median(out["viewTimes"]),
            "straight_ms": statistics.median(out["straightTimes"]),
            "attention_err": att, "hidden_err": hidden, "problems": problems}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    model, tokenizer = load_minilm()
    ids = tokenizer.encode(SIXTEEN).ids
    assert len(ids) == 16, ids
    with torch.no_grad():
        out = model(torch.tensor([ids]), need_weights=True)
    want = [out.last_hidden_state[0].numpy(), *(a[0].numpy() for a in out.attentions)]
    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp)
        sizes = write_site(site, ids)
        print("files (bytes):")
        for name, size in sizes.items():
            print(f"  {name:32s} {size / 1e6:8.2f} MB")
        httpd = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(_Quiet, directory=tmp))
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        base = f"http://127.0.0.1:{httpd.server_address[1]}/index.html"
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            print(f"Chromium {browser.version}")
            runs = [run(browser, base, args.repeat, want),
                    run(browser, (site / "index.html").as_uri(), args.repeat, want)]
            browser.close()
        httpd.shutdown()
    for r in runs:
        print(f"{r['url']:5s} works={r['works']} load-to-ready {r['ready_ms']:.0f} ms, 16-token "
              f"forward {r['view_ms']:.1f} ms as the view runs it, {r['straight_ms']:.1f} ms "
              f"straight (medians of {args.repeat}), attention vs PyTorch "
              f"{r['attention_err']:.1e}, hidden {r['hidden_err']:.1e}")
        for problem in r["problems"][:3]:
            print(f"      {problem[:200]}")


if __name__ == "__main__":
    main()
