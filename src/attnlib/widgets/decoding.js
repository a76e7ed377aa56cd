// DecodingStepper: the browser half of attnlib.widgets.decoding.DecodingStepper.
//
// Python sends a few finished translations once: the source characters, the output characters
// and, for every output step, the attention weights over the source (as thousandths, one
// comma-separated string per example). Everything else happens here: choosing an example and a
// step redraws the source strip, the output so far and the alignment heatmap. No kernel needed,
// so the static book stays interactive.
//
// A live widget (DecodingStepper.live) sends a trained model instead: the weights of
// attnlib.models.rnn's Encoder and BahdanauDecoder under their PyTorch names, both vocabularies
// and the sizes. Then this file translates whatever the reader types (or Python puts in the
// `text` trait), with the arithmetic of _nn.js, and shows the result as the one example.

const SCALE = 1000;
const EOS_TOKEN = "</s>"; // how the end of the output is shown (attnlib.widgets.decoding.EOS)
const DECODING_HELP =
  "Step through the output one character at a time (buttons, slider or arrow keys). The " +
  "shaded source characters are where the decoder looked when it wrote the highlighted one.";
const LIVE_HELP =
  "Type a date in words, in any language: the trained model translates it in this page. Then " +
  "step through its output one character at a time (buttons, slider or arrow keys); the shaded " +
  "source characters are where the decoder looked when it wrote the highlighted one.";

// ---------------------------------------------------------------------------------------------
// Pure helpers (exported for the browser tests)

/** The (L, S) weights of one example, as an array of rows of numbers in [0, 1]. */
export function unpack(example) {
  const L = example.output.length;
  const S = example.source.length;
  const flat = String(example.weights || "")
    .split(",")
    .filter((s) => s !== "")
    .map(Number);
  const rows = [];
  for (let t = 0; t < L; t++) {
    const row = new Array(S);
    for (let j = 0; j < S; j++) {
      const v = flat[t * S + j];
      row[j] = Number.isFinite(v) ? v / SCALE : 0;
    }
    rows.push(row);
  }
  return rows;
}

/** The positions of the k largest weights of a row, largest first (ties: leftmost first). */
export function topK(row, k) {
  return row
    .map((w, j) => [w, j])
    .sort((a, b) => b[0] - a[0] || a[1] - b[1])
    .slice(0, k)
    .filter(([w]) => w > 0)
    .map(([, j]) => j);
}

// ---------------------------------------------------------------------------------------------
// The live translator: attnlib.models.rnn's Encoder and BahdanauDecoder, one text at a time
// (a batch of one, so there is no padding to mask). Sizes: S source characters, D the memory
// and state size (hidden), h the additive score's size; weights keep PyTorch's layouts.

/** The model a live widget sends, ready to run: its tensors by PyTorch name, and the rest. */
export function loadTranslator(live) {
  const tensors = unpackTensors(live.manifest, decodeBase64(live.blob));
  const w = {};
  for (const [name, tensor] of Object.entries(tensors)) w[name] = tensor.data;
  return {
    w,
    sizes: live.sizes,
    srcItos: live.src_itos,
    tgtItos: live.tgt_itos,
    stoi: new Map(live.src_itos.map((c, i) => [c, i])),
    bos: live.bos,
    eos: live.eos,
    unk: live.unk,
    maxLen: live.max_len,
    maxSource: live.max_source,
  };
}

/**
 * The ids of a text's characters as CharVocab.encode gives them (a character it does not know
 * becomes unk), and those unknown characters, each once: {ids, unknown}. `chars` is the text
 * split into code points, as Python iterates over a str.
 */
export function encodeSource(net, chars) {
  const unknown = [];
  const ids = chars.map((c) => {
    const id = net.stoi.get(c);
    if (id !== undefined && id >= 4) return id; // ids 0-3 are <pad>, <bos>, <eos>, <unk>
    if (!unknown.includes(c)) unknown.push(c);
    return net.unk;
  });
  return { ids, unknown };
}

