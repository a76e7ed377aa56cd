// The shared base of attnlib's widgets. Each widget's front end is this file followed by the
// widget's own view (decoding.js, explorer.js, ...), joined into one ES module by
// attnlib.widgets._frontend; so a view uses these helpers without importing them and must not
// declare a name of its own that this file already declares.
//
// Security: reader text (tokens, prompts, titles, labels) is data, never markup. It goes in
// through textContent, createTextNode or a plain attribute only; nothing here parses HTML.
//
// What a view gets here, beyond the DOM helpers (el, svgEl) and the arithmetic:
// - widgetRoot(): the frame, role=group named by the title, with ONE polite live region;
//   announce(text) puts a short summary of what the reader just changed there (debounced, so a
//   dragged slider is announced once it rests; never on the first render).
// - Accessible controls: sliderControl / selectControl / checkboxControl / button /
//   stepControls (each named by its visible label), stepKeys (arrow keys step a focusable root),
//   gridKeys (a roving tabindex over the cells of a grid: arrows, Home/End, Enter/Space).
// - scrollBox(): a wide grid scrolls sideways inside its own box on a phone (a fade at the cut
//   edge and a "scroll \u2192" hint while it overflows; it joins the Tab order only then).
// - Themes: colours live in _base.css (light and dark palettes); setHeat() shades a heatmap
//   cell whose text colour CSS picks for contrast; themeRGB() reads a palette colour for a
//   canvas, onThemeChange() tells when the page's theme flips.

const SVG_NS = "http://www.w3.org/2000/svg";
const HEAT_FLOOR = 0.04; // the lightest shade a cell takes (weight 0), so empty cells stay visible
const TEMPERATURE_MIN = 0.05; // the temperature sliders' range ...
const TEMPERATURE_MAX = 5;
const TEMPERATURE_STEPS = 200; // ... and positions: a step multiplies it by (5 / 0.05) ** (1 / 200)

// ---------------------------------------------------------------------------------------------
// The DOM: el() and svgEl() build every node of every widget.

function setStyle(node, style) {
  for (const [name, value] of Object.entries(style)) {
    if (name.startsWith("--")) node.style.setProperty(name, String(value));
    else node.style[name] = value;
  }
}

function fill(node, attrs, children, svg) {
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null) continue;
    if (name === "class") node.setAttribute("class", value);
    else if (name === "text") node.textContent = String(value);
    else if (name === "dataset") Object.assign(node.dataset, value);
    else if (name === "style") setStyle(node, value);
    else if (name === "on") {
      for (const [event, handler] of Object.entries(value)) node.addEventListener(event, handler);
    } else if (svg || name === "role" || name.includes("-") || !(name in node)) {
      node.setAttribute(name, String(value));
    } else node[name] = value;
  }
  // Strings become text nodes: append() never parses them.
  node.append(...children.filter((c) => c !== null && c !== undefined && c !== false));
  return node;
}

/**
 * A new HTML element. attrs: `class`, `text` (its text content), `dataset`, `style` (names that
 * start with -- are custom properties), `on` ({event: handler}); a name with a dash (aria-label,
 * data-x) or `role` becomes an attribute; any other name is set as a property (type, min, value,
 * htmlFor, tabIndex, disabled, title, ...). children: nodes, or strings shown as text.
 */
export function el(tag, attrs = {}, children = []) {
  return fill(document.createElement(tag), attrs, children, false);
}

/** A new SVG element; every entry of attrs but class/text/dataset/style/on is an attribute. */
export function svgEl(tag, attrs = {}, children = []) {
  return fill(document.createElementNS(SVG_NS, tag), attrs, children, true);
}

/** An id no other widget on the page has (labels and outputs point at inputs by id). */
export function uniqueId(prefix) {
  return `${prefix}-${Math.random().toString(36).slice(2, 10)}`;
}

// ---------------------------------------------------------------------------------------------
// Text and numbers

/**
 * A token as a reader should see it: an empty token as an empty-set sign, line breaks and tabs
 * made visible, and a token made of spaces only drawn as open boxes (a leading space stays a
 * space: " Paris").
 */
