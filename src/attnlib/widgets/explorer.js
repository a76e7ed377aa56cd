// AttentionExplorer: the browser half of attnlib.widgets.AttentionExplorer.
//
// Python sends the data once (tokens, and either query/key vectors or a stack of weight
// matrices); this view recomputes every attention weight here, in plain JavaScript, whenever the
// temperature, the causal toggle or the chosen matrix changes. That is what keeps the widget
// interactive in the static book, with no kernel behind it.

const ANNOTATE_MAX_KEYS = 12; // write the weight in each cell up to this many keys
const ANNOTATE_MAX_QUERIES = 24;
const EXPLORER_HELP =
  "Drag the temperature: below 1 sharpens each row, above 1 flattens it. " +
  "Tick the causal mask to hide future keys. Click a row, or move through the grid with the " +
  "arrow keys, to see that query's weights below.";

// ---------------------------------------------------------------------------------------------
// The mathematics (exported for the browser tests)

/**
 * The (L, S) attention matrix the widget shows.
 *
 * mode "qk":      softmax(q_i . k_j * scale / temperature)
 * mode "weights": softmax(log(w_ij) / temperature), so temperature 1 gives back the
 *                  (renormalised) weights
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
// The view

/** Temperature slider, causal checkbox, and a matrix selector when there are several. */
function explorerControls(labels) {
  const temperature = temperatureControl("ae");
  const causal = checkboxControl(
    "ae",
    "causal",
    "causal mask",
    "Causal mask: each query sees only itself and earlier keys",
  );
  const layer =
    labels.length > 1
      ? selectControl("ae", "layer", "Matrix", labels, "Which attention matrix to show")
      : null;
  const bar = controlBar("ae", [temperature.label, causal.label, layer && layer.label]);
  return { bar, temperature, causal, layer };
}

/**
 * The heatmap: a header row of keys, then one row per query (its name is a button). Returns
 * {wrap, rows, cells, buttons, scroll}; the arrow keys move through it (gridKeys), and the row of
 * the focused cell is the selected query.
 */
function heatmap(tokens, keyTokens, annotate, select) {
  const S = keyTokens.length;
  const grid = el("div", {
    class: "attn-grid ae-grid",
    role: "grid",
    "aria-label": "Attention weights: one row per query, one column per key",
    style: {
      gridTemplateColumns: `max-content repeat(${S}, minmax(${annotate ? "2.6em" : "1.4em"}, 1fr))`,
    },
  });
  if (keyTokens.some((t) => String(t).length > 4) || S > ANNOTATE_MAX_KEYS) {
    grid.classList.add("attn-vertical-keys");
  }
  const corner = el("div", { class: "attn-corner ae-corner", role: "columnheader" }, [
    "query \u2193  key \u2192",
  ]);
  const keys = keyTokens.map((token, j) =>
    el("div", { class: "attn-key ae-key", role: "columnheader", title: `key ${j}: ${token}` }, [
      shown(token),
    ]),
  );
  grid.appendChild(el("div", { class: "attn-row ae-row ae-head", role: "row" }, [corner, ...keys]));
  const cells = [];
  const buttons = [];
  const rows = tokens.map((token, i) => {
    const button = el("button", {
      type: "button",
      class: "attn-label ae-query-button",
      text: shown(token),
      "aria-label": `${shown(token)} (query ${i}): show its weights`,
    });
    buttons.push(button);
    const rowCells = keyTokens.map((_, j) =>
      el("div", {
        class: "attn-cell attn-heat ae-cell",
        role: "gridcell",
        dataset: { i: String(i), j: String(j) },
      }),
    );
    cells.push(rowCells);
    const head = el("div", { class: "ae-query", role: "rowheader" }, [button]);
    const row = el("div", { class: "attn-row ae-row", role: "row", dataset: { i: String(i) } }, [
      head,
      ...rowCells,
    ]);
    row.addEventListener("click", () => select(i));
    grid.appendChild(row);
    return row;
  });
  const scroll = scrollBox("ae", [grid], "Attention weights");
  const nav = gridKeys(grid, {
    cells: () => buttons.map((b, i) => [b, ...cells[i]]),
    move: (i) => select(i),
    activate: (i) => select(i),
  });
  nav.place(0, 1);
  return { wrap: el("div", { class: "ae-heatmap" }, [scroll.wrap]), rows, cells, scroll, nav };
}

