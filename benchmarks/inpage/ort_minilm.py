"""MiniLM on onnxruntime-web in the browser tests' Chromium: size, load-to-ready, a 16-token
forward pass, and whether it works over file://. The other side of the dependency choice (the
hand-written forward pass is benchmarks/inpage_minilm.py).

    python benchmarks/inpage/ort_minilm.py --onnx DIR --ort NODE_MODULES/onnxruntime-web

DIR holds what export_minilm_onnx.py wrote (minilm.int8.onnx, sixteen_ids.npy,
sixteen_want.npz). Run with the project's venv (Playwright, Debian's chromium). It writes a
site into a temporary folder: onnxruntime-web's CPU build (ort.wasm.min.js, the
ort-wasm-simd-threaded .mjs loader and .wasm) and the model, both as plain files and as
`<script src>` files that carry them in base64 (fetch() of local files is refused over
file://, a script tag is not), and opens it three ways: over http with fetch (the usual way),
over http with the script files, and over file:// with the script files. Each run: from the
start of loading to a session that has run once (load-to-ready), then 5 untimed and `--repeat`
timed 16-token passes (median), and the largest difference of the attention weights from
PyTorch float32 (int8 weights: quantisation error, not an error of the runtime).
Timings are the machine's at that moment: run it on a quiet machine and say its load.
"""

from __future__ import annotations

import argparse
import base64
import functools
import http.server
import json
import shutil
import statistics
import tempfile
import threading
from pathlib import Path

