// SamplingExplorer: the browser half of attnlib.widgets.sampling.SamplingExplorer.
//
// Python sends, once, each prompt's M most likely next tokens with their logits, and a histogram
// of the logits of all the other tokens. This module recomputes the next-token distribution
// softmax(top_p(top_k(logits / temperature))) here, in plain JavaScript, whenever the reader moves a
// slider, and draws tokens from it. That keeps the widget interactive in the static book, with
// no kernel.

const MAX_DRAWS = 20; // draws kept on show
const SAMPLING_HELP =
  "Pick a prompt. Temperature below 1 sharpens the next-token distribution, above 1 " +
  "flattens it; top-k keeps only the k most likely tokens; top-p keeps the most likely tokens " +
  "until they hold a share p of the probability (1 = off). Draw to sample from it.";
const TOP_P_STEPS = 100; // the top-p slider's positions: p = position / 100, 100 = off

// ---------------------------------------------------------------------------------------------
// The mathematics (exported for the browser tests)

/**
 * The next-token distribution of one prompt.
 *
 * logits: the M named tokens' logits, largest first.
 * tail:   [[value, count], ...], the histogram of the other tokens' logits.
 * topK:   0 = no limit; otherwise only the topK most likely named tokens stay possible.
 * topP:   1 = no limit; otherwise, after the temperature and top-k, only the nucleus stays
 *         possible: the most likely tokens, in order, while the mass before each is below topP
 *         (the arithmetic of attnlib.generation.top_p_filter). Tokens of the tail are taken bin
 *         by bin, largest logit first, each bin's tokens one at a time.
 *
 * Returns { probs (M numbers), other (the other tokens' total probability), entropy (bits),
 * possible (how many tokens have a non-zero probability) }. Computed relative to the largest
 * logit, so nothing overflows however small the temperature is.
 */
export function distribution({ logits, tail, temperature, topK, topP = 1, vocabSize }) {
  const M = logits.length;
  const k = topK > 0 ? Math.min(topK, M) : M;
  const top = logits[0];
  const weights = new Array(M).fill(0);
  let total = 0;
  for (let i = 0; i < k; i++) {
    weights[i] = Math.exp((logits[i] - top) / temperature);
    total += weights[i];
  }
  let tailWeights = []; // [weight of one token, how many tokens], largest logit first
  if (topK <= 0) {
    for (let b = tail.length - 1; b >= 0; b--) {
      const [value, count] = tail[b];
      tailWeights.push([Math.exp((value - top) / temperature), count]);
    }
    tailWeights.sort((a, b) => b[0] - a[0]);
  }
  let tailTotal = tailWeights.reduce((n, [w, count]) => n + count * w, 0);
  let possible = topK > 0 ? k : vocabSize || M + tail.reduce((n, [, c]) => n + c, 0);
  if (topP < 1) {
    const Z0 = total + tailTotal;
    let before = 0; // the mass of the likelier tokens, as top_p_filter's cumsum
    possible = 0;
    for (let i = 0; i < M; i++) {
      if (weights[i] > 0 && before < topP) {
        before += weights[i] / Z0;
        possible += 1;
      } else weights[i] = 0;
    }
    tailWeights = tailWeights.map(([w, count]) => {
      const p = w / Z0;
      const n = before < topP && p > 0 ? Math.min(count, Math.ceil((topP - before) / p)) : 0;
      before += n * p;
      possible += n;
      return [w, n];
    });
    total = weights.reduce((n, w) => n + w, 0);
    tailTotal = tailWeights.reduce((n, [w, count]) => n + count * w, 0);
  }
  const Z = total + tailTotal;
  const probs = weights.map((w) => w / Z);
  let entropy = 0;
  for (const p of probs) if (p > 0) entropy -= p * Math.log2(p);
  for (const [w, count] of tailWeights) {
    const p = w / Z;
    if (p > 0 && count > 0) entropy -= count * p * Math.log2(p);
  }
  return { probs, other: tailTotal / Z, entropy, possible };
}

