// MaskExplorer: the browser half of attnlib.widgets.masks.MaskExplorer.
//
// Python sends one (L, S) matrix of scores once. Everything else happens here: build the
// allowed-matrix of the chosen mask, put -Infinity where a pair is not allowed, and run the
// softmax over each query's row (maskedSoftmax, from the shared base). That keeps the widget
// interactive in the static book, with no kernel behind it.
//
// Polarity, as in attnlib: true = this query may attend to this key. A row with no allowed key
// gets zeros (not NaN), as attnlib.scaled_dot_product_attention does.

export const KINDS = ["bidirectional", "causal", "padding", "window", "custom"];

const KIND_LABELS = {
  bidirectional: "bidirectional (encoder)",
  causal: "causal (decoder)",
  padding: "padding",
  window: "sliding window",
  custom: "custom",
};

const ANNOTATE_MAX_KEYS = 12; // write the weight in each cell up to this many keys
const MASK_HELP =
  "Pick a mask. Left: which keys each query may attend to. Right: the softmax of the " +
  "scores once the other keys are set to \u2212\u221e. Click a cell on the left, or move to it " +
  "with the arrow keys and press Enter or Space, to toggle it (the pattern becomes a custom one).";

// ---------------------------------------------------------------------------------------------
// The mathematics (exported for the browser tests; maskedSoftmax comes from the base)

/**
 * The (L, S) allowed-matrix of a mask, as arrays of booleans.
 *
 * bidirectional: every key;  causal: key j <= query i (aligned top-left, like PyTorch);
 * padding: key j < length (the keys after it are padding);  window: |i - j| <= window;
 * custom: the given pattern.  causal=true ANDs the causal mask on top of any of them.
 */
export function allowedMatrix({ kind, L, S, length, window, causal, custom }) {
  const rows = [];
  for (let i = 0; i < L; i++) {
    const row = new Array(S);
    for (let j = 0; j < S; j++) {
      let ok;
      if (kind === "causal") ok = j <= i;
      else if (kind === "padding") ok = j < length;
      else if (kind === "window") ok = Math.abs(i - j) <= window;
      else if (kind === "custom") ok = Boolean(custom && custom[i] && custom[i][j]);
      else ok = true;
      row[j] = ok && (!causal || j <= i);
    }
    rows.push(row);
  }
  return rows;
}

/** What the mask allows, in a sentence: {text, warning}. */
export function maskSummary(allowed, L, S) {
  const count = allowed.reduce((n, row) => n + row.filter(Boolean).length, 0);
  const dead = allowed.filter((row) => !row.some(Boolean)).length;
  const text =
    `${count} of ${L * S} query\u2013key pairs allowed. ` +
    (dead === 0
      ? "Every query has at least one key, so every row of weights sums to 1."
      : `${dead} ${dead === 1 ? "query has" : "queries have"} no allowed key: ` +
        "that row of weights is all zeros (not NaN).");
  return { text, warning: dead > 0 };
}

// ---------------------------------------------------------------------------------------------
// The view

/** The mask's radio buttons, its two sliders and the causal checkbox. */
function maskControls(L, S) {
  const uid = uniqueId("me-kind");
  const radios = {};
  const kinds = KINDS.map((kind) => {
    radios[kind] = el("input", { type: "radio", name: uid, value: kind });
    return el("label", { class: "me-kind" }, [radios[kind], ` ${KIND_LABELS[kind]}`]);
  });
  const legend = el("legend", { class: "attn-control-name me-control-name", text: "Mask" });
  const length = sliderControl("me", "length", "Real tokens", 0, S);
  const width = sliderControl("me", "window", "Window", 0, Math.max(L, S, 1) - 1);
  const causal = checkboxControl(
    "me",
    "causal",
    "also causal",
    "Also causal: AND the mask with the causal mask",
  );
  const bar = controlBar("me", [
    el("fieldset", { class: "me-kinds" }, [legend, ...kinds]),
    el("div", { class: "me-settings" }, [length.label, width.label, causal.label]),
  ]);
  return { bar, radios, sliders: { length, window: width }, causal: causal.input };
}