/** nn.GRU (one layer, batch_first) over the rows of x (steps, inF) from a zero state. */
function gruStates(x, steps, prefix, w, inF, hidden) {
  const states = new Float32Array(steps * hidden); // (steps, hidden): the state after each row
  let h = new Float32Array(hidden);
  for (let t = 0; t < steps; t++) {
    h = gruCell(x.subarray(t * inF, (t + 1) * inF), h, w[`${prefix}.weight_ih_l0`],
      w[`${prefix}.weight_hh_l0`], w[`${prefix}.bias_ih_l0`], w[`${prefix}.bias_hh_l0`],
      inF, hidden);
    states.set(h, t * hidden);
  }
  return states;
}

/**
 * attnlib.rnn.Encoder on one text: the embeddings, read left to right by one GRU and right to
 * left by another. Returns {memory (S, D), summary (D)}: memory row j is [forward_j; backward_j],
 * the summary [the last forward state; the last backward state (the one at position 0)].
 */
export function encodeText(net, ids) {
  const { w, sizes } = net;
  const S = ids.length;
  const E = sizes.embed;
  const half = sizes.hidden / 2;
  const table = w["encoder.embed.weight"];
  const forward = gruStates(embed(table, E, ids), S, "encoder.left_to_right", w, E, half);
  const reversed = ids.slice().reverse(); // read right to left ...
  const back = gruStates(embed(table, E, reversed), S, "encoder.right_to_left", w, E, half);
  const memory = new Float32Array(S * 2 * half);
  for (let j = 0; j < S; j++) {
    memory.set(forward.subarray(j * half, (j + 1) * half), j * 2 * half);
    const k = S - 1 - j; // ... and put back in order: position j was read k-th
    memory.set(back.subarray(k * half, (k + 1) * half), j * 2 * half + half);
  }
  const summary = new Float32Array(2 * half);
  summary.set(forward.subarray((S - 1) * half, S * half), 0);
  summary.set(back.subarray((S - 1) * half, S * half), half);
  return { memory, summary };
}

/**
 * One step of attnlib.rnn.BahdanauDecoder (look, then step). The previous state s (D) is the
 * query: score_j = v . tanh(W_q s + keys_j), where keys (S, h) = memory W_k^T was computed once
 * per text; the weights are the softmax of the scores over the S characters; the context
 * c = sum_j weights_j memory_j (D). Then s' = GRUCell([embed(yPrev); c], s) and
 * logits = out([s'; c]). Returns {logits (target vocabulary), state s', weights (S)}.
 */
function bahdanauStep(net, yPrev, s, memory, keys, S) {
  const { w, sizes } = net;
  const D = sizes.hidden;
  const h = sizes.score;
  const E = sizes.dec_embed;
  const q = linear(s, 1, w["decoder.score.W_q"], null, h, D); // W_q s: (h)
  const v = w["decoder.score.v"];
  const scores = new Array(S);
  for (let j = 0; j < S; j++) {
    let total = 0;
    for (let i = 0; i < h; i++) total += v[i] * Math.tanh(q[i] + keys[j * h + i]);
    scores[j] = total;
  }
  const weights = softmaxRow(scores);
  const sum = new Float64Array(D); // the context, summed in double precision
  for (let j = 0; j < S; j++) {
    for (let d = 0; d < D; d++) sum[d] += weights[j] * memory[j * D + d];
  }
  const x = new Float32Array(E + D); // [embed(yPrev); c]
  x.set(embed(w["decoder.embed.weight"], E, [yPrev]), 0);
  x.set(sum, E);
  const context = x.subarray(E);
  const state = gruCell(x, s, w["decoder.cell.weight_ih"], w["decoder.cell.weight_hh"],
    w["decoder.cell.bias_ih"], w["decoder.cell.bias_hh"], E + D, D);
  const both = new Float32Array(2 * D); // [s'; c]
  both.set(state, 0);
  both.set(context, D);
  const logits = linear(both, 1, w["decoder.out.weight"], w["decoder.out.bias"],
    sizes.tgt_vocab, 2 * D);
  return { logits, state, weights: Float32Array.from(weights) };
}

/** The position of the largest entry (the first of equal ones, as torch.argmax). */
function bestId(logits) {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
  return best;
}