export function shown(token) {
  if (token === "" || token === null || token === undefined) return "\u2205";
  const text = String(token).replace(/\n/g, "\u21b5").replace(/\t/g, "\u21e5");
  return /^ +$/.test(text) ? "\u2423".repeat(text.length) : text;
}

/** A number with `digits` decimals and a real minus sign; null stands for -infinity. */
export function fmt(v, digits = 3) {
  if (v === null || v === undefined) return "\u2212\u221e";
  const text = Number(v).toFixed(digits);
  return /^-0\.?0*$/.test(text) ? text.slice(1) : text.replace("-", "\u2212");
}

/** An index clamped into [0, n - 1] (0 for anything that is not a number). */
export function clampIndex(value, n) {
  const i = Math.trunc(Number(value)) || 0;
  return Math.min(Math.max(0, i), Math.max(0, n - 1));
}

// ---------------------------------------------------------------------------------------------
// The mathematics (exported for the browser tests)

/**
 * Softmax of one row of scores into `out`, numerically stable (the row maximum is subtracted
 * first). A key scored -Infinity is masked and gets weight 0; a row whose keys are all masked
 * gets zeros, never NaN (0 / 0), as attnlib.scaled_dot_product_attention does.
 */
export function softmaxRow(scores, out = new Array(scores.length)) {
  let max = -Infinity;
  for (const s of scores) if (s > max) max = s;
  if (max === -Infinity) return out.fill(0);
  let total = 0;
  for (let j = 0; j < scores.length; j++) {
    out[j] = scores[j] === -Infinity ? 0 : Math.exp(scores[j] - max);
    total += out[j];
  }
  for (let j = 0; j < scores.length; j++) out[j] /= total;
  return out;
}

/** Softmax over each row of `scores` where `allowed` is true (true = may attend). */
export function maskedSoftmax(scores, allowed) {
  return scores.map((row, i) => softmaxRow(row.map((s, j) => (allowed[i][j] ? s : -Infinity))));
}

// ---------------------------------------------------------------------------------------------
// The colour scale: a weight in [0, 1] becomes the opacity of the accent colour.

/** The opacity that shows weight w. */
export function heat(w) {
  return HEAT_FLOOR + (1 - HEAT_FLOOR) * w;
}

/**
 * Shade a node of class attn-heat by weight w. Its text colour follows from the shade in CSS
 * (black or white, whichever contrasts more in the current theme: see _base.css).
 */
export function setHeat(node, w) {
  node.style.setProperty("--attn-w", String(heat(w)));
}

/** A palette colour (e.g. "--attn-accent") as [r, g, b] where `node` sits, for a canvas. */
export function themeRGB(node, name, fallback = [30, 79, 168]) {
  const probe = el("span", { hidden: true, style: { color: `var(${name})` } });
  node.appendChild(probe);
  const parts = (getComputedStyle(probe).color.match(/[\d.]+/g) || []).map(Number);
  probe.remove();
  return parts.length >= 3 && node.isConnected ? parts.slice(0, 3) : fallback;
}

/**
 * Call handler() whenever the page's theme may have changed: the book's theme toggle
 * (html[data-theme]), JupyterLab's or VS Code's theme (on body), or the system preference.
 * Returns the function that stops listening.
 */
export function onThemeChange(handler) {
  const observer = new MutationObserver(() => handler());
  const watch = (node, names) =>
    node && observer.observe(node, { attributes: true, attributeFilter: names });
  watch(document.documentElement, ["data-theme", "data-mode"]);
  watch(document.body, ["data-jp-theme-light", "class"]);
  const media = window.matchMedia ? window.matchMedia("(prefers-color-scheme: dark)") : null;
  if (media && media.addEventListener) media.addEventListener("change", handler);
  return () => {
    observer.disconnect();
    if (media && media.removeEventListener) media.removeEventListener("change", handler);
  };
}

// ---------------------------------------------------------------------------------------------
// Building blocks of a widget: its root, controls, bars, stepping

/**
 * The root of a widget (class attn-root and <prefix>-root, role group, named by its title or
 * `label`), with its title (hidden while empty), a line of help and one polite live region.
 * Returns {root, title, announce}: announce(text) tells a screen reader what changed.
 */
