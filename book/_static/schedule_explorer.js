/*
 * Kernel-free β-schedule explorer for the rendered book.
 *
 * It mirrors ddpm_lite.schedule.NoiseSchedule formula for formula (the same
 * ramps, log-space products and the same L_T expression), so the numbers it
 * shows agree with Python to ~1e-12 relative; tests/browser checks that.
 * It activates on every <div class="ddpm-schedule-explorer"> on a page; the div
 * carries data-mean-square = E[x_0²] of the digits test split (written by the
 * notebook at build time), which is all L_T needs.
 */
(function () {
  "use strict";

  var COSINE_MAX_BETA = 0.999;
  var COSINE_S = 0.008;
  var TINY = 2.2250738585072014e-308; // float64 tiny, as np.finfo(np.float64).tiny
  var LN2 = Math.log(2);

  function unitRamp(T, i) { return T === 1 ? 0 : i / (T - 1); } // i = t - 1

  function betas(kind, T, b1, bT) {
    var out = new Float64Array(T), i, u;
    if (kind === "linear") {
      for (i = 0; i < T; i++) out[i] = b1 + (bT - b1) * unitRamp(T, i);
    } else if (kind === "quadratic") {
      var r1 = Math.sqrt(b1), rT = Math.sqrt(bT);
      for (i = 0; i < T; i++) { u = r1 + (rT - r1) * unitRamp(T, i); out[i] = u * u; }
    } else if (kind === "sigmoid") {
      for (i = 0; i < T; i++) { u = -6 + 12 * unitRamp(T, i); out[i] = b1 + (bT - b1) / (1 + Math.exp(-u)); }
    } else if (kind === "cosine") {
      var f = function (t) { var c = Math.cos((t / T + COSINE_S) / (1 + COSINE_S) * (Math.PI / 2)); return c * c; };
      for (i = 0; i < T; i++) out[i] = Math.max(Math.min(1 - f(i + 1) / f(i), COSINE_MAX_BETA), TINY);
    } else {
      throw new Error("unknown schedule kind " + kind);
    }
    return out;
  }

  /* ᾱ_t, 1 − ᾱ_t and log-SNR for t = 1..T, summing log(1 − β) as the Python code does. */
  function derived(b) {
    var T = b.length, logAbar = 0, abar = new Float64Array(T), omab = new Float64Array(T),
        logSnr = new Float64Array(T);
    for (var i = 0; i < T; i++) {
      logAbar += Math.log1p(-b[i]);
      abar[i] = Math.exp(logAbar);
      omab[i] = -Math.expm1(logAbar);
      logSnr[i] = logAbar - Math.log(omab[i]);
    }
    return { alphaBar: abar, oneMinusAlphaBar: omab, logSnr: logSnr };
  }

  /* L_T per dimension in bits: ½(ᾱ_T(m2 − 1) − log(1 − ᾱ_T)) / ln 2. */
  function priorBits(d, m2) {
    var T = d.alphaBar.length, a = d.alphaBar[T - 1];
    return 0.5 * (a * (m2 - 1) - Math.log(d.oneMinusAlphaBar[T - 1])) / LN2;
  }

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function slider(parent, name, label, min, max, step, value) {
    var row = el("label", { "class": "dse-row" });
    row.appendChild(el("span", { "class": "dse-label" }, label));
    var input = el("input", { type: "range", min: min, max: max, step: step, value: value, name: name,
                              "aria-label": label });
    var out = el("output", { "class": "dse-value" });
    row.appendChild(input);
    row.appendChild(out);
    parent.appendChild(row);
    return { input: input, out: out };
  }

  function drawPanel(ctx, x0, y0, w, h, ys, yMin, yMax, logY, title, color) {
    var T = ys.length;
    ctx.save();
    ctx.strokeStyle = "#888"; ctx.lineWidth = 1; ctx.strokeRect(x0, y0, w, h);
    ctx.fillStyle = "#222"; ctx.font = "12px sans-serif"; ctx.fillText(title, x0 + 4, y0 - 5);
    var tr = function (v) { return logY ? Math.log10(Math.max(v, 1e-300)) : v; };
    var lo = tr(yMin), hi = tr(yMax);
    ctx.fillStyle = "#555"; ctx.font = "10px sans-serif";
    ctx.fillText(logY ? "1e" + Math.round(hi) : String(yMax), x0 + 3, y0 + 11);
    ctx.fillText(logY ? "1e" + Math.round(lo) : String(yMin), x0 + 3, y0 + h - 3);
    ctx.fillText("t/T → 1", x0 + w - 42, y0 + h - 3);
    ctx.beginPath(); ctx.rect(x0, y0, w, h); ctx.clip();
    ctx.beginPath(); ctx.strokeStyle = color; ctx.lineWidth = 1.6;
    for (var i = 0; i < T; i++) {
      var px = x0 + w * (i + 1) / T;
      var v = (tr(ys[i]) - lo) / (hi - lo);
      var py = y0 + h * (1 - Math.min(Math.max(v, -0.05), 1.05));
      if (i === 0) ctx.moveTo(px, py); else ctx.lineTo(px, py);
    }
    ctx.stroke();
    ctx.restore();
  }

  function mount(root) {
    var m2 = parseFloat(root.getAttribute("data-mean-square"));
    if (!isFinite(m2)) m2 = 1;
    root.innerHTML = "";
    root.classList.add("dse-live");
    var controls = el("div", { "class": "dse-controls" });
    var kindRow = el("label", { "class": "dse-row" });
    kindRow.appendChild(el("span", { "class": "dse-label" }, "schedule"));
    var kind = el("select", { name: "kind", "aria-label": "schedule" });
    ["linear", "cosine", "quadratic", "sigmoid"].forEach(function (k) { kind.appendChild(el("option", { value: k }, k)); });
    kindRow.appendChild(kind);
    controls.appendChild(kindRow);
    var sT = slider(controls, "T", "T", 2, 4000, 1, 1000);
    var sB1 = slider(controls, "log10_beta_1", "log₁₀ β₁", -6, -1, 0.01, -4);
    var sBT = slider(controls, "log10_beta_T", "log₁₀ β_T", -4, -0.31, 0.01, Math.log10(0.02).toFixed(2));
    root.appendChild(controls);
    var readout = el("div", { "class": "dse-readout" });
    var rA = el("span", { "class": "dse-alpha-bar-T" }), rL = el("span", { "class": "dse-LT" });
    readout.appendChild(el("span", {}, "ᾱ_T = ")); readout.appendChild(rA);
    readout.appendChild(el("span", {}, "   L_T = ")); readout.appendChild(rL);
    readout.appendChild(el("span", {}, " bits/dim (digits)"));
    root.appendChild(readout);
    var canvas = el("canvas", { width: 720, height: 190, "class": "dse-canvas" });
    root.appendChild(canvas);
    var ctx = canvas.getContext("2d");

    function update() {
      var T = parseInt(sT.input.value, 10);
      var b1 = Math.pow(10, parseFloat(sB1.input.value));
      var bT = Math.pow(10, parseFloat(sBT.input.value));
      var cos = kind.value === "cosine";
      sB1.input.disabled = sBT.input.disabled = cos;
      var b = betas(kind.value, T, b1, bT), d = derived(b);
      var aT = d.alphaBar[T - 1], lt = priorBits(d, m2);
      sT.out.textContent = String(T);
      sB1.out.textContent = b1.toExponential(2);
      sBT.out.textContent = bT.toExponential(2);
      rA.textContent = aT.toPrecision(4);
      rL.textContent = lt.toPrecision(4);
      // Full-precision values for anyone (and the browser test) comparing with Python.
      root.setAttribute("data-kind", kind.value);
      root.setAttribute("data-T", String(T));
      root.setAttribute("data-beta-1", b1.toPrecision(17));
      root.setAttribute("data-beta-T", bT.toPrecision(17));
      root.setAttribute("data-alpha-bar-T", aT.toPrecision(17));
      root.setAttribute("data-LT-bits", lt.toPrecision(17));
      ctx.clearRect(0, 0, canvas.width, canvas.height);
      var w = 220, h = 150, top = 24;
      drawPanel(ctx, 8, top, w, h, b, 1e-6, 1, true, "β_t", "#1f77b4");
      drawPanel(ctx, 248, top, w, h, d.alphaBar, 0, 1, false, "ᾱ_t", "#1f77b4");
      drawPanel(ctx, 488, top, w, h, d.logSnr, -25, 16, false, "log-SNR(t)", "#1f77b4");
    }
    [kind, sT.input, sB1.input, sBT.input].forEach(function (e) {
      e.addEventListener("input", update);
      e.addEventListener("change", update);
    });
    update();
  }

  window.ddpmScheduleExplorer = { betas: betas, derived: derived, priorBits: priorBits };
  function init() { document.querySelectorAll("div.ddpm-schedule-explorer").forEach(mount); }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
