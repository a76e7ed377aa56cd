// BottleneckStepper: the browser half of attnlib.widgets.bottleneck.BottleneckStepper.
//
// Python sends the encoder's state after each source token and the decoder's state at each output
// step, once (thousandths, one string each). Everything shown is computed here: the cosine
// similarity of the fixed vector with what it was after each earlier token, and, for the output
// step the reader picks, the attention weights softmax(s_t . h_j * scale) over every encoder
// state and the context vector they read, as attnlib.scaled_dot_product_attention computes them.

const BOTTLENECK_SCALE = 1000; // states travel as integers in thousandths
const BOTTLENECK_HELP =
  "Without attention, the encoder keeps one vector and overwrites it at every source token; " +
  "the bars say how much it still resembles what it was after each earlier token. With " +
  "attention, every output step weighs all the encoder's states afresh and reads their " +
  "weighted average. Step with the buttons, the sliders or the arrow keys.";

// ---------------------------------------------------------------------------------------------
// The mathematics (exported for the browser tests)

/** A row-major string of thousandths as `rows` arrays of `cols` numbers. */
export function unpackStates(text, rows, cols) {
  const flat = String(text).split(",").map(Number);
  return Array.from({ length: rows }, (_, i) =>
    flat.slice(i * cols, (i + 1) * cols).map((v) => (Number.isFinite(v) ? v / BOTTLENECK_SCALE : 0)),
  );
}

function dotProduct(a, b) {
  let s = 0;
  for (let e = 0; e < a.length; e++) s += a[e] * b[e];
  return s;
}

/** Cosine similarity of two vectors (0 when either is all zeros, as torch's normalize gives). */
export function cosine(a, b) {
  const norm = Math.sqrt(dotProduct(a, a)) * Math.sqrt(dotProduct(b, b));
  return norm > 0 ? dotProduct(a, b) / norm : 0;
}

/** The fixed vector after token j against the vector after every token i: (S,). */
export function similarityRow(encoder, j) {
  return encoder.map((h) => cosine(encoder[j], h));
}

/** Output step t's weights over the S encoder states: softmax(s_t . h_j * scale). */
export function attentionRow(decoder, encoder, t, scale) {
  return softmaxRow(encoder.map((h) => dotProduct(decoder[t], h) * scale));
}

/** The context vector sum_j weights[j] * encoder[j]: (D,). */
export function contextVector(weights, encoder) {
  const out = new Array(encoder[0].length).fill(0);
  weights.forEach((w, j) => encoder[j].forEach((v, e) => (out[e] += w * v)));
  return out;
}

// ---------------------------------------------------------------------------------------------
// The view

/** A vector as a strip of D shaded cells (accent: positive, warm: negative): {box, cells}. */
function strip(className, label) {
  const box = el("div", { class: `bn-strip ${className}`, role: "img", "aria-label": label });
  return { box, cells: [] };
}

function showStrip(vector, values, label) {
  if (vector.cells.length !== values.length) {
    vector.cells = values.map(() => el("span", { class: "attn-heat bn-cell" }));
    vector.box.replaceChildren(...vector.cells);
    vector.box.style.gridTemplateColumns = `repeat(${values.length}, minmax(0, 1fr))`;
  }
  values.forEach((v, e) => {
    const cell = vector.cells[e];
    setHeat(cell, Math.min(1, Math.abs(v)));
    cell.classList.toggle("bn-neg", v < 0);
    cell.dataset.v = String(v);
  });
  if (label) vector.box.setAttribute("aria-label", label);
}

/** A row of tokens, one highlighted as current and the ones before it marked done. */
function tokenRow(className, tokens, label) {
  const cells = tokens.map((token, k) =>
    el("span", { class: "attn-token bn-token", dataset: { k: String(k) }, title: token }, [
      shown(token),
    ]),
  );
  const row = el("div", { class: `bn-tokens ${className}`, "aria-label": label, role: "group" }, [
    el("span", { class: "bn-tokens-name", text: label }),
    ...cells,
  ]);
  function show(k, { doneUpTo = k } = {}) {
    cells.forEach((cell, n) => {
      cell.classList.toggle("bn-current", n === k);
      cell.classList.toggle("bn-done", n < doneUpTo);
      cell.classList.toggle("bn-later", n > Math.max(k, doneUpTo));
    });
  }
  return { row, show };
}

/** Bars, one per source token: {box, rows}. */
function sourceBars(className, source, caption) {
  const rows = source.map((token, j) => {
    const bar = barRow("bn", `${j}: ${shown(token)}`);
    bar.row.dataset.j = String(j);
    return bar;
  });
  const box = el("div", { class: `attn-bars bn-bars ${className}` }, [
    el("div", { class: "bn-bars-title", text: caption }),
    ...rows.map((bar) => bar.row),
  ]);
  return { box, rows };
}

function section(className, heading, children) {
  return el("section", { class: `bn-section ${className}`, "aria-label": heading }, [
    el("div", { class: "bn-heading", text: heading }),
    ...children,
  ]);
}