export function widgetRoot(prefix, model, label, help, { focusable = false } = {}) {
  const text = model.get("title") || "";
  const title = el("div", { class: `attn-title ${prefix}-title`, text, hidden: !text });
  const live = el("div", {
    class: `attn-live attn-visually-hidden ${prefix}-live`,
    role: "status",
    "aria-live": "polite",
    "aria-atomic": "true",
  });
  const root = el("div", { class: `attn-root ${prefix}-root`, role: "group" }, [
    title,
    el("p", { class: `attn-help ${prefix}-help`, text: help }),
    live,
  ]);
  root.setAttribute("aria-label", text || label);
  if (focusable) root.tabIndex = 0;
  let timer = null;
  function announce(message) {
    clearTimeout(timer);
    timer = setTimeout(() => {
      live.textContent = String(message);
    }, 250);
  }
  return { root, title, announce };
}

/** A row of controls. */
export function controlBar(prefix, children) {
  return el("div", { class: `attn-controls ${prefix}-controls` }, children);
}

/** A labelled control: <label class="attn-control <prefix>-control <prefix>-<name>">. */
export function control(prefix, name, labelText, children) {
  const names = `attn-control-name ${prefix}-control-name`;
  const caption = el("span", { class: names, text: labelText });
  return el("label", { class: `attn-control ${prefix}-control ${prefix}-${name}` }, [
    labelText === null ? null : caption,
    ...children,
  ]);
}

/**
 * The visible value of a control. Not a live region of its own (the widget's one live region
 * announces changes); a slider carries its value in aria-valuetext.
 */
export function output(className) {
  return el("span", { class: `attn-value ${className}` });
}

/** A button. */
export function button(className, text, attrs = {}) {
  return el("button", { type: "button", class: `attn-button ${className}`, text, ...attrs });
}

/** An integer slider from min to max. */
export function rangeInput(min, max, attrs = {}) {
  return el("input", { type: "range", min: String(min), max: String(max), step: "1", ...attrs });
}

/**
 * A labelled slider with a live value: {label, input, value}. options: ariaLabel (default the
 * label text), valueClass (the output's own class, default <prefix>-value).
 */
export function sliderControl(prefix, name, labelText, min, max, options = {}) {
  const id = uniqueId(`${prefix}-${name}`);
  const input = rangeInput(min, max, { id, "aria-label": options.ariaLabel || labelText });
  const value = output(options.valueClass || `${prefix}-value`);
  return { label: control(prefix, name, labelText, [input, value]), input, value };
}

/** Replace the options of a select with `names` (values "0", "1", ...). */
export function fillOptions(select, names) {
  select.replaceChildren(
    ...names.map((name, index) => el("option", { value: String(index), text: name })),
  );
}

/** A labelled select of `names`: {label, select}. */
export function selectControl(prefix, name, labelText, names = [], ariaLabel = labelText) {
  const select = el("select", { "aria-label": ariaLabel });
  fillOptions(select, names);
  return { label: control(prefix, name, labelText, [select]), select };
}

/** A labelled checkbox: {label, input}. */
export function checkboxControl(prefix, name, text, ariaLabel) {
  const input = el("input", { type: "checkbox", "aria-label": ariaLabel });
  return { label: control(prefix, name, null, [input, ` ${text}`]), input };
}

/** One row of a bar chart (a label, a track with its fill, a value): {row, label, fill, value}. */
export function barRow(prefix, labelText, extraClass = "") {
  const label = el("span", { class: `attn-bar-label ${prefix}-bar-label`, text: labelText });
  const fill = el("span", { class: `attn-bar-fill ${prefix}-bar-fill` });
  const value = el("span", { class: `attn-bar-value ${prefix}-bar-value` });
  const track = el("span", { class: `attn-bar-track ${prefix}-bar-track` }, [fill]);
  const row = el("div", { class: `attn-bar-row ${prefix}-bar-row ${extraClass}`.trim() }, [
    label,
    track,
    value,
  ]);
  return { row, label, fill, value };
}

/** Show p in [0, 1] as the width of a bar row's fill. */
export function setBar({ fill }, p) {
  fill.style.width = `${(100 * p).toFixed(2)}%`;
}