/**
 * Draw one token: an index into the named tokens, or -1 for "one of the other tokens".
 * `u` is a uniform number in [0, 1) (Math.random() in the page; fixed in the tests).
 */
export function draw(probs, other, u) {
  let acc = 0;
  for (let i = 0; i < probs.length; i++) {
    acc += probs[i];
    if (u < acc) return i;
  }
  return other > 0 ? -1 : probs.reduce((best, p, i) => (p > probs[best] ? i : best), 0);
}

// ---------------------------------------------------------------------------------------------
// The view

function percent(p) {
  if (p === 0) return "0";
  if (p < 0.0005) return "<0.1%";
  return `${(100 * p).toFixed(1)}%`;
}

/** The prompt selector and the temperature, top-k and top-p sliders. */
function samplingControls(prompts, M) {
  const prompt = selectControl("se", "prompt", "Prompt", prompts, "Which prompt");
  const temperature = temperatureControl("se", "se-value se-t-value");
  // The last top-k position, M + 1, means "no limit".
  const topK = sliderControl("se", "topk", "Top-k", 1, M + 1, {
    ariaLabel: "Top-k (rightmost: all tokens)",
    valueClass: "se-value se-k-value",
  });
  // Top-p from 0.01 to 1; the last position, p = 1, keeps every token: "off".
  const topP = sliderControl("se", "topp", "Top-p", 1, TOP_P_STEPS, {
    ariaLabel: "Top-p (rightmost: off)",
    valueClass: "se-value se-p-value",
  });
  const bar = controlBar("se", [prompt.label, temperature.label, topK.label, topP.label]);
  return { bar, select: prompt.select, temperature, topK, topP };
}

/** The bars: one per shown token, and one for all the other tokens. */
function distributionBars(nShown) {
  const rows = Array.from({ length: nShown }, (_, i) => {
    const bar = barRow("se", "");
    bar.label.classList.add("attn-token", "attn-mono", "se-token");
    bar.row.dataset.i = String(i);
    return bar;
  });
  const other = barRow("se", "all other tokens", "se-other");
  const box = el("div", { class: "attn-bars se-bars" }, [...rows, other].map((bar) => bar.row));
  return { box, rows, other };
}

/** Show one bar's probability, and whether top-k excluded it. */
function showBar(bar, p) {
  setBar(bar, p);
  bar.value.textContent = percent(p);
  bar.row.dataset.p = p.toFixed(6);
  bar.row.classList.toggle("se-excluded", p === 0);
}

/** The draws so far, as chips (newest last). */
function showDraws(box, drawn) {
  box.dataset.count = String(drawn.length);
  box.replaceChildren(
    ...(drawn.length ? ["Independent draws of the next token (newest last): "] : []),
    ...drawn.map(({ text, index }) => {
      const cls = index >= 0 ? "se-chip attn-token attn-mono se-token" : "se-chip se-chip-other";
      return el("span", { class: cls, text, dataset: { i: String(index) } });
    }),
  );
}

