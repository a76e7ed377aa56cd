// HeadView: the browser half of attnlib.widgets.HeadView.
//
// Python sends, once, every layer's and head's attention weights for a few sentences (integers in
// thousandths). Everything the reader does here -- pick a sentence, click a thumbnail of the model
// view, hover or click a token of the head view, switch lines/heatmap -- is drawn in this view,
// with no kernel, so the static book stays interactive.
//
// Live mode (HeadView.live: the state carries a vocabulary): a text box tokenises what the reader
// types (_wordpiece.js) and, after "Load MiniLM", runs all-MiniLM-L6-v2 in the page (_bert.js) and
// draws that forward pass's attention. The weights come from the book's _static folder through a
// <script src> (which works over file://), or, with no _static (a running notebook), from the
// kernel as a custom message; the same forward pass runs on both.

const ROW = 20; // px between two tokens in the head view
const COLUMN = 120; // px given to each token column in the line view
const GAP = 110; // px between the two token columns
const CELL = 18; // px per cell in the heatmap
const MIN_LINE = 0.005; // lighter lines are not drawn
const HEADS_HELP =
  "Model view: one thumbnail per layer (row) and head (column); click one to open it. " +
  "Head view: each token on the left sends lines to the tokens it attends to on the right, " +
  "darker for more weight. Hover a token to see only its lines; click it to keep them. " +
  "Keyboard: arrow keys move through the thumbnails and through the tokens; Enter opens a " +
  "thumbnail or keeps a token's lines.";

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

/** What the readout says for a focused token (or none). */
export function readoutText(focus, matrix, tokens) {
  if (!focus) return "Hover a token to highlight its attention.";
  const name = shown(tokens[focus.index]);
  if (focus.side === "q") {
    const keys = topKeys(matrix, focus.index, 3);
    const best = keys.map(({ j, w }) => `${shown(tokens[j])} ${fmt(w, 2)}`);
    return `${name} attends most to: ${best.join(", ")}`;
  }
  const total = matrix.reduce((acc, row) => acc + row[focus.index], 0);
  return (
    `${name} receives ${total.toFixed(2)} of weight ` +
    `in total (${(total / matrix.length).toFixed(2)} per query)`
  );
}

// ---------------------------------------------------------------------------------------------
// The model view: a grid of thumbnails

/** One head's weights drawn on a canvas, one pixel per weight, in the colour rgb. */
function thumbnail(data, layer, head, rgb) {
  const L = data.tokens.length;
  const canvas = el("canvas", { width: L, height: L });
  const ctx = canvas.getContext("2d");
  if (!ctx || L === 0) return canvas;
  const image = ctx.createImageData(L, L);
  const weights = headMatrix(data, layer, head);
  for (let i = 0; i < L; i++) {
    for (let j = 0; j < L; j++) {
      const p = 4 * (i * L + j);
      image.data.set(rgb, p);
      image.data[p + 3] = Math.round(255 * Math.min(1, weights[i][j]));
    }
  }
  ctx.putImageData(image, 0, 0);
  return canvas;
}

/**
 * The grid of thumbnails (role grid: a row per layer, a column per head); pick(layer, head)
 * opens one. Returns {grid, thumbs[layer][head]}.
 */
function modelView(data, layers, heads, pick, rgb) {
  const grid = el("div", {
    class: "hv-grid",
    role: "grid",
    "aria-label": "Model view: one row per layer, one column per head",
    style: { gridTemplateColumns: `max-content repeat(${heads}, max-content)` },
  });
  const head = [el("div", { class: "hv-corner", role: "columnheader" }, [
    el("span", { class: "attn-visually-hidden", text: "layer" }),
  ])];
  for (let c = 0; c < heads; c++) {
    head.push(el("div", { class: "hv-col", role: "columnheader", text: `${c}` }));
  }
  grid.appendChild(el("div", { class: "hv-row", role: "row" }, head));
  const thumbs = [];
  for (let r = 0; r < layers; r++) {
    const line = el("div", { class: "hv-row", role: "row" }, [
      el("div", { class: "hv-rowname", role: "rowheader", text: `L${r}` }),
    ]);
    grid.appendChild(line);
    const row = [];
    for (let c = 0; c < heads; c++) {
      const button = el(
        "button",
        {
          type: "button",
          class: "hv-thumb",
          title: `layer ${r}, head ${c}`,
          "aria-label": `Open layer ${r}, head ${c}`,
          dataset: { layer: String(r), head: String(c) },
          on: { click: () => pick(r, c) },
        },
        [thumbnail(data, r, c, rgb)],
      );
      line.appendChild(el("div", { class: "hv-thumb-cell", role: "gridcell" }, [button]));
      row.push(button);
    }
    thumbs.push(row);
  }
  return { grid, thumbs };
}

