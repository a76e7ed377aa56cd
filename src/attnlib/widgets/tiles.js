// OnlineSoftmaxTiles: the browser half of attnlib.widgets.tiles.OnlineSoftmaxTiles.
//
// Python runs the tiled online softmax once and sends every step (the tile, its scores, and the
// running maximum m, running sum l and running output of every query after it). This view only
// displays those steps, so the widget keeps working in the static book, without a kernel.

const TILE_HELP =
  "Each step computes one tile of scores (outlined), folds it into every query's running " +
  "maximum m, running sum l and running output, and then forgets it. Step with the buttons, " +
  "the slider or the arrow keys.";
const CELL_STATES = ["current", "done", "todo", "skipped"];

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

/** What the step did to the running maxima, in a sentence. */
export function tileStory(step, tokens) {
  const [i0, i1] = step.rows;
  const grew = [];
  let first = 0;
  for (let i = i0; i < i1; i++) {
    const factor = step.rescale[i - i0];
    if (factor === 0) first += 1;
    else if (factor !== null && factor < 1) grew.push(`${shown(tokens[i])} \u00d7${fmt(factor)}`);
  }
  if (first === i1 - i0) {
    return "The first tile of these queries: m starts at each row's largest score here.";
  }
  if (grew.length) return `The maximum rose, so the old sums were rescaled: ${grew.join(", ")}.`;
  return "No running maximum rose: the old sums keep their scale (factor 1).";
}

// ---------------------------------------------------------------------------------------------
// The view

function vector(values) {
  return "[" + values.map((v) => fmt(v, 2)).join(", ") + "]";
}

/** The score grid (a table), cut into tiles: {wrap, cells (L x S), scroll}. */
function scoreGrid(tokens, keyTokens, [blockQ, blockK]) {
  const S = keyTokens.length;
  const left = (j) => (j % blockK === 0 && j > 0 ? "tl-edge-left" : "");
  const top = (i) => (i % blockQ === 0 && i > 0 ? "tl-edge-top" : "");
  const edges = (i, j) => `${left(j)} ${top(i)}`.trim();
  const grid = el("div", {
    class: "attn-grid tl-grid",
    role: "table",
    "aria-label": "Scores: one row per query, one column per key",
    style: { gridTemplateColumns: `max-content repeat(${S}, minmax(3.2em, 1fr))` },
  });
  const corner = el("div", { class: "attn-corner tl-corner", role: "columnheader" }, [
    "q \u2193 k \u2192",
  ]);
  const keys = keyTokens.map((token, j) => {
    const cls = `attn-key tl-key ${edges(-1, j)}`;
    const title = `key ${j}: ${token}`;
    return el("div", { class: cls, role: "columnheader", text: shown(token), title });
  });
  grid.appendChild(el("div", { class: "attn-row tl-row", role: "row" }, [corner, ...keys]));
  const cells = tokens.map((token, i) => {
    const cls = `attn-label tl-query ${edges(i, -1)}`;
    const title = `query ${i}: ${token}`;
    const head = el("div", { class: cls, role: "rowheader", text: shown(token), title });
    const row = keyTokens.map((_, j) =>
      el("div", {
        class: `attn-cell tl-cell ${edges(i, j)}`,
        role: "cell",
        dataset: { i: String(i), j: String(j) },
      }),
    );
    grid.appendChild(el("div", { class: "attn-row tl-row", role: "row" }, [head, ...row]));
    return row;
  });
  const legend = el(
    "div",
    { class: "tl-legend" },
    [
      ["tl-current", "this tile: scores computed now"],
      ["tl-done", "folded into m, l and the output; the scores are gone"],
      ["tl-todo", "still to come"],
    ].map(([cls, text]) =>
      el("span", { class: "tl-legend-item" }, [el("span", { class: `tl-swatch ${cls}` }), text]),
    ),
  );
  const scroll = scrollBox("tl", [grid], "Scores");
  return { wrap: el("div", { class: "tl-gridwrap" }, [scroll.wrap, legend]), cells, scroll };
}

