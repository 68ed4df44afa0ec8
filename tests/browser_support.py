"""Serve the built book and drive it in headless Chromium (shared by the browser tests).

Not a test module: ``tests/test_browser_pages.py`` imports it, and so can a one-off
script that takes screenshots (``python tests/browser_support.py --help``).
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Iterable, Iterator

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
         "--hide-scrollbars")


def built_pages(html: Path = HTML) -> list[str]:
    """Every page a reader can reach: the chapters, the prose pages, search and the index."""
    pages = [p.relative_to(html).as_posix() for p in html.rglob("*.html")
             if not p.relative_to(html).parts[0].startswith("_")]
    return sorted(pages)


def unavailable(reason: str) -> None:
    """Fail under CI (the browser tests must run there), skip elsewhere, naming the reason."""
    import os

    import pytest

    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def chromium_available() -> bool:
    return Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output readable
        pass


@contextlib.contextmanager
def serve(html: Path = HTML) -> Iterator[str]:
    """An HTTP server on a free local port for ``html``; yields its base URL."""
    handler = functools.partial(_QuietHandler, directory=str(html))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()


@contextlib.contextmanager
def served_book(pages: Iterable[str] = ("book/intro.html",), html: Path = HTML) -> Iterator[str]:
    """Serve the built book, as every browser test module's server fixture does.

    Skips (fails under CI, see :func:`unavailable`) when any of ``pages`` is missing, i.e.
    `make book` has not run, or when Chromium is not installed; yields the base URL.
    """
    if not all((html / page).exists() for page in pages):
        unavailable("the built book is missing: run `make book` first")
    if not chromium_available():
        unavailable("Chromium is not installed: apt-get install chromium chromium-driver")
    with serve(html) as url:
        yield url


@contextlib.contextmanager
def chromium(width: int, height: int = 1000) -> Iterator[object]:
    """A headless Chromium whose *viewport* is ``width`` CSS pixels wide, fresh profile."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="ddpm-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    try:
        driver.set_page_load_timeout(60)
        driver.set_script_timeout(60)
        # --window-size sets the outer window; make the layout viewport exactly `width`.
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600})
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def open_page(driver, url: str) -> None:
    """Load ``url`` and wait until MathJax (where the page loads it) has typeset everything."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    WebDriverWait(driver, 60).until(lambda d: d.execute_script("return document.readyState") == "complete")
    driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "if (!document.querySelector('script[src*=mathjax]')) { done(false); return; }"
        "const wait = () => (window.MathJax && MathJax.startup && MathJax.startup.promise)"
        "  ? MathJax.startup.promise.then(() => done(true)) : setTimeout(wait, 100);"
        "wait();"
    )
    # Let layout settle (fonts, images) before anything is measured.
    driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "Promise.all([document.fonts.ready, ...Array.from(document.images).map(i => i.complete ? 0"
        "  : new Promise(r => { i.onload = i.onerror = r; }))]).then(() => setTimeout(done, 50));"
    )


#: Layout measurements of one page, in CSS pixels.  A "display" is a block equation
#: (Sphinx's ``div.math``, in the prose or in a cell output); its natural width is that
#: of MathJax's ``mjx-math`` box, which keeps its size when the container scrolls it.
MEASURE_JS = r"""
const px = (r) => Math.round(r.width);
const out = {viewport: window.innerWidth, page_width: document.documentElement.scrollWidth,
             displays: [], eqno_overlaps: [], code: [], outputs: [], wide: []};
