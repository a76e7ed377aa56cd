"""MiniLM in the page: how long the BERT chapter's live view takes in the browser tests' Chromium.

    .venv/bin/python benchmarks/inpage_minilm.py                    # the book in _build/html
    .venv/bin/python benchmarks/inpage_minilm.py --book /tmp/x/html  # a book built elsewhere

Opens the built chapter (``make book`` first: the book build writes the int8 weights file,
book/_ext/minilm_static.py) in headless Chromium, over http (a local server) and over file://,
presses "Load MiniLM" and prints: the weights file's size, load-to-ready (from the press to the
first pass drawn: the script download, decoding, dequantising and one pass on the stored
sentence) and a 16-token forward pass (5 untimed passes, then the median of ``--repeat``), as
the view records them (``data-load-ms``, ``data-forward-ms``). Timings are never asserted in tests.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import platform
import statistics
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
]
SIXTEEN = "The quick brown fox jumps over the lazy dog near the river bank."  # 16 WordPiece tokens
LIVE = ".hv-root:has(.hv-yours)"

PASSES_JS = """async ([root, text, n]) => {
  const box = root.querySelector('.hv-input');
  const times = [];
  for (let k = 0; k < n; k++) {
    const before = root.dataset.forwardMs;
    box.value = box.value === text ? text.replace('river', 'lake') : text; // a new input
    box.dispatchEvent(new Event('input'));
    while (root.dataset.forwardMs === before) await new Promise((r) => setTimeout(r, 2));
    times.push(Number(root.dataset.forwardMs));
  }
  return times;
}"""


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        pass


def measure(browser, url: str, repeat: int) -> dict:
    page = browser.new_page()
    errors = []
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    page.on("requestfailed", lambda r: errors.append(f"failed: {r.url}"))
    page.goto(url, wait_until="load")
    root = page.locator(LIVE)
    root.wait_for(timeout=30000)
    root.scroll_into_view_if_needed()
    root.locator(".hv-load").click()
    page.wait_for_function(
        "(r) => ['ready', 'failed'].includes(r.dataset.live)",
        arg=root.element_handle(),
        timeout=120000,
    )
    if root.evaluate("(r) => r.dataset.live") != "ready":
        raise SystemExit(f"{url}: {root.locator('.hv-status').text_content()}")
    load_ms = float(root.evaluate("(r) => r.dataset.loadMs"))
    handle = root.element_handle()
    page.evaluate(PASSES_JS, [handle, SIXTEEN, 5])  # warm-up
    times = page.evaluate(PASSES_JS, [handle, SIXTEEN, repeat])
    page.close()
    return {"load_ms": load_ms, "median_ms": statistics.median(times), "errors": errors}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--book", type=Path, default=ROOT / "_build" / "html")
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    chapter = args.book / "notebooks" / "08_bert.html"
    weights = args.book / "_static" / "attnlib" / "minilm-int8.js"
    if not chapter.exists() or not weights.exists():
        raise SystemExit(f"no built chapter with weights under {args.book}: run `make book`")
    handler = functools.partial(_Quiet, directory=str(args.book))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    http_url = f"http://127.0.0.1:{httpd.server_address[1]}/notebooks/08_bert.html"

    from playwright.sync_api import sync_playwright

    print(
        f"{platform.processor() or platform.machine()}, Chromium headless; weights file "
        f"{weights.stat().st_size / 1e6:.1f} MB"
    )
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        print(f"Chromium {browser.version}")
        for name, url in (("http", http_url), ("file://", chapter.as_uri())):
            r = measure(browser, url, args.repeat)
            print(
                f"{name:8s} load-to-ready {r['load_ms']:6.0f} ms | 16-token forward, median "
                f"of {args.repeat}: {r['median_ms']:5.1f} ms | console errors and failed "
                f"requests: {len(r['errors'])}"
            )
        browser.close()
    httpd.shutdown()


if __name__ == "__main__":
    main()
