// PositionExplorer: the browser half of attnlib.widgets.positions.PositionExplorer.
//
// Python sends one query and one key vector once. Everything else is computed here, with the
// arithmetic of attnlib.positional: the sinusoidal table's rows (float64, as
// sinusoidal_encoding(..., dtype=torch.float64)) and the rotary rotation (float32 frequencies,
// angles, cosines and sines, as rope_frequencies and rope_cos_sin; then float64 products, as
// apply_rope on a float64 vector). Each control change recomputes both curves.

const POSITION_HELP =
  "First chart: the dot product of the sinusoidal encodings of positions i and j. Second: the " +
  "rotary score of one query at position i and one key at position j. Move i: both curves " +
  "slide along without changing shape, because they depend on the offset j \u2212 i only. " +
  "Change the size, the base, or the pair whose own term (dashed, times dim / 2) is drawn.";
const BASE_STEPS = 4; // the base slider moves in quarter steps of a power of ten ...
const BASE_LOW = 4; // ... from 10 ** (4 / 4) = 10 ...
const BASE_HIGH = 24; // ... to 10 ** (24 / 4) = 1e6
const PAPER_BASE = 10000;
const CHART = { width: 420, height: 170, left: 46, right: 10, top: 14, bottom: 30 };

// ---------------------------------------------------------------------------------------------
// The mathematics (exported for the browser tests)

/** The sinusoidal encoding of position p: (dim,) with sin/cos interleaved, in float64. */
export function sinusoidalRow(p, dim, base) {
  const row = new Array(dim);
  for (let i = 0; i < dim / 2; i++) {
    const angle = p * Math.pow(base, -(2 * i) / dim);
    row[2 * i] = Math.sin(angle);
    row[2 * i + 1] = Math.cos(angle);
  }
  return row;
}

function dot(a, b) {
  let s = 0;
  for (let e = 0; e < a.length; e++) s += a[e] * b[e];
  return s;
}

/** PE_i . PE_j for j = 0 .. length - 1, with i = position. */
export function sinusoidalDots({ dim, base, position, length }) {
  const pi = sinusoidalRow(position, dim, base);
  return Array.from({ length }, (_, j) => dot(pi, sinusoidalRow(j, dim, base)));
}

/** RoPE's frequencies base ** (-2i / dim), i < dim / 2, in float32 as rope_frequencies. */
export function ropeFrequencies(dim, base) {
  const f = Math.fround;
  return Array.from({ length: dim / 2 }, (_, i) => f(1 / f(Math.pow(f(base), f((2 * i) / dim)))));
}

/** x (dim,) rotated to position m in the rotate-half layout, as attnlib.positional.apply_rope:
 * pair (e, e + dim / 2) turned by the float32 angle m * theta_e. */
export function applyRope(x, m, base) {
  const f = Math.fround;
  const half = x.length / 2;
  const freqs = ropeFrequencies(x.length, base);
  const out = new Array(x.length);
  for (let e = 0; e < half; e++) {
    const angle = f(m * freqs[e]);
    const cos = f(Math.cos(angle));
    const sin = f(Math.sin(angle));
    out[e] = x[e] * cos + -x[e + half] * sin; // x * cos + rotate_half(x) * sin
    out[e + half] = x[e + half] * cos + x[e] * sin;
  }
  return out;
}

/** RoPE(q, i) . RoPE(k, j) for j = 0 .. length - 1: q and k are the first dim entries. */
export function ropeScores({ query, key, dim, base, position, length }) {
  const q = applyRope(query.slice(0, dim), position, base);
  const k = key.slice(0, dim);
  return Array.from({ length }, (_, j) => dot(q, applyRope(k, j, base)));
}

/** The chosen pair's own term in each sum, for every j: {sinusoidal, rope}. */
export function pairTerms({ query, key, dim, base, position, length, pair }) {
  const pi = sinusoidalRow(position, dim, base);
  const q = applyRope(query.slice(0, dim), position, base);
  const k = key.slice(0, dim);
  const [a, b] = [pair, pair + dim / 2];
  const sinusoidal = [];
  const rope = [];
  for (let j = 0; j < length; j++) {
    const pj = sinusoidalRow(j, dim, base);
    sinusoidal.push(pi[2 * pair] * pj[2 * pair] + pi[2 * pair + 1] * pj[2 * pair + 1]);
    const kj = applyRope(k, j, base);
    rope.push(q[a] * kj[a] + q[b] * kj[b]);
  }
  return { sinusoidal, rope };
}

/** Positions per full turn of pair `pair`: 2 pi / omega_pair. */
export function wavelength(dim, base, pair) {
  return 2 * Math.PI * Math.pow(base, (2 * pair) / dim);
}

/** Everything the view draws, from the synced state. */
export function positionCurves(state) {
  return {
    sinusoidal: sinusoidalDots(state),
    rope: ropeScores(state),
    pair: pairTerms(state),
  };
}

/** Base -> slider position (quarter steps of a power of ten, clamped to 10 .. 1e6). */
export function baseToSlider(base) {
  const v = Math.round(BASE_STEPS * Math.log10(base));
  return Math.min(BASE_HIGH, Math.max(BASE_LOW, v));
}