/** The running state, one row per query: {table, rows: [{tr, m, l, r, out}], scroll}. */
function stateTable(tokens, exact) {
  const names = ["query", "m", "l", "rescale", "running output", "exact output"];
  const head = el("tr", {}, names.map((name) => el("th", { scope: "col", text: name })));
  const rows = tokens.map((token, i) => {
    const cell = (cls) => el("td", { class: cls });
    const [m, l, r, out] = ["tl-m", "tl-l", "tl-rescale", "tl-out"].map(cell);
    const th = el("th", { class: "attn-label tl-state-token", scope: "row", text: shown(token) });
    const ex = el("td", { class: "tl-exact", text: vector(exact[i]) });
    return { tr: el("tr", { dataset: { i: String(i) } }, [th, m, l, r, out, ex]), m, l, r, out };
  });
  const table = el("table", { class: "tl-state" }, [
    el("thead", {}, [head]),
    el("tbody", {}, rows.map((row) => row.tr)),
  ]);
  const scroll = scrollBox("tl", [table], "Running state");
  return { table, rows, scroll };
}

/** Show step k's tile in the grid: its scores, and what came before and after. */
function showTile(cells, owner, step, k) {
  const [i0] = step.rows;
  const [j0] = step.cols;
  cells.forEach((row, i) =>
    row.forEach((cell, j) => {
      const state = cellState(owner, i, j, k);
      cell.classList.remove(...CELL_STATES.map((s) => `tl-${s}`), "tl-masked");
      cell.classList.add(`tl-${state}`);
      if (state === "current") {
        const s = step.scores[i - i0][j - j0];
        cell.classList.toggle("tl-masked", s === null);
        cell.textContent = fmt(s, 2);
        cell.dataset.score = s === null ? "-inf" : String(s);
      } else {
        cell.textContent = state === "skipped" ? "\u00b7" : "";
        delete cell.dataset.score;
      }
    }),
  );
}

/** Show every query's m, l, rescale factor and running output after step k. */
function showState(rows, last, step, k) {
  const [i0, i1] = step.rows;
  rows.forEach(({ tr, m, l, r, out }, i) => {
    const touched = i >= i0 && i < i1;
    const factor = touched ? step.rescale[i - i0] : null;
    tr.classList.toggle("tl-updated", touched);
    tr.classList.toggle("tl-finished", last[i] <= k);
    m.textContent = fmt(step.m[i]);
    l.textContent = fmt(step.l[i]);
    r.textContent = !touched ? "" : factor === 0 ? "first" : `\u00d7${fmt(factor)}`;
    out.textContent = step.l[i] > 0 ? vector(step.out[i]) : "\u2014";
  });
}

function render({ model, el: host }) {
  const tokens = model.get("tokens");
  const steps = model.get("steps");
  const exact = model.get("exact");
  const L = tokens.length;
  const K = steps.length;
  const owner = tileOwners(steps, L, model.get("key_tokens").length);
  const last = lastSteps(steps, L);

  const label = "Online softmax, tile by tile";
  const { root, announce } = widgetRoot("tl", model, label, TILE_HELP, { focusable: true });
  const get = () => model.get("step") | 0;
  const go = (k) => setState(model, { step: clampIndex(k, K) });
  const stepper = stepControls("tl", { what: "tile", counterClass: "tl-counter", get, go });
  const grid = scoreGrid(tokens, model.get("key_tokens"), model.get("block"));
  const state = stateTable(tokens, exact);
  const caption = el("p", { class: "tl-caption" });
  const footer = el("p", { class: "tl-footer" });
  root.append(
    controlBar("tl", [stepper.prev, stepper.slider, stepper.next, stepper.counter]),
    caption,
    el("div", { class: "tl-body" }, [grid.wrap, state.scroll.wrap]),
    footer,
  );
  host.appendChild(root);

  let first = true;
  function update() {
    if (K === 0) return;
    const k = clampIndex(model.get("step"), K);
    const step = steps[k];
    const [[i0, i1], [j0, j1]] = [step.rows, step.cols];
    stepper.show(k, K);
    root.dataset.step = String(k);
    caption.textContent =
      `Tile ${k + 1}: queries ${i0}\u2013${i1 - 1} \u00d7 keys ${j0}\u2013${j1 - 1}. ` +
      tileStory(step, tokens);
    showTile(grid.cells, owner, step, k);
    showState(state.rows, last, step, k);
    const { worst, count } = finishedError(steps, exact, last, k);
    footer.textContent =
      count === 0
        ? "No query has seen all its keys yet."
        : `${count} of ${L} queries have seen all their keys; their running output equals ` +
          `the exact output (largest difference ${worst.toFixed(4)}).`;
    grid.scroll.check();
    state.scroll.check();
    if (!first) announce(`Step ${k + 1} of ${K}. ${caption.textContent} ${footer.textContent}`);
    first = false;
  }

  stepKeys(root, (delta) => go(get() + delta), { vertical: true });
  const stop = listen(model, ["step"], update);
  update();
  return stop;
}

export default { render };