/**
 * One panel: a caption and a grid (role grid when its cells are controls, else table) with a
 * header row of keys, in a box that scrolls sideways. Returns {panel, grid, keyCells, scroll}.
 */
function panel(caption, keyTokens, annotate, withSum, role) {
  const S = keyTokens.length;
  const cols = `max-content repeat(${S}, minmax(${annotate ? "2.5em" : "1.3em"}, 1fr))`;
  const grid = el("div", {
    class: "attn-grid me-grid",
    role,
    "aria-label": caption,
    style: { gridTemplateColumns: withSum ? `${cols} max-content` : cols },
  });
  if (keyTokens.some((t) => String(t).length > 4) || !annotate) {
    grid.classList.add("attn-vertical-keys");
  }
  const keyCells = keyTokens.map((token, j) =>
    el("div", { class: "attn-key me-key", role: "columnheader", title: `key ${j}: ${token}` }, [
      shown(token),
    ]),
  );
  const sum = el("div", { class: "attn-key me-key me-sum-head", role: "columnheader" }, [
    "\u03a3",
  ]);
  sum.title = "row sum";
  const corner = el("div", { class: "attn-corner me-corner", role: "columnheader" }, [
    "query \u2193  key \u2192",
  ]);
  const head = [corner, ...keyCells, withSum && sum];
  grid.appendChild(el("div", { class: "attn-row me-row me-head", role: "row" }, head));
  const scroll = scrollBox("me", [grid], caption);
  const box = el("div", { class: "me-panel" }, [
    el("div", { class: "me-panel-title", text: caption }),
    scroll.wrap,
  ]);
  return { panel: box, grid, keyCells, scroll };
}

/** One query's row in a panel: its row node (after the query's name) and its cells. */
function panelRow(token, i, makeCell, cellRole) {
  const name = el("div", { class: "attn-label me-query", role: "rowheader", text: shown(token) });
  const cells = [];
  const row = el("div", { class: "attn-row me-row", role: "row", dataset: { i: String(i) } }, [
    name,
  ]);
  const add = (j) => {
    const cell = makeCell(i, j);
    const holder = cellRole === "gridcell" ? el("div", { class: "me-holder", role: cellRole }, [cell]) : cell;
    row.appendChild(holder);
    cells.push(cell);
  };
  return { row, name, cells, add };
}

/** The two grids: the allowed-matrix (click to toggle) and the weights with their row sums. */
function maskPanels(tokens, keyTokens, annotate, toggle) {
  const left = panel("Allowed (true = may attend)", keyTokens, annotate, false, "grid");
  const right = panel("Weights: softmax over the allowed keys", keyTokens, annotate, true, "table");
  const maskButton = (i, j) =>
    el("button", {
      type: "button",
      class: "me-mask",
      dataset: { i: String(i), j: String(j) },
      on: { click: () => toggle(i, j) },
    });
  const weightCell = (i, j) =>
    el("div", {
      class: "attn-cell attn-heat me-cell",
      role: "cell",
      dataset: { i: String(i), j: String(j) },
    });
  const rows = tokens.map((token, i) => {
    const mask = panelRow(token, i, maskButton, "gridcell");
    const weights = panelRow(token, i, weightCell, "cell");
    keyTokens.forEach((_, j) => {
      mask.add(j);
      weights.add(j);
    });
    const sum = weights.row.appendChild(el("div", { class: "me-sum", role: "cell" }));
    left.grid.appendChild(mask.row);
    right.grid.appendChild(weights.row);
    return { masks: mask.cells, weights: weights.cells, sum, names: [mask.name, weights.name] };
  });
  const box = el("div", { class: "me-panels" }, [left.panel, right.panel]);
  const nav = gridKeys(left.grid, { cells: () => rows.map((row) => row.masks) });
  nav.place(0, 0);
  const scrolls = [left.scroll, right.scroll];
  return { box, rows, keyCells: left.keyCells.concat(right.keyCells), scrolls };
}

