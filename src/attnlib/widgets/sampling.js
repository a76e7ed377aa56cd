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

/** The prompt selector (none when prompts is null) and the temperature, top-k, top-p sliders. */
function samplingControls(prompts, M) {
  const prompt = prompts ? selectControl("se", "prompt", "Prompt", prompts, "Which prompt") : {};
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

/** Show the temperature, top-k and top-p on their controls; returns the settings as text. */
function showSettings(controls, M, temperature, topK, topP) {
  const { temperature: t, topK: k, topP: tp } = controls;
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
  const limit = topK > 0 ? `top ${topK}` : "all tokens";
  return `\u03c4 = ${temperature.toFixed(2)}, ${limit}, ${pText}`;
}

/** The sliders write the temperature, top-k (rightmost: 0, no limit) and top-p to the model. */
function wireSettings(model, controls, M) {
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
  if (model.get("weights")) return renderLive({ model, el: host });
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
    controls.select.value = String(p);
    const settings = showSettings(controls, M, temperature, topK, topP);
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
  wireSettings(model, controls, M);
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

// ---------------------------------------------------------------------------------------------
// Live mode (SamplingExplorer.live): a character GPT runs in the page on the reader's prompt.
//
// The model is attnlib.models.gpt.CharGPT, written out with _nn.js's layers: token embedding
// (plus learned positions, or ALiBi's distance penalties on the scores), pre-norm blocks
// x + attn(norm1(x)), x + mlp(norm2(x)), a final norm and the output layer tied to the
// embedding. A KV cache keeps every layer's keys and values, so each new character runs one
// position through the model. The page works in slices of a few milliseconds and gives the
// main thread back between them (setTimeout), so it never freezes; Stop ends a run. While
// it runs, the text, the attention and the bars are redrawn a few times a second.

const LIVE_HELP =
  "Type a prompt and press Generate: the model writes after it, one character at a time, " +
  "with the temperature, top-k and top-p below (top-k 1 is greedy); the same seed repeats a " +
  "run. The shaded rows show each head's attention for the newest character.";
const LIVE_SLICE_MS = 20; // work per slice before the page gets the main thread back
const LIVE_DRAW_MS = 50; // while it runs, the text and attention are redrawn at most this often
const PROMPT_CHUNK = 32; // prompt positions run through the model per step
const ATTENTION_SHOWN = 48; // the newest characters whose attention is drawn
const LIVE_SHOWN_BARS = 10;

/** mulberry32: uniform numbers in [0, 1) from a 32-bit seed, the same sequence everywhere. */
export function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The model from the widget's state: {config (the sizes), t (tensors by PyTorch name)}. */
export function loadGPT(net, manifest, weights) {
  return { config: net, t: unpackTensors(manifest, decodeBase64(weights)) };
}

/** An empty KV cache: each layer's keys and values, rows of D, room for the whole context. */
export function newGPTCache(gpt) {
  const { num_layers: layers, context_length: C, d_model: D } = gpt.config;
  const room = () => Array.from({ length: layers }, () => new Float32Array(C * D));
  return { length: 0, keys: room(), values: room() };
}

/**
 * CharGPT.forward for the character ids `ids` (L of them) after the positions `cache` holds
 * (null: no cache, the ids start at position 0). The cache is extended in place.
 * Returns {logits (L, vocab_size), hidden (each block's output, (L, D)), attentions (each
 * block's weights, (H, L, S)), S = cached + L}.
 */
export function gptForward(gpt, ids, cache = null) {
  const { d_model: D, num_heads: H, num_layers: layers, vocab_size: V } = gpt.config;
  const { positions, slopes, eps, context_length: C } = gpt.config;
  const t = (name) => gpt.t[name].data;
  const L = ids.length;
  const past = cache ? cache.length : 0;
  const S = past + L;
  if (S > C) {
    throw new Error(`gptForward: ${past} cached + ${L} new positions exceed the context length ${C}`);
  }
  let x = embed(t("tok_embed.weight"), D, ids); // (L, D)
  if (positions === "learned") {
    x = add(x, embed(t("pos_embed.weight"), D, ids.map((_, i) => past + i))); // (L, D)
  }
  // New query i sits at position past + i: it may see keys 0 .. past + i (the causal mask),
  // ALiBi subtracting slope_h * distance from each score.
  const bias = (h, i, j) =>
    j > past + i ? -Infinity : slopes.length ? -slopes[h] * (past + i - j) : 0;
  const hidden = [];
  const attentions = [];
  for (let b = 0; b < layers; b++) {
    const w = (name) => t(`blocks.${b}.${name}.weight`);
    const bi = (name) => t(`blocks.${b}.${name}.bias`);
    const a = layerNorm(x, L, D, w("norm1"), bi("norm1"), eps); // (L, D)
    const q = linear(a, L, w("attn.q_proj"), bi("attn.q_proj"), D, D); // (L, D)
    let k = linear(a, L, w("attn.k_proj"), bi("attn.k_proj"), D, D); // (L, D)
    let v = linear(a, L, w("attn.v_proj"), bi("attn.v_proj"), D, D); // (L, D)
    if (cache) {
      cache.keys[b].set(k, past * D);
      cache.values[b].set(v, past * D);
      k = cache.keys[b].subarray(0, S * D); // (S, D)
      v = cache.values[b].subarray(0, S * D); // (S, D)
    }
    const { output, weights } = multiHeadAttentionBiased(q, k, v, L, S, H, D / H, bias);
    x = add(x, linear(output, L, w("attn.out_proj"), bi("attn.out_proj"), D, D)); // (L, D)
    const m = gelu(linear(layerNorm(x, L, D, w("norm2"), bi("norm2"), eps), L, w("mlp.0"),
      bi("mlp.0"), 4 * D, D)); // (L, 4D)
    x = add(x, linear(m, L, w("mlp.2"), bi("mlp.2"), D, 4 * D)); // (L, D)
    hidden.push(x);
    attentions.push(weights);
  }
  if (cache) cache.length = S;
  const final = layerNorm(x, L, D, t("norm.weight"), t("norm.bias"), eps);
  const logits = linear(final, L, t("tok_embed.weight"), null, V, D); // (L, V): tied weights
  return { logits, hidden, attentions };
}

/**
 * The next-character distribution of one row of logits (vocab_size): distribution()'s
 * temperature, top-k and top-p over every character. Returns distribution()'s result with
 * `order`, the character ids most likely first (ties: the smaller id first, as argmax).
 */
export function liveDistribution(row, temperature, topK, topP) {
  const order = Array.from(row.keys()).sort((a, b) => row[b] - row[a] || a - b);
  const logits = order.map((i) => row[i]);
  return { order, ...distribution({ logits, tail: [], temperature, topK, topP, vocabSize: row.length }) };
}

/**
 * A generation in progress: the ids so far (prompt first), those not yet run through the model
 * (`pending`), the cache, the last position's logits and attention, and the seeded generator.
 */
export function gptSession(gpt, promptIds, seed) {
  return {
    gpt,
    ids: promptIds.slice(),
    pending: promptIds.slice(),
    promptLength: promptIds.length,
    cache: newGPTCache(gpt),
    row: null, // (vocab_size) logits after the last position run
    newest: null, // each block's weights of the last position: (H, S)
    random: mulberry32(seed),
  };
}

/** Run up to `chunk` pending ids through the model (the cache grows by as many). */
export function feedSession(session, chunk = PROMPT_CHUNK) {
  const ids = session.pending.splice(0, chunk);
  if (!ids.length) return;
  const { logits, attentions } = gptForward(session.gpt, ids, session.cache);
  const V = session.gpt.config.vocab_size;
  const L = ids.length;
  const S = session.cache.length;
  const H = session.gpt.config.num_heads;
  session.row = logits.slice((L - 1) * V, L * V);
  session.newest = attentions.map((w) => {
    const last = new Float32Array(H * S); // (H, S): the last new query's row of every head
    for (let h = 0; h < H; h++) last.set(w.subarray((h * L + L - 1) * S, (h * L + L) * S), h * S);
    return last;
  });
}

/** Whether another character fits in the context (generate() stops at prompt + new = C). */
export function sessionHasRoom(session) {
  return session.ids.length < session.gpt.config.context_length;
}

/**
 * Draw the next character (after every pending id has run) with the settings
 * {temperature, topK, topP}, append it and run it through the model. Returns its id.
 */
export function stepSession(session, settings) {
  while (session.pending.length) feedSession(session);
  const d = liveDistribution(session.row, settings.temperature, settings.topK, settings.topP);
  const id = d.order[draw(d.probs, 0, session.random())];
  session.ids.push(id);
  session.pending.push(id);
  feedSession(session);
  return id;
}

/** n new characters after the prompt ids (fewer where the context ends): the page's loop in one go. */
export function generateIds(gpt, promptIds, n, { temperature = 1, topK = 0, topP = 1, seed = 0 } = {}) {
  const session = gptSession(gpt, promptIds, seed);
  const settings = { temperature, topK, topP };
  const out = [];
  while (out.length < n && sessionHasRoom(session)) out.push(stepSession(session, settings));
  return out;
}

/** Why the page cannot continue `chars` (code points), or "" (sampling.py's _live_problem). */
export function liveProblem(chars, index, context) {
  if (!chars.length) return "Type a prompt: the model needs at least one character to continue.";
  const unknown = [...new Set(chars.filter((c) => !index.has(c)))];
  if (unknown.length) {
    const listed = unknown.map((c) => `\u201c${shown(c)}\u201d`).join(", ");
    return `Not in the model's vocabulary of ${index.size} characters: ${listed}. ` +
      "Remove or replace them to generate.";
  }
  if (chars.length >= context) {
    return `The prompt has ${chars.length} characters; the model reads at most ${context}, ` +
      "prompt and new characters together. Shorten it.";
  }
  return "";
}

/** The prompt box, the seed and the length of a run, and the buttons. */
function liveControls(C) {
  const input = el("textarea", { class: "attn-mono se-live-input", rows: 3, "aria-label": "Your prompt", spellcheck: false });
  const number = (name, labelText, min, max) => {
    const field = el("input", { type: "number", min: String(min), max: String(max), step: "1", class: `se-${name}-input` });
    return { label: control("se", name, labelText, [field]), field };
  };
  const seed = number("seed", "Seed", 0, 4294967295);
  const length = number("length", "Characters", 1, C);
  const generate = button("se-generate", "Generate");
  const more = button("se-more", "One more character");
  const stop = button("se-stop", "Stop", { disabled: true });
  return {
    promptLabel: control("se", "text", "Your prompt", [input]),
    input,
    seed,
    length,
    buttons: el("div", { class: "se-actions" }, [generate, more, stop]),
    generate,
    more,
    stop,
  };
}

/**
 * One row of shaded characters per head of every layer, the newest ATTENTION_SHOWN characters:
 * {box, show(chars, newest)}. The cells are made once and updated in place.
 */
function attentionRows(H, layers) {
  const caption = el("div", { class: "se-attn-caption" });
  const rows = [];
  const lines = [];
  for (let b = 0; b < layers; b++) {
    for (let h = 0; h < H; h++) {
      const cells = Array.from({ length: ATTENTION_SHOWN }, () =>
        el("span", { class: "attn-heat se-attn-cell", hidden: true }),
      );
      const line = el("span", { class: "se-attn-cells attn-mono" }, cells);
      rows.push({ line, cells });
      lines.push(
        el("div", { class: "se-attn-row" }, [
          el("span", { class: "se-attn-label", text: `layer ${b} head ${h}` }),
          line,
        ]),
      );
    }
  }
  const scroll = scrollBox("se", lines, "Attention of the newest character");
  const box = el("div", { class: "se-attn" }, [caption, scroll.wrap]);
  function show(chars, newest) {
    const S = chars.length;
    const first = Math.max(0, S - ATTENTION_SHOWN);
    const over = S - first < S ? `the last ${S - first} of ${S}` : `all ${S}`;
    caption.textContent = S
      ? `Attention of the newest character \u201c${shown(chars[S - 1])}\u201d (position ` +
        `${S - 1}) over ${over} characters; each row shaded relative to its largest weight.`
      : "";
    rows.forEach(({ line, cells }, r) => {
      const b = Math.floor(r / H);
      const h = r % H;
      const w = newest ? newest[b].subarray(h * S, (h + 1) * S) : new Float32Array(S);
      let max = 0;
      for (let j = first; j < S; j++) max = Math.max(max, w[j]);
      line.dataset.weights = Array.from(w.subarray(first), (x) => x.toFixed(6)).join(" ");
      cells.forEach((cell, c) => {
        const j = first + c;
        cell.hidden = j >= S;
        if (j >= S) return;
        const text = shown(chars[j]);
        if (cell.textContent !== text) cell.textContent = text;
        setHeat(cell, max > 0 ? w[j] / max : 0);
      });
    });
  }
  return { box, show };
}

function renderLive({ model, el: host }) {
  const net = model.get("net");
  const vocabulary = model.get("vocabulary");
  const V = vocabulary.length;
  const C = net.context_length;
  const index = new Map(vocabulary.map((c, i) => [c, i]));
  const gpt = loadGPT(net, model.get("manifest"), model.get("weights"));
  const nShown = Math.min(LIVE_SHOWN_BARS, V);

  const { root, announce } = widgetRoot("se", model, "Live character GPT", LIVE_HELP);
  root.classList.add("se-live");
  const controls = samplingControls(null, V);
  const live = liveControls(C);
  const message = el("div", { class: "se-message", hidden: true });
  const promptText = el("span", { class: "se-prompt-text" });
  const generated = el("span", { class: "se-generated" });
  const textLine = el("div", { class: "attn-mono se-prompt-line se-live-text" }, [promptText, generated]);
  const status = el("div", { class: "se-stats se-live-status" });
  const stats = el("div", { class: "se-stats" });
  const bars = distributionBars(nShown);
  const attention = attentionRows(net.num_heads, net.num_layers);
  root.append(
    live.promptLabel,
    controlBar("se", [live.seed.label, live.length.label]),
    controls.bar,
    live.buttons,
    message,
    textLine,
    status,
    attention.box,
    el("div", { class: "se-next-title", text: "The next character:" }),
    stats,
    bars.box,
  );
  host.appendChild(root);

  let session = null;
  let run = 0; // the current run's number: a newer run (or Stop) ends the older one
  let goal = 0; // how many characters the current run still writes
  let speed = "";
  let drawn = 0; // when show() last ran

  const settings = () => ({
    temperature: model.get("temperature"),
    topK: model.get("top_k") | 0,
    topP: Number(model.get("top_p") ?? 1),
  });

  function showBars() {
    const s = settings();
    const text = showSettings(controls, V, s.temperature, s.topK, s.topP);
    if (!session || !session.row || session.pending.length) {
      bars.rows.forEach((bar) => {
        bar.label.textContent = "";
        showBar(bar, 0);
      });
      showBar(bars.other, 0);
      stats.textContent = "";
      return text;
    }
    const d = liveDistribution(session.row, s.temperature, s.topK, s.topP);
    let rest = 0;
    for (let i = nShown; i < V; i++) rest += d.probs[i];
    bars.rows.forEach((bar, i) => {
      bar.label.textContent = shown(vocabulary[d.order[i]]);
      bar.label.title = `character: ${JSON.stringify(vocabulary[d.order[i]])}`;
      showBar(bar, d.probs[i]);
    });
    showBar(bars.other, rest);
    bars.other.label.textContent = "all other characters";
    stats.textContent =
      `${d.possible} characters can be drawn; entropy ${d.entropy.toFixed(2)} bits`;
    return text;
  }

  function show() {
    const chars = session ? session.ids.map((i) => vocabulary[i]) : [];
    const n = session ? session.promptLength : 0;
    generated.textContent = chars.slice(n).join("");
    root.dataset.generated = generated.textContent;
    const cached = session ? session.cache.length : 0;
    root.dataset.cache = String(cached);
    status.textContent = session
      ? `KV cache: ${cached} of ${C} positions; ${chars.length - n} characters generated` +
        (speed ? `; ${speed}` : "") + (sessionHasRoom(session) ? "" :
        `; the context of ${C} characters is full (generation stops here, as generate() does)`)
      : "";
    const ready = session && !session.pending.length;
    attention.show(ready ? chars : [], ready ? session.newest : null);
    showBars();
  }

  function setBusy(busy) {
    root.dataset.busy = busy ? "1" : "0";
    live.stop.disabled = !busy;
    const blocked = !session || !sessionHasRoom(session);
    live.generate.disabled = !session;
    live.more.disabled = busy || blocked;
  }

  // The work loop: run pending prompt positions, then draw `goal` characters, in slices.
  function work(my, started, written) {
    if (my !== run) return;
    const end = performance.now() + LIVE_SLICE_MS;
    while (performance.now() < end) {
      if (session.pending.length) feedSession(session);
      else if (goal > 0 && sessionHasRoom(session)) {
        stepSession(session, settings());
        goal -= 1;
        written += 1;
      } else break;
    }
    const done = !session.pending.length && (goal === 0 || !sessionHasRoom(session));
    if (written > 0) {
      const seconds = (performance.now() - started) / 1000;
      speed = `${Math.round(written / Math.max(seconds, 1e-3))} characters/s`;
      root.dataset.charsPerSecond = String(written / Math.max(seconds, 1e-3));
    }
    if (done || performance.now() - drawn >= LIVE_DRAW_MS) {
      show();
      drawn = performance.now();
    }
    if (!done) {
      setTimeout(() => work(my, started, written), 0);
      return;
    }
    goal = 0;
    setBusy(false);
    root.dataset.state = "done";
    if (written > 0) {
      announce(`Generated ${written} characters; the KV cache holds ${session.cache.length} positions.`);
    }
  }

  function start(count) {
    run += 1;
    goal = count;
    speed = "";
    root.dataset.state = "running";
    setBusy(true);
    const my = run;
    setTimeout(() => work(my, performance.now(), 0), 0);
  }

  // A new prompt (typed, or set from Python): a fresh session; the prompt runs, nothing more.
  function restart() {
    run += 1; // ends any run in progress
    goal = 0;
    speed = "";
    const chars = Array.from(model.get("text") || "");
    if (live.input.value !== model.get("text")) live.input.value = model.get("text") || "";
    promptText.textContent = chars.join("");
    const problem = liveProblem(chars, index, C);
    message.textContent = problem;
    message.hidden = !problem;
    session = problem ? null : gptSession(gpt, chars.map((c) => index.get(c)), model.get("seed") >>> 0);
    root.dataset.problem = problem ? "1" : "0";
    if (problem) {
      show();
      setBusy(false);
      root.dataset.state = "done";
      announce(problem);
      return;
    }
    start(0);
  }

  function showNumbers() {
    live.seed.field.value = String(model.get("seed"));
    live.length.field.value = String(model.get("length"));
  }

  // --- view -> state -------------------------------------------------------------------------
  live.input.addEventListener("input", () => setState(model, { text: live.input.value }));
  const whole = (field, low, high, fallback) => {
    const v = Math.trunc(Number(field.value));
    return Number.isFinite(v) ? Math.min(high, Math.max(low, v)) : fallback;
  };
  live.seed.field.addEventListener("change", () =>
    setState(model, { seed: whole(live.seed.field, 0, 4294967295, 0) }),
  );
  live.length.field.addEventListener("change", () =>
    setState(model, { length: whole(live.length.field, 1, C, 1) }),
  );
  wireSettings(model, controls, V);
  live.generate.addEventListener("click", () => {
    restart();
    if (session) start(model.get("length") | 0);
  });
  live.more.addEventListener("click", () => {
    if (session && sessionHasRoom(session)) start(1);
  });
  live.stop.addEventListener("click", () => {
    run += 1;
    goal = 0;
    setBusy(false);
    root.dataset.state = "stopped";
    show();
    announce(`Stopped; ${session ? session.ids.length - session.promptLength : 0} characters generated.`);
  });

  const stopText = listen(model, ["text"], restart);
  const stopNumbers = listen(model, ["seed", "length"], showNumbers);
  const stopSettings = listen(model, ["temperature", "top_k", "top_p"], () => {
    const text = showBars();
    announce(`${text}: ${stats.textContent}.`);
  });
  showNumbers();
  restart();
  return () => {
    run += 1;
    stopText();
    stopNumbers();
    stopSettings();
  };
}

export default { render };