/**
 * attnlib.rnn.greedy_decode for one text of source ids: the decoder starts from
 * tanh(init(summary)) and bos, takes the most likely id at every step and stops after eos or
 * maxLen steps. Returns {ids, weights (one Float32Array (S) per step), logits (one per step),
 * memory (S, D)}.
 */
export function greedyTranslate(net, ids) {
  const { w, sizes } = net;
  const S = ids.length;
  const D = sizes.hidden;
  const { memory, summary } = encodeText(net, ids);
  let s = linear(summary, 1, w["decoder.init.weight"], w["decoder.init.bias"], D, D);
  s = s.map(Math.tanh);
  const keys = linear(memory, S, w["decoder.score.W_k"], null, sizes.score, D); // (S, h)
  const out = { ids: [], weights: [], logits: [], memory };
  let y = net.bos;
  for (let t = 0; t < net.maxLen; t++) {
    const step = bahdanauStep(net, y, s, memory, keys, S);
    s = step.state;
    y = bestId(step.logits);
    out.ids.push(y);
    out.weights.push(step.weights);
    out.logits.push(step.logits);
    if (y === net.eos) break;
  }
  return out;
}

/**
 * Translate what the reader typed: {example (as Python sends one), text (the output without
 * eos), unknown (characters read as unk), cut (the number of characters typed, when more than
 * the model reads; else 0)}, or null for a text with nothing to read.
 */
export function translateText(net, text) {
  const chars = Array.from(String(text));
  if (!chars.join("").trim()) return null;
  const used = chars.slice(0, net.maxSource);
  const { ids, unknown } = encodeSource(net, used);
  const result = greedyTranslate(net, ids);
  const output = result.ids.map((i) => (i === net.eos ? EOS_TOKEN : net.tgtItos[i]));
  const milli = [];
  for (const row of result.weights) for (const v of row) milli.push(Math.round(v * SCALE));
  const example = { label: used.join(""), source: used, output, weights: milli.join(",") };
  const written = output.filter((token) => token !== EOS_TOKEN).join("");
  return { example, text: written, unknown, cut: chars.length > used.length ? chars.length : 0 };
}

/** The notes on a translation: unknown characters, a cut text (empty when there is none). */
function liveNotes(net, found) {
  const notes = [];
  if (found.unknown.length) {
    const list = found.unknown.map((c) => `\u201c${shown(c)}\u201d`).join(", ");
    notes.push(`Not among the characters the model was trained on: ${list}. Each is read as ` +
      "the unknown character <unk>.");
  }
  if (found.cut) {
    notes.push(`Only the first ${net.maxSource} characters are read (the text has ` +
      `${found.cut}).`);
  }
  return notes.join(" ");
}

// ---------------------------------------------------------------------------------------------
// The view

/** "Writing x, it looks at: a (position 3, 0.52), ..." as text and token chips. */
function looksAt(example, row, step) {
  const chip = (token) =>
    el("span", { class: "attn-token attn-mono ds-token", text: shown(token) });
  const parts = ["Writing ", chip(example.output[step]), ", it looks at: "];
  topK(row, 3).forEach((j, n) => {
    if (n > 0) parts.push(", ");
    parts.push(chip(example.source[j]), ` (position ${j}, ${row[j].toFixed(2)})`);
  });
  return parts;
}

/** A labelled line of cells ("output", "source"): {line, cells}. */
function cellLine(name) {
  const cells = el("div", { class: "ds-cells" });
  const line = el("div", { class: `ds-line ds-${name}` }, [
    el("span", { class: "ds-line-name", text: name }),
    cells,
  ]);
  return { line, cells };
}

/** The output cells (buttons) of one example. */
function outputCells(example, setStep) {
  return example.output.map((token, t) =>
    el(
      "button",
      {
        type: "button",
        class: "attn-mono ds-out",
        title: `step ${t}: ${token}`,
        dataset: { t: String(t) },
        on: { click: () => setStep(t) },
      },
      [el("span", { class: "ds-out-char", text: shown(token) })],
    ),
  );
}