function markThumbs(thumbs, layer, head) {
  thumbs.forEach((row, r) =>
    row.forEach((button, c) => {
      const on = r === layer && c === head;
      button.classList.toggle("hv-on", on);
      button.setAttribute("aria-pressed", on ? "true" : "false");
    }),
  );
}

// ---------------------------------------------------------------------------------------------
// The head view: lines or a heatmap

/**
 * A token of the head view, on the query side ("q") or the key side ("k"). Hovering or
 * focusing it calls hover({side, index}) (and hover(null) on leaving); clicking it pins it
 * (Enter and Space come through gridKeys). The tokens are one roving-tabindex group.
 */
function tokenNode(text, attrs, side, index, { hover, pin }) {
  const what = side === "q" ? "query" : "key";
  const enter = () => hover({ side, index });
  const leave = () => hover(null);
  const on = { mouseenter: enter, mouseleave: leave, focus: enter, blur: leave };
  on.click = () => pin(side, index);
  return svgEl("text", {
    ...attrs,
    class: `hv-${side}`,
    tabindex: "-1",
    role: "button",
    "aria-label": `${what} ${index}: ${text}`,
    text: shown(text),
    dataset: { i: String(index) },
    on,
  });
}

/** The head as lines from each query (left) to the keys it attends to (right). */
function lineView(matrix, tokens, caption, handlers) {
  const L = tokens.length;
  const width = 2 * COLUMN + GAP + 40;
  const height = L * ROW + 24;
  const y = (i) => 24 + i * ROW + ROW / 2;
  const parts = { q: [], k: [], lines: [], cells: [], weights: [], matrix };
  const group = svgEl("g", { class: "hv-line-group" });
  for (let i = 0; i < L; i++) {
    for (let j = 0; j < L; j++) {
      const w = matrix[i][j];
      if (w < MIN_LINE) continue;
      const line = svgEl("line", {
        x1: COLUMN,
        y1: y(i),
        x2: COLUMN + GAP,
        y2: y(j),
        "stroke-opacity": w.toFixed(3),
        class: "hv-line",
        dataset: { i: String(i), j: String(j), w: w.toFixed(3) },
      });
      group.appendChild(line);
      parts.lines.push(line);
    }
  }
  const sides = [
    svgEl("text", { x: COLUMN - 4, y: 12, class: "hv-side", text: "query" }),
    svgEl("text", { x: COLUMN + GAP + 4, y: 12, class: "hv-side hv-side-k", text: "key" }),
  ];
  const box = { width, height, viewBox: `0 0 ${width} ${height}`, role: "group" };
  const label = `${caption} as lines`;
  const svg = svgEl("svg", { class: "hv-lines", ...box, "aria-label": label }, [...sides, group]);
  tokens.forEach((token, i) => {
    const q = tokenNode(token, { x: COLUMN - 6, y: y(i), "text-anchor": "end" }, "q", i, handlers);
    const k = tokenNode(token, { x: COLUMN + GAP + 6, y: y(i) }, "k", i, handlers);
    const weight = svgEl("text", {
      x: 2 * COLUMN + GAP + 36,
      y: y(i),
      class: "hv-weight",
      "text-anchor": "end",
      dataset: { j: String(i) },
    });
    svg.append(q, k, weight);
    parts.q.push(q);
    parts.k.push(k);
    parts.weights.push(weight);
  });
  return { svg, parts };
}

