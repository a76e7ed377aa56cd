// SamplingExplorer: the browser half of attnlib.widgets.sampling.SamplingExplorer.
//
// Python sends, once, each prompt's M most likely next tokens with their logits, and a histogram
// of the logits of all the other tokens. This module recomputes the next-token distribution
// softmax(top_k(logits) / T) here, in plain JavaScript, whenever the reader moves a slider, and
// draws tokens from it. That keeps the widget interactive in the static book, with no kernel.
//
// Security: prompts and tokens are data, never markup. Every piece of text goes in through
// textContent or createTextNode; this file never parses HTML.

const T_MIN = 0.05;
const T_MAX = 5;
const STEPS = 200; // temperature slider positions (log scale, as in AttentionExplorer)
const MAX_DRAWS = 20; // draws kept on show

// ---------------------------------------------------------------------------------------------
// The mathematics (exported for the browser tests)

/** Temperature -> slider position on a log scale from T_MIN to T_MAX. */
export function temperatureToSlider(t) {
  const clamped = Math.min(T_MAX, Math.max(T_MIN, t));
  return Math.round((Math.log(clamped / T_MIN) / Math.log(T_MAX / T_MIN)) * STEPS);
}

/** Slider position -> temperature, rounded to 3 decimals. */
export function sliderToTemperature(v) {
  const t = T_MIN * Math.pow(T_MAX / T_MIN, Number(v) / STEPS);
  return Math.round(t * 1000) / 1000;
}

/**
 * The next-token distribution of one prompt.
 *
 * logits: the M named tokens' logits, largest first.
 * tail:   [[value, count], ...], the histogram of the other tokens' logits.
 * topK:   0 = no limit; otherwise only the topK most likely named tokens stay possible.
 *
 * Returns { probs (M numbers), other (the other tokens' total probability), entropy (bits),
 * possible (how many tokens have a non-zero probability) }. Computed relative to the largest
 * logit, so nothing overflows however small T is.
 */