/** The source strip of one example: [{cell, w}] (the character and its weight). */
function sourceCells(example) {
  return example.source.map((token, j) => {
    const w = el("span", { class: "ds-w" });
    const char = el("span", { class: "attn-mono ds-char", text: shown(token) });
    const cell = el("span", { class: "attn-heat ds-src", dataset: { j: String(j) } }, [char, w]);
    return { cell, w };
  });
}

/**
 * Fill the alignment map (a table: one row per output step, one column per source character)
 * of one example; returns [{head, cells}].
 */
function alignmentMap(grid, example, rows, setStep) {
  const S = example.source.length;
  const corner = el("div", { class: "ds-corner", role: "columnheader" }, [
    el("span", { class: "attn-visually-hidden", text: "output \u2193 source \u2192" }),
  ]);
  const keys = example.source.map((token) =>
    el("div", { class: "attn-mono ds-key", role: "columnheader", text: shown(token) }),
  );
  grid.replaceChildren(el("div", { class: "ds-map-row", role: "row" }, [corner, ...keys]));
  grid.style.gridTemplateColumns = `max-content repeat(${S}, 1.35em)`;
  return example.output.map((token, t) => {
    const on = { click: () => setStep(t) };
    const dataset = { t: String(t) };
    const head = el("div", { class: "attn-mono ds-row-head", role: "rowheader", dataset, on }, [
      shown(token),
    ]);
    const cells = rows[t].map((w, j) => {
      const cell = el("div", {
        class: "attn-heat ds-cell",
        role: "cell",
        "aria-label": w.toFixed(2),
        dataset: { t: String(t), j: String(j), w: w.toFixed(3) },
        title: `${token} \u2190 ${example.source[j]}: ${w.toFixed(3)}`,
        on,
      });
      setHeat(cell, w);
      return cell;
    });
    grid.appendChild(el("div", { class: "ds-map-row", role: "row" }, [head, ...cells]));
    return { head, cells };
  });
}

/** Show step `step` of an example's view: done / current / future, and the source strip. */
function showStep(view, example, row, step) {
  view.out.forEach((cell, t) => {
    cell.classList.toggle("ds-done", t < step);
    cell.classList.toggle("ds-current", t === step);
    cell.classList.toggle("ds-future", t > step);
    cell.setAttribute("aria-current", t === step ? "step" : "false");
    if (t > step) cell.setAttribute("aria-label", `step ${t + 1}, not written yet`);
    else cell.removeAttribute("aria-label");
    cell.tabIndex = t === step ? 0 : -1;
  });
  const best = topK(row, 1)[0];
  view.src.forEach(({ cell, w }, j) => {
    const weight = row[j];
    setHeat(cell, weight);
    cell.classList.toggle("ds-best", j === best);
    cell.dataset.w = weight.toFixed(3);
    cell.title = `${example.source[j]}: ${weight.toFixed(3)}`;
    w.textContent = weight >= 0.005 ? weight.toFixed(2).replace(/^0/, "") : "";
  });
  view.rows.forEach(({ head, cells }, t) => {
    head.classList.toggle("ds-current", t === step);
    for (const cell of cells) cell.classList.toggle("ds-current", t === step);
  });
}

