// Where require.js finds the widget renderer and anywidget's front end: in this book's own
// _static/offline/ folder, next to this script, so pages work offline and over file://.
(function () {
  "use strict";
  var here = document.currentScript.src.replace(/[^/]*$/, "");
  window.requirejs.config({
    paths: {
      anywidget: here + "anywidget/index",
      "@jupyter-widgets/html-manager/dist": here + "html-manager",
    },
  });
  // The renderer's webpack chunks and icon fonts resolve against this path.
  window.__jupyter_widgets_assets_path__ = here + "html-manager/";
})();
