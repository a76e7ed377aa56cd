// DecodingStepper: the browser half of attnlib.widgets.decoding.DecodingStepper.
//
// Python sends a few finished translations once: the source characters, the output characters
// and, for every output step, the attention weights over the source (as thousandths, one
// comma-separated string per example). Everything else happens here: choosing an example and a
// step redraws the source strip, the output so far and the alignment heatmap. No kernel needed,
// so the static book stays interactive.
//
// Security: tokens are data, never markup. Text goes in through textContent and plain
// attributes only; this file never parses HTML.

const SCALE = 1000;

// ---------------------------------------------------------------------------------------------
// Pure helpers (exported for the browser tests)

/** The (T, S) weights of one example, as an array of rows of numbers in [0, 1]. */
export function unpack(example) {
  const T = example.output.length;
  const S = example.source.length;
  const flat = String(example.weights || "")
    .split(",")
    .filter((s) => s !== "")
    .map(Number);
  const rows = [];
  for (let t = 0; t < T; t++) {
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

/** Clamp a step into [0, T - 1]. */
export function clampStep(step, T) {
  return Math.min(Math.max(0, Math.trunc(Number(step)) || 0), Math.max(0, T - 1));
}

// ---------------------------------------------------------------------------------------------

function h(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/** A character as a reader should see it: a space is drawn as an open box. */
function shown(token) {
  if (token === " ") return "\u2423";
  return token === "" ? "\u2205" : String(token);
}

function render({ model, el }) {
  const root = h("div", "ds-root");
  root.tabIndex = 0;
  root.setAttribute("role", "group");
  root.setAttribute("aria-label", model.get("title") || "Decoding stepper");

  const titleNode = h("div", "ds-title");
  root.appendChild(titleNode);
  root.appendChild(
    h(
      "p",
      "ds-help",
      "Step through the output one character at a time (buttons, slider or arrow keys). The " +
        "shaded source characters are where the decoder looked when it wrote the highlighted one.",
    ),
  );

  // --- controls ------------------------------------------------------------------------------
  const controls = h("div", "ds-controls");
  const pick = h("label", "ds-control ds-example");
  pick.appendChild(h("span", "ds-control-name", "Example"));
  const select = document.createElement("select");
  select.setAttribute("aria-label", "Which example to decode");
  pick.appendChild(select);
  controls.appendChild(pick);

  const prev = h("button", "ds-prev", "\u25c0 previous");
  prev.type = "button";
  prev.setAttribute("aria-label", "Previous output character");
  const next = h("button", "ds-next", "next \u25b6");
  next.type = "button";
  next.setAttribute("aria-label", "Next output character");
  const slider = document.createElement("input");
  slider.type = "range";
  slider.min = "0";
  slider.step = "1";
  slider.className = "ds-slider";
  slider.setAttribute("aria-label", "Output step");
  const stepLabel = h("output", "ds-step");
  stepLabel.setAttribute("aria-live", "polite");
  const stepper = h("div", "ds-control ds-stepper");
  stepper.append(prev, slider, next, stepLabel);
  controls.appendChild(stepper);
  root.appendChild(controls);

  // --- the output so far and the source strip ------------------------------------------------
  const outputLine = h("div", "ds-line ds-output");
  const outputName = h("span", "ds-line-name", "output");
  const outputCells = h("div", "ds-cells");
  outputLine.append(outputName, outputCells);
  const sourceLine = h("div", "ds-line ds-source");
  const sourceName = h("span", "ds-line-name", "source");
  const sourceCells = h("div", "ds-cells");
  sourceLine.append(sourceName, sourceCells);
  const looks = h("p", "ds-looks");
  looks.setAttribute("aria-live", "polite");
  root.append(outputLine, sourceLine, looks);

  // --- the whole alignment -------------------------------------------------------------------
  const mapTitle = h("div", "ds-map-title", "All steps: one row per output character");
  const grid = h("div", "ds-grid");
  grid.setAttribute("role", "grid");
  grid.setAttribute("aria-label", "Attention weights: one row per output step, one column per source character");
  root.append(mapTitle, grid);
  el.appendChild(root);

  let cache = { index: -1, rows: [] };
  let view = null; // the DOM nodes of the current example

  function examples() {
    return model.get("examples") || [];
  }

  function current() {
    const all = examples();
    const index = Math.min(Math.max(0, model.get("example") | 0), Math.max(0, all.length - 1));
    const example = all[index];
    if (cache.index !== index || cache.example !== example) {
      cache = { index, example, rows: example ? unpack(example) : [] };
      view = null;
    }
    return { index, example, rows: cache.rows };
  }

  function fillSelect() {
    select.textContent = "";
    examples().forEach((example, i) => {
      const option = document.createElement("option");
      option.value = String(i);
      option.textContent = example.label;
      select.appendChild(option);
    });
  }

  function build(example) {
    // Rebuild the cells of one example (on a new example only).
    outputCells.textContent = "";
    sourceCells.textContent = "";
    grid.textContent = "";
    const T = example.output.length;
    const S = example.source.length;
    const out = example.output.map((token, t) => {
      const cell = h("button", "ds-out", shown(token));
      cell.type = "button";
      cell.dataset.t = String(t);
      cell.title = `step ${t}: ${token}`;
      cell.addEventListener("click", () => setStep(t));
      outputCells.appendChild(cell);
      return cell;
    });
    const src = example.source.map((token, j) => {
      const cell = h("span", "ds-src");
      cell.dataset.j = String(j);
      const ch = h("span", "ds-char", shown(token));
      const w = h("span", "ds-w");
      cell.append(ch, w);
      sourceCells.appendChild(cell);
      return { cell, w };
    });
    grid.style.gridTemplateColumns = `max-content repeat(${S}, 1.35em)`;
    const corner = h("div", "ds-corner");
    grid.appendChild(corner);
    example.source.forEach((token) => grid.appendChild(h("div", "ds-key", shown(token))));
    const rows = [];
    for (let t = 0; t < T; t++) {
      const head = h("div", "ds-row-head", shown(example.output[t]));
      head.dataset.t = String(t);
      head.setAttribute("role", "rowheader");
      head.addEventListener("click", () => setStep(t));
      grid.appendChild(head);
      const cells = [];
      for (let j = 0; j < S; j++) {
        const cell = h("div", "ds-cell");
        cell.setAttribute("role", "gridcell");
        cell.dataset.t = String(t);
        cell.dataset.j = String(j);
        const w = cache.rows[t][j];
        cell.style.setProperty("--ds-w", String(0.04 + 0.96 * w));
        cell.dataset.w = w.toFixed(3);
        cell.title = `${example.output[t]} \u2190 ${example.source[j]}: ${w.toFixed(3)}`;
        cell.addEventListener("click", () => setStep(t));
        grid.appendChild(cell);
        cells.push(cell);
      }
      rows.push({ head, cells });
    }
    slider.max = String(Math.max(0, T - 1));
    view = { out, src, rows };
  }

  function update() {
    const { index, example, rows } = current();
    titleNode.textContent = model.get("title") || "";
    titleNode.hidden = !model.get("title");
    if (select.options.length !== examples().length) fillSelect();
    select.value = String(index);
    if (!example) return;
    if (!view) build(example);
    const T = example.output.length;
    const step = clampStep(model.get("step"), T);
    const row = rows[step];

    slider.value = String(step);
    slider.setAttribute("aria-valuetext", `step ${step + 1} of ${T}`);
    stepLabel.textContent = `step ${step + 1} of ${T}`;
    prev.disabled = step === 0;
    next.disabled = step === T - 1;

    view.out.forEach((cell, t) => {
      cell.classList.toggle("ds-done", t < step);
      cell.classList.toggle("ds-current", t === step);
      cell.classList.toggle("ds-future", t > step);
      cell.setAttribute("aria-current", t === step ? "step" : "false");
    });
    const best = topK(row, 1)[0];
    view.src.forEach(({ cell, w }, j) => {
      const weight = row[j];
      cell.style.setProperty("--ds-w", String(0.04 + 0.96 * weight));
      cell.classList.toggle("ds-strong", weight >= 0.5);
      cell.classList.toggle("ds-best", j === best);
      cell.dataset.w = weight.toFixed(3);
      cell.title = `${example.source[j]}: ${weight.toFixed(3)}`;
      w.textContent = weight >= 0.005 ? weight.toFixed(2).replace(/^0/, "") : "";
    });
    view.rows.forEach(({ head, cells }, t) => {
      head.classList.toggle("ds-current", t === step);
      for (const cell of cells) cell.classList.toggle("ds-current", t === step);
    });

    looks.textContent = "";
    const token = example.output[step];
    looks.append(
      document.createTextNode("Writing "),
      h("span", "ds-token", shown(token)),
      document.createTextNode(", it looks at: "),
    );
    topK(row, 3).forEach((j, n) => {
      if (n > 0) looks.appendChild(document.createTextNode(", "));
      looks.append(
        h("span", "ds-token", shown(example.source[j])),
        document.createTextNode(` (position ${j}, ${row[j].toFixed(2)})`),
      );
    });
  }

  function setStep(step) {
    const { example } = current();
    if (!example) return;
    model.set("step", clampStep(step, example.output.length));
    model.save_changes();
  }

  prev.addEventListener("click", () => setStep((model.get("step") | 0) - 1));
  next.addEventListener("click", () => setStep((model.get("step") | 0) + 1));
  slider.addEventListener("input", () => setStep(Number(slider.value)));
  select.addEventListener("change", () => {
    const i = Number(select.value);
    const T = examples()[i].output.length;
    model.set("example", i);
    if ((model.get("step") | 0) >= T) model.set("step", T - 1);
    model.save_changes();
  });
  root.addEventListener("keydown", (event) => {
    if (event.target === select) return;
    if (event.key === "ArrowRight") {
      setStep((model.get("step") | 0) + 1);
      event.preventDefault();
    } else if (event.key === "ArrowLeft") {
      setStep((model.get("step") | 0) - 1);
      event.preventDefault();
    }
  });

  const events = ["change:example", "change:step", "change:examples", "change:title"];
  const onExamples = () => {
    fillSelect();
    cache = { index: -1, rows: [] };
    update();
  };
  model.on("change:examples", onExamples);
  for (const event of events.filter((e) => e !== "change:examples")) model.on(event, update);
  fillSelect();
  update();

  return () => {
    model.off("change:examples", onExamples);
    for (const event of events.filter((e) => e !== "change:examples")) model.off(event, update);
  };
}

export default { render };