function render({ model, el: host }) {
  const source = model.get("source");
  const output = model.get("output");
  const D = model.get("dim");
  const [S, L] = [source.length, output.length];
  const encoder = unpackStates(model.get("encoder"), S, D);
  const decoder = unpackStates(model.get("decoder"), L, D);

  const { root, announce } = widgetRoot("bn", model, "Bottleneck stepper", BOTTLENECK_HELP);

  // Without attention: one vector, overwritten.
  const go = (name, n) => (k) => setState(model, { [name]: clampIndex(k, n) });
  const encSteps = stepControls("bn", {
    what: "source token",
    counterClass: "bn-counter",
    get: () => clampIndex(model.get("encoder_step"), S),
    go: go("encoder_step", S),
  });
  const srcRow = tokenRow("bn-source", source, "source");
  const fixed = strip("bn-fixed-vector", "the fixed vector");
  const fixedCaption = el("div", { class: "bn-caption" });
  const similar = sourceBars("bn-similar", source, "cosine similarity with the vector after token");
  const fixedSummary = el("p", { class: "bn-summary bn-fixed-summary" });
  const fixedPart = section("bn-fixed", "Without attention: one vector, overwritten", [
    controlBar("bn", [encSteps.prev, encSteps.slider, encSteps.next, encSteps.counter]),
    srcRow.row,
    fixedCaption,
    fixed.box,
    similar.box,
    fixedSummary,
  ]);

  // With attention: every state, weighted afresh at each output step.
  const decSteps = stepControls("bn", {
    what: "output step",
    counterClass: "bn-counter",
    get: () => clampIndex(model.get("decoder_step"), L),
    go: go("decoder_step", L),
  });
  const outRow = tokenRow("bn-output", output, "output");
  const query = strip("bn-query-vector", "the decoder state");
  const weights = sourceBars("bn-weights", source, "attention weight on each encoder state");
  const context = strip("bn-context-vector", "the context vector");
  const attnSummary = el("p", { class: "bn-summary bn-attn-summary" });
  const attnPart = section("bn-attn", "With attention: every encoder state, weighted", [
    controlBar("bn", [decSteps.prev, decSteps.slider, decSteps.next, decSteps.counter]),
    outRow.row,
    el("div", { class: "bn-caption", text: `decoder state s\u209c (the query), D = ${D}` }),
    query.box,
    weights.box,
    el("div", { class: "bn-caption", text: "context c\u209c = \u03a3\u2c7c \u03b1\u209c\u2c7c h\u2c7c" }),
    context.box,
    attnSummary,
  ]);
  const legend = el("p", { class: "bn-legend" }, [
    el("span", { class: "bn-swatch attn-heat", style: { "--attn-w": "1" } }),
    " positive  ",
    el("span", { class: "bn-swatch attn-heat bn-neg", style: { "--attn-w": "1" } }),
    " negative (darker = larger |value|)",
  ]);
  root.append(legend, el("div", { class: "bn-parts" }, [fixedPart, attnPart]));
  host.appendChild(root);

  function showFixed() {
    const j = clampIndex(model.get("encoder_step"), S);
    encSteps.show(j, S);
    srcRow.show(j, { doneUpTo: j });
    const last = j === S - 1;
    fixedCaption.textContent =
      `after reading ${j + 1} of ${S} tokens: D = ${D} numbers` +
      (last ? ", all a decoder without attention receives" : "");
    showStrip(fixed, encoder[j], `the fixed vector after token ${j}, ${D} numbers`);
    const sims = similarityRow(encoder, j);
    similar.rows.forEach((bar, i) => {
      const read = i <= j;
      setBar(bar, read ? Math.max(0, sims[i]) : 0);
      bar.value.textContent = read ? fmt(sims[i]) : "not read yet";
      bar.row.dataset.v = read ? String(sims[i]) : "";
      bar.row.classList.toggle("bn-later", !read);
    });
    const first = sims[0];
    fixedSummary.textContent =
      `Source token ${j + 1} of ${S} read. The vector's similarity with what it was after the ` +
      `first token: ${fmt(first)}.` +
      (last ? " This one vector is all that reaches a decoder without attention." : "");
    return fixedSummary.textContent;
  }

  function showAttention() {
    const t = clampIndex(model.get("decoder_step"), L);
    decSteps.show(t, L);
    outRow.show(t, { doneUpTo: t });
    const w = attentionRow(decoder, encoder, t, model.get("scale"));
    const c = contextVector(w, encoder);
    showStrip(query, decoder[t], `the decoder state at output step ${t}, ${D} numbers`);
    showStrip(context, c, `the context vector at output step ${t}, ${D} numbers`);
    let top = 0;
    weights.rows.forEach((bar, j) => {
      setBar(bar, w[j]);
      bar.value.textContent = fmt(w[j]);
      bar.row.dataset.v = String(w[j]);
      if (w[j] > w[top]) top = j;
    });
    weights.rows.forEach((bar, j) => bar.row.classList.toggle("bn-top", j === top));
    attnSummary.textContent =
      `Output step ${t + 1} of ${L}, writing ${shown(output[t])}: the weights over all ${S} ` +
      `encoder states sum to 1; the largest, ${fmt(w[top])}, is on source token ${top} ` +
      `(${shown(source[top])}).`;
    return attnSummary.textContent;
  }

  stepKeys(fixedPart, (d) => go("encoder_step", S)(clampIndex(model.get("encoder_step"), S) + d));
  stepKeys(attnPart, (d) => go("decoder_step", L)(clampIndex(model.get("decoder_step"), L) + d));
  // Each change is announced (the widget's one live region): what the changed half now shows.
  const stopFixed = listen(model, ["encoder_step"], () => announce(showFixed()));
  const stopAttention = listen(model, ["decoder_step"], () => announce(showAttention()));
  showFixed();
  showAttention();
  return () => {
    stopFixed();
    stopAttention();
  };
}

export default { render };