/** The head as a heatmap: queries down the left, keys along the top (slanted). */
function matrixView(matrix, tokens, caption, handlers) {
  const L = tokens.length;
  const left = 110;
  const top = 90;
  const width = left + L * CELL + 8;
  const height = top + L * CELL + 8;
  const parts = { q: [], k: [], lines: [], cells: [], weights: [], matrix };
  const svg = svgEl("svg", {
    class: "hv-matrix",
    width,
    height,
    viewBox: `0 0 ${width} ${height}`,
    role: "group",
    "aria-label": `${caption} as a heatmap`,
  });
  tokens.forEach((token, i) => {
    const yq = top + i * CELL + CELL / 2;
    const xk = left + i * CELL + CELL / 2;
    const slant = { x: 0, y: 0, transform: `translate(${xk},${top - 6}) rotate(-60)` };
    const q = tokenNode(token, { x: left - 6, y: yq, "text-anchor": "end" }, "q", i, handlers);
    const k = tokenNode(token, slant, "k", i, handlers);
    svg.append(q, k);
    parts.q.push(q);
    parts.k.push(k);
  });
  for (let i = 0; i < L; i++) {
    for (let j = 0; j < L; j++) {
      const w = matrix[i][j];
      const tip = svgEl("title", { text: `${tokens[i]} \u2192 ${tokens[j]}: ${w.toFixed(3)}` });
      const rect = { x: left + j * CELL, y: top + i * CELL, width: CELL - 1, height: CELL - 1 };
      const cell = svgEl(
        "rect",
        {
          ...rect,
          "fill-opacity": heat(w).toFixed(3),
          class: "hv-cell",
          dataset: { i: String(i), j: String(j), w: w.toFixed(3) },
        },
        [tip],
      );
      svg.appendChild(cell);
      parts.cells.push(cell);
    }
  }
  return { svg, parts };
}

/** Highlight what the focused token attends to (a query) or what attends to it (a key). */
function applyFocus(parts, focus, token, tokens, keyPin) {
  const { matrix } = parts;
  const match = (node) => {
    if (!focus) return null;
    const index = Number(focus.side === "q" ? node.dataset.i : node.dataset.j);
    return index === focus.index;
  };
  for (const node of [...parts.lines, ...parts.cells]) {
    const m = match(node);
    node.classList.toggle("hv-active", m === true);
    node.classList.toggle("hv-dim", m === false);
  }
  const on = (side, i) => !!focus && focus.side === side && focus.index === i;
  parts.q.forEach((node, i) => {
    node.classList.toggle("hv-hover", on("q", i));
    node.classList.toggle("hv-pinned", token === i);
  });
  parts.k.forEach((node, j) => {
    node.classList.toggle("hv-hover", on("k", j));
    node.classList.toggle("hv-pinned", keyPin === j);
  });
  parts.q.forEach((node, i) => node.setAttribute("aria-pressed", token === i ? "true" : "false"));
  parts.k.forEach((node, j) => node.setAttribute("aria-pressed", keyPin === j ? "true" : "false"));
  parts.weights.forEach((node, j) => {
    node.textContent = focus && focus.side === "q" ? matrix[focus.index][j].toFixed(2) : "";
  });
  if (parts.readout) parts.readout.textContent = readoutText(focus, matrix, tokens);
}

// ---------------------------------------------------------------------------------------------

/** The selectors: sentence, layer, head, and lines or heatmap. */
function headControls() {
  const sentence = selectControl("hv", "sentence", "Sentence");
  const layer = selectControl("hv", "layer", "Layer");
  const head = selectControl("hv", "head", "Head");
  const mode = selectControl("hv", "mode", "Show", ["lines", "heatmap"]);
  const bar = controlBar("hv", [sentence.label, layer.label, head.label, mode.label]);
  const selects = { sentence: sentence.select, layer: layer.select, head: head.select };
  return { bar, ...selects, mode: mode.select };
}

/** The model's choices -> the selectors. */
function showSelects(controls, { sentence, layer, head, mode }) {
  controls.sentence.value = String(sentence);
  controls.layer.value = String(layer);
  controls.head.value = String(head);
  controls.mode.value = mode === "matrix" ? "1" : "0";
}

