/* The book's exercises without a kernel: one checker for every page that has an exercise.
 *
 * Each exercise (div.ddpm-exercise) carries its data as JSON, written by
 * ddpm_lite.book.exercise_view.  A derive answer is parsed by the vendored math.js and
 * compared with the solution at random points of each symbol's domain (β_t and ᾱ_t are
 * computed from α_t and ᾱ_{t-1}, as in the book); a listed mistake that agrees with the
 * answer at every point gives its hint.  The same rules as the Python checker: products need
 * "*", powers "^", the functions are sqrt, log, exp and the constant pi.
 * Under node, `require("exercises.js")(math)` returns the judge for the tests.
 */
(function () {
  "use strict";
  var FUNCTIONS = { sqrt: 1, log: 1, exp: 1 };
  var OPS = { "+": 1, "-": 1, "*": 1, "/": 1, "^": 1 };
  var POINTS = 24, NEEDED = 6, MAX = 400, MAX_EXPONENT = 1000;

  function makeJudge(math) {
    function unparsable(message) { return { status: "unparsable", message: message }; }

    // Parse `text` allowing only `names` (and pi, sqrt, log, exp); returns {node} or a verdict.
    function read(text, names) {
      if (typeof text !== "string" || !text.trim()) return unparsable("the answer is empty: type an expression.");
      if (text.length > MAX) return unparsable("the answer has " + text.length + " characters (at most " + MAX + ").");
      var bad = text.match(/[^A-Za-z0-9_+\-*\/^().,\s]/);
      if (bad) return unparsable("'" + bad[0] + "' is not part of the notation: use the names listed, numbers, "
                                 + "+ - * / ^, parentheses, sqrt, log, exp and pi.");
      var words = text.match(/(?:^|[^0-9.A-Za-z_])([A-Za-z_][A-Za-z0-9_]*)/g) || [];
      for (var i = 0; i < words.length; i++) {
        var w = words[i].replace(/^[^A-Za-z_]/, "");
        if (names.indexOf(w) < 0 && !FUNCTIONS[w] && w !== "pi")
          return unparsable("unknown name '" + w + "': this exercise uses " + names.slice().sort().join(", ")
                            + " and the functions sqrt, log, exp, the constant pi.");
      }
      var node;
      try { node = math.parse(text.replace(/\*\*/g, "^")); } catch (e) { node = null; }
      var ok = node && node.filter(function (n) {
        if (n.isOperatorNode) return !OPS[n.op] || n.implicit;
        if (n.isFunctionNode) return !(n.fn && n.fn.isSymbolNode && FUNCTIONS[n.fn.name]);
        return !(n.isSymbolNode || n.isConstantNode || n.isParenthesisNode);
      }).length === 0;
      if (!ok) return unparsable("could not read it as an expression: check the parentheses, and write every "
                                 + "product with * (2*x_t, not 2 x_t) and powers with ^.");
      // As in Python: a numeric exponent above MAX_EXPONENT (9^9^9^9) is refused, not computed.
      var huge = node.filter(function (n) {
        if (!(n.isOperatorNode && n.op === "^")) return false;
        var e = n.args[1];
        if (e.filter(function (m) { return m.isSymbolNode && m.name !== "pi" && !FUNCTIONS[m.name]; }).length) return false;
        try { return !(Math.abs(e.evaluate()) <= MAX_EXPONENT); } catch (err) { return false; }
      }).length;
      if (huge) return unparsable("an exponent above " + MAX_EXPONENT + " is not an answer here.");
      return { node: node, code: node.compile() };
    }

    // A seeded generator, so that a page gives the same verdict every time.
    function rng(seed) {
      var a = 0;
      for (var i = 0; i < seed.length; i++) a = (a * 31 + seed.charCodeAt(i)) >>> 0;
      return function () {
        a = (a + 0x6D2B79F5) >>> 0;
        var t = Math.imul(a ^ (a >>> 15), 1 | a);
        t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
        return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
      };
    }

    function points(data) {
      var next = rng(data.key), out = [];
      var derived = {};
      Object.keys(data.derived || {}).forEach(function (k) { derived[k] = math.compile(data.derived[k]); });
      for (var i = 0; i < POINTS; i++) {
        var p = {};
        Object.keys(data.vars).forEach(function (k) {
          var v = data.vars[k], x = v[0] + (v[1] - v[0]) * next();
          p[k] = v[2] ? Math.round(x) : x;
        });
        Object.keys(derived).forEach(function (k) { p[k] = derived[k].evaluate(p); });
        out.push(p);
      }
      return out;
    }

    function value(code, p) {
      try {
        var v = code.evaluate(Object.assign({}, p));
        return (typeof v === "number" && isFinite(v)) ? v : null;
      } catch (e) { return null; }
    }

    function close(a, b) { return Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(a), Math.abs(b)); }

    // Where `a` and `b` differ: {agree: bool, point, va, vb, n}; n counts the usable points.
    function compare(a, b, pts) {
      var n = 0;
      for (var i = 0; i < pts.length; i++) {
        var va = value(a, pts[i]), vb = value(b, pts[i]);
        if (va === null || vb === null) continue;
        n++;
        if (!close(va, vb)) return { agree: false, point: pts[i], va: va, vb: vb, n: n };
      }
      return { agree: n >= NEEDED, n: n };
    }

    function fmt(x) { return Number(x.toPrecision(6)).toString(); }

    function where(c, data) {
      var shown = Object.keys(c.point).filter(function (k) { return data.names.indexOf(k) >= 0; });
      return " At " + shown.map(function (k) { return k + " = " + fmt(c.point[k]); }).join(", ")
        + " yours is " + fmt(c.va) + ", the solution " + fmt(c.vb) + ".";
    }

    function tex(node, data) {
      return node.toTex({ parenthesis: "auto", implicit: "show", handler: function (n) {
        // In braces: math.js writes "\\cdot" right before a symbol, and "\\cdotx_{0}" is no macro.
        if (n.isSymbolNode && data.tex && data.tex[n.name]) return "{" + data.tex[n.name] + "}";
        return undefined;
      } });
    }

    function derive(data, text) {
      var got = read(text, data.names);
      if (!got.node) return got;
      var preview = tex(got.node, data), pts = points(data);
      var c = compare(got.code, read(data.solution, data.names).code, pts);
      if (c.agree) return { status: "correct", message: "it equals the solution at " + c.n
                            + " random points of the domain.", preview: preview };
      var at = c.point ? where(c, data) : "";
      for (var i = 0; i < data.mistakes.length; i++) {
        var m = compare(got.code, read(data.mistakes[i].expr, data.names).code, pts);
        if (m.agree) return { status: "mistake", mistake: i, message: data.mistakes[i].hint + at, preview: preview };
      }
      if (!c.point) return { status: "undecided", preview: preview, message: "it could not be evaluated at enough "
                             + "points of the domain to compare it with the solution." };
      return { status: "wrong", message: "it differs from the solution." + at, preview: preview };
    }

    function compute(data, text) {
      var got = read(text, []);
      if (!got.node) return got;
      var x = value(got.code, {});
      if (x === null) return unparsable("that is not a finite real number.");
      var close2 = function (a, b) { return Math.abs(a - b) <= data.rel_tol * Math.max(Math.abs(b), 1e-300); };
      var preview = tex(got.node, data);
      if (close2(x, data.value)) return { status: "correct", preview: preview,
                                          message: "within " + data.rel_tol + " (relative) of " + fmt(data.value) + "." };
      for (var i = 0; i < data.mistakes.length; i++)
        if (close2(x, data.mistakes[i].value)) return { status: "mistake", mistake: i, preview: preview,
                                                         message: data.mistakes[i].hint };
      return { status: "wrong", preview: preview, message: fmt(x) + " is too " + (x > data.value ? "large" : "small")
               + " (the tolerance is " + data.rel_tol + ", relative)." };
    }

    function choice(data, index, text) {
      if (index === null || index === undefined || index < 0 || index >= data.why.length)
        return unparsable("choose one of a–" + String.fromCharCode(97 + data.why.length - 1) + ".");
      if (index !== data.answer) return { status: "wrong", message: data.why[index] };
      if (!data.form || !text || !text.trim()) return { status: "correct", message: data.why[index] };
      var v = derive(data.form, text);
      return { status: v.status, mistake: v.mistake, preview: v.preview,
               message: data.why[index] + " Your corrected form: " + v.message };
    }

    return { read: read, derive: derive, compute: compute, choice: choice,
             judge: function (data, answer, index) {
               if (data.kind === "derive") return derive(data, answer);
               if (data.kind === "compute") return compute(data, answer);
               return choice(data, index, answer);
             } };
  }

  if (typeof module === "object" && module.exports) { module.exports = makeJudge; return; }

  var LABEL = { correct: "✔ Correct", mistake: "✘ A common mistake", wrong: "✘ Not right",
                unparsable: "Cannot read it", undecided: "Undecided" };

  function typeset(el) {
    if (window.MathJax && MathJax.typesetPromise) MathJax.typesetPromise([el]).catch(function () {});
  }

  function wire(root, judge) {
    var data = JSON.parse(root.querySelector("script.ddpm-exercise-data").textContent);
    var input = root.querySelector("input.ddpm-exercise-input");
    var button = root.querySelector("button.ddpm-exercise-check");
    var preview = root.querySelector(".ddpm-exercise-preview");
    var verdict = root.querySelector(".ddpm-exercise-verdict");
    function picked() {
      var r = root.querySelector("input[type=radio]:checked");
      return r ? parseInt(r.value, 10) : null;
    }
    function check() {
      var v = judge.judge(data, input ? input.value : "", picked());
      preview.textContent = "";
      if (v.preview) {
        var span = document.createElement("span");
        span.className = "math notranslate nohighlight";
        span.textContent = "\\(" + v.preview + "\\)";
        preview.appendChild(document.createTextNode("You typed "));
        preview.appendChild(span);
      }
      // Messages and hints are the book's own HTML (with its math); the reader's text is not in them.
      verdict.className = "ddpm-exercise-verdict ddpm-exercise-" + v.status;
      verdict.setAttribute("data-status", v.status);
      verdict.innerHTML = "<strong>" + LABEL[v.status] + ".</strong> " + v.message;
      if (data.kind === "choice" && !data.form && v.status !== "unparsable")
        root.querySelector("details.ddpm-exercise-solution").open = true;  // predict, then see why
      typeset(root);
    }
    button.addEventListener("click", check);
    if (input) input.addEventListener("keydown", function (e) { if (e.key === "Enter") { e.preventDefault(); check(); } });
  }

  function start() {
    if (!window.math) return;
    var judge = makeJudge(window.math);
    document.querySelectorAll("div.ddpm-exercise").forEach(function (root) { wire(root, judge); });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