export function distribution({ logits, tail, temperature, topK, vocabSize }) {
  const M = logits.length;
  const k = topK > 0 ? Math.min(topK, M) : M;
  const top = logits[0];
  const weights = new Array(M).fill(0);
  let total = 0;
  for (let i = 0; i < k; i++) {
    weights[i] = Math.exp((logits[i] - top) / temperature);
    total += weights[i];
  }
  let tailTotal = 0;
  const tailWeights = [];
  if (topK <= 0) {
    for (const [value, count] of tail) {
      const w = Math.exp((value - top) / temperature);
      tailWeights.push([w, count]);
      tailTotal += count * w;
    }
  }
  const Z = total + tailTotal;
  const probs = weights.map((w) => w / Z);
  let entropy = 0;
  for (const p of probs) if (p > 0) entropy -= p * Math.log2(p);
  for (const [w, count] of tailWeights) {
    const p = w / Z;
    if (p > 0) entropy -= count * p * Math.log2(p);
  }
  const possible = topK > 0 ? k : vocabSize || M + tail.reduce((n, [, c]) => n + c, 0);
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
// Small DOM helpers: text goes in as text only.

function h(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/**
 * A token as a reader should see it: line breaks and tabs made visible, and a token made of
 * spaces only shown as open boxes (a leading space stays a space: " Paris").
 */
export function shown(token) {
  if (token === "") return "\u2205";
  const text = String(token).replace(/\n/g, "\u21b5").replace(/\t/g, "\u21e5");
  return /^ +$/.test(text) ? "\u2423".repeat(text.length) : text;
}

function percent(p) {
  if (p === 0) return "0";
  if (p < 0.0005) return "<0.1%";
  return `${(100 * p).toFixed(1)}%`;
}

// ---------------------------------------------------------------------------------------------

function render({ model, el }) {
  const prompts = model.get("prompts");
  const candidates = model.get("candidates");
  const M = candidates.length ? candidates[0].length : 0;
  const nShown = Math.min(model.get("shown"), M);
  const vocabSize = model.get("vocab_size");
  const uid = `se-${Math.random().toString(36).slice(2, 10)}`;

  const root = h("div", "se-root");
  root.setAttribute("role", "group");
  root.setAttribute("aria-label", model.get("title") || "Sampling explorer");
  const title = model.get("title");
  if (title) root.appendChild(h("div", "se-title", title));
  root.appendChild(
    h(
      "p",
      "se-help",
      "Pick a prompt. Temperature below 1 sharpens the next-token distribution, above 1 " +
        "flattens it; top-k keeps only the k most likely tokens. Draw to sample from it.",
    ),
  );

  // --- controls ------------------------------------------------------------------------------
  const controls = h("div", "se-controls");

  const pLabel = h("label", "se-control se-prompt");
  pLabel.appendChild(h("span", "se-control-name", "Prompt"));
  const select = document.createElement("select");
  select.setAttribute("aria-label", "Which prompt");
  prompts.forEach((text, index) => {
    const option = document.createElement("option");
    option.value = String(index);
    option.textContent = text;
    select.appendChild(option);
  });
  pLabel.appendChild(select);
  controls.appendChild(pLabel);

  const tLabel = h("label", "se-control se-temperature");
  tLabel.appendChild(h("span", "se-control-name", "Temperature"));
  const tSlider = document.createElement("input");
  tSlider.type = "range";
  tSlider.id = `${uid}-t`;
  tSlider.min = "0";
  tSlider.max = String(STEPS);
  tSlider.step = "1";
  tSlider.setAttribute("aria-label", "Temperature");
  const tValue = h("output", "se-value se-t-value");
  tValue.setAttribute("aria-live", "polite");
  tLabel.append(tSlider, tValue);
  controls.appendChild(tLabel);

  const kLabel = h("label", "se-control se-topk");
  kLabel.appendChild(h("span", "se-control-name", "Top-k"));
  const kSlider = document.createElement("input");
  kSlider.type = "range";
  kSlider.id = `${uid}-k`;
  kSlider.min = "1";
  kSlider.max = String(M + 1); // the last position means "no limit"
  kSlider.step = "1";
  kSlider.setAttribute("aria-label", "Top-k (rightmost: all tokens)");
  const kValue = h("output", "se-value se-k-value");
  kValue.setAttribute("aria-live", "polite");
  kLabel.append(kSlider, kValue);
  controls.appendChild(kLabel);
  root.appendChild(controls);

  // --- the prompt, the stats and the bars --------------------------------------------------------
  const promptLine = h("div", "se-prompt-line");
  const promptText = h("span", "se-prompt-text");
  promptLine.append(promptText, h("span", "se-next", "\u2009?"));
  root.appendChild(promptLine);

  const stats = h("div", "se-stats");
  stats.setAttribute("aria-live", "polite");
  root.appendChild(stats);

  const bars = h("div", "se-bars");
  const barRows = [];
  for (let i = 0; i < nShown; i++) {
    const row = h("div", "se-bar-row");
    row.dataset.i = String(i);
    const label = h("span", "se-bar-label se-token");
    const track = h("span", "se-bar-track");
    const fill = h("span", "se-bar-fill");
    track.appendChild(fill);
    const value = h("span", "se-bar-value");
    row.append(label, track, value);
    bars.appendChild(row);
    barRows.push({ row, label, fill, value });
  }
  const otherRow = h("div", "se-bar-row se-other");
  const otherLabel = h("span", "se-bar-label", "all other tokens");
  const otherTrack = h("span", "se-bar-track");
  const otherFill = h("span", "se-bar-fill");
  otherTrack.appendChild(otherFill);
  const otherValue = h("span", "se-bar-value");
  otherRow.append(otherLabel, otherTrack, otherValue);
  bars.appendChild(otherRow);
  root.appendChild(bars);

  const actions = h("div", "se-actions");
  const drawButton = h("button", "se-draw", "Draw 5 tokens");
  drawButton.type = "button";
  const clearButton = h("button", "se-clear", "Clear");
  clearButton.type = "button";
  actions.append(drawButton, clearButton);
  root.appendChild(actions);
  const drawnBox = h("div", "se-drawn");
  drawnBox.setAttribute("aria-live", "polite");
  drawnBox.dataset.count = "0";
  root.appendChild(drawnBox);
  el.appendChild(root);

  let drawn = [];
  let current = null;

  function update() {
    const p = Math.min(Math.max(0, model.get("prompt") | 0), Math.max(0, prompts.length - 1));
    const temperature = model.get("temperature");
    const topK = model.get("top_k") | 0;
    current = distribution({
      logits: model.get("logits")[p],
      tail: model.get("tail")[p],
      temperature,
      topK,
      vocabSize,
    });
    const names = candidates[p];

    select.value = String(p);
    if (document.activeElement !== tSlider) tSlider.value = String(temperatureToSlider(temperature));
    tValue.textContent = `T = ${temperature.toFixed(2)}`;
    tSlider.setAttribute("aria-valuetext", `temperature ${temperature.toFixed(2)}`);
    if (document.activeElement !== kSlider) kSlider.value = String(topK > 0 ? topK : M + 1);
    kValue.textContent = topK > 0 ? `k = ${topK}` : "all";
    kSlider.setAttribute("aria-valuetext", topK > 0 ? `top ${topK}` : "all tokens");

    promptText.textContent = prompts[p];

    stats.textContent =
      `${current.possible.toLocaleString("en-US")} tokens can be drawn; ` +
      `entropy ${current.entropy.toFixed(2)} bits`;

    let rest = current.other;
    for (let i = nShown; i < M; i++) rest += current.probs[i];
    barRows.forEach(({ row, label, fill, value }, i) => {
      const prob = current.probs[i];
      label.textContent = shown(names[i]);
      label.title = `token: ${JSON.stringify(names[i])}`;
      fill.style.width = `${(100 * prob).toFixed(2)}%`;
      value.textContent = percent(prob);
      row.dataset.p = prob.toFixed(6);
      row.classList.toggle("se-excluded", prob === 0);
    });
    otherFill.style.width = `${(100 * rest).toFixed(2)}%`;
    otherValue.textContent = percent(rest);
    otherRow.dataset.p = rest.toFixed(6);
    otherRow.classList.toggle("se-excluded", rest === 0);
  }

  // --- view -> state -------------------------------------------------------------------------
  function showDraws() {
    drawnBox.textContent = "";
    drawnBox.dataset.count = String(drawn.length);
    if (!drawn.length) return;
    drawnBox.appendChild(
      document.createTextNode("Independent draws of the next token (newest last): "),
    );
    for (const { text, index } of drawn) {
      const chip = h("span", index >= 0 ? "se-chip se-token" : "se-chip se-chip-other", text);
      chip.dataset.i = String(index);
      drawnBox.appendChild(chip);
    }
  }

  select.addEventListener("change", () => {
    drawn = [];
    showDraws();
    model.set("prompt", Number(select.value));
    model.save_changes();
  });
  tSlider.addEventListener("input", () => {
    model.set("temperature", sliderToTemperature(tSlider.value));
    model.save_changes();
  });
  kSlider.addEventListener("input", () => {
    const v = Number(kSlider.value);
    model.set("top_k", v > M ? 0 : v);
    model.save_changes();
  });
  drawButton.addEventListener("click", () => {
    const p = model.get("prompt") | 0;
    for (let n = 0; n < 5; n++) {
      const index = draw(current.probs, current.other, Math.random());
      drawn.push({ index, text: index >= 0 ? shown(candidates[p][index]) : "(another token)" });
    }
    if (drawn.length > MAX_DRAWS) drawn = drawn.slice(-MAX_DRAWS);
    showDraws();
  });
  clearButton.addEventListener("click", () => {
    drawn = [];
    showDraws();
  });

  const events = ["prompt", "temperature", "top_k"].map((name) => `change:${name}`);
  for (const event of events) model.on(event, update);
  update();

  return () => {
    for (const event of events) model.off(event, update);
  };
}

export default { render };