/** Show row i of the allowed-matrix and of the weights, and the row's sum. */
function showRow(row, allowed, weights, { tokens, keyTokens, i, annotate }) {
  let sum = 0;
  row.masks.forEach((m, j) => {
    const ok = allowed[j];
    const w = weights[j];
    const pair = `${tokens[i]} \u2192 ${keyTokens[j]}`;
    sum += w;
    m.classList.toggle("me-allowed", ok);
    m.dataset.allowed = ok ? "1" : "0";
    m.setAttribute("aria-pressed", ok ? "true" : "false");
    m.setAttribute("aria-label", `${shown(tokens[i])} \u2192 ${shown(keyTokens[j])}: allowed`);
    m.textContent = ok ? "\u2713" : "";
    const c = row.weights[j];
    setHeat(c, w);
    c.classList.toggle("attn-masked", !ok);
    c.dataset.w = w.toFixed(4);
    c.title = `${pair}: ${ok ? fmt(w) : "masked (0)"}`;
    c.textContent = annotate ? (ok ? fmt(w, 2) : "\u00b7") : "";
  });
  const dead = !allowed.some(Boolean);
  row.sum.textContent = sum.toFixed(2);
  row.sum.dataset.sum = sum.toFixed(4);
  row.sum.classList.toggle("me-dead", dead);
  for (const name of row.names) name.classList.toggle("me-dead", dead);
}

function render({ model, el: host }) {
  const tokens = model.get("tokens");
  const keyTokens = model.get("key_tokens");
  const [L, S] = [tokens.length, keyTokens.length];
  const annotate = S <= ANNOTATE_MAX_KEYS;

  const { root, announce } = widgetRoot("me", model, "Mask explorer", MASK_HELP);
  const controls = maskControls(L, S);
  const summary = el("p", { class: "me-summary" });
  const panels = maskPanels(tokens, keyTokens, annotate, toggle);
  root.append(controls.bar, summary, panels.box);
  host.appendChild(root);

  function current() {
    const names = ["kind", "length", "window", "causal", "custom"];
    return allowedMatrix({ L, S, ...Object.fromEntries(names.map((n) => [n, model.get(n)])) });
  }

  let first = true;
  function update() {
    const kind = model.get("kind");
    const allowed = current();
    const weights = maskedSoftmax(model.get("scores"), allowed);
    for (const k of KINDS) controls.radios[k].checked = k === kind;
    for (const [name, control] of Object.entries(controls.sliders)) {
      const v = model.get(name);
      const active = kind === (name === "length" ? "padding" : "window");
      if (document.activeElement !== control.input) control.input.value = String(v);
      control.input.disabled = !active;
      control.label.classList.toggle("me-inactive", !active);
      control.value.textContent = String(v);
    }
    controls.causal.checked = model.get("causal");
    const padFrom = kind === "padding" ? model.get("length") : S;
    panels.keyCells.forEach((cell, n) => cell.classList.toggle("me-pad", n % S >= padFrom));
    panels.rows.forEach((row, i) =>
      showRow(row, allowed[i], weights[i], { tokens, keyTokens, i, annotate }),
    );
    const { text, warning } = maskSummary(allowed, L, S);
    summary.textContent = text;
    summary.classList.toggle("me-warning", warning);
    for (const scroll of panels.scrolls) scroll.check();
    const causal = model.get("causal") && kind !== "causal" ? ", also causal" : "";
    if (!first) announce(`Mask: ${KIND_LABELS[kind] || kind}${causal}. ${text}`);
    first = false;
  }

  function toggle(i, j) {
    const pattern = current().map((row) => row.slice());
    pattern[i][j] = !pattern[i][j];
    // The pattern already holds whatever causal removed.
    setState(model, { custom: pattern, causal: false, kind: "custom" });
  }

  for (const k of KINDS) {
    const radio = controls.radios[k];
    radio.addEventListener("change", () => radio.checked && setState(model, { kind: k }));
  }
  for (const [name, { input }] of Object.entries(controls.sliders)) {
    input.addEventListener("input", () => setState(model, { [name]: Number(input.value) }));
  }
  controls.causal.addEventListener("change", () =>
    setState(model, { causal: controls.causal.checked }),
  );
  const stop = listen(model, ["kind", "length", "window", "causal", "custom"], update);
  update();
  return stop;
}

export default { render };
