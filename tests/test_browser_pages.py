"""Every page of the built book, as a reader sees it in Chromium at 1280 and 390 px.

* math fits: no displayed equation is wider than the space its column leaves it at
  1280 px, and no equation number sits on top of the math;
* code fits: no code cell (input or printed output) scrolls sideways at 1280 px;
* phones: at 390 px the page itself never scrolls sideways and nothing is cut off
  (wide content scrolls inside its own box instead);
* no raw TeX where MathJax does not run: browser-tab titles, sidebars, link texts,
  search results, and any text outside typeset math and code;
* figures: every figure a cell draws has a numbered caption.

Needs `make book` first and Debian's chromium + chromium-driver.  Outside CI a missing
book or browser skips these tests with the reason; in CI (CI=true) it fails them.
"""

from __future__ import annotations

import re

import pytest

from browser_support import unavailable as _unavailable
from browser_support import (HTML, MEASURE_JS, VISIBLE_TEXT_JS, built_pages, chromium,
                             open_page, served_book)

pytestmark = pytest.mark.browser

PAGES = built_pages() or ["book/intro.html"]  # the fallback only names the skip
#: TeX that escaped typesetting: a command, math delimiters, a braced script.
RAW_TEX = re.compile(r"\\[A-Za-z]+|\\[()\[\]]|[_^]\{|\$")


@pytest.fixture(scope="module")
def base_url():
    with served_book() as url:
        yield url


@pytest.fixture(scope="module")
def browse(base_url):
    """browse(page, width) → (driver, measurements): one Chromium per width, pages cached."""
    import contextlib

    stack = contextlib.ExitStack()
    drivers, cache = {}, {}

    def get(page: str, width: int):
        if width not in drivers:
            drivers[width] = stack.enter_context(chromium(width))
        d = drivers[width]
        if (page, width) not in cache:
            open_page(d, f"{base_url}/{page}")
            cache[page, width] = {"layout": d.execute_script(MEASURE_JS),
                                  "text": d.execute_script(VISIBLE_TEXT_JS)}
        return d, cache[page, width]

    with stack:
        yield get


@pytest.mark.parametrize("page", PAGES)
def test_displayed_math_fits_the_column_at_1280px(browse, page):
    _, m = browse(page, 1280)
    too_wide = [(d["id"], d["width"], d["available"]) for d in m["layout"]["displays"]
                if d["width"] > d["available"] + 1]
    assert not too_wide, f"displays wider than their column (id, px, px available): {too_wide}"
    assert not m["layout"]["eqno_overlaps"], f"equation numbers over the math: {m['layout']['eqno_overlaps']}"


@pytest.mark.parametrize("page", PAGES)
def test_code_does_not_scroll_sideways_at_1280px(browse, page):
    _, m = browse(page, 1280)
    for kind in ("code", "outputs"):
        wide = [(c["id"], c["scroll"], c["client"]) for c in m["layout"][kind] if c["scroll"] > c["client"] + 1]
        assert not wide, f"{kind} blocks that scroll sideways (near id, content px, box px): {wide}"


@pytest.mark.parametrize("page", PAGES)
def test_nothing_is_clipped_at_390px(browse, page):
    _, m = browse(page, 390)
    layout = m["layout"]
    assert layout["page_width"] <= layout["viewport"], (
        f"the page scrolls sideways on a phone: {layout['page_width']} px in a {layout['viewport']} px window")
    assert not layout["wide"], f"content cut off at 390 px (element, px, box px): {layout['wide']}"
    assert not layout["eqno_overlaps"], f"equation numbers over the math at 390 px: {layout['eqno_overlaps']}"


@pytest.mark.parametrize("page", PAGES)
def test_no_raw_tex_where_a_reader_looks(browse, page):
    driver, m = browse(page, 1280)
    title = m["text"]["title"]
    assert not RAW_TEX.search(title), f"raw TeX in the browser-tab title: {title!r}"
    body = m["text"]["body"]
    hits = sorted({body[max(0, h.start() - 30):h.end() + 30].replace("\n", " ") for h in RAW_TEX.finditer(body)})
    assert not hits, f"raw TeX outside typeset math and code: {hits[:8]}"
    errors = driver.execute_script("return document.querySelectorAll('mjx-merror').length")
    assert errors == 0, "MathJax reported a TeX error"


def _code_literals() -> list[str]:
    """Inline code on the built pages that contains TeX on purpose (the pitfalls page quotes
    the reference's broken markup, e.g. ``\\bar{alpha_t}``): not a leak where it is quoted."""
    from bs4 import BeautifulSoup

    found = set()
    for page in PAGES:
        path = HTML / page
        if path.exists():
            for code in BeautifulSoup(path.read_text(), "html.parser").select("code"):
                text = code.get_text()
                if RAW_TEX.search(text):
                    found.add(text)
    return sorted(found, key=len, reverse=True)


@pytest.mark.parametrize("query", ["posterior", "decoder", "prior"])
def test_search_results_show_no_raw_tex(base_url, browse, query):
    """Search excerpts are cut from pages whose math is still TeX source; they must not show it."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver, _ = browse("search.html", 1280)
    driver.get(f"{base_url}/search.html?q={query}")
    WebDriverWait(driver, 60).until(
        lambda d: d.execute_script("return document.querySelectorAll('#search-results li p.context').length") > 0)
    WebDriverWait(driver, 30).until(  # all excerpts fetched
        lambda d: d.execute_script(
            "return Array.from(document.querySelectorAll('#search-results li'))"
            ".every(li => li.querySelector('p.context') || !li.querySelector('a'))"))
    text = driver.execute_script("return document.querySelector('#search-results').innerText")
    assert text.strip(), "no search results"
    for literal in _code_literals():  # quoted code, shown as code on its page
        text = text.replace(literal, "")
    hits = sorted({text[max(0, h.start() - 30):h.end() + 30].replace("\n", " ") for h in RAW_TEX.finditer(text)})
    assert not hits, f"raw TeX in search results for {query!r}: {hits[:8]}"


@pytest.mark.parametrize("page", [p for p in PAGES if p.startswith(("notebooks/", "book/intro"))])
def test_every_figure_has_a_numbered_caption(page):
    """Each picture a cell draws sits in a figure whose caption starts "Fig. N.M" (numfig)."""
    from bs4 import BeautifulSoup

    path = HTML / page
    if not path.exists():
        _unavailable("the built book is missing: run `make book` first")
    soup = BeautifulSoup(path.read_text(), "html.parser")
    bare = []
    for img in soup.select(".cell_output img"):
        figure = img.find_parent("figure")
        caption = figure.find("figcaption") if figure else None
        number = caption.select_one(".caption-number") if caption else None
        if number is None or not re.match(r"Fig\. \d+(\.\d+)*", number.get_text(strip=True)):
            bare.append(img.get("src", "?")[-40:])
        elif len(caption.get_text(" ", strip=True)) < len(number.get_text(strip=True)) + 20:
            bare.append(f"{img.get('src', '?')[-40:]} (caption says nothing)")
    assert not bare, f"figures without a numbered caption: {bare}"
