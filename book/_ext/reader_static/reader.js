// The book's own page script (registered by book/_ext/reader_pages.py).
// A reader in the dark theme prints on white paper: while the browser prints, the page (and every
// widget, since widgets follow html[data-theme]) uses the light theme; afterwards the reader's
// choice is back. The choice stored by the theme's colour-mode button is left alone.
(() => {
  let printedFrom = null;
  window.addEventListener("beforeprint", () => {
    printedFrom = document.documentElement.dataset.theme;
    if (printedFrom === "dark") document.documentElement.dataset.theme = "light";
  });
  window.addEventListener("afterprint", () => {
    if (printedFrom === "dark") document.documentElement.dataset.theme = "dark";
    printedFrom = null;
  });
})();
