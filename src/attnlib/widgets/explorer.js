// AttentionExplorer: the browser half of attnlib.widgets.AttentionExplorer.
//
// Python sends the data once (tokens, and either query/key vectors or a stack of weight
// matrices); this module recomputes every attention weight here, in plain JavaScript, whenever
// the temperature, the causal toggle or the chosen matrix changes. That is what keeps the widget
// interactive in the static book, with no kernel behind it.
//
// Security: tokens are data, never markup. Every piece of text goes in through textContent,
// createTextNode or a plain attribute; this file never parses HTML.

const T_MIN = 0.05;
const T_MAX = 5;
const STEPS = 200; // slider positions; one step multiplies T by (T_MAX / T_MIN) ** (1 / STEPS)
const ANNOTATE_MAX_KEYS = 12; // write the weight in each cell up to this many keys
const ANNOTATE_MAX_QUERIES = 24;

// ---------------------------------------------------------------------------------------------
// The mathematics (exported for the browser tests)

/** Temperature -> slider position: a log scale, so T = 0.05..0.5 and 0.5..5 get equal room. */
export function temperatureToSlider(t) {
  const clamped = Math.min(T_MAX, Math.max(T_MIN, t));
  return Math.round((Math.log(clamped / T_MIN) / Math.log(T_MAX / T_MIN)) * STEPS);
}

/** Slider position -> temperature, rounded to 3 decimals so the synced value is tidy. */
export function sliderToTemperature(v) {
  const t = T_MIN * Math.pow(T_MAX / T_MIN, Number(v) / STEPS);
  return Math.round(t * 1000) / 1000;
}

/**
 * Softmax of one row of scores, in place into `out`, numerically stable (the row maximum is
 * subtracted before exponentiating). Masked keys carry -Infinity and get weight 0; a row whose
 * keys are all masked gets zeros rather than NaN (0 / 0).
 */
export function softmaxRow(scores, out) {
  let max = -Infinity;
  for (const s of scores) if (s > max) max = s;
  if (max === -Infinity || Number.isNaN(max)) {
    out.fill(0);
    return out;
  }
  let total = 0;
  for (let j = 0; j < scores.length; j++) {
    const e = scores[j] === -Infinity ? 0 : Math.exp(scores[j] - max);
    out[j] = e;
    total += e;
  }
  for (let j = 0; j < scores.length; j++) out[j] /= total;
  return out;
}

/**
 * The (L, S) attention matrix the widget shows.
 *
 * mode "qk":      softmax(q_i . k_j * scale / T)
 * mode "weights": softmax(log(w_ij) / T), so T = 1 gives back the (renormalised) weights
 * causal:         key j > query i is masked (-Infinity), aligned top-left like PyTorch.
 */
export function attentionMatrix({ mode, query, key, weights, layer, scale, temperature, causal }) {
  const rows = [];
  const L = mode === "qk" ? query.length : weights[layer].length;
  const S = mode === "qk" ? key.length : L > 0 ? weights[layer][0].length : 0;
  const scores = new Array(S);
  for (let i = 0; i < L; i++) {
    for (let j = 0; j < S; j++) {
      if (causal && j > i) {
        scores[j] = -Infinity;
      } else if (mode === "qk") {
        const q = query[i];
        const k = key[j];
        let dot = 0;
        for (let e = 0; e < q.length; e++) dot += q[e] * k[e];
        scores[j] = (dot * scale) / temperature;
      } else {
        const w = weights[layer][i][j];
        scores[j] = w > 0 ? Math.log(w) / temperature : -Infinity;
      }
    }
    rows.push(softmaxRow(scores, new Array(S)));
  }
  return rows;
}

// ---------------------------------------------------------------------------------------------
// Small DOM helpers: text goes in as text only.

