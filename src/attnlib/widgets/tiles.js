// OnlineSoftmaxTiles: the browser half of attnlib.widgets.tiles.OnlineSoftmaxTiles.
//
// Python runs the tiled online softmax once and sends every step (the tile, its scores, and the
// running maximum m, running sum l and running output of every query after it). This module
// only displays those steps, so the widget keeps working in the static book, without a kernel.
//
// Security: tokens are data, never markup. Text goes in through textContent or createTextNode.

// ---------------------------------------------------------------------------------------------
// Pure helpers (exported for the browser tests)

/** For every cell (i, j), the index of the step whose tile computes it, or -1 (never). */
export function tileOwners(steps, L, S) {
  const owner = Array.from({ length: L }, () => new Array(S).fill(-1));
  steps.forEach((step, k) => {
    const [i0, i1] = step.rows;
    const [j0, j1] = step.cols;
    for (let i = i0; i < i1; i++) for (let j = j0; j < j1; j++) owner[i][j] = k;
  });
  return owner;
}

/** "current" (in this step's tile), "done" (an earlier tile), "todo" (a later one) or "skipped"
 * (no tile ever computes it: above the causal diagonal). */
export function cellState(owner, i, j, k) {
  const o = owner[i][j];
  if (o === -1) return "skipped";
  if (o === k) return "current";
  return o < k ? "done" : "todo";
}

/** For every query, the index of the last step that updates it. */
export function lastSteps(steps, L) {
  const last = new Array(L).fill(-1);
  steps.forEach((step, k) => {
    for (let i = step.rows[0]; i < step.rows[1]; i++) last[i] = k;
  });
  return last;
}

/** A number as the widget prints it; null stands for -infinity (a masked score, or m before a
 * query's first tile). */
export function fmt(v, digits = 3) {
  if (v === null || v === undefined) return "\u2212\u221e";
  const text = Number(v).toFixed(digits);
  return /^-0\.?0*$/.test(text) ? text.slice(1) : text.replace("-", "\u2212");
}

/** Largest |running output - exact output| over the queries that are finished at step k. */
export function finishedError(steps, exact, last, k) {
  let worst = 0;
  let count = 0;
  const out = steps[k].out;
  for (let i = 0; i < exact.length; i++) {
    if (last[i] > k) continue;
    count += 1;
    for (let e = 0; e < exact[i].length; e++) {
      worst = Math.max(worst, Math.abs(out[i][e] - exact[i][e]));
    }
  }
  return { worst, count };
}

// ---------------------------------------------------------------------------------------------