/**
 * Previous / slider / next / "step k of K": {prev, slider, next, counter, show(k, K)}.
 * get() reads the current step, go(k) asks for step k (the caller clamps and saves it).
 */
export function stepControls(prefix, { what, counterClass, get, go }) {
  const prev = button(`${prefix}-prev`, "\u25c0 previous", { "aria-label": `Previous ${what}` });
  const next = button(`${prefix}-next`, "next \u25b6", { "aria-label": `Next ${what}` });
  const slider = rangeInput(0, 0, { class: `${prefix}-slider`, "aria-label": `Which ${what}` });
  const counter = output(counterClass);
  prev.addEventListener("click", () => go(get() - 1));
  next.addEventListener("click", () => go(get() + 1));
  slider.addEventListener("input", () => go(Number(slider.value)));
  function show(k, K) {
    const text = `step ${k + 1} of ${K}`;
    slider.max = String(Math.max(0, K - 1));
    slider.value = String(k);
    slider.setAttribute("aria-valuetext", text);
    counter.textContent = text;
    prev.disabled = k === 0;
    next.disabled = k === K - 1;
  }
  return { prev, slider, next, counter, show };
}

/**
 * Arrow keys on `root` step back and forth: move(-1) or move(+1). Left/Right always, Up/Down
 * too with `vertical`; a focused input, select or scroll box keeps its own keys.
 */
export function stepKeys(root, move, { vertical = false } = {}) {
  const back = vertical ? ["ArrowLeft", "ArrowUp"] : ["ArrowLeft"];
  const forward = vertical ? ["ArrowRight", "ArrowDown"] : ["ArrowRight"];
  root.addEventListener("keydown", (event) => {
    const tag = event.target.tagName;
    if (event.defaultPrevented || event.altKey || event.ctrlKey || event.metaKey) return;
    if (tag === "INPUT" || tag === "SELECT") return;
    if (event.target.classList.contains("attn-scroll")) return; // a scroll box scrolls itself
    const delta = back.includes(event.key) ? -1 : forward.includes(event.key) ? 1 : 0;
    if (!delta) return;
    move(delta);
    event.preventDefault();
  });
}

/**
 * Keyboard use of a grid with a roving tabindex: of the cells `cells()` returns (rows of
 * focusable elements; a null entry is skipped), only the current one is in the Tab order, and
 * the arrow keys, Home/End (row start and end) and Ctrl+Home/End move the focus. Moving calls
 * move(r, c); Enter or Space on a cell that is not a <button> calls activate(r, c) (a button
 * clicks itself). Clicking or focusing a cell makes it the current one.
 * Returns {place(r, c, focus), current()}: call place() after rebuilding the cells.
 */
export function gridKeys(container, { cells, move = () => {}, activate = () => {} }) {
  let at = [0, 0];
  const locate = (grid, node) => {
    for (let r = 0; r < grid.length; r++) {
      const c = grid[r].indexOf(node);
      if (c >= 0) return [r, c];
    }
    return null;
  };
  function place(r, c, focus = false) {
    const grid = cells();
    if (!grid.length) return;
    const row = clampIndex(r, grid.length);
    let col = clampIndex(c, grid[row].length);
    while (col > 0 && !grid[row][col]) col -= 1;
    for (const line of grid) for (const node of line) if (node) node.tabIndex = -1;
    const node = grid[row][col];
    if (!node) return;
    node.tabIndex = 0;
    at = [row, col];
    if (focus) node.focus();
  }
  container.addEventListener("focusin", (event) => {
    const found = locate(cells(), event.target);
    if (found) place(found[0], found[1]);
  });
  container.addEventListener("keydown", (event) => {
    if (event.altKey || event.metaKey) return;
    const grid = cells();
    const found = locate(grid, event.target);
    if (!found) return;
    const [r, c] = found;
    const last = grid.length - 1;
    const end = grid[r].length - 1;
    const steps = {
      ArrowUp: [r - 1, c],
      ArrowDown: [r + 1, c],
      ArrowLeft: [r, c - 1],
      ArrowRight: [r, c + 1],
      Home: event.ctrlKey ? [0, 0] : [r, 0],
      End: event.ctrlKey ? [last, grid[last].length - 1] : [r, end],
    };
    if (event.key in steps) {
      const [r2, c2] = steps[event.key];
      event.preventDefault();
      if (r2 < 0 || r2 > last || c2 < 0 || c2 >= grid[clampIndex(r2, grid.length)].length) return;
      place(r2, c2, true);
      move(at[0], at[1]);
    } else if ((event.key === "Enter" || event.key === " ") && event.target.tagName !== "BUTTON") {
      event.preventDefault();
      activate(r, c);
    }
  });
  return { place, current: () => at };
}