/** The reader's choices in the selectors -> the model (a new sentence unpins the token). */
function wireSelects({ sentence, layer, head, mode }, model) {
  const choose = (select, name, value) =>
    select.addEventListener("change", () => setState(model, { [name]: value(select.value) }));
  choose(layer, "layer", Number);
  choose(head, "head", Number);
  choose(mode, "mode", (v) => (v === "1" ? "matrix" : "lines"));
  sentence.addEventListener("change", () =>
    setState(model, { sentence: Number(sentence.value), token: -1 }),
  );
}


// ---------------------------------------------------------------------------------------------
// Live mode

const LIVE_HELP =
  "Your sentence: type anything; its WordPiece tokens appear at once. Press Load MiniLM to run " +
  "the model's six layers in this page; every change of the sentence then runs it again.";
let weightsPromise = null; // one download per page, shared by every live view

/** The int8 weights from the book's _static folder: a <script src> that sets a global. */
function scriptWeights(contentRoot, file) {
  if (!weightsPromise) {
    weightsPromise = new Promise((resolve, reject) => {
      if (window.attnlibMiniLM) {
        resolve(window.attnlibMiniLM);
        return;
      }
      const src = `${contentRoot}_static/${file}`;
      const tag = el("script", {
        src,
        on: {
          load: () => resolve(window.attnlibMiniLM),
          error: () => reject(new Error(`could not load ${src}`)),
        },
      });
      document.head.appendChild(tag);
    }).then((pack) => {
      if (!pack || !pack.manifest) throw new Error("the weights file set no attnlibMiniLM");
      return unpackTensors(pack.manifest, decodeBase64(pack.data));
    });
    weightsPromise.catch(() => {
      weightsPromise = null; // a later press tries again
    });
  }
  return weightsPromise;
}

/** The same weights from the kernel (HeadView._on_custom answers with manifest + bytes). */
function kernelWeights(model) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      model.off("msg:custom", answer);
      reject(new Error("no answer from the kernel: run the notebook's cells first"));
    }, 120000);
    function answer(msg, buffers) {
      if (!msg || msg.kind !== "minilm") return;
      clearTimeout(timer);
      model.off("msg:custom", answer);
      resolve(unpackTensors(msg.manifest, bufferBytes(buffers[0])));
    }
    model.on("msg:custom", answer);
    model.send({ kind: "load-minilm" });
  });
}

/** What the tokens line says about the input (empty, cut, or its length). */
export function tokenNote(text, tokenized, maxLength) {
  if (!text.trim()) return "Type a sentence: the input is empty.";
  const n = tokenized.tokens.length;
  if (tokenized.truncated) {
    return `Cut to the first ${maxLength} tokens ([CLS] and [SEP] included), the length ` +
      "MiniLM's tokenizer keeps; the rest of the input is not shown.";
  }
  return `${n} tokens ([CLS] and [SEP] included).`;
}

/**
 * The text box, the token line and the load button, above the views. show(sentence) draws a
 * live pass as a sentence ({text, tokens, shape, weights}); the pass's thousandths go straight
 * into `parsed` so nothing is formatted and parsed again.
 */