function h(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/** A token as a reader should see it: spaces visible, an empty token not invisible. */
function shown(token) {
  return token === "" ? "\u2205" : String(token);
}

// ---------------------------------------------------------------------------------------------

function render({ model, el }) {
  const tokens = model.get("tokens");
  const keyTokens = model.get("key_tokens");
  const L = tokens.length;
  const S = keyTokens.length;
  const labels = model.get("layer_labels");
  const uid = `ae-${Math.random().toString(36).slice(2, 10)}`;

  const root = h("div", "ae-root");
  root.setAttribute("role", "group");
  root.setAttribute("aria-label", model.get("title") || "Attention explorer");

  const title = model.get("title");
  if (title) root.appendChild(h("div", "ae-title", title));
  root.appendChild(
    h(
      "p",
      "ae-help",
      "Drag the temperature: below 1 sharpens each row, above 1 flattens it. " +
        "Tick the causal mask to hide future keys. Click a row to see that query's weights below.",
    ),
  );

  // --- controls ------------------------------------------------------------------------------
  const controls = h("div", "ae-controls");

  const tLabel = h("label", "ae-control ae-temperature");
  tLabel.htmlFor = `${uid}-t`;
  tLabel.appendChild(h("span", "ae-control-name", "Temperature"));
  const slider = document.createElement("input");
  slider.type = "range";
  slider.id = `${uid}-t`;
  slider.min = "0";
  slider.max = String(STEPS);
  slider.step = "1";
  slider.setAttribute("aria-label", "Temperature");
  const tValue = h("output", "ae-value");
  tValue.setAttribute("aria-live", "polite");
  tValue.htmlFor = slider.id;
  tLabel.append(slider, tValue);
  controls.appendChild(tLabel);

  const cLabel = h("label", "ae-control ae-causal");
  const checkbox = document.createElement("input");
  checkbox.type = "checkbox";
  checkbox.setAttribute("aria-label", "Causal mask: each query sees only itself and earlier keys");
  cLabel.append(checkbox, document.createTextNode(" causal mask"));
  controls.appendChild(cLabel);

  let select = null;
  if (labels.length > 1) {
    const sLabel = h("label", "ae-control ae-layer");
    sLabel.appendChild(h("span", "ae-control-name", "Matrix"));
    select = document.createElement("select");
    select.setAttribute("aria-label", "Which attention matrix to show");
    labels.forEach((name, index) => {
      const option = document.createElement("option");
      option.value = String(index);
      option.textContent = name;
      select.appendChild(option);
    });
    sLabel.appendChild(select);
    controls.appendChild(sLabel);
  }
  root.appendChild(controls);

  // --- heatmap -------------------------------------------------------------------------------
  const annotate = S <= ANNOTATE_MAX_KEYS && L <= ANNOTATE_MAX_QUERIES;
  const wrap = h("div", "ae-heatmap");
  const grid = h("div", "ae-grid");
  grid.setAttribute("role", "grid");
  grid.setAttribute("aria-label", "Attention weights: one row per query, one column per key");
  grid.style.gridTemplateColumns = `max-content repeat(${S}, minmax(${annotate ? "2.6em" : "1.4em"}, 1fr))`;
  const longKeys = keyTokens.some((t) => String(t).length > 4) || S > ANNOTATE_MAX_KEYS;
  if (longKeys) grid.classList.add("ae-vertical-keys");

  const headRow = h("div", "ae-row ae-head");
  headRow.setAttribute("role", "row");
  const corner = h("div", "ae-corner", "query \u2193  key \u2192");
  corner.setAttribute("role", "columnheader");
  headRow.appendChild(corner);
  keyTokens.forEach((token, j) => {
    const cell = h("div", "ae-key", shown(token));
    cell.setAttribute("role", "columnheader");
    cell.title = `key ${j}: ${token}`;
    headRow.appendChild(cell);
  });
  grid.appendChild(headRow);

  const cells = [];
  const rowNodes = [];
  tokens.forEach((token, i) => {
    const row = h("div", "ae-row");
    row.setAttribute("role", "row");
    row.dataset.i = String(i);
    const head = h("div", "ae-query");
    head.setAttribute("role", "rowheader");
    const button = h("button", "ae-query-button", shown(token));
    button.type = "button";
    button.setAttribute("aria-label", `Show the weights of query ${i}: ${token}`);
    head.appendChild(button);
    row.appendChild(head);
    const rowCells = [];
    for (let j = 0; j < S; j++) {
      const cell = h("div", "ae-cell");
      cell.setAttribute("role", "gridcell");
      cell.dataset.i = String(i);
      cell.dataset.j = String(j);
      row.appendChild(cell);
      rowCells.push(cell);
    }
    row.addEventListener("click", () => {
      model.set("selected", i);
      model.save_changes();
    });
    cells.push(rowCells);
    rowNodes.push(row);
    grid.appendChild(row);
  });
  wrap.appendChild(grid);
  root.appendChild(wrap);

  // --- bars for the selected query -----------------------------------------------------------
  const bars = h("div", "ae-bars");
  const barsTitle = h("div", "ae-bars-title");
  barsTitle.setAttribute("aria-live", "polite");
  bars.appendChild(barsTitle);
  const barRows = [];
  keyTokens.forEach((token, j) => {
    const row = h("div", "ae-bar-row");
    row.dataset.j = String(j);
    const label = h("span", "ae-bar-label", shown(token));
    label.title = token;
    const track = h("span", "ae-bar-track");
    const fill = h("span", "ae-bar-fill");
    track.appendChild(fill);
    const value = h("span", "ae-bar-value");
    row.append(label, track, value);
    bars.appendChild(row);
    barRows.push({ row, fill, value });
  });
  root.appendChild(bars);
  el.appendChild(root);

  // --- state -> view -------------------------------------------------------------------------
  function update() {
    const temperature = model.get("temperature");
    const causal = model.get("causal");
    const layer = Math.min(Math.max(0, model.get("layer") | 0), Math.max(0, labels.length - 1));
    const selected = Math.min(Math.max(0, model.get("selected") | 0), Math.max(0, L - 1));
    const weights = attentionMatrix({
      mode: model.get("mode"),
      query: model.get("query"),
      key: model.get("key"),
      weights: model.get("weights"),
      layer,
      scale: model.get("scale"),
      temperature,
      causal,
    });

    if (document.activeElement !== slider) slider.value = String(temperatureToSlider(temperature));
    tValue.textContent = `T = ${temperature.toFixed(2)}`;
    slider.setAttribute("aria-valuetext", `temperature ${temperature.toFixed(2)}`);
    checkbox.checked = causal;
    if (select) select.value = String(layer);

    for (let i = 0; i < L; i++) {
      rowNodes[i].classList.toggle("ae-selected", i === selected);
      rowNodes[i].setAttribute("aria-selected", i === selected ? "true" : "false");
      for (let j = 0; j < S; j++) {
        const w = weights[i][j];
        const masked = causal && j > i;
        const cell = cells[i][j];
        cell.style.setProperty("--ae-w", String(0.06 + 0.94 * w));
        cell.classList.toggle("ae-strong", w >= 0.6);
        cell.classList.toggle("ae-masked", masked);
        cell.dataset.w = w.toFixed(4);
        cell.title = `${tokens[i]} \u2192 ${keyTokens[j]}: ${masked ? "masked" : w.toFixed(3)}`;
        cell.textContent = annotate ? (masked ? "\u00b7" : w.toFixed(2)) : "";
      }
    }

    const row = weights[selected] || [];
    barsTitle.textContent = "";
    barsTitle.append(
      document.createTextNode(`Query ${selected} `),
      h("span", "ae-token", shown(tokens[selected] ?? "")),
      document.createTextNode(" attends to:"),
    );
    barRows.forEach(({ row: barRow, fill, value }, j) => {
      const w = row[j] ?? 0;
      fill.style.width = `${(100 * w).toFixed(2)}%`;
      value.textContent = w.toFixed(3);
      barRow.dataset.w = w.toFixed(4);
      barRow.classList.toggle("ae-masked", causal && j > selected);
    });
  }

  // --- view -> state -------------------------------------------------------------------------
  slider.addEventListener("input", () => {
    model.set("temperature", sliderToTemperature(slider.value));
    model.save_changes();
  });
  checkbox.addEventListener("change", () => {
    model.set("causal", checkbox.checked);
    model.save_changes();
  });
  if (select) {
    select.addEventListener("change", () => {
      model.set("layer", Number(select.value));
      model.save_changes();
    });
  }

  const events = ["temperature", "causal", "selected", "layer"].map((name) => `change:${name}`);
  for (const event of events) model.on(event, update);
  update();

  return () => {
    for (const event of events) model.off(event, update);
  };
}

export default { render };
