"""The date translator in the page: how long one date takes in the browser tests' Chromium.

    .venv/bin/python benchmarks/inpage_dates.py              # the chapter's model, trained here
    .venv/bin/python benchmarks/inpage_dates.py --untrained  # same sizes, no training (faster)

Trains the RNN chapter's Bahdanau model the chapter's way (its data, seeds, sizes and 200 steps,
on one thread; about 20 s), packs it as DecodingStepper.live does, loads decoding.js (the shared
base, _nn.js and the view, as the widget sends them) into headless Chromium, and times the
page's translateText (the encoder, the greedy decoder and the packing of the weights for the
view) on one date per locale: 5 untimed calls, then the median of ``--repeat`` timed ones. The
size of the weights is printed too. Timings are never asserted in tests.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import statistics
from pathlib import Path

import torch

import attnlib
from attnlib import rnn
from attnlib.data import dates
from attnlib.widgets._frontend import build_esm
from attnlib.widgets.decoding import DecodingStepper

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
DAY = datetime.date(2026, 11, 22)

LOAD_JS = """async (src) => {
  const url = URL.createObjectURL(new Blob([src], { type: "text/javascript" }));
  window.decoding = await import(url);
}"""
TIME_JS = """([live, text, n]) => {
  const d = window.decoding;
  const net = d.loadTranslator(live);
  for (let i = 0; i < 5; i++) d.translateText(net, text);
  const times = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const found = d.translateText(net, text);
    times.push(performance.now() - t0);
    if (!found) throw new Error("nothing translated");
  }
  return { times, output: d.translateText(net, text).text };
}"""
LOAD_TIME_JS = """([live]) => {
  const t0 = performance.now();
  window.decoding.loadTranslator(live);
  return performance.now() - t0;
}"""


def chapter_model(trained: bool):
    torch.set_num_threads(1)
    data = dates.splits(n_train=20_000, n_test=1_000, seed=0)
    src_vocab = dates.CharVocab.build(s for s, _ in data["train"])
    tgt_vocab = dates.CharVocab.build(t for _, t in data["train"])
    attnlib.seed(0)
    model = rnn.build("bahdanau", len(src_vocab), len(tgt_vocab))
    if trained:
        train_set = rnn.encode_pairs(data["train"], src_vocab, tgt_vocab)
        rnn.train(model, train_set, steps=200, batch_size=128, lr=1e-2, seed=0)
    return model, src_vocab, tgt_vocab


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--untrained", action="store_true", help="skip training (same sizes)")
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()

    model, src_vocab, tgt_vocab = chapter_model(not args.untrained)
    widget = DecodingStepper.live(model, src_vocab, tgt_vocab, text=dates.render(DAY, "fr"))
    live = widget.live_model
    print(f"weights: {widget.weight_bytes():,} bytes float32 ({len(live['blob']):,} as base64), "
          f"{rnn.count_parameters(model):,} parameters")  # fmt: skip

    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page()
        page.goto("about:blank")
        page.evaluate(LOAD_JS, build_esm("decoding"))
        print(f"Chromium {browser.version} on {platform.machine()}, "
              f"{'untrained' if args.untrained else 'trained'} model")  # fmt: skip
        load = [page.evaluate(LOAD_TIME_JS, [live]) for _ in range(5)]
        print(f"unpacking the weights: median {statistics.median(load):.1f} ms of 5")
        medians = []
        for loc in dates.TRAIN_LOCALES + dates.HELD_OUT_LOCALES:
            text = dates.render(DAY, loc)
            found = page.evaluate(TIME_JS, [live, text, args.repeat])
            med = statistics.median(found["times"])
            medians.append(med)
            print(f"  {loc:8s} {text!r:32s} -> {found['output']!r:14s} "
                  f"median {med:.2f} ms of {args.repeat}")
        print(f"one date translated in the page: median {statistics.median(medians):.2f} ms "
              f"(the median over {len(medians)} locales of each one's median of {args.repeat})")
        browser.close()


if __name__ == "__main__":
    main()