function render({ model, el: host }) {
  const prompts = model.get("prompts");
  const candidates = model.get("candidates");
  const M = candidates.length ? candidates[0].length : 0;
  const nShown = Math.min(model.get("shown"), M);

  const { root, announce } = widgetRoot("se", model, "Sampling explorer", SAMPLING_HELP);
  const controls = samplingControls(prompts, M);
  const promptText = el("span", { class: "se-prompt-text" });
  const stats = el("div", { class: "se-stats" });
  const bars = distributionBars(nShown);
  const drawButton = button("se-draw", "Draw 5 tokens");
  const clearButton = button("se-clear", "Clear");
  const drawnBox = el("div", { class: "se-drawn", dataset: { count: "0" } });
  root.append(
    controls.bar,
    el("div", { class: "attn-mono se-prompt-line" }, [
      promptText,
      el("span", { class: "se-next", text: "\u2009?" }),
    ]),
    stats,
    bars.box,
    el("div", { class: "se-actions" }, [drawButton, clearButton]),
    drawnBox,
  );
  host.appendChild(root);

  let drawn = [];
  let current = null;

  let first = true;
  function update() {
    const p = clampIndex(model.get("prompt"), prompts.length);
    const temperature = model.get("temperature");
    const topK = model.get("top_k") | 0;
    const topP = Number(model.get("top_p") ?? 1);
    current = distribution({
      logits: model.get("logits")[p],
      tail: model.get("tail")[p],
      temperature,
      topK,
      topP,
      vocabSize: model.get("vocab_size"),
    });
    const { temperature: t, topK: k, topP: tp } = controls;
    controls.select.value = String(p);
    showTemperature(t, temperature);
    if (document.activeElement !== k.input) k.input.value = String(topK > 0 ? topK : M + 1);
    k.value.textContent = topK > 0 ? `k = ${topK}` : "all";
    k.input.setAttribute("aria-valuetext", topK > 0 ? `top ${topK}` : "all tokens");
    const pText = topP < 1 ? `top-p ${topP.toFixed(2)}` : "top-p off";
    if (document.activeElement !== tp.input) {
      tp.input.value = String(Math.max(1, Math.round(topP * TOP_P_STEPS)));
    }
    tp.value.textContent = topP < 1 ? `p = ${topP.toFixed(2)}` : "off";
    tp.input.setAttribute("aria-valuetext", pText);
    promptText.textContent = prompts[p];
    stats.textContent =
      `${current.possible.toLocaleString("en-US")} tokens can be drawn; ` +
      `entropy ${current.entropy.toFixed(2)} bits`;

    let rest = current.other;
    for (let i = nShown; i < M; i++) rest += current.probs[i];
    bars.rows.forEach((bar, i) => {
      bar.label.textContent = shown(candidates[p][i]);
      bar.label.title = `token: ${JSON.stringify(candidates[p][i])}`;
      showBar(bar, current.probs[i]);
    });
    showBar(bars.other, rest);
    const limit = topK > 0 ? `top ${topK}` : "all tokens";
    const settings = `\u03c4 = ${temperature.toFixed(2)}, ${limit}, ${pText}`;
    const best = M ? `; most likely ${shown(candidates[p][0])} ${percent(current.probs[0])}` : "";
    if (!first) announce(`${settings}: ${stats.textContent}${best}.`);
    first = false;
  }

  // --- view -> state -------------------------------------------------------------------------
  const clear = () => {
    drawn = [];
    showDraws(drawnBox, drawn);
  };
  controls.select.addEventListener("change", () => {
    clear();
    setState(model, { prompt: Number(controls.select.value) });
  });
  const { temperature: t, topK: k, topP: tp } = controls;
  t.input.addEventListener("input", () =>
    setState(model, { temperature: sliderToTemperature(t.input.value) }),
  );
  k.input.addEventListener("input", () => {
    const v = Number(k.input.value);
    setState(model, { top_k: v > M ? 0 : v });
  });
  tp.input.addEventListener("input", () =>
    setState(model, { top_p: Number(tp.input.value) / TOP_P_STEPS }),
  );
  drawButton.addEventListener("click", () => {
    const p = model.get("prompt") | 0;
    for (let n = 0; n < 5; n++) {
      const index = draw(current.probs, current.other, Math.random());
      drawn.push({ index, text: index >= 0 ? shown(candidates[p][index]) : "(another token)" });
    }
    const fresh = drawn.slice(-5).map((d) => d.text);
    drawn = drawn.slice(-MAX_DRAWS);
    showDraws(drawnBox, drawn);
    announce(`Drew ${fresh.join(", ")}.`);
  });
  clearButton.addEventListener("click", clear);

  const stop = listen(model, ["prompt", "temperature", "top_k", "top_p"], update);
  update();
  return stop;
}

export default { render };
