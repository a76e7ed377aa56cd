// DecodingStepper: the browser half of attnlib.widgets.decoding.DecodingStepper.
//
// Python sends a few finished translations once: the source characters, the output characters
// and, for every output step, the attention weights over the source (as thousandths, one
// comma-separated string per example). Everything else happens here: choosing an example and a
// step redraws the source strip, the output so far and the alignment heatmap. No kernel needed,
// so the static book stays interactive.

const SCALE = 1000;
const DECODING_HELP =
  "Step through the output one character at a time (buttons, slider or arrow keys). The " +
  "shaded source characters are where the decoder looked when it wrote the highlighted one.";

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

  const { root, title, announce } = widgetRoot("ds", model, "Decoding stepper", DECODING_HELP, {
    focusable: true,
  });
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
  const controls = controlBar("ds", [picker.label, stepBox]);
  root.append(controls, output.line, source.line, looks, mapTitle, map.wrap);
  host.appendChild(root);

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
  return () => {
    model.off("change:examples", onExamples);
    stop();
  };
}

export default { render };
