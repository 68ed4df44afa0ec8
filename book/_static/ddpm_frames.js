/*
 * Frame viewer for the book's explorers when there is no kernel.
 *
 * ddpm_lite.book.widgets.base.Explorer.static_html writes, for each explorer, a
 * <div class="ddpm-frames"> holding the picture of its current setting (the base), its
 * readout, and a JSON script with every precomputed frame and readout, one per point of a
 * grid of control values, the last control varying fastest.  A frame is "" (the base
 * itself), a whole PNG (base64), or patches [x, y, width, height, PNG] to lay over the base
 * where the frame differs from it.  This script adds one slider per control of the grid
 * and shows the frame the sliders select.  Only controls that change the frame are
 * offered; without this script the page shows the base picture and its readout.
 */
(function () {
  "use strict";

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function mount(root, n) {
    var script = root.querySelector("script.ddpm-frames-data");
    var img = root.querySelector("img.ddpm-frames-image");
    var readout = root.querySelector(".ddpm-frames-readout");
    if (!script || !img || root.classList.contains("ddpm-frames-live")) return;
    var data = JSON.parse(script.textContent);
    var controls = data.controls, index = controls.map(function (c) { return c.index; });
    var picture = img.parentNode, overlay = el("div", { "class": "ddpm-frames-overlay", "aria-hidden": "true" });
    picture.appendChild(overlay);
    var pct = function (v, of) { return (100 * v / of) + "%"; };

    /* Lay frame k over the base: nothing, one whole picture, or its patches (in per cent of
       the base, so they scale with it on a narrow screen). */
    function paint(k) {
      var f = data.frames[k], patches = typeof f === "string" ? (f ? [[0, 0, data.width, data.height, f]] : []) : f;
      overlay.textContent = "";
      patches.forEach(function (p) {
        overlay.appendChild(el("img", { src: "data:image/png;base64," + p[4], alt: "",
          style: "left:" + pct(p[0], data.width) + ";top:" + pct(p[1], data.height) + ";width:" +
                 pct(p[2], data.width) + ";height:" + pct(p[3], data.height) }));
      });
    }
    var box = el("div", { "class": "ddpm-frames-controls" });
    var inputs = controls.map(function (c, i) {
      var id = "ddpm-frames-" + n + "-" + c.name;
      var row = el("div", { "class": "ddpm-frames-row" });
      var label = el("label", { "for": id, "class": "ddpm-frames-label" });
      label.innerHTML = c.label;  // written by our Python code: plain text or <sub>
      var input = el("input", { type: "range", id: id, name: c.name, min: 0, max: c.values.length - 1,
                                step: 1, value: c.index });
      var out = el("output", { "for": id, "class": "ddpm-frames-value" });
      row.appendChild(label);
      row.appendChild(input);
      row.appendChild(out);
      box.appendChild(row);
      input.addEventListener("input", function () { index[i] = parseInt(input.value, 10); show(); });
      return { input: input, out: out };
    });
    root.insertBefore(box, root.firstChild);

    function show() {
      var k = 0;
      for (var i = 0; i < controls.length; i++) {
        k = k * controls[i].values.length + index[i];
        var text = controls[i].values[index[i]];
        inputs[i].out.textContent = text;
        inputs[i].input.setAttribute("aria-valuetext", text);
      }
      paint(k);
      readout.innerHTML = data.readouts[k];  // also ours: numbers with <sub> and <small>
      root.setAttribute("data-frame", String(k));
    }
    root.classList.add("ddpm-frames-live");
    show();
  }

  function init() { document.querySelectorAll("div.ddpm-frames").forEach(mount); }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