/** Slider position -> base, rounded to 4 significant digits (10000 stays 10000). */
export function sliderToBase(v) {
  return Number(Math.pow(10, Number(v) / BASE_STEPS).toPrecision(4));
}

// ---------------------------------------------------------------------------------------------
// The view

/** A line chart of key positions 0 .. length - 1: {box, svg, draw(series, marker, range)}. */
function lineChart(name, caption, length) {
  const { width, height, left, right, top, bottom } = CHART;
  const x = (j) => left + ((width - left - right) * j) / Math.max(1, length - 1);
  const svg = svgEl("svg", {
    class: `po-chart po-${name}-chart`,
    viewBox: `0 0 ${width} ${height}`,
    role: "img",
    "aria-label": caption,
  });
  const zero = svgEl("line", { class: "po-axis", x1: left, x2: width - right });
  const marker = svgEl("line", { class: "po-marker", y1: top, y2: height - bottom });
  const markerText = svgEl("text", { class: "po-marker-text", y: top - 3, text: "j = i" });
  const main = svgEl("path", { class: "po-line" });
  const pairLine = svgEl("path", { class: "po-pair-line" });
  const yTop = svgEl("text", { class: "po-tick", x: left - 4, y: top + 4 });
  const yBottom = svgEl("text", { class: "po-tick", x: left - 4, y: height - bottom });
  const yZero = svgEl("text", { class: "po-tick", x: left - 4, text: "0" });
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((t) => Math.round(t * (length - 1)));
  const xTicks = ticks.map((j) =>
    svgEl("text", { class: "po-tick po-xtick", x: x(j), y: height - bottom + 13, text: String(j) }),
  );
  const xLabel = svgEl("text", {
    class: "po-xlabel",
    x: (left + width - right) / 2,
    y: height - 3,
    text: "key position j",
  });
  svg.append(zero, marker, markerText, pairLine, main, yTop, yBottom, yZero, ...xTicks, xLabel);
  const legend = el("div", { class: "po-legend" }, [
    el("span", { class: "po-key po-key-sum", text: "the sum" }),
    el("span", { class: "po-key po-key-pair", text: "" }),
  ]);
  const box = el("div", { class: `po-figure po-${name}`, role: "group", "aria-label": caption }, [
    el("div", { class: "po-caption", text: caption }),
    svg,
    legend,
  ]);

  function draw(series, pairSeries, position, limit, pairText) {
    const y = (v) => top + ((height - top - bottom) * (limit - v)) / (2 * limit);
    const path = (values) =>
      values.map((v, j) => `${j ? "L" : "M"}${x(j).toFixed(1)},${y(v).toFixed(1)}`).join("");
    main.setAttribute("d", path(series));
    pairLine.setAttribute("d", path(pairSeries));
    zero.setAttribute("y1", y(0).toFixed(1));
    zero.setAttribute("y2", y(0).toFixed(1));
    yZero.setAttribute("y", (y(0) + 4).toFixed(1));
    yTop.textContent = fmt(limit, 1);
    yBottom.textContent = fmt(-limit, 1);
    markerText.setAttribute("x", x(position).toFixed(1));
    marker.setAttribute("x1", x(position).toFixed(1));
    marker.setAttribute("x2", x(position).toFixed(1));
    legend.lastChild.textContent = pairText;
  }
  return { box, draw };
}

/** The values at a few offsets j - i, one row per curve: {wrap, cells}. */
function offsetTable(offsets) {
  const head = el("tr", {}, [
    el("th", { scope: "col", text: "j \u2212 i" }),
    ...offsets.map((k) => el("th", { scope: "col", text: k > 0 ? `+${k}` : fmt(k, 0) })),
  ]);
  const cells = {};
  const rows = [
    ["sinusoidal", "PE\u1d62 \u00b7 PE\u2c7c"],
    ["rope", "RoPE score"],
  ].map(([name, label]) => {
    cells[name] = offsets.map((k) => el("td", { class: "po-num", dataset: { offset: String(k) } }));
    return el("tr", { class: `po-row-${name}` }, [
      el("th", { scope: "row", text: label }),
      ...cells[name],
    ]);
  });
  const table = el("table", { class: "po-table" }, [
    el("thead", {}, [head]),
    el("tbody", {}, rows),
  ]);
  const { wrap } = scrollBox("po", [table], "Values at a few offsets");
  return { wrap, cells };
}

/** The four sliders and the reset button. */
function positionControls(maxDim, length) {
  const dim = sliderControl("po", "dim", "Size dim", 2, maxDim, {
    ariaLabel: "Size dim: the model size D of the sinusoids and the head size E of RoPE",
  });
  dim.input.step = "2";
  const base = sliderControl("po", "base", "Base", BASE_LOW, BASE_HIGH);
  const position = sliderControl("po", "position", "Position i", 0, length - 1, {
    ariaLabel: "Query position i",
  });
  const pair = sliderControl("po", "pair", "Pair", 0, 0, { ariaLabel: "Frequency pair drawn" });
  const reset = button("po-reset", `base ${PAPER_BASE}`, {
    "aria-label": `base ${PAPER_BASE}: the papers' value`,
  });
  const bar = controlBar("po", [dim.label, base.label, reset, position.label, pair.label]);
  return { bar, dim, base, position, pair, reset };
}

