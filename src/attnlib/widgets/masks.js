// MaskExplorer: the browser half of attnlib.widgets.masks.MaskExplorer.
//
// Python sends one (L, S) matrix of scores once. Everything else happens here: build the
// allowed-matrix of the chosen mask, put -Infinity where a pair is not allowed, and run the
// softmax over each query's row. That keeps the widget interactive in the static book, with no
// kernel behind it.
//
// Polarity, as in attnlib: true = this query may attend to this key. A row with no allowed key
// gets zeros (not NaN), as attnlib.scaled_dot_product_attention does.
//
// Security: tokens are data, never markup. Every piece of text goes in through textContent,
// createTextNode or a plain attribute; this file never parses HTML.

export const KINDS = ["bidirectional", "causal", "padding", "window", "custom"];

const KIND_LABELS = {
  bidirectional: "bidirectional (encoder)",
  causal: "causal (decoder)",
  padding: "padding",
  window: "sliding window",
  custom: "custom",
};

const ANNOTATE_MAX_KEYS = 12; // write the weight in each cell up to this many keys

// ---------------------------------------------------------------------------------------------
// The mathematics (exported for the browser tests)

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

/**
 * Softmax over each row of `scores` where `allowed` is true; disallowed keys count as -Infinity
 * and get weight 0. The row maximum is subtracted first, so large scores do not overflow. A row
 * with no allowed key gets zeros.
 */
export function maskedSoftmax(scores, allowed) {
  return scores.map((row, i) => {
    let max = -Infinity;
    for (let j = 0; j < row.length; j++) if (allowed[i][j] && row[j] > max) max = row[j];
    const out = new Array(row.length).fill(0);
    if (max === -Infinity) return out;
    let total = 0;
    for (let j = 0; j < row.length; j++) {
      if (allowed[i][j]) {
        out[j] = Math.exp(row[j] - max);
        total += out[j];
      }
    }
    for (let j = 0; j < row.length; j++) out[j] /= total;
    return out;
  });
}

// ---------------------------------------------------------------------------------------------
// Small DOM helpers: text goes in as text only.