import numpy as np
from playwright.sync_api import sync_playwright

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--disable-background-networking"]
RUNTIME = ["ort.wasm.min.js", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm"]

PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>ort MiniLM</title>
<link rel="icon" href="data:,"><script src="ort.wasm.min.js"></script></head><body>
<script>
function script(src) {
  return new Promise((ok, fail) => {
    const s = document.createElement("script");
    s.src = src; s.onload = ok; s.onerror = () => fail(new Error("cannot load " + src));
    document.head.appendChild(s);
  });
}
function bytesOf(b64) {
  const bin = atob(b64); const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}
window.load = async (how) => {
  const t0 = performance.now();
  ort.env.wasm.numThreads = 1;  // no COOP/COEP on a static host: one thread
  let model;
  if (how === "fetch") {
    const here = new URL(".", location.href).href;
    ort.env.wasm.wasmPaths = { mjs: here + "ort-wasm-simd-threaded.mjs",
                               wasm: here + "ort-wasm-simd-threaded.wasm" };
    model = "minilm.int8.onnx";
  } else {
    await Promise.all([script("ort-wasm.b64.js"), script("ort-mjs.js"), script("model.b64.js")]);
    ort.env.wasm.wasmBinary = bytesOf(window.ORT_WASM_B64);
    const mjs = new Blob([window.ORT_MJS], { type: "text/javascript" });
    ort.env.wasm.wasmPaths = { mjs: URL.createObjectURL(mjs) };
    model = bytesOf(window.MODEL_B64);
  }
  window.session = await ort.InferenceSession.create(model, { executionProviders: ["wasm"] });
  await window.forward(window.IDS);
  return performance.now() - t0;
};
window.forward = async (ids) => {
  const t = new ort.Tensor("int64", BigInt64Array.from(ids.map(BigInt)), [1, ids.length]);
  return window.session.run({ input_ids: t });
};
window.bench = async (n) => {
  for (let k = 0; k < 5; k++) await window.forward(window.IDS);
  const times = [];
  let out;
  for (let k = 0; k < n; k++) {
    const t0 = performance.now();
    out = await window.forward(window.IDS);
    times.push(performance.now() - t0);
  }
  const att = [];
  for (let l = 0; l < 6; l++) att.push(Array.from(out["attention_" + l].data));
  return { times, att, hidden: Array.from(out.last_hidden_state.data) };
};
</script></body></html>
"""


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        pass


def write_site(site: Path, onnx_dir: Path, ort_dir: Path) -> dict:
    for name in RUNTIME:
        shutil.copy(ort_dir / "dist" / name, site / name)
    shutil.copy(onnx_dir / "minilm.int8.onnx", site / "minilm.int8.onnx")
    wasm = (site / "ort-wasm-simd-threaded.wasm").read_bytes()
    model = (site / "minilm.int8.onnx").read_bytes()
    mjs = (site / "ort-wasm-simd-threaded.mjs").read_text(encoding="utf-8")
    b64 = lambda data: base64.b64encode(data).decode("ascii")  # noqa: E731
    (site / "ort-wasm.b64.js").write_text(f'window.ORT_WASM_B64 = "{b64(wasm)}";\n')
    (site / "model.b64.js").write_text(f'window.MODEL_B64 = "{b64(model)}";\n')
    (site / "ort-mjs.js").write_text(f"window.ORT_MJS = {json.dumps(mjs)};\n")
    ids = np.load(onnx_dir / "sixteen_ids.npy")[0].tolist()
    (site / "index.html").write_text(PAGE.replace("<body>", f"<body><script>window.IDS = {ids};"
                                                  "</script>"), encoding="utf-8")
    return {name: (site / name).stat().st_size for name in sorted(p.name for p in site.iterdir())}


def run(browser, url: str, how: str, repeat: int, want) -> dict:
    page = browser.new_page()
    problems = []
    page.on("console", lambda m: m.type == "error" and problems.append(m.text))
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("requestfailed", lambda r: problems.append(f"failed: {r.url} {r.failure}"))
    page.goto(url, wait_until="load")
    try:
        ready = page.evaluate("(how) => window.load(how)", how)
        out = page.evaluate("(n) => window.bench(n)", repeat)
    except Exception as err:  # noqa: BLE001 - report what failed
        page.close()
        return {"how": how, "url": url.split(":")[0], "works": False,
                "error": str(err).splitlines()[0], "problems": problems}
    page.close()
    pairs = zip(out["att"], want[1:], strict=True)
    att = max(float(np.abs(np.array(a) - w.ravel()).max()) for a, w in pairs)
    hidden = float(np.abs(np.array(out["hidden"]) - want[0].ravel()).max())
    return {"how": how, "url": url.split(":")[0], "works": not problems, "ready_ms": ready,
            "forward_ms": statistics.median(out["times"]), "attention_err": att,
            "hidden_err": hidden, "problems": problems}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--onnx", type=Path, required=True)
    parser.add_argument("--ort", type=Path, required=True, help="node_modules/onnxruntime-web")
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    data = np.load(args.onnx / "sixteen_want.npz")
    want = [data[f"arr_{k}"] for k in range(7)]
    version = json.loads((args.ort / "package.json").read_text())["version"]
    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp)
        sizes = write_site(site, args.onnx, args.ort)
        print(f"onnxruntime-web {version}; files (bytes):")
        for name, size in sizes.items():
            print(f"  {name:32s} {size / 1e6:8.2f} MB")
        handler = functools.partial(_Quiet, directory=tmp)
        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        base = f"http://127.0.0.1:{httpd.server_address[1]}/index.html"
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            print(f"Chromium {browser.version}")
            runs = [run(browser, base, "fetch", args.repeat, want),
                    run(browser, base, "scripts", args.repeat, want),
                    run(browser, (site / "index.html").as_uri(), "fetch", args.repeat, want),
                    run(browser, (site / "index.html").as_uri(), "scripts", args.repeat, want)]
            browser.close()
        httpd.shutdown()
    for r in runs:
        if "ready_ms" in r:
            print(f"{r['url']:5s} {r['how']:8s} works={r['works']} load-to-ready "
                  f"{r['ready_ms']:.0f} ms, 16-token forward {r['forward_ms']:.1f} ms "
                  f"(median of {args.repeat}), attention vs PyTorch {r['attention_err']:.1e}, "
                  f"hidden {r['hidden_err']:.1e}")
        else:
            print(f"{r['url']:5s} {r['how']:8s} works=False: {r['error']}")
        for problem in r["problems"][:3]:
            print(f"      {problem[:200]}")


if __name__ == "__main__":
    main()
