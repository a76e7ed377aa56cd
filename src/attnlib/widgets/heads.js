// HeadView: the browser half of attnlib.widgets.HeadView.
//
// Python sends, once, every layer's and head's attention weights for a few sentences (integers in
// thousandths). Everything the reader does here -- pick a sentence, click a thumbnail of the model
// view, hover or click a token of the head view, switch lines/heatmap -- is drawn in this file,
// with no kernel, so the static book stays interactive.
//
// Security: tokens and texts are data, never markup. They go in through textContent or plain
// attributes only; this file never parses HTML.

const SVG = "http://www.w3.org/2000/svg";
const ROW = 20; // px between two tokens in the head view
const COLUMN = 120; // px given to each token column in the line view
const GAP = 110; // px between the two token columns
const CELL = 18; // px per cell in the heatmap
const ACCENT = [30, 79, 168]; // the thumbnails' colour (canvas cannot read CSS variables)
const MIN_LINE = 0.005; // lighter lines are not drawn

// ---------------------------------------------------------------------------------------------
// Data helpers (exported for the browser tests)

const parsed = new WeakMap(); // sentence object -> its weights as an Int32Array of thousandths

/** A sentence's weights: a flat array of thousandths in (layers, heads, L, L) order. */
export function thousandths(sentence) {
  let flat = parsed.get(sentence);
  if (!flat) {
    flat = Int32Array.from(String(sentence.weights).split(","), Number);
    const [layers, heads, L] = sentence.shape;
    if (flat.length !== layers * heads * L * L) {
      throw new Error(`HeadView: ${flat.length} weights for shape ${sentence.shape.join("x")}`);
    }
    parsed.set(sentence, flat);
  }
  return flat;
}

/** The (L, L) weights of one head of one sentence, as numbers in [0, 1]. */
export function headMatrix(sentence, layer, head) {
  const flat = thousandths(sentence);
  const heads = sentence.shape[1];
  const L = sentence.shape[2];
  const start = (layer * heads + head) * L * L;
  const rows = [];
  for (let i = 0; i < L; i++) {
    const row = new Array(L);
    for (let j = 0; j < L; j++) row[j] = flat[start + i * L + j] / 1000;
    rows.push(row);
  }
  return rows;
}

/** The keys a query attends to, heaviest first: [{j, w}]. */
export function topKeys(matrix, i, k = 3) {
  return matrix[i]
    .map((w, j) => ({ j, w }))
    .sort((a, b) => b.w - a.w || a.j - b.j)
    .slice(0, k);
}

function clampIndex(value, n) {
  const i = Number(value) | 0;
  return Math.min(Math.max(0, i), Math.max(0, n - 1));
}

// ---------------------------------------------------------------------------------------------
// Small DOM helpers: text goes in as text only.