function h(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/** A token as a reader should see it: an empty token not invisible. */
function shown(token) {
  return token === "" ? "\u2205" : String(token);
}

function slider(uid, name, labelText, min, max) {
  const label = h("label", `me-control me-${name}`);
  const input = document.createElement("input");
  input.type = "range";
  input.id = `${uid}-${name}`;
  input.min = String(min);
  input.max = String(max);
  input.step = "1";
  input.setAttribute("aria-label", labelText);
  const value = h("output", "me-value");
  value.htmlFor = input.id;
  value.setAttribute("aria-live", "polite");
  label.append(h("span", "me-control-name", labelText), input, value);
  return { label, input, value };
}

// ---------------------------------------------------------------------------------------------

function render({ model, el }) {
  const tokens = model.get("tokens");
  const keyTokens = model.get("key_tokens");
  const scores = model.get("scores");
  const L = tokens.length;
  const S = keyTokens.length;
  const uid = `me-${Math.random().toString(36).slice(2, 10)}`;
  const annotate = S <= ANNOTATE_MAX_KEYS;

  const root = h("div", "me-root");
  root.setAttribute("role", "group");
  root.setAttribute("aria-label", model.get("title") || "Mask explorer");
  const title = model.get("title");
  if (title) root.appendChild(h("div", "me-title", title));
  root.appendChild(
    h(
      "p",
      "me-help",
      "Pick a mask. Left: which keys each query may attend to. Right: the softmax of the " +
        "scores once the other keys are set to \u2212\u221e. Click a cell on the left to toggle it " +
        "(the pattern becomes a custom one).",
    ),
  );

  // --- controls ------------------------------------------------------------------------------
  const controls = h("div", "me-controls");
  const kindBox = h("fieldset", "me-kinds");
  kindBox.appendChild(h("legend", "me-control-name", "Mask"));
  const radios = {};
  for (const kind of KINDS) {
    const label = h("label", "me-kind");
    const radio = document.createElement("input");
    radio.type = "radio";
    radio.name = `${uid}-kind`;
    radio.value = kind;
    radios[kind] = radio;
    label.append(radio, document.createTextNode(` ${KIND_LABELS[kind]}`));
    kindBox.appendChild(label);
  }
  controls.appendChild(kindBox);

  const settings = h("div", "me-settings");
  const length = slider(uid, "length", "Real tokens", 0, S);
  const windowControl = slider(uid, "window", "Window", 0, Math.max(L, S, 1) - 1);
  const cLabel = h("label", "me-control me-causal");
  const checkbox = document.createElement("input");
  checkbox.type = "checkbox";
  checkbox.setAttribute("aria-label", "Also causal: AND the mask with the causal mask");
  cLabel.append(checkbox, document.createTextNode(" also causal"));
  settings.append(length.label, windowControl.label, cLabel);
  controls.appendChild(settings);
  root.appendChild(controls);

  const summary = h("p", "me-summary");
  summary.setAttribute("aria-live", "polite");
  root.appendChild(summary);

  // --- the two grids -------------------------------------------------------------------------
  const panels = h("div", "me-panels");

  function grid(caption, extraColumn) {
    const panel = h("div", "me-panel");
    panel.appendChild(h("div", "me-panel-title", caption));
    const g = h("div", "me-grid");
    g.setAttribute("role", "grid");
    g.setAttribute("aria-label", caption);
    const cols = `max-content repeat(${S}, minmax(${annotate ? "2.5em" : "1.3em"}, 1fr))`;
    g.style.gridTemplateColumns = extraColumn ? `${cols} max-content` : cols;
    if (keyTokens.some((t) => String(t).length > 4) || !annotate) g.classList.add("me-vertical-keys");
    const head = h("div", "me-row me-head");
    head.setAttribute("role", "row");
    const corner = h("div", "me-corner", "query \u2193  key \u2192");
    corner.setAttribute("role", "columnheader");
    head.appendChild(corner);
    const keyCells = keyTokens.map((token, j) => {
      const cell = h("div", "me-key", shown(token));
      cell.setAttribute("role", "columnheader");
      cell.title = `key ${j}: ${token}`;
      head.appendChild(cell);
      return cell;
    });
    if (extraColumn) {
      const sum = h("div", "me-key me-sum-head", "\u03a3");
      sum.setAttribute("role", "columnheader");
      sum.title = "row sum";
      head.appendChild(sum);
    }
    g.appendChild(head);
    panel.appendChild(g);
    return { panel, g, keyCells };
  }

  const left = grid("Allowed (true = may attend)", false);
  const right = grid("Weights: softmax over the allowed keys", true);
  const maskCells = [];
  const weightCells = [];
  const sumCells = [];
  const queryCells = [];
  tokens.forEach((token, i) => {
    const rowL = h("div", "me-row");
    rowL.setAttribute("role", "row");
    rowL.dataset.i = String(i);
    const qL = h("div", "me-query", shown(token));
    qL.setAttribute("role", "rowheader");
    rowL.appendChild(qL);
    const rowR = h("div", "me-row");
    rowR.setAttribute("role", "row");
    rowR.dataset.i = String(i);
    const qR = h("div", "me-query", shown(token));
    qR.setAttribute("role", "rowheader");
    rowR.appendChild(qR);
    queryCells.push([qL, qR]);
    const mRow = [];
    const wRow = [];
    for (let j = 0; j < S; j++) {
      const button = h("button", "me-mask");
      button.type = "button";
      button.dataset.i = String(i);
      button.dataset.j = String(j);
      button.setAttribute("role", "gridcell");
      button.addEventListener("click", () => toggle(i, j));
      rowL.appendChild(button);
      mRow.push(button);
      const cell = h("div", "me-cell");
      cell.setAttribute("role", "gridcell");
      cell.dataset.i = String(i);
      cell.dataset.j = String(j);
      rowR.appendChild(cell);
      wRow.push(cell);
    }
    const sum = h("div", "me-sum");
    sum.setAttribute("role", "gridcell");
    rowR.appendChild(sum);
    sumCells.push(sum);
    maskCells.push(mRow);
    weightCells.push(wRow);
    left.g.appendChild(rowL);
    right.g.appendChild(rowR);
  });
  panels.append(left.panel, right.panel);
  root.appendChild(panels);
  el.appendChild(root);

  // --- state -> view -------------------------------------------------------------------------
  function current() {
    return allowedMatrix({
      kind: model.get("kind"),
      L,
      S,
      length: model.get("length"),
      window: model.get("window"),
      causal: model.get("causal"),
      custom: model.get("custom"),
    });
  }

  function update() {
    const kind = model.get("kind");
    const allowed = current();
    const weights = maskedSoftmax(scores, allowed);

    for (const k of KINDS) radios[k].checked = k === kind;
    for (const [control, name] of [[length, "length"], [windowControl, "window"]]) {
      const v = model.get(name);
      if (document.activeElement !== control.input) control.input.value = String(v);
      const active = (name === "length" && kind === "padding") || (name === "window" && kind === "window");
      control.input.disabled = !active;
      control.label.classList.toggle("me-inactive", !active);
      control.value.textContent = String(v);
    }
    checkbox.checked = model.get("causal");

    const padFrom = kind === "padding" ? model.get("length") : S;
    left.keyCells.concat(right.keyCells).forEach((cell, n) => {
      cell.classList.toggle("me-pad", n % S >= padFrom);
    });

    let allowedCount = 0;
    let deadRows = 0;
    for (let i = 0; i < L; i++) {
      let rowSum = 0;
      let any = false;
      for (let j = 0; j < S; j++) {
        const ok = allowed[i][j];
        const w = weights[i][j];
        any = any || ok;
        allowedCount += ok ? 1 : 0;
        rowSum += w;
        const m = maskCells[i][j];
        m.classList.toggle("me-allowed", ok);
        m.dataset.allowed = ok ? "1" : "0";
        m.setAttribute("aria-pressed", ok ? "true" : "false");
        m.setAttribute(
          "aria-label",
          `${tokens[i]} \u2192 ${keyTokens[j]}: ${ok ? "allowed" : "masked"}; click to toggle`,
        );
        m.textContent = ok ? "\u2713" : "";
        const c = weightCells[i][j];
        c.style.setProperty("--me-w", String(0.06 + 0.94 * w));
        c.classList.toggle("me-strong", w >= 0.6);
        c.classList.toggle("me-masked", !ok);
        c.dataset.w = w.toFixed(4);
        c.title = `${tokens[i]} \u2192 ${keyTokens[j]}: ${ok ? w.toFixed(3) : "masked (0)"}`;
        c.textContent = annotate ? (ok ? w.toFixed(2) : "\u00b7") : "";
      }
      deadRows += any ? 0 : 1;
      sumCells[i].textContent = rowSum.toFixed(2);
      sumCells[i].dataset.sum = rowSum.toFixed(4);
      sumCells[i].classList.toggle("me-dead", !any);
      for (const q of queryCells[i]) q.classList.toggle("me-dead", !any);
    }
    summary.textContent =
      `${allowedCount} of ${L * S} query\u2013key pairs allowed. ` +
      (deadRows === 0
        ? "Every query has at least one key, so every row of weights sums to 1."
        : `${deadRows} ${deadRows === 1 ? "query has" : "queries have"} no allowed key: ` +
          "that row of weights is all zeros (not NaN).");
    summary.classList.toggle("me-warning", deadRows > 0);
  }

  function toggle(i, j) {
    const pattern = current().map((row) => row.slice());
    pattern[i][j] = !pattern[i][j];
    model.set("custom", pattern);
    model.set("causal", false); // the pattern already holds whatever causal removed
    model.set("kind", "custom");
    model.save_changes();
  }

  // --- view -> state -------------------------------------------------------------------------
  for (const k of KINDS) {
    radios[k].addEventListener("change", () => {
      if (!radios[k].checked) return;
      model.set("kind", k);
      model.save_changes();
    });
  }
  for (const [control, name] of [[length, "length"], [windowControl, "window"]]) {
    control.input.addEventListener("input", () => {
      model.set(name, Number(control.input.value));
      model.save_changes();
    });
  }
  checkbox.addEventListener("change", () => {
    model.set("causal", checkbox.checked);
    model.save_changes();
  });

  const events = ["kind", "length", "window", "causal", "custom"].map((n) => `change:${n}`);
  for (const event of events) model.on(event, update);
  update();

  return () => {
    for (const event of events) model.off(event, update);
  };
}

export default { render };