const label = (el) => (el.id || (el.closest('[id]') || {}).id || el.tagName).slice(0, 60);
document.querySelectorAll('div.math').forEach((d) => {
  const m = d.querySelector('mjx-math');
  if (!m) return;
  const box = d.getBoundingClientRect();
  const math = m.getBoundingClientRect();
  const eq = d.querySelector('.eqno');
  const eqw = eq ? eq.getBoundingClientRect().width : 0;
  const col = d.parentElement.getBoundingClientRect();
  // The room the math has is its container's (MathJax's box scrolls when the math is wider).
  const room = d.querySelector('mjx-container').clientWidth;
  out.displays.push({id: label(d), width: px(math), eqno: Math.round(eqw),
                     available: room, column: px(col)});
  if (eq) {
    const e = eq.getBoundingClientRect();
    const c = d.querySelector('mjx-container').getBoundingClientRect();
    // The math is visible only inside its container; it overlaps the number if the
    // visible part of the math and the number's box intersect (in both directions).
    const visRight = Math.min(math.right, c.right), visLeft = Math.max(math.left, c.left);
    const visBottom = Math.min(math.bottom, c.bottom), visTop = Math.max(math.top, c.top);
    if (visRight > e.left + 0.5 && visLeft < e.right - 0.5
        && visBottom > e.top + 0.5 && visTop < e.bottom - 0.5) out.eqno_overlaps.push(label(d));
  }
});
const scrolls = (el) => el.scrollWidth > el.clientWidth + 1;
document.querySelectorAll('.cell_input pre, div.highlight pre').forEach((p) => {
  if (p.closest('.cell_output')) return;
  out.code.push({id: label(p), scroll: p.scrollWidth, client: p.clientWidth});
});
document.querySelectorAll('.cell_output pre').forEach((p) => {
  out.outputs.push({id: label(p), scroll: p.scrollWidth, client: p.clientWidth});
});
// Anything whose content is cut off rather than scrollable: an element wider than its
// box with overflow hidden/clip, or an image or table wider than the column it sits in.
const main = document.querySelector('main') || document.body;
main.querySelectorAll('img, table, svg, canvas, iframe, .widget-box, .jupyter-widgets').forEach((el) => {
  const r = el.getBoundingClientRect();
  if (r.width === 0) return;
  let a = el.parentElement;
  while (a && a !== main) {
    const s = getComputedStyle(a);
    if (['auto', 'scroll'].includes(s.overflowX)) break;  // a reader can scroll to it
    if (['hidden', 'clip'].includes(s.overflowX)) {
      const b = a.getBoundingClientRect();
      if (r.right > b.right + 1 || r.left < b.left - 1)
        out.wide.push({el: el.tagName + ' ' + label(el), width: px(r), box: px(b)});
      break;
    }
    a = a.parentElement;
  }
  if (!a || a === main) {
    const b = main.getBoundingClientRect();
    if (r.right > b.right + 1 || r.left < b.left - 1)
      out.wide.push({el: el.tagName + ' ' + label(el), width: px(r), box: px(b)});
  }
});
return out;
"""

#: Text a reader sees outside typeset math and code, plus the strings a browser shows in
#: other places (the tab title).  MathJax's own output and code blocks are removed first.
VISIBLE_TEXT_JS = r"""
const clone = document.body.cloneNode(true);
clone.querySelectorAll('mjx-container, script, style, pre, code, .highlight, '
                      + 'noscript, template, .MathJax_Preview').forEach((e) => e.remove());
// innerText of a detached node ignores CSS; hidden widget state etc. is already gone.
return {title: document.title, body: clone.textContent};
"""


if __name__ == "__main__":  # pragma: no cover - a helper for taking screenshots by hand
    import argparse
    import json

    ap = argparse.ArgumentParser(description="Screenshot and measure pages of the built book.")
    ap.add_argument("pages", nargs="*", help="pages relative to _build/html (default: all)")
    ap.add_argument("--width", type=int, action="append", help="viewport widths (default 1280 and 390)")
    ap.add_argument("--out", default=str(ROOT / "_build" / "screenshots"))
    ap.add_argument("--html", default=str(HTML))
    ap.add_argument("--no-shots", action="store_true")
    ap.add_argument("--summary", action="store_true", help="print counts per width instead of the JSON")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    html = Path(args.html)
    pages = args.pages or built_pages(html)
    report = {}
    with serve(html) as base:
        for width in args.width or [1280, 390]:
            with chromium(width) as d:
                for page in pages:
                    open_page(d, f"{base}/{page}")
                    m = d.execute_script(MEASURE_JS)
                    report[f"{page}@{width}"] = m
                    if not args.no_shots:
                        h = d.execute_script("return document.documentElement.scrollHeight")
                        d.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
                            "width": width, "height": min(h, 16000), "deviceScaleFactor": 1,
                            "mobile": width < 600})
                        name = page.replace("/", "_").replace(".html", "")
                        d.save_screenshot(str(out / f"{name}@{width}.png"))
                        d.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
                            "width": width, "height": 1000, "deviceScaleFactor": 1, "mobile": width < 600})
    if not args.summary:
        print(json.dumps(report))
    else:
        totals: dict = {}
        for key, m in report.items():
            t = totals.setdefault(key.rsplit("@", 1)[1], dict.fromkeys(
                ("displays", "too_wide", "code", "code_scrolls", "outputs", "outputs_scroll",
                 "eqno_overlaps", "clipped", "pages_scrolling_sideways"), 0))
            t["displays"] += len(m["displays"])
            t["too_wide"] += sum(d["width"] > d["available"] + 1 for d in m["displays"])
            t["code"] += len(m["code"])
            t["code_scrolls"] += sum(c["scroll"] > c["client"] + 1 for c in m["code"])
            t["outputs"] += len(m["outputs"])
            t["outputs_scroll"] += sum(c["scroll"] > c["client"] + 1 for c in m["outputs"])
            t["eqno_overlaps"] += len(m["eqno_overlaps"])
            t["clipped"] += len(m["wide"])
            t["pages_scrolling_sideways"] += m["page_width"] > m["viewport"]
        print(json.dumps(totals, indent=1))