function liveControls(model, root, announce, show) {
  const size = model.get("weights_size");
  const mb = size ? ` (${(size / 1e6).toFixed(0)} MB)` : "";
  const input = el("input", {
    type: "text",
    class: "hv-input",
    value: model.get("text"),
    spellcheck: false,
    "aria-label": "Your sentence",
  });
  const load = button("hv-load", `Load MiniLM${mb}`);
  const status = el("span", { class: "hv-status", text: "MiniLM not loaded: the views show the stored sentence." });
  const tokens = el("div", { class: "hv-tokens", "aria-label": "Its tokens" });
  const note = el("div", { class: "hv-note" });
  const box = el("div", { class: "hv-yours" }, [
    el("p", { class: "attn-help hv-yours-help", text: LIVE_HELP }),
    control("hv", "text", "Your sentence", [input]),
    el("div", { class: "hv-load-row" }, [load, status]),
    tokens,
    note,
  ]);
  root.dataset.live = "idle";
  let vocab = null;
  let weights = null;
  let sizes = null;
  let run = 0; // the newest pass; an older one stops at its next layer

  const tokenize = () => {
    vocab ||= wordpieceVocab(model.get("vocab"));
    const text = model.get("text");
    const maxLength = model.get("max_length");
    const out = bertTokenize(text, vocab, { maxLength });
    tokens.replaceChildren(...out.tokens.map((t) => el("span", { class: "attn-token hv-piece", text: t })));
    note.textContent = tokenNote(text, out, maxLength);
    note.classList.toggle("hv-cut", !!out.truncated);
    return { text, ...out };
  };

  async function forward() {
    const { text, ids, tokens: pieces } = tokenize();
    if (!weights || !text.trim()) return;
    const mine = ++run;
    root.dataset.live = "running";
    const started = performance.now();
    const out = await bertForward(weights, ids, sizes, { stop: () => mine !== run });
    if (!out || mine !== run) return;
    const L = ids.length;
    const sentence = { text, tokens: pieces, shape: [sizes.layers, sizes.heads, L, L], weights: "" };
    parsed.set(sentence, attentionThousandths(out.attentions));
    root.dataset.forwardMs = String(performance.now() - started);
    root.dataset.live = "ready";
    status.textContent = `MiniLM ran on your sentence: ${L} tokens, ${sizes.layers} layers.`;
    show(sentence);
  }

  async function loadWeights() {
    load.disabled = true;
    root.dataset.live = "loading";
    status.textContent = "Loading MiniLM\u2026";
    const started = performance.now();
    try {
      const contentRoot = document.documentElement.getAttribute("data-content_root");
      weights = await (contentRoot !== null
        ? scriptWeights(contentRoot, model.get("weights_file"))
        : kernelWeights(model));
      sizes = bertSizes(weights, model.get("num_heads"));
      root.dataset.loadMs = String(performance.now() - started);
      load.hidden = true;
      announce("MiniLM is loaded.");
      await forward();
    } catch (err) {
      load.disabled = false;
      root.dataset.live = "failed";
      status.textContent = `MiniLM could not be loaded: ${err.message}`;
    }
  }

  input.addEventListener("input", () => setState(model, { text: input.value }));
  load.addEventListener("click", loadWeights);
  const onText = () => {
    if (input.value !== model.get("text")) input.value = model.get("text");
    forward();
  };
  tokenize();
  return { box, stop: listen(model, ["text"], onText) };
}