function h(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function shown(token) {
  return token === "" ? "\u2205" : String(token);
}

function vector(values) {
  return "[" + values.map((v) => fmt(v, 2)).join(", ") + "]";
}

function render({ model, el }) {
  const tokens = model.get("tokens");
  const keyTokens = model.get("key_tokens");
  const steps = model.get("steps");
  const exact = model.get("exact");
  const [blockQ, blockK] = model.get("block");
  const L = tokens.length;
  const S = keyTokens.length;
  const K = steps.length;
  const owner = tileOwners(steps, L, S);
  const last = lastSteps(steps, L);

  const root = h("div", "tl-root");
  root.tabIndex = 0;
  root.setAttribute("role", "group");
  root.setAttribute("aria-label", model.get("title") || "Online softmax, tile by tile");
  const title = model.get("title");
  if (title) root.appendChild(h("div", "tl-title", title));
  root.appendChild(
    h(
      "p",
      "tl-help",
      "Each step computes one tile of scores (outlined), folds it into every query's running " +
        "maximum m, running sum l and running output, and then forgets it. Step with the buttons, " +
        "the slider or the arrow keys.",
    ),
  );

  // --- controls ------------------------------------------------------------------------------
  const controls = h("div", "tl-controls");
  const prev = h("button", "tl-prev", "\u25c0 previous");
  prev.type = "button";
  const slider = document.createElement("input");
  slider.type = "range";
  slider.min = "0";
  slider.max = String(Math.max(0, K - 1));
  slider.step = "1";
  slider.setAttribute("aria-label", "Step");
  const next = h("button", "tl-next", "next \u25b6");
  next.type = "button";
  const counter = h("output", "tl-counter");
  counter.setAttribute("aria-live", "polite");
  controls.append(prev, slider, next, counter);
  root.appendChild(controls);
  const caption = h("p", "tl-caption");
  root.appendChild(caption);

  // --- the score grid ------------------------------------------------------------------------
  const body = h("div", "tl-body");
  const wrap = h("div", "tl-gridwrap");
  const grid = h("div", "tl-grid");
  grid.setAttribute("role", "grid");
  grid.setAttribute("aria-label", "Scores: one row per query, one column per key");
  grid.style.gridTemplateColumns = `max-content repeat(${S}, minmax(3.2em, 1fr))`;
  grid.appendChild(h("div", "tl-corner", "q \u2193 k \u2192"));
  keyTokens.forEach((token, j) => {
    const cell = h("div", "tl-key", shown(token));
    cell.title = `key ${j}: ${token}`;
    if (j % blockK === 0 && j > 0) cell.classList.add("tl-edge-left");
    grid.appendChild(cell);
  });
  const cells = [];
  tokens.forEach((token, i) => {
    const head = h("div", "tl-query", shown(token));
    head.title = `query ${i}: ${token}`;
    if (i % blockQ === 0 && i > 0) head.classList.add("tl-edge-top");
    grid.appendChild(head);
    const row = [];
    for (let j = 0; j < S; j++) {
      const cell = h("div", "tl-cell");
      cell.setAttribute("role", "gridcell");
      cell.dataset.i = String(i);
      cell.dataset.j = String(j);
      if (j % blockK === 0 && j > 0) cell.classList.add("tl-edge-left");
      if (i % blockQ === 0 && i > 0) cell.classList.add("tl-edge-top");
      grid.appendChild(cell);
      row.push(cell);
    }
    cells.push(row);
  });
  wrap.appendChild(grid);
  const legend = h("div", "tl-legend");
  for (const [cls, text] of [
    ["tl-current", "this tile: scores computed now"],
    ["tl-done", "folded into m, l and the output; the scores are gone"],
    ["tl-todo", "still to come"],
  ]) {
    const item = h("span", "tl-legend-item");
    item.append(h("span", `tl-swatch ${cls}`), document.createTextNode(text));
    legend.appendChild(item);
  }
  wrap.appendChild(legend);
  body.appendChild(wrap);

  // --- the running state, one row per query ---------------------------------------------------
  const table = h("table", "tl-state");
  const thead = h("thead");
  const headRow = h("tr");
  for (const name of ["query", "m", "l", "rescale", "running output", "exact output"]) {
    const th = h("th", "", name);
    th.scope = "col";
    headRow.appendChild(th);
  }
  thead.appendChild(headRow);
  table.appendChild(thead);
  const tbody = h("tbody");
  const stateRows = tokens.map((token, i) => {
    const tr = h("tr");
    tr.dataset.i = String(i);
    const th = h("th", "tl-state-token", shown(token));
    th.scope = "row";
    const m = h("td", "tl-m");
    const l = h("td", "tl-l");
    const r = h("td", "tl-rescale");
    const out = h("td", "tl-out");
    const ex = h("td", "tl-exact", vector(exact[i]));
    tr.append(th, m, l, r, out, ex);
    tbody.appendChild(tr);
    return { tr, m, l, r, out };
  });
  table.appendChild(tbody);
  body.appendChild(table);
  root.appendChild(body);
  const footer = h("p", "tl-footer");
  footer.setAttribute("aria-live", "polite");
  root.appendChild(footer);
  el.appendChild(root);

  // --- state -> view -------------------------------------------------------------------------
  function update() {
    const k = Math.min(Math.max(0, model.get("step") | 0), Math.max(0, K - 1));
    if (K === 0) return;
    const step = steps[k];
    const [i0, i1] = step.rows;
    const [j0, j1] = step.cols;
    slider.value = String(k);
    counter.textContent = `step ${k + 1} of ${K}`;
    prev.disabled = k === 0;
    next.disabled = k === K - 1;
    root.dataset.step = String(k);

    const grew = [];
    let first = 0;
    for (let i = i0; i < i1; i++) {
      const factor = step.rescale[i - i0];
      if (factor === 0) first += 1;
      else if (factor !== null && factor < 1) grew.push(`${shown(tokens[i])} \u00d7${fmt(factor)}`);
    }
    let story;
    if (first === i1 - i0) {
      story = "The first tile of these queries: m starts at each row's largest score here.";
    } else if (grew.length) {
      story = `The maximum rose, so the old sums were rescaled: ${grew.join(", ")}.`;
    } else {
      story = "No running maximum rose: the old sums keep their scale (factor 1).";
    }
    caption.textContent = `Tile ${k + 1}: queries ${i0}\u2013${i1 - 1} \u00d7 keys ` +
      `${j0}\u2013${j1 - 1}. ${story}`;

    for (let i = 0; i < L; i++) {
      for (let j = 0; j < S; j++) {
        const state = cellState(owner, i, j, k);
        const cell = cells[i][j];
        cell.classList.remove("tl-current", "tl-done", "tl-todo", "tl-skipped", "tl-masked");
        cell.classList.add(`tl-${state}`);
        if (state === "current") {
          const s = step.scores[i - i0][j - j0];
          if (s === null) cell.classList.add("tl-masked");
          cell.textContent = fmt(s, 2);
          cell.dataset.score = s === null ? "-inf" : String(s);
        } else {
          cell.textContent = state === "skipped" ? "\u00b7" : "";
          delete cell.dataset.score;
        }
      }
    }

    stateRows.forEach(({ tr, m, l, r, out }, i) => {
      const touched = i >= i0 && i < i1;
      const started = step.l[i] > 0;
      tr.classList.toggle("tl-updated", touched);
      tr.classList.toggle("tl-finished", last[i] <= k);
      m.textContent = fmt(step.m[i]);
      l.textContent = fmt(step.l[i]);
      const factor = touched ? step.rescale[i - i0] : null;
      r.textContent = !touched ? "" : factor === 0 ? "first" : `\u00d7${fmt(factor)}`;
      out.textContent = started ? vector(step.out[i]) : "\u2014";
    });

    const { worst, count } = finishedError(steps, exact, last, k);
    footer.textContent =
      count === 0
        ? "No query has seen all its keys yet."
        : `${count} of ${L} queries have seen all their keys; their running output equals ` +
          `the exact output (largest difference ${worst.toFixed(4)}).`;
  }

  // --- view -> state -------------------------------------------------------------------------
  function go(k) {
    const clamped = Math.min(Math.max(0, k), Math.max(0, K - 1));
    model.set("step", clamped);
    model.save_changes();
  }
  prev.addEventListener("click", () => go((model.get("step") | 0) - 1));
  next.addEventListener("click", () => go((model.get("step") | 0) + 1));
  slider.addEventListener("input", () => go(Number(slider.value)));
  root.addEventListener("keydown", (event) => {
    if (event.target === slider) return; // the slider handles its own arrow keys
    if (event.key === "ArrowRight" || event.key === "ArrowDown") {
      go((model.get("step") | 0) + 1);
      event.preventDefault();
    } else if (event.key === "ArrowLeft" || event.key === "ArrowUp") {
      go((model.get("step") | 0) - 1);
      event.preventDefault();
    }
  });

  model.on("change:step", update);
  update();
  return () => model.off("change:step", update);
}

export default { render };
