"""The built book in a real browser: typeset math, pages free of warnings.

The explorers (precomputed frames, the JS schedule explorer) are tested in
tests/test_browser_widgets.py.

Needs `make book` first (the `make test` target orders it so) and Debian's
chromium + chromium-driver (.ci/run installs them).  Outside CI a missing book or
browser skips these tests with the reason; in CI (CI=true) it fails them.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from browser_support import served_book
from browser_support import unavailable as _unavailable

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
SHOTS = ROOT / "_build" / "screenshots"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
CHAPTER = "notebooks/01_forward_process.html"


@pytest.fixture(scope="module")
def server():
    with served_book([CHAPTER]) as url:
        yield url


@pytest.fixture(scope="module")
def driver():
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        _unavailable("Chromium is not installed: apt-get install chromium chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="ddpm-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
                 f"--user-data-dir={profile}", "--window-size=1280,1600"):
        opts.add_argument(flag)
    d = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    d.set_page_load_timeout(60)
    yield d
    d.quit()
    shutil.rmtree(profile, ignore_errors=True)


def _open(driver, url: str):
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    WebDriverWait(driver, 60).until(lambda d: d.execute_script("return document.readyState") == "complete")
    # MathJax 3 resolves this promise once the page is typeset.
    driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "const wait = () => (window.MathJax && MathJax.startup && MathJax.startup.promise)"
        "  ? MathJax.startup.promise.then(() => done(true)) : setTimeout(wait, 100);"
        "wait();"
    )


@pytest.mark.parametrize("page", ["book/intro.html", "book/notation.html", CHAPTER])
def test_math_is_typeset(server, driver, page):
    driver.set_script_timeout(60)
    _open(driver, f"{server}/{page}")
    n_typeset = driver.execute_script("return document.querySelectorAll('mjx-container').length")
    assert n_typeset > 0, "MathJax produced no output: is the local MathJax served?"
    text = driver.find_element("tag name", "main").text
    assert "$$" not in text and "\\frac" not in text and "\\bar" not in text, "raw TeX is visible"
    assert "<Figure size" not in text, "a figure was printed as text instead of drawn"
    errors = driver.execute_script("return document.querySelectorAll('mjx-merror').length")
    assert errors == 0, "MathJax reported a TeX error"


def test_no_built_page_shows_a_warning_or_traceback():
    """Stderr is shown in the book, so a stray warning or error would reach every reader."""
    pages = sorted((HTML / "notebooks").glob("*.html"))
    if not pages:
        _unavailable("the built book is missing: run `make book` first")
    for page in pages:
        text = page.read_text()
        for marker in ("Warning: ", "Traceback (most recent call last)"):
            assert marker not in text, f"{page.name} shows '{marker.strip()}' in an output"