/** Bars for the selected query's weights: {box, title, rows}. */
function weightBars(keyTokens) {
  const title = el("div", { class: "ae-bars-title" });
  const rows = keyTokens.map((token, j) => {
    const bar = barRow("ae", shown(token));
    bar.label.title = token;
    bar.row.dataset.j = String(j);
    return bar;
  });
  const box = el("div", { class: "attn-bars ae-bars" }, [title, ...rows.map((bar) => bar.row)]);
  return { box, title, rows };
}

/** Colour and label every cell of the heatmap; mark the selected row. */
function showHeatmap(map, weights, { tokens, keyTokens, causal, selected, annotate }) {
  map.rows.forEach((row, i) => {
    row.classList.toggle("ae-selected", i === selected);
    row.setAttribute("aria-selected", i === selected ? "true" : "false");
    map.cells[i].forEach((cell, j) => {
      const w = weights[i][j];
      const masked = causal && j > i;
      setHeat(cell, w);
      cell.classList.toggle("attn-masked", masked);
      cell.dataset.w = w.toFixed(4);
      cell.title = `${tokens[i]} \u2192 ${keyTokens[j]}: ${masked ? "masked" : fmt(w)}`;
      cell.textContent = annotate ? (masked ? "\u00b7" : fmt(w, 2)) : "";
      if (annotate) cell.removeAttribute("aria-label");
      else cell.setAttribute("aria-label", masked ? "masked" : fmt(w));
    });
  });
}

/** The selected query's distribution as bars. */
function showBars(bars, row, { tokens, causal, selected }) {
  bars.title.replaceChildren(
    `Query ${selected} `,
    el("span", { class: "attn-token ae-token", text: shown(tokens[selected] ?? "") }),
    " attends to:",
  );
  bars.rows.forEach((bar, j) => {
    const w = row[j] ?? 0;
    setBar(bar, w);
    bar.value.textContent = fmt(w);
    bar.row.dataset.w = w.toFixed(4);
    bar.row.classList.toggle("ae-masked", causal && j > selected);
  });
}

/** What the live region says after a change: the settings and the selected query's top keys. */
function summary(row, { tokens, keyTokens, causal, selected }, temperature) {
  const top = row
    .map((w, j) => [w, j])
    .sort((a, b) => b[0] - a[0] || a[1] - b[1])
    .slice(0, 2)
    .map(([w, j]) => `${shown(keyTokens[j])} ${fmt(w, 2)}`);
  return (
    `\u03c4 = ${temperature.toFixed(2)}, causal mask ${causal ? "on" : "off"}. ` +
    `Query ${selected} ${shown(tokens[selected] ?? "")} attends most to ${top.join(", ")}.`
  );
}

function render({ model, el: host }) {
  const tokens = model.get("tokens");
  const keyTokens = model.get("key_tokens");
  const labels = model.get("layer_labels");
  const annotate = keyTokens.length <= ANNOTATE_MAX_KEYS && tokens.length <= ANNOTATE_MAX_QUERIES;

  const { root, announce } = widgetRoot("ae", model, "Attention explorer", EXPLORER_HELP);
  const controls = explorerControls(labels);
  const map = heatmap(tokens, keyTokens, annotate, (i) => setState(model, { selected: i }));
  const bars = weightBars(keyTokens);
  root.append(controls.bar, map.wrap, bars.box);
  host.appendChild(root);

  let first = true;
  function update() {
    const temperature = model.get("temperature");
    const causal = model.get("causal");
    const layer = clampIndex(model.get("layer"), labels.length);
    const selected = clampIndex(model.get("selected"), tokens.length);
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
    showTemperature(controls.temperature, temperature);
    controls.causal.input.checked = causal;
    if (controls.layer) controls.layer.select.value = String(layer);
    const view = { tokens, keyTokens, causal, selected, annotate };
    showHeatmap(map, weights, view);
    showBars(bars, weights[selected] || [], view);
    map.scroll.check();
    if (!first) announce(summary(weights[selected] || [], view, temperature));
    first = false;
  }

  const slider = controls.temperature.input;
  slider.addEventListener("input", () =>
    setState(model, { temperature: sliderToTemperature(slider.value) }),
  );
  controls.causal.input.addEventListener("change", () =>
    setState(model, { causal: controls.causal.input.checked }),
  );
  if (controls.layer) {
    const { select } = controls.layer;
    select.addEventListener("change", () => setState(model, { layer: Number(select.value) }));
  }
  const stop = listen(model, ["temperature", "causal", "selected", "layer"], update);
  update();
  return stop;
}

export default { render };