function render({ model, el: host }) {
  const { root, announce } = widgetRoot("hv", model, "Attention heads", HEADS_HELP);
  const controls = headControls();
  const modelPanel = el("div", { class: "hv-model" });
  const headPanel = el("div", { class: "hv-headview" });
  root.append(controls.bar, el("div", { class: "hv-body" }, [modelPanel, headPanel]));
  host.appendChild(root);
  let live = null; // the live pass's sentence, once MiniLM ran in the page

  let hover = null; // {side: "q" | "k", index} while the pointer (or the focus) is on a token
  let keyPin = -1; // a key token the reader clicked: its incoming lines stay shown
  let thumbs = []; // thumbs[layer][head] = button
  let parts = { q: [], k: [], lines: [], cells: [], weights: [], matrix: [] };

  const state = () => {
    const sentences = model.get("sentences");
    const sentence = clampIndex(model.get("sentence"), sentences.length);
    const data = live || sentences[sentence];
    const token = model.get("token");
    return {
      sentences,
      sentence,
      data,
      layer: clampIndex(model.get("layer"), model.get("num_layers")),
      head: clampIndex(model.get("head"), model.get("num_heads")),
      mode: model.get("mode") === "matrix" ? "matrix" : "lines",
      token: token >= 0 && token < data.tokens.length ? token : -1,
    };
  };
  const focusNow = () => {
    const { data, token } = state();
    const valid = keyPin >= 0 && keyPin < data.tokens.length ? keyPin : -1;
    const pinned =
      token >= 0 ? { side: "q", index: token } : valid >= 0 ? { side: "k", index: valid } : null;
    applyFocus(parts, hover || pinned, token, data.tokens, valid);
  };
  const handlers = {
    hover: (focus) => {
      hover = focus;
      focusNow();
    },
    pin: (side, index) => {
      if (side === "k") {
        keyPin = keyPin === index ? -1 : index;
        if (model.get("token") >= 0) setState(model, { token: -1 });
        else focusNow();
      } else {
        keyPin = -1;
        setState(model, { token: model.get("token") === index ? -1 : index });
      }
      if (parts.readout) announce(parts.readout.textContent);
    },
  };
  const tokenNav = gridKeys(headPanel, {
    cells: () => parts.q.map((q, i) => [q, parts.k[i]]),
    move: () => parts.readout && announce(parts.readout.textContent),
    activate: (i, c) => handlers.pin(c === 0 ? "q" : "k", i),
  });
  const thumbNav = gridKeys(modelPanel, { cells: () => thumbs });
  let rgb = null;

  function drawModelView() {
    const { data, layer, head } = state();
    rgb = themeRGB(root, "--attn-accent");
    const pick = (r, c) => setState(model, { layer: r, head: c });
    const view = modelView(data, model.get("num_layers"), model.get("num_heads"), pick, rgb);
    thumbs = view.thumbs;
    const caption = el("div", { class: "hv-caption", text: "Model view: layers \u00d7 heads" });
    const scroll = scrollBox("hv", [view.grid], "Model view");
    modelPanel.replaceChildren(caption, scroll.wrap);
    markThumbs(thumbs, layer, head);
    thumbNav.place(layer, head);
    scroll.check();
  }

  function drawHeadView() {
    const { data, layer, head, mode } = state();
    const matrix = headMatrix(data, layer, head);
    const caption = `Attention of layer ${layer}, head ${head}`;
    const draw = mode === "lines" ? lineView : matrixView;
    const view = draw(matrix, data.tokens, caption, handlers);
    const which = el("div", { class: "hv-caption hv-which", text: `Layer ${layer}, head ${head}` });
    const readout = el("div", { class: "hv-readout" });
    const scroll = scrollBox("hv", [view.svg], caption);
    const at = tokenNav.current();
    headPanel.replaceChildren(which, scroll.wrap, readout);
    parts = { ...view.parts, readout };
    tokenNav.place(at[0], at[1]);
    focusNow();
    scroll.check();
  }

  function syncSelects() {
    const now = state();
    showSelects(controls, now);
    return now;
  }

  function onSentences() {
    hover = null;
    keyPin = -1;
    const count = (name) => Array.from({ length: model.get(name) }, (_, i) => String(i));
    fillOptions(controls.sentence, model.get("sentences").map((d) => d.text));
    fillOptions(controls.layer, count("num_layers"));
    fillOptions(controls.head, count("num_heads"));
    syncSelects();
    drawModelView();
    drawHeadView();
  }
  function onWhich() {
    const { layer, head, mode } = syncSelects();
    markThumbs(thumbs, layer, head);
    drawHeadView();
    announce(`Layer ${layer}, head ${head}, as ${mode === "lines" ? "lines" : "a heatmap"}.`);
  }
  function onSentence() {
    hover = null;
    keyPin = -1;
    const { data } = syncSelects();
    drawModelView();
    drawHeadView();
    announce(`Sentence: ${data.text}`);
  }
  function onTheme() {
    const now = themeRGB(root, "--attn-accent");
    if (rgb && now.join() !== rgb.join()) drawModelView();
  }

  wireSelects(controls, model);
  const stops = [];
  if (model.get("vocab")) {
    const show = (sentence) => {
      live = sentence;
      hover = null;
      keyPin = -1;
      if (model.get("token") >= sentence.tokens.length) setState(model, { token: -1 });
      drawModelView();
      drawHeadView();
    };
    const liveParts = liveControls(model, root, announce, show);
    root.insertBefore(liveParts.box, controls.bar);
    controls.sentence.closest("label").hidden = true;
    stops.push(liveParts.stop);
  }
  stops.push(
    listen(model, ["sentences"], onSentences),
    listen(model, ["sentence"], onSentence),
    listen(model, ["layer", "head", "mode"], onWhich),
    listen(model, ["token"], focusNow),
    onThemeChange(onTheme),
  );
  onSentences();
  return () => stops.forEach((stop) => stop());
}

export default { render };
