// The widget renderer (@jupyter-widgets/html-manager 1.x) typesets widget labels with the
// MathJax 2 call MathJax.Hub.Queue(["Typeset", MathJax.Hub, element]). This book loads MathJax 3,
// which has no Hub, so that call would throw. Translate it to MathJax 3's typesetPromise.
(function () {
  "use strict";
  var mj = window.MathJax;
  if (!mj || mj.Hub || !mj.startup) return;
  mj.Hub = {
    Queue: function () {
      var elements = [];
      Array.prototype.forEach.call(arguments, function (command) {
        if (Array.isArray(command) && command[0] === "Typeset" && command[2]) {
          elements.push(command[2]);
        }
      });
      if (!elements.length) return;
      mj.startup.promise
        .then(function () {
          return mj.typesetPromise(elements);
        })
        .catch(function (err) {
          console.warn("MathJax could not typeset a widget label:", err);
        });
    },
  };
})();