/**
 * A box that scrolls sideways when its content is wider than the widget (a phone), so that the
 * page never does: {wrap, box, check}. While it overflows it shows a fade at the cut edge and a
 * "scroll \u2192" hint, and joins the Tab order as a named region (arrow keys scroll it);
 * check() re-measures (a ResizeObserver calls it when the box or its content resizes).
 */
export function scrollBox(prefix, children, label) {
  const box = el("div", { class: `attn-scroll ${prefix}-scroll` }, children);
  const hint = el("div", { class: "attn-scroll-hint", "aria-hidden": "true" }, [
    "scroll \u2192",
  ]);
  const wrap = el("div", { class: `attn-scroll-wrap ${prefix}-scroll-wrap` }, [box, hint]);
  function check() {
    const over = box.scrollWidth > box.clientWidth + 1;
    wrap.classList.toggle("attn-overflowing", over);
    wrap.classList.toggle("attn-at-end", box.scrollLeft + box.clientWidth >= box.scrollWidth - 1);
    if (over && !box.hasAttribute("role")) {
      box.setAttribute("role", "region");
      box.setAttribute("aria-label", `${label} (scrolls sideways)`);
      box.tabIndex = 0;
    } else if (!over && box.hasAttribute("role")) {
      box.removeAttribute("role");
      box.removeAttribute("aria-label");
      box.removeAttribute("tabindex");
    }
  }
  box.addEventListener("scroll", check, { passive: true });
  if (typeof ResizeObserver !== "undefined") {
    const observer = new ResizeObserver(() => check());
    observer.observe(box);
    for (const child of box.children) observer.observe(child);
  }
  return { wrap, box, check };
}

/** Temperature -> slider position: a log scale, so 0.05..0.5 and 0.5..5 get equal room. */
export function temperatureToSlider(t) {
  const clamped = Math.min(TEMPERATURE_MAX, Math.max(TEMPERATURE_MIN, t));
  const range = Math.log(TEMPERATURE_MAX / TEMPERATURE_MIN);
  const fraction = Math.log(clamped / TEMPERATURE_MIN) / range;
  return Math.round(fraction * TEMPERATURE_STEPS);
}

/** Slider position -> temperature, rounded to 3 decimals so the synced value is tidy. */
export function sliderToTemperature(v) {
  const t =
    TEMPERATURE_MIN * Math.pow(TEMPERATURE_MAX / TEMPERATURE_MIN, Number(v) / TEMPERATURE_STEPS);
  return Math.round(t * 1000) / 1000;
}

/** A labelled temperature slider on that log scale: {label, input, value}. */
export function temperatureControl(prefix, valueClass) {
  return sliderControl(prefix, "temperature", "Temperature", 0, TEMPERATURE_STEPS, { valueClass });
}

/** Show temperature t on its control (the slider moves only when the reader is not dragging it). */
export function showTemperature({ input, value }, t) {
  if (document.activeElement !== input) input.value = String(temperatureToSlider(t));
  value.textContent = `\u03c4 = ${t.toFixed(2)}`; // tau, the temperature
  input.setAttribute("aria-valuetext", `temperature ${t.toFixed(2)}`);
}

/** model.set() every entry of `changes`, then one save_changes(). */
export function setState(model, changes) {
  for (const [name, value] of Object.entries(changes)) model.set(name, value);
  model.save_changes();
}

/** Listen to change:<name> for each name; returns the function that stops listening. */
export function listen(model, names, handler) {
  const events = names.map((name) => `change:${name}`);
  for (const event of events) model.on(event, handler);
  return () => {
    for (const event of events) model.off(event, handler);
  };
}
