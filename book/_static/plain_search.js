/* Search excerpts are plain text cut from each page's HTML, where math is still TeX
 * source (MathJax does not run on the search page).  The build gives every math element
 * its Unicode rendering in data-plain (book/_ext/plain_titles.py); use that instead. */
(function () {
  "use strict";
  // Math inside notebook outputs has no data-plain: drop the TeX markup at least.
  const fallback = (tex) => tex.replace(/\\[()[\]]/g, "").replace(/\\([A-Za-z]+)/g, "$1")
    .replace(/[{}]/g, "").replace(/\s+/g, " ").trim();
  const patch = () => {
    if (typeof Search === "undefined" || Search.ddpmPlainMath) return;
    const original = Search.htmlToText;
    Search.htmlToText = (htmlString, anchor) => {
      const doc = new DOMParser().parseFromString(htmlString, "text/html");
      doc.querySelectorAll(".math").forEach((el) => {
        el.textContent = " " + (el.dataset.plain || fallback(el.textContent)) + " ";
      });
      return original(doc.documentElement.outerHTML, anchor);
    };
    Search.ddpmPlainMath = true;
  };
  patch();
  document.addEventListener("DOMContentLoaded", patch);
})();