function valueAt(values, j) {
  return j >= 0 && j < values.length ? values[j] : null;
}

/** What the charts show, in a sentence for the live region. */
export function positionSummary(state, curves) {
  const { dim, base, position, pair } = state;
  const at = (values, k) => {
    const v = valueAt(values, position + k);
    return v === null ? "off the chart" : fmt(v);
  };
  const around = (values) =>
    `${at(values, 0)} at j = i, ${at(values, -4)} at j = i \u2212 4 and ${at(values, 4)} at ` +
    "j = i + 4";
  return (
    `i = ${position}, dim = ${dim}, base ${base}. Sinusoidal: ${around(curves.sinusoidal)}. ` +
    `RoPE: ${around(curves.rope)}. Pair ${pair} turns once every ` +
    `${fmt(wavelength(dim, base, pair), 1)} positions.`
  );
}

function render({ model, el: host }) {
  const query = model.get("query");
  const key = model.get("key");
  const length = model.get("length");
  const offsets = model.get("offsets");
  const maxDim = query.length - (query.length % 2);

  const { root, announce } = widgetRoot("po", model, "Position explorer", POSITION_HELP);
  const controls = positionControls(maxDim, length);
  const sinChart = lineChart("sinusoidal", "Sinusoidal encodings: PE\u1d62 \u00b7 PE\u2c7c", length);
  const ropeChart = lineChart("rope", "Rotary embeddings: (R\u1d62q) \u00b7 (R\u2c7ck)", length);
  const table = offsetTable(offsets);
  const summary = el("p", { class: "po-summary" });
  const charts = el("div", { class: "po-charts" }, [sinChart.box, ropeChart.box]);
  root.append(controls.bar, charts, table.wrap, summary);
  host.appendChild(root);

  function current() {
    const dim = Math.min(maxDim, Math.max(2, 2 * Math.round(Number(model.get("dim")) / 2)));
    return {
      query,
      key,
      length,
      dim,
      base: Number(model.get("base")),
      position: clampIndex(model.get("position"), length),
      pair: clampIndex(model.get("pair"), dim / 2),
    };
  }

  function showSlider({ input, value }, v, text, valueText) {
    if (document.activeElement !== input) input.value = String(v);
    value.textContent = text;
    input.setAttribute("aria-valuetext", valueText);
  }

  let drawn = false;
  function update() {
    const state = current();
    const { dim, base, position, pair } = state;
    const curves = positionCurves(state);
    controls.pair.input.max = String(dim / 2 - 1);
    showSlider(controls.dim, dim, String(dim), `dim ${dim}`);
    showSlider(controls.base, baseToSlider(base), String(base), `base ${base}`);
    showSlider(controls.position, position, String(position), `position ${position}`);
    const turn = fmt(wavelength(dim, base, pair), 1);
    showSlider(controls.pair, pair, `${pair} of ${dim / 2}`, `pair ${pair}, one turn every ${turn}`);
    controls.reset.disabled = base === PAPER_BASE;
    const scale = dim / 2;
    const pairText = `pair ${pair} \u00d7 ${scale} (one turn every ${turn} positions)`;
    const sinPair = curves.pair.sinusoidal.map((v) => v * scale);
    const ropePair = curves.pair.rope.map((v) => v * scale);
    sinChart.draw(curves.sinusoidal, sinPair, position, scale, pairText);
    let limit = 0;
    for (const v of curves.rope.concat(ropePair)) limit = Math.max(limit, Math.abs(v));
    ropeChart.draw(curves.rope, ropePair, position, limit || 1, pairText);
    for (const name of ["sinusoidal", "rope"]) {
      table.cells[name].forEach((cell, n) => {
        const v = valueAt(curves[name], position + offsets[n]);
        cell.dataset.v = v === null ? "" : String(v);
        cell.textContent = v === null ? "\u2013" : fmt(v);
      });
    }
    summary.textContent = positionSummary(state, curves);
    if (drawn) announce(summary.textContent); // what changed, for a screen reader
    drawn = true;
  }

  function setDim(v) {
    const dim = Math.min(maxDim, Math.max(2, 2 * Math.round(Number(v) / 2)));
    const pair = Math.min(clampIndex(model.get("pair"), dim / 2), dim / 2 - 1);
    setState(model, { dim, pair });
  }

  controls.dim.input.addEventListener("input", () => setDim(controls.dim.input.value));
  controls.base.input.addEventListener("input", () =>
    setState(model, { base: sliderToBase(controls.base.input.value) }),
  );
  controls.reset.addEventListener("click", () => setState(model, { base: PAPER_BASE }));
  for (const name of ["position", "pair"]) {
    const { input } = controls[name];
    input.addEventListener("input", () => setState(model, { [name]: Number(input.value) }));
  }
  const stop = listen(model, ["dim", "base", "position", "pair"], update);
  update();
  return stop;
}

export default { render };