function h(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function s(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

function shown(token) {
  return token === "" ? "\u2205" : String(token);
}

function selectControl(labelText, className) {
  const label = h("label", `hv-control ${className}`);
  label.appendChild(h("span", "hv-control-name", labelText));
  const select = document.createElement("select");
  select.setAttribute("aria-label", labelText);
  label.appendChild(select);
  return { label, select };
}

function fillOptions(select, names) {
  select.replaceChildren(
    ...names.map((name, index) => {
      const option = document.createElement("option");
      option.value = String(index);
      option.textContent = name;
      return option;
    }),
  );
}

// ---------------------------------------------------------------------------------------------

function render({ model, el }) {
  const root = h("div", "hv-root");
  root.setAttribute("role", "group");
  root.setAttribute("aria-label", model.get("title") || "Attention heads");
  const title = model.get("title");
  if (title) root.appendChild(h("div", "hv-title", title));
  root.appendChild(
    h(
      "p",
      "hv-help",
      "Model view: one thumbnail per layer (row) and head (column); click one to open it. " +
        "Head view: each token on the left sends lines to the tokens it attends to on the right, " +
        "darker for more weight. Hover a token to see only its lines; click it to keep them.",
    ),
  );

  // --- controls ------------------------------------------------------------------------------
  const controls = h("div", "hv-controls");
  const sentenceCtl = selectControl("Sentence", "hv-sentence");
  const layerCtl = selectControl("Layer", "hv-layer");
  const headCtl = selectControl("Head", "hv-head");
  const modeCtl = selectControl("Show", "hv-mode");
  fillOptions(modeCtl.select, ["lines", "heatmap"]);
  controls.append(sentenceCtl.label, layerCtl.label, headCtl.label, modeCtl.label);
  root.appendChild(controls);

  const body = h("div", "hv-body");
  const modelPanel = h("div", "hv-model");
  const headPanel = h("div", "hv-headview");
  body.append(modelPanel, headPanel);
  root.appendChild(body);
  el.appendChild(root);

  let hover = null; // {side: "q" | "k", index} while the pointer is on a token
  let thumbs = []; // thumbs[layer][head] = button
  let focusables = { q: [], k: [], lines: [], cells: [], weights: [] };

  const state = () => {
    const sentences = model.get("sentences");
    const sentence = clampIndex(model.get("sentence"), sentences.length);
    const data = sentences[sentence];
    const L = data.tokens.length;
    const token = model.get("token");
    return {
      sentences,
      sentence,
      data,
      L,
      layer: clampIndex(model.get("layer"), model.get("num_layers")),
      head: clampIndex(model.get("head"), model.get("num_heads")),
      mode: model.get("mode") === "matrix" ? "matrix" : "lines",
      token: token >= 0 && token < L ? token : -1,
    };
  };

  function set(changes) {
    for (const [name, value] of Object.entries(changes)) model.set(name, value);
    model.save_changes();
  }

  // --- the model view: a grid of thumbnails --------------------------------------------------
  function drawModelView() {
    const { data, L, layer, head } = state();
    const layers = model.get("num_layers");
    const heads = model.get("num_heads");
    modelPanel.replaceChildren();
    modelPanel.appendChild(h("div", "hv-caption", "Model view: layers \u00d7 heads"));
    const grid = h("div", "hv-grid");
    grid.style.gridTemplateColumns = `max-content repeat(${heads}, max-content)`;
    grid.appendChild(h("div", "hv-corner", ""));
    for (let c = 0; c < heads; c++) grid.appendChild(h("div", "hv-col", String(c)));
    thumbs = [];
    for (let r = 0; r < layers; r++) {
      grid.appendChild(h("div", "hv-rowname", `L${r}`));
      const row = [];
      for (let c = 0; c < heads; c++) {
        const button = h("button", "hv-thumb");
        button.type = "button";
        button.dataset.layer = String(r);
        button.dataset.head = String(c);
        button.title = `layer ${r}, head ${c}`;
        button.setAttribute("aria-label", `Open layer ${r}, head ${c}`);
        const canvas = document.createElement("canvas");
        canvas.width = L;
        canvas.height = L;
        const ctx = canvas.getContext("2d");
        if (ctx && L > 0) {
          const image = ctx.createImageData(L, L);
          const weights = headMatrix(data, r, c);
          for (let i = 0; i < L; i++) {
            for (let j = 0; j < L; j++) {
              const p = 4 * (i * L + j);
              image.data[p] = ACCENT[0];
              image.data[p + 1] = ACCENT[1];
              image.data[p + 2] = ACCENT[2];
              image.data[p + 3] = Math.round(255 * Math.min(1, weights[i][j]));
            }
          }
          ctx.putImageData(image, 0, 0);
        }
        button.appendChild(canvas);
        button.addEventListener("click", () => set({ layer: r, head: c }));
        grid.appendChild(button);
        row.push(button);
      }
      thumbs.push(row);
    }
    modelPanel.appendChild(grid);
    markThumb(layer, head);
  }

  function markThumb(layer, head) {
    thumbs.forEach((row, r) =>
      row.forEach((button, c) => {
        const on = r === layer && c === head;
        button.classList.toggle("hv-on", on);
        button.setAttribute("aria-pressed", on ? "true" : "false");
      }),
    );
  }

  // --- the head view: lines or a heatmap -----------------------------------------------------
  function tokenNode(text, attrs, side, index) {
    const node = s("text", attrs, shown(text));
    node.classList.add(side === "q" ? "hv-q" : "hv-k");
    node.dataset.i = String(index);
    node.setAttribute("tabindex", "0");
    node.setAttribute("role", "button");
    const what = side === "q" ? "query" : "key";
    node.setAttribute("aria-label", `${what} ${index}: ${text}`);
    node.addEventListener("mouseenter", () => {
      hover = { side, index };
      applyFocus();
    });
    node.addEventListener("mouseleave", () => {
      hover = null;
      applyFocus();
    });
    node.addEventListener("focus", () => {
      hover = { side, index };
      applyFocus();
    });
    node.addEventListener("blur", () => {
      hover = null;
      applyFocus();
    });
    if (side === "q") {
      const pin = () => set({ token: model.get("token") === index ? -1 : index });
      node.addEventListener("click", pin);
      node.addEventListener("keydown", (event) => {
        if (event.key === "Enter" || event.key === " ") {
          event.preventDefault();
          pin();
        }
      });
    }
    return node;
  }

  function drawHeadView() {
    const { data, L, layer, head, mode } = state();
    const matrix = headMatrix(data, layer, head);
    const tokens = data.tokens;
    headPanel.replaceChildren();
    headPanel.appendChild(h("div", "hv-caption hv-which", `Layer ${layer}, head ${head}`));
    focusables = { q: [], k: [], lines: [], cells: [], weights: [], matrix };

    if (mode === "lines") {
      const width = 2 * COLUMN + GAP + 40;
      const height = L * ROW + 24;
      const svg = s("svg", {
        class: "hv-lines",
        width,
        height,
        viewBox: `0 0 ${width} ${height}`,
        role: "img",
      });
      svg.setAttribute("aria-label", `Attention of layer ${layer}, head ${head} as lines`);
      svg.appendChild(s("text", { x: COLUMN - 4, y: 12, class: "hv-side" }, "query"));
      svg.appendChild(s("text", { x: COLUMN + GAP + 4, y: 12, class: "hv-side hv-side-k" }, "key"));
      const y = (i) => 24 + i * ROW + ROW / 2;
      const lines = s("g", { class: "hv-line-group" });
      for (let i = 0; i < L; i++) {
        for (let j = 0; j < L; j++) {
          const w = matrix[i][j];
          if (w < MIN_LINE) continue;
          const line = s("line", {
            x1: COLUMN,
            y1: y(i),
            x2: COLUMN + GAP,
            y2: y(j),
            "stroke-opacity": w.toFixed(3),
            class: "hv-line",
          });
          line.dataset.i = String(i);
          line.dataset.j = String(j);
          line.dataset.w = w.toFixed(3);
          lines.appendChild(line);
          focusables.lines.push(line);
        }
      }
      svg.appendChild(lines);
      tokens.forEach((token, i) => {
        const q = tokenNode(token, { x: COLUMN - 6, y: y(i), "text-anchor": "end" }, "q", i);
        const k = tokenNode(token, { x: COLUMN + GAP + 6, y: y(i) }, "k", i);
        const weight = s("text", { x: 2 * COLUMN + GAP + 36, y: y(i), class: "hv-weight" });
        weight.setAttribute("text-anchor", "end");
        weight.dataset.j = String(i);
        svg.append(q, k, weight);
        focusables.q.push(q);
        focusables.k.push(k);
        focusables.weights.push(weight);
      });
      headPanel.appendChild(svg);
    } else {
      const left = 110;
      const top = 90;
      const width = left + L * CELL + 8;
      const height = top + L * CELL + 8;
      const svg = s("svg", {
        class: "hv-matrix",
        width,
        height,
        viewBox: `0 0 ${width} ${height}`,
        role: "img",
      });
      svg.setAttribute("aria-label", `Attention of layer ${layer}, head ${head} as a heatmap`);
      tokens.forEach((token, i) => {
        const yq = top + i * CELL + CELL / 2;
        const q = tokenNode(token, { x: left - 6, y: yq, "text-anchor": "end" }, "q", i);
        svg.appendChild(q);
        focusables.q.push(q);
        const xk = left + i * CELL + CELL / 2;
        const k = tokenNode(token, { x: 0, y: 0, transform: `translate(${xk},${top - 6}) rotate(-60)` }, "k", i);
        svg.appendChild(k);
        focusables.k.push(k);
      });
      for (let i = 0; i < L; i++) {
        for (let j = 0; j < L; j++) {
          const w = matrix[i][j];
          const cell = s("rect", {
            x: left + j * CELL,
            y: top + i * CELL,
            width: CELL - 1,
            height: CELL - 1,
            "fill-opacity": (0.04 + 0.96 * w).toFixed(3),
            class: "hv-cell",
          });
          cell.dataset.i = String(i);
          cell.dataset.j = String(j);
          cell.dataset.w = w.toFixed(3);
          const tip = s("title", {}, `${tokens[i]} \u2192 ${tokens[j]}: ${w.toFixed(3)}`);
          cell.appendChild(tip);
          svg.appendChild(cell);
          focusables.cells.push(cell);
        }
      }
      headPanel.appendChild(svg);
    }
    const readout = h("div", "hv-readout");
    readout.setAttribute("aria-live", "polite");
    headPanel.appendChild(readout);
    focusables.readout = readout;
    applyFocus();
  }

  /** Highlight what the hovered (or pinned) token attends to, or what attends to it. */
  function applyFocus() {
    const { data, token } = state();
    const focus = hover || (token >= 0 ? { side: "q", index: token } : null);
    const { matrix } = focusables;
    const match = (node) => {
      if (!focus) return null;
      const i = Number(node.dataset.i);
      const j = Number(node.dataset.j);
      return focus.side === "q" ? i === focus.index : j === focus.index;
    };
    for (const node of [...focusables.lines, ...focusables.cells]) {
      const m = match(node);
      node.classList.toggle("hv-active", m === true);
      node.classList.toggle("hv-dim", m === false);
    }
    focusables.q.forEach((node, i) => {
      node.classList.toggle("hv-hover", !!focus && focus.side === "q" && focus.index === i);
      node.classList.toggle("hv-pinned", token === i);
    });
    focusables.k.forEach((node, j) => {
      node.classList.toggle("hv-hover", !!focus && focus.side === "k" && focus.index === j);
    });
    focusables.weights.forEach((node, j) => {
      node.textContent = focus && focus.side === "q" ? matrix[focus.index][j].toFixed(2) : "";
    });
    const readout = focusables.readout;
    if (!readout) return;
    if (focus && focus.side === "q") {
      const best = topKeys(matrix, focus.index, 3)
        .map(({ j, w }) => `${shown(data.tokens[j])} ${w.toFixed(2)}`)
        .join(", ");
      readout.textContent = `${shown(data.tokens[focus.index])} attends most to: ${best}`;
    } else if (focus) {
      const total = matrix.reduce((acc, row) => acc + row[focus.index], 0);
      readout.textContent =
        `${shown(data.tokens[focus.index])} receives ${total.toFixed(2)} of weight ` +
        `in total (${(total / matrix.length).toFixed(2)} per query)`;
    } else {
      readout.textContent = "Hover a token to highlight its attention.";
    }
  }

  // --- state -> view -------------------------------------------------------------------------
  function syncControls() {
    const { sentences, sentence, layer, head, mode } = state();
    fillOptions(
      sentenceCtl.select,
      sentences.map((d) => d.text),
    );
    fillOptions(
      layerCtl.select,
      Array.from({ length: model.get("num_layers") }, (_, i) => String(i)),
    );
    fillOptions(
      headCtl.select,
      Array.from({ length: model.get("num_heads") }, (_, i) => String(i)),
    );
    sentenceCtl.select.value = String(sentence);
    layerCtl.select.value = String(layer);
    headCtl.select.value = String(head);
    modeCtl.select.value = mode === "matrix" ? "1" : "0";
  }

  function onSentences() {
    hover = null;
    syncControls();
    drawModelView();
    drawHeadView();
  }
  function onWhich() {
    const { sentence, layer, head, mode } = state();
    sentenceCtl.select.value = String(sentence);
    layerCtl.select.value = String(layer);
    headCtl.select.value = String(head);
    modeCtl.select.value = mode === "matrix" ? "1" : "0";
    markThumb(layer, head);
    drawHeadView();
  }
  function onSentence() {
    hover = null;
    sentenceCtl.select.value = String(state().sentence);
    drawModelView();
    drawHeadView();
  }

  // --- view -> state -------------------------------------------------------------------------
  sentenceCtl.select.addEventListener("change", () =>
    set({ sentence: Number(sentenceCtl.select.value), token: -1 }),
  );
  layerCtl.select.addEventListener("change", () => set({ layer: Number(layerCtl.select.value) }));
  headCtl.select.addEventListener("change", () => set({ head: Number(headCtl.select.value) }));
  modeCtl.select.addEventListener("change", () =>
    set({ mode: modeCtl.select.value === "1" ? "matrix" : "lines" }),
  );

  const handlers = [
    ["change:sentences", onSentences],
    ["change:sentence", onSentence],
    ["change:layer", onWhich],
    ["change:head", onWhich],
    ["change:mode", onWhich],
    ["change:token", applyFocus],
  ];
  for (const [event, f] of handlers) model.on(event, f);
  onSentences();

  return () => {
    for (const [event, f] of handlers) model.off(event, f);
  };
}

export default { render };