function render({ model, el: host }) {
  const examples = () => model.get("examples") || [];
  const current = () => clampIndex(model.get("example"), examples().length);
  const steps = () => (examples()[current()] || { output: [] }).output.length;
  const get = () => model.get("step") | 0;
  const setStep = (t) => steps() && setState(model, { step: clampIndex(t, steps()) });

  const live = model.get("live_model");
  const net = live && live.blob ? loadTranslator(live) : null;
  const { root, title, announce } = widgetRoot(
    "ds", model, "Decoding stepper", net ? LIVE_HELP : DECODING_HELP, { focusable: true },
  );
  const picker = selectControl("ds", "example", "Example", [], "Which example to decode");
  const stepper = stepControls("ds", {
    what: "output character",
    counterClass: "ds-step",
    get,
    go: setStep,
  });
  const stepBox = el("div", { class: "attn-control ds-control ds-stepper" }, [
    stepper.prev,
    stepper.slider,
    stepper.next,
    stepper.counter,
  ]);
  const output = cellLine("output");
  const source = cellLine("source");
  const looks = el("p", { class: "ds-looks" });
  const grid = el("div", {
    class: "ds-grid",
    role: "table",
    "aria-label": "Attention weights: one row per output step, one column per source character",
  });
  const map = scrollBox("ds", [grid], "All steps");
  const mapTitle = el("div", {
    class: "ds-map-title",
    text: "All steps: one row per output character",
  });
  const input = el("input", {
    type: "text",
    class: "attn-mono ds-input",
    "aria-label": "A date to translate",
    spellcheck: false,
    autocomplete: "off",
  });
  const typed = control("ds", "text", "Your date", [input]);
  const result = el("p", { class: "ds-result" });
  const note = el("p", { class: "ds-note" });
  const controls = controlBar("ds", net ? [typed, stepBox] : [picker.label, stepBox]);
  root.append(controls);
  if (net) root.append(result, note);
  root.append(output.line, source.line, looks, mapTitle, map.wrap);
  host.appendChild(root);
  if (net) root.classList.add("ds-live");
  const translated = [stepBox, output.line, source.line, looks, mapTitle, map.wrap, result];

  let shownExample = null; // the example object whose cells are built
  let view = null; // {rows (weights), out, src, map}

  function build(example) {
    const rows = unpack(example);
    const out = outputCells(example, setStep);
    const src = sourceCells(example);
    output.cells.replaceChildren(...out);
    source.cells.replaceChildren(...src.map(({ cell }) => cell));
    view = { weights: rows, out, src, rows: alignmentMap(grid, example, rows, setStep) };
    shownExample = example;
  }

  let first = true;
  function update() {
    const index = current();
    const example = examples()[index];
    title.textContent = model.get("title") || "";
    title.hidden = !model.get("title");
    if (picker.select.options.length !== examples().length) {
      fillOptions(picker.select, examples().map((e) => e.label));
    }
    picker.select.value = String(index);
    if (!example) return;
    if (example !== shownExample) build(example);
    const L = example.output.length;
    const step = clampIndex(model.get("step"), L);
    stepper.show(step, L);
    showStep(view, example, view.weights[step], step);
    looks.replaceChildren(...looksAt(example, view.weights[step], step));
    map.check();
    if (view.out.includes(document.activeElement)) view.out[step].focus();
    if (!first) announce(`Step ${step + 1} of ${L}. ${looks.textContent}`);
    first = false;
  }

  picker.select.addEventListener("change", () => {
    const i = Number(picker.select.value);
    const L = examples()[i].output.length;
    setState(model, get() >= L ? { example: i, step: L - 1 } : { example: i });
  });
  stepKeys(root, (delta) => setStep(get() + delta));

  const onExamples = () => {
    fillOptions(picker.select, examples().map((e) => e.label));
    shownExample = null;
    update();
  };
  model.on("change:examples", onExamples);
  const stop = listen(model, ["example", "step", "title"], update);
  onExamples();

  // Live: the text (typed here or set from Python) is translated here, and the result becomes
  // the one example, synced back to Python.
  let stopLive = () => {};
  let firstLive = true;
  if (net) {
    const translateNow = () => {
      const text = String(model.get("text") || "");
      if (input.value !== text) input.value = text;
      const found = translateText(net, text);
      for (const part of translated) part.hidden = !found;
      const say = (message) => (firstLive ? null : announce(message));
      firstLive = false;
      if (!found) {
        note.textContent = "Type a date to translate, in words: \u201c22 novembre 2026\u201d.";
        note.hidden = false;
        say(note.textContent);
        return;
      }
      note.textContent = liveNotes(net, found);
      note.hidden = !note.textContent;
      result.replaceChildren("Translation: ", el("span", { class: "attn-mono", text: found.text }));
      setState(model, { examples: [found.example], example: 0, step: 0 });
      say(`Translation: ${found.text}. ${note.textContent}`);
    };
    input.addEventListener("input", () => setState(model, { text: input.value }));
    stopLive = listen(model, ["text"], translateNow);
    translateNow();
  }
  return () => {
    model.off("change:examples", onExamples);
    stop();
    stopLive();
  };
}

export default { render };
