/*
 * Kernel-free β-schedule explorer for the rendered book.
 *
 * It mirrors ddpm_lite.schedule.NoiseSchedule formula for formula (the same ramps, the
 * same log-space products, the same L_T expression), so the numbers it shows agree with
 * Python to ~1e-12 relative; the browser tests check that.  It activates on every
 * <div class="ddpm-schedule-explorer"> of a page.  The div, written by
 * ddpm_lite.book.widgets.forward, carries the starting values (data-kind, data-T, data-beta-1,
 * data-beta-T, and data-timestep for t: attribute names ignore case), the control ranges (data-max-T, data-beta-*-range),
 * E[x_0²] of the digits test split (data-mean-square, all L_T needs) and, from a
 * ScheduleExplorer, x_0 and one fixed draw of noise for the swiss roll and the digits, so
 * that x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε is drawn for any setting.  After every change the
 * div's data-* attributes hold the current values at full precision.
 */
(function () {
  "use strict";

  var COSINE_MAX_BETA = 0.999;
  var COSINE_S = 0.008;
  var TINY = 2.2250738585072014e-308; // float64 tiny, as np.finfo(np.float64).tiny
  var LN2 = Math.log(2);
  var POINT_LIMIT = 3.2;              // ddpm_lite.book.plotting.POINT_LIMITS
  var BLUE = "#1f77b4", RED = "#d62728", INK = "#222", GRID = "#e3e3e3";

  // ------------------------------------------------------------------ the schedule
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

  /* L_T per dimension in bits: ½(ᾱ_T(m2 − 1) − log(1 − ᾱ_T)) / ln 2, as ½(ᾱ_T m2 + Σ_{k≥2} ᾱ_Tᵏ/k) / ln 2:
     the first form cancels to rounding noise (a negative KL) once ᾱ_T is small; the series, summed
     smallest term first as prior_kl_per_dim does, is exact there; log1p above ᾱ_T = 1/4. */
  function priorBits(d, m2) {
    var T = d.alphaBar.length, a = d.alphaBar[T - 1], excess = 0, k;
    if (a < 0.25) for (k = 40; k > 1; k--) excess += Math.pow(a, k) / k;
    else excess = -a - Math.log1p(-a);
    return 0.5 * (a * m2 + excess) / LN2;
  }

  // ------------------------------------------------------------------ page elements
  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function float32(b64) {
    var raw = atob(b64), bytes = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
    return new Float32Array(bytes.buffer);
  }

  function roundSig(x, digits) { return parseFloat(x.toPrecision(digits)); }

  /* Four significant digits, as Python's "{:.4g}" shows them (exponent form for small numbers). */
  function fmt(x) {
    return x !== 0 && (Math.abs(x) < 1e-4 || Math.abs(x) >= 1e4) ? x.toExponential(3) : x.toPrecision(4);
  }

  /* A row: label, range input, number input.  `toSlider`/`fromSlider` map values to positions. */
  function control(parent, o) {
    var row = el("div", { "class": "dse-row" });
    var label = el("label", { "class": "dse-label", "for": o.id + "-n" });
    label.innerHTML = o.label;
    var range = el("input", { type: "range", name: o.name, min: o.first || 0, max: o.positions, step: 1,
                              "aria-label": o.aria + (o.scale ? " (" + o.scale + ")" : "") });
    var number = el("input", { type: "number", name: o.name + "_value", id: o.id + "-n", min: o.min, max: o.max,
                               step: o.step, "class": "dse-number" });
    row.appendChild(label);
    row.appendChild(range);
    row.appendChild(number);
    if (o.scale) row.appendChild(el("span", { "class": "dse-scale" }, o.scale));
    parent.appendChild(row);
    return { range: range, number: number, row: row };
  }

  // ------------------------------------------------------------------ drawing
  function niceStep(span, n) {
    var raw = span / n, mag = Math.pow(10, Math.floor(Math.log10(raw))), r = raw / mag;
    return (r < 1.5 ? 1 : r < 3 ? 2 : r < 7 ? 5 : 10) * mag;
  }

  function text(ctx, s, x, y, align, size, color) {
    ctx.font = (size || 11) + "px sans-serif";
    ctx.textAlign = align || "left";
    ctx.fillStyle = color || INK;
    ctx.fillText(s, x, y);
  }

  /* "β" + subscript "t": canvas text has no <sub>, so the subscript is drawn smaller, lower. */
  function subText(ctx, base, sub, x, y, size) {
    ctx.font = size + "px sans-serif";
    ctx.textAlign = "left";
    ctx.fillStyle = INK;
    ctx.fillText(base, x, y);
    var w = ctx.measureText(base).width;
    ctx.font = Math.round(size * 0.72) + "px sans-serif";
    ctx.fillText(sub, x + w + 0.5, y + size * 0.3);
  }

  var SUPERSCRIPT = { "-": "⁻", "0": "⁰", "1": "¹", "2": "²", "3": "³", "4": "⁴", "5": "⁵", "6": "⁶", "7": "⁷",
                      "8": "⁸", "9": "⁹" };
  function powerOfTen(e) {
    if (e === 0) return "1";
    return "10" + String(e).split("").map(function (c) { return SUPERSCRIPT[c]; }).join("");
  }

  /* One curve panel: frame, ticks and labels on both axes, the curve over t = 1..T, a marker at t. */
  function curvePanel(ctx, box, ys, t, spec) {
    var T = ys.length, x0 = box.x, y0 = box.y, w = box.w, h = box.h;
    var tr = function (v) { return spec.log ? Math.log10(Math.max(v, 1e-300)) : v; };
    var lo = tr(spec.min), hi = tr(spec.max);
    var px = function (tt) { return x0 + w * (T === 1 ? 0.5 : (tt - 1) / (T - 1)); };
    var py = function (v) { return y0 + h * (1 - (tr(v) - lo) / (hi - lo)); };
    ctx.save();
    ctx.lineWidth = 1;
    // y ticks and grid
    spec.ticks.forEach(function (v) {
      var y = py(v);
      ctx.strokeStyle = GRID; ctx.beginPath(); ctx.moveTo(x0, y); ctx.lineTo(x0 + w, y); ctx.stroke();
      ctx.strokeStyle = INK; ctx.beginPath(); ctx.moveTo(x0 - 4, y); ctx.lineTo(x0, y); ctx.stroke();
      text(ctx, spec.log ? powerOfTen(Math.round(Math.log10(v))) : String(v), x0 - 6, y + 4, "right", 10);
    });
    // x ticks: 1 and round numbers up to T
    var step = niceStep(Math.max(T - 1, 1), w < 200 ? 2 : 4), xt = [1];
    for (var v = step; v <= T; v += step) if (px(v) - px(xt[xt.length - 1]) > 22) xt.push(v);
    xt.forEach(function (v) {
      var x = px(v);
      ctx.strokeStyle = INK; ctx.beginPath(); ctx.moveTo(x, y0 + h); ctx.lineTo(x, y0 + h + 4); ctx.stroke();
      text(ctx, String(v), x, y0 + h + 15, "center", 10);
    });
    text(ctx, "t", x0 + w, y0 + h + 27, "right", 11);
    ctx.strokeStyle = "#888"; ctx.strokeRect(x0, y0, w, h);
    spec.title(ctx, x0, y0 - 7);
    // the curve, clipped to the frame (log-SNR and β leave it at extreme settings)
    ctx.beginPath(); ctx.rect(x0, y0, w, h); ctx.clip();
    ctx.beginPath(); ctx.strokeStyle = BLUE; ctx.lineWidth = 1.6;
    var stride = Math.max(1, Math.floor(T / (2 * w)));  // no more than two points per pixel
    for (var i = 0; i < T; i += stride) {
      var yy = Math.min(Math.max(py(ys[i]), y0 - 5), y0 + h + 5);
      if (i === 0) ctx.moveTo(px(i + 1), yy); else ctx.lineTo(px(i + 1), yy);
    }
    ctx.lineTo(px(T), Math.min(Math.max(py(ys[T - 1]), y0 - 5), y0 + h + 5));
    ctx.stroke();
    ctx.strokeStyle = RED; ctx.lineWidth = 1.2;
    ctx.beginPath(); ctx.moveTo(px(t), y0); ctx.lineTo(px(t), y0 + h); ctx.stroke();
    ctx.restore();
  }

  function pointsPanel(ctx, box, s, a, sd, t) {
    var side = Math.min(box.w, box.h), x0 = box.x + (box.w - side) / 2, y0 = box.y;
    var scale = side / (2 * POINT_LIMIT), n = s.points.length / 2;
    ctx.save();
    ctx.strokeStyle = "#888"; ctx.strokeRect(x0, y0, side, side);
    ctx.beginPath(); ctx.rect(x0, y0, side, side); ctx.clip();
    ctx.fillStyle = "rgba(31, 119, 180, 0.5)";
    for (var i = 0; i < n; i++) {
      var x = a * s.points[2 * i] + sd * s.pointsNoise[2 * i];
      var y = a * s.points[2 * i + 1] + sd * s.pointsNoise[2 * i + 1];
      ctx.fillRect(x0 + (x + POINT_LIMIT) * scale - 1, y0 + (POINT_LIMIT - y) * scale - 1, 2, 2);
    }
    ctx.restore();
    text(ctx, "swiss roll at t = " + t, x0, y0 - 7, "left", 12);
  }

  /* The digits tiled 4 across, white between tiles: ddpm_lite.data.image_grid. */
  function digitsPanel(ctx, box, s, a, sd, t) {
    var n = s.shape[0], H = s.shape[2], W = s.shape[3], cols = 4, rows = Math.ceil(n / cols);
    var gw = cols * (W + 1) - 1, gh = rows * (H + 1) - 1;
    var grid = document.createElement("canvas");
    grid.width = gw; grid.height = gh;
    var g = grid.getContext("2d"), img = g.createImageData(gw, gh), px = img.data;
    for (var k = 0; k < px.length; k++) px[k] = 255;
    for (var d = 0; d < n; d++) {
      var r = Math.floor(d / cols), c = d % cols;
      for (var i = 0; i < H; i++) for (var j = 0; j < W; j++) {
        var q = d * H * W + i * W + j;
        var v = Math.min(Math.max(a * s.digits[q] + sd * s.digitsNoise[q], -1), 1);
        var o = 4 * ((r * (H + 1) + i) * gw + c * (W + 1) + j), gray = Math.round((v + 1) / 2 * 255);
        px[o] = px[o + 1] = px[o + 2] = gray;
      }
    }
    g.putImageData(img, 0, 0);
    var scale = Math.min(8, Math.max(1, Math.floor(Math.min(box.w / gw, box.h / gh))));
    var x0 = box.x + (box.w - gw * scale) / 2, y0 = box.y;
    ctx.save();
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(grid, x0, y0, gw * scale, gh * scale);
    ctx.restore();
    text(ctx, "digits at t = " + t, x0, y0 - 7, "left", 12);
  }

  // ------------------------------------------------------------------ one explorer
  function mount(root, n) {
    if (root.classList.contains("dse-live")) return;
    var id = "dse" + n + "-";
    var attr = function (n) { return root.getAttribute("data-" + n); };
    var range = function (n, lo, hi) {
      var r = (attr(n) || "").split(" ").map(parseFloat);
      return r.length === 2 && isFinite(r[0]) && isFinite(r[1]) ? r : [lo, hi];
    };
    var m2 = parseFloat(attr("mean-square"));
    if (!isFinite(m2)) m2 = 1;
    var maxT = parseInt(attr("max-T"), 10) || 4000;
    var b1Range = range("beta-1-range", 1e-6, 0.1), bTRange = range("beta-T-range", 1e-4, 0.5);
    var state = {
      kind: attr("kind") || "linear",
      T: parseInt(attr("T"), 10) || 1000,
      b1: parseFloat(attr("beta-1")) || 1e-4,
      bT: parseFloat(attr("beta-T")) || 0.02,
      t: parseInt(attr("timestep"), 10) || 1
    };
    var samples = null, script = root.querySelector("script.dse-samples");
    if (script) {
      var raw = JSON.parse(script.textContent);
      samples = { points: float32(raw.points), pointsNoise: float32(raw.points_noise),
                  digits: float32(raw.digits), digitsNoise: float32(raw.digits_noise), shape: raw.digit_shape };
    }
    root.innerHTML = "";
    root.classList.add("dse-live");

    var controls = el("div", { "class": "dse-controls" });
    var kindRow = el("div", { "class": "dse-row" });
    kindRow.appendChild(el("label", { "class": "dse-label", "for": id + "kind" }, "schedule"));
    var kind = el("select", { name: "kind", id: id + "kind" });
    ["linear", "cosine", "quadratic", "sigmoid"].forEach(function (k) { kind.appendChild(el("option", { value: k }, k)); });
    kindRow.appendChild(kind);
    controls.appendChild(kindRow);
    var POS = 1000, lnMaxT = Math.log(maxT);
    var cT = control(controls, { id: id + "T", name: "T", label: "T", aria: "T, number of steps", positions: POS,
                                 min: 1, max: maxT, step: 1, scale: "log scale" });
    var cB1 = control(controls, { id: id + "b1", name: "beta_1", label: "β<sub>1</sub>", aria: "β1", positions: POS,
                                  min: b1Range[0], max: b1Range[1], step: "any", scale: "log scale" });
    var cBT = control(controls, { id: id + "bT", name: "beta_T", label: "β<sub>T</sub>", aria: "βT", positions: POS,
                                  min: bTRange[0], max: bTRange[1], step: "any", scale: "log scale" });
    var cosineNote = el("p", { "class": "dse-note", hidden: "" },
      "The cosine schedule fixes every β_t itself (from ᾱ_t = f(t)/f(0), f(t) = cos²(π/2 · (t/T + 0.008)/1.008), " +
      "β clipped at 0.999), so β₁ and β_T do not apply; the other schedules use them.");
    cosineNote.innerHTML = cosineNote.textContent.replace("β_t", "β<sub>t</sub>").replace("ᾱ_t", "ᾱ<sub>t</sub>")
      .replace("β_T", "β<sub>T</sub>");
    controls.appendChild(cosineNote);
    var ct = control(controls, { id: id + "t", name: "t", label: "t", aria: "t, the timestep shown", positions: 1, first: 1,
                                 min: 1, max: state.T, step: 1 });
    root.appendChild(controls);
    var readout = el("div", { "class": "dse-readout", "aria-live": "polite" });
    root.appendChild(readout);
    var canvas = el("canvas", { "class": "dse-canvas", role: "img" });
    root.appendChild(canvas);

    // Positions of the log-scale sliders: T from 1 to maxT, β over its range.
    var tPos = function (T) { return Math.round(POS * Math.log(T) / lnMaxT); };
    var posT = function (p) { return Math.min(maxT, Math.max(1, Math.round(Math.exp(p / POS * lnMaxT)))); };
    var bPos = function (b, r) { return Math.round(POS * Math.log(b / r[0]) / Math.log(r[1] / r[0])); };
    var posB = function (p, r) { return roundSig(r[0] * Math.pow(r[1] / r[0], p / POS), 3); };

    // The t the reader chose: t follows T down (t ≤ T always) and comes back up with it, so a
    // T passed on the way (dragging the slider through T = 5, say) does not leave t at 5.
    var tChosen = state.t;
    function setT(T) {
      state.T = Math.min(maxT, Math.max(1, T));
      state.t = Math.min(Math.max(1, tChosen), state.T);
    }
    function setTimestep(t) {
      tChosen = Math.min(Math.max(1, t), state.T);
      state.t = tChosen;
    }
    kind.value = state.kind;
    kind.addEventListener("change", function () { state.kind = kind.value; update(); });
    cT.range.addEventListener("input", function () { setT(posT(parseInt(cT.range.value, 10))); update(true); });
    // Arrow keys step T by one, so every integer T is reachable from the slider, not only by typing.
    cT.range.addEventListener("keydown", function (e) {
      var d = { ArrowUp: 1, ArrowRight: 1, ArrowDown: -1, ArrowLeft: -1 }[e.key];
      if (d) { e.preventDefault(); setT(state.T + d); update(); }
    });
    cB1.range.addEventListener("input", function () { state.b1 = posB(parseInt(cB1.range.value, 10), b1Range); update(); });
    cBT.range.addEventListener("input", function () { state.bT = posB(parseInt(cBT.range.value, 10), bTRange); update(); });
    ct.range.addEventListener("input", function () { setTimestep(parseInt(ct.range.value, 10)); update(); });
    // A typed number is applied when the reader commits it (Enter, Tab, leaving the field,
    // the spin buttons), not at every keystroke: typing "50" into T used to apply T = 5 first.
    // Out of range, it is clamped to the box's limits; not a number, the value in force returns.
    function typed(input, apply) {
      input.addEventListener("change", function () {
        var v = parseFloat(input.value), lo = parseFloat(input.min), hi = parseFloat(input.max);
        if (input.value !== "" && isFinite(v)) apply(Math.min(Math.max(v, isFinite(lo) ? lo : v), isFinite(hi) ? hi : v));
        update();
      });
    }
    typed(cT.number, function (v) { setT(Math.round(v)); });
    typed(cB1.number, function (v) { state.b1 = v; });
    typed(cBT.number, function (v) { state.bT = v; });
    typed(ct.number, function (v) { setTimestep(Math.round(v)); });

    // Redraw at the new width whenever the explorer's width changes (window resized, a
    // scrollbar appeared, the sidebar folded), so the canvas stays sharp.
    var drawnWidth = 0, resizeTimer = null;
    var redraw = function () {
      if (root.clientWidth === drawnWidth) return;
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(function () { update(); }, 80);
    };
    if (window.ResizeObserver) new ResizeObserver(redraw).observe(root);
    else window.addEventListener("resize", redraw);

    /* Recompute and redraw.  `fromTSlider`: keep the T slider where the pointer is. */
    function update(fromTSlider) {
      var cos = state.kind === "cosine";
      cB1.range.disabled = cB1.number.disabled = cBT.range.disabled = cBT.number.disabled = cos;
      cosineNote.hidden = !cos;
      if (!fromTSlider) cT.range.value = tPos(state.T);
      cB1.range.value = bPos(state.b1, b1Range);
      cBT.range.value = bPos(state.bT, bTRange);
      ct.range.max = state.T;
      ct.number.max = state.T;
      ct.range.value = state.t;
      [[cT.number, state.T], [cB1.number, state.b1], [cBT.number, state.bT], [ct.number, state.t]].forEach(function (p) {
        p[0].value = String(p[1]);
      });
      cT.range.setAttribute("aria-valuetext", "T = " + state.T);
      var b = betas(state.kind, state.T, state.b1, state.bT), d = derived(b);
      var aT = d.alphaBar[state.T - 1], lt = priorBits(d, m2), at = d.alphaBar[state.t - 1];
      readout.innerHTML = "ᾱ<sub>T</sub> = " + fmt(aT) + ", L<sub>T</sub> = " + fmt(lt) +
        " bits/dim (digits); ᾱ<sub>t</sub> = " + fmt(at) + " at t = " + state.t;
      // Full-precision values for anyone (and the browser tests) comparing with Python.
      var out = { kind: state.kind, T: state.T, "beta-1": state.b1, "beta-T": state.bT, timestep: state.t,
                  "alpha-bar-T": aT, "LT-bits": lt, "alpha-bar-timestep": at };
      for (var k in out) root.setAttribute("data-" + k, typeof out[k] === "number" && k !== "T" && k !== "timestep"
                                                         ? out[k].toPrecision(17) : String(out[k]));
      draw(b, d);
    }

    function draw(b, d) {
      drawnWidth = root.clientWidth;
      var style = getComputedStyle(root);
      var W = Math.max(240, Math.floor(root.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight)));
      var wide = W >= 600, cols = wide ? 3 : 1, left = 46, gap = wide ? 18 : 0, right = 16;
      var pw = Math.floor((W - cols * left - (cols - 1) * gap - right) / cols), ph = wide ? 150 : 120, rowH = ph + 58;
      var curveRows = wide ? 1 : 3, sampleH = samples ? Math.min(wide ? 200 : Math.floor((W - 20) / 2), 220) : 0;
      var H = curveRows * rowH + (samples ? sampleH + 34 : 0);
      var ratio = window.devicePixelRatio || 1;
      canvas.width = Math.round(W * ratio); canvas.height = Math.round(H * ratio);
      // CSS scales the canvas to its box (width 100%, height from the aspect ratio), so a
      // box that narrows before the next redraw shrinks the picture instead of distorting it.
      canvas.style.width = "100%"; canvas.style.maxWidth = W + "px"; canvas.style.height = "auto";
      var ctx = canvas.getContext("2d");
      ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
      ctx.clearRect(0, 0, W, H);
      var panels = [
        { ys: b, min: 1e-6, max: 1, log: true, ticks: [1e-6, 1e-4, 1e-2, 1],
          title: function (c, x, y) { subText(c, "β", "t", x, y, 13); text(c, "(log scale)", x + 22, y, "left", 11, "#555"); } },
        { ys: d.alphaBar, min: 0, max: 1, log: false, ticks: [0, 0.5, 1],
          title: function (c, x, y) { subText(c, "ᾱ", "t", x, y, 13); } },
        { ys: d.logSnr, min: -25, max: 16, log: false, ticks: [-20, -10, 0, 10],
          title: function (c, x, y) { text(c, "log-SNR(t)", x, y, "left", 13); } }
      ];
      panels.forEach(function (p, i) {
        var box = { x: left + (wide ? i * (pw + left + gap) : 0), y: (wide ? 0 : i * rowH) + 22, w: pw, h: ph };
        curvePanel(ctx, box, p.ys, state.t, p);
      });
      var label = "t = " + state.t + " of T = " + state.T + " (red line)";
      canvas.setAttribute("aria-label", "β, ᾱ and log-SNR over t; " + label);
      if (samples) {
        var a = Math.sqrt(d.alphaBar[state.t - 1]), sd = Math.sqrt(d.oneMinusAlphaBar[state.t - 1]);
        var top = curveRows * rowH + 22, half = Math.floor((W - 16) / 2);
        pointsPanel(ctx, { x: 4, y: top, w: Math.min(half, sampleH), h: sampleH }, samples, a, sd, state.t);
        digitsPanel(ctx, { x: Math.min(half, sampleH) + 16, y: top, w: W - Math.min(half, sampleH) - 20, h: sampleH },
                    samples, a, sd, state.t);
      }
    }
    update();
  }

  window.ddpmScheduleExplorer = { betas: betas, derived: derived, priorBits: priorBits };
  function init() { document.querySelectorAll("div.ddpm-schedule-explorer").forEach(mount); }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
