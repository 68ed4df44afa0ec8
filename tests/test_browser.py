"""The built book in a real browser: typeset math, static widgets, the JS explorer.

Needs `make book` first (the `make test` target orders it so) and Debian's
chromium + chromium-driver (.ci/run installs them).  Outside CI a missing book or
browser skips these tests with the reason; in CI (CI=true) it fails them.
"""

from __future__ import annotations

import functools
import http.server
import math
import os
import shutil
import tempfile
import threading
from pathlib import Path

import pytest

from ddpm_lite import NoiseSchedule
from ddpm_lite.gaussian import LN2

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
SHOTS = ROOT / "_build" / "screenshots"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
CHAPTER = "notebooks/01_forward_process.html"


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def server():
    if not (HTML / CHAPTER).exists():
        _unavailable("the built book is missing: run `make book` first")
    handler = functools.partial(_QuietHandler, directory=str(HTML))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output readable
        pass


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


def test_static_widget_renders(server, driver):
    from selenium.webdriver.support.ui import WebDriverWait

    driver.set_script_timeout(60)
    _open(driver, f"{server}/{CHAPTER}")
    # The embedded widget manager replaces the state script with real widget views.
    WebDriverWait(driver, 60).until(
        lambda d: d.execute_script("return document.querySelectorAll('.widget-slider, .jupyter-widgets.widget-slider').length") > 0)
    sliders = driver.execute_script("return document.querySelectorAll('.widget-slider').length")
    images = driver.execute_script(
        "return Array.from(document.querySelectorAll('.widget-image')).filter(i => i.naturalWidth > 100).length")
    assert sliders >= 5, "the schedule explorer's sliders did not render"
    assert images >= 2, "the widgets' static pictures did not render"
    SHOTS.mkdir(parents=True, exist_ok=True)
    el = driver.find_elements("css selector", ".widget-image")[0]
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", el)
    driver.save_screenshot(str(SHOTS / "widget.png"))


def _python_values(kind: str, T: int, b1: float, bT: float, m2: float) -> tuple[float, float]:
    s = NoiseSchedule.cosine(T) if kind == "cosine" else NoiseSchedule.from_name(kind, T, beta_1=b1, beta_T=bT)
    return float(s.alpha_bars[T]), float(s.prior_kl_per_dim(m2)) / LN2


def _read(root) -> dict:
    g = root.get_attribute
    return {"kind": g("data-kind"), "T": int(g("data-T")), "b1": float(g("data-beta-1")),
            "bT": float(g("data-beta-T")), "abar": float(g("data-alpha-bar-T")), "lt": float(g("data-LT-bits")),
            "m2": float(g("data-mean-square"))}


def _agree(v: dict) -> None:
    abar, lt = _python_values(v["kind"], v["T"], v["b1"], v["bT"], v["m2"])
    assert math.isclose(v["abar"], abar, rel_tol=1e-12), (v, abar)
    assert math.isclose(v["lt"], lt, rel_tol=1e-12), (v, lt)


def test_js_explorer_matches_python(server, driver):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.support.ui import Select, WebDriverWait

    driver.set_script_timeout(60)
    _open(driver, f"{server}/{CHAPTER}")
    root = WebDriverWait(driver, 30).until(
        lambda d: d.find_element("css selector", "div.ddpm-schedule-explorer.dse-live"))
    start = _read(root)
    assert start["kind"] == "linear" and start["T"] == 1000
    _agree(start)

    # Drag the T slider to the left: a shorter chain keeps more signal.
    t_slider = root.find_element("css selector", "input[name=T]")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", t_slider)
    ActionChains(driver).click_and_hold(t_slider).move_by_offset(-t_slider.size["width"] // 2, 0).release().perform()
    dragged = _read(root)
    assert dragged["T"] < start["T"]
    assert dragged["abar"] > start["abar"] and dragged["lt"] > start["lt"]
    _agree(dragged)

    # Drag β_T, then try every schedule kind at this setting.
    bt_slider = root.find_element("css selector", "input[name=log10_beta_T]")
    ActionChains(driver).click_and_hold(bt_slider).move_by_offset(bt_slider.size["width"] // 5, 0).release().perform()
    _agree(_read(root))
    for kind in ("cosine", "quadratic", "sigmoid", "linear"):
        Select(root.find_element("css selector", "select[name=kind]")).select_by_value(kind)
        v = _read(root)
        assert v["kind"] == kind
        _agree(v)

    # The short-chain pitfall, reproduced in the browser: T = 50 with the paper's β range.
    driver.execute_script(
        "const r = arguments[0]; const set = (n, v) => { const e = r.querySelector(`input[name=${n}]`);"
        " e.value = v; e.dispatchEvent(new Event('input')); };"
        "set('T', 50); set('log10_beta_1', -4); set('log10_beta_T', Math.log10(0.02).toFixed(2));", root)
    v = _read(root)
    assert v["T"] == 50 and 0.59 < v["abar"] < 0.61
    _agree(v)
    SHOTS.mkdir(parents=True, exist_ok=True)
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", root)
    driver.save_screenshot(str(SHOTS / "js_explorer.png"))


def test_no_built_page_shows_a_warning_or_traceback():
    """Stderr is shown in the book, so a stray warning or error would reach every reader."""
    pages = sorted((HTML / "notebooks").glob("*.html"))
    if not pages:
        _unavailable("the built book is missing: run `make book` first")
    for page in pages:
        text = page.read_text()
        for marker in ("Warning: ", "Traceback (most recent call last)"):
            assert marker not in text, f"{page.name} shows '{marker.strip()}' in an output"
