"""The book's explorers in a real browser, without a kernel (headless Chromium).

Needs the built book (`make book`; `make test` orders it so) and Debian's chromium +
chromium-driver.  Outside CI a missing book or browser skips these tests with the reason;
in CI (CI=true) it fails them.  Screenshots of every widget page at 1280 and 390 px go to
_build/screenshots/ for a person to look at.

What is asserted: dragging each control of each explorer changes its picture; every
widget page loads with no console error, no 404 and no widget manager; the JavaScript
schedule explorer starts at exactly the notebook's values and agrees with NoiseSchedule to
1e-12 wherever it is dragged; nothing of an explorer is wider than a 390 px phone screen.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from ddpm_lite import NoiseSchedule
from ddpm_lite.gaussian import LN2
from browser_support import served_book
from browser_support import unavailable as _unavailable

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
SHOTS = ROOT / "_build" / "screenshots"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
#: page → number of precomputed-frame explorers on it
WIDGET_PAGES = {
    "notebooks/01_forward_process.html": 1,
    "notebooks/04_posterior.html": 1,
    "notebooks/05_reverse_process.html": 1,
    "notebooks/07_training_sampling.html": 1,
}
CHAPTER_1 = "notebooks/01_forward_process.html"


@pytest.fixture(scope="module")
def server():
    with served_book(WIDGET_PAGES) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    """Chromium that records its console and network logs, in a fresh profile."""
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        _unavailable("Chromium is not installed: apt-get install chromium chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="ddpm-widgets-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
                 f"--user-data-dir={profile}", "--window-size=1280,1000"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    d = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    d.set_page_load_timeout(60)
    d.set_script_timeout(60)
    yield d
    d.quit()
    shutil.rmtree(profile, ignore_errors=True)


def _open(d, url: str, width: int = 1280) -> None:
    """Load ``url`` at ``width`` px and wait until MathJax has typeset it and the explorers are live."""
    from selenium.webdriver.support.ui import WebDriverWait

    d.set_window_size(width, 1000)
    d.get("about:blank")
    d.get_log("browser"), d.get_log("performance")  # start each page with empty logs
    d.get(url)
    WebDriverWait(d, 60).until(lambda d: d.execute_script("return document.readyState") == "complete")
    d.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "const wait = () => (window.MathJax && MathJax.startup && MathJax.startup.promise)"
        "  ? MathJax.startup.promise.then(() => done(true)) : setTimeout(wait, 100);"
        "wait();")
    WebDriverWait(d, 30).until(lambda d: d.execute_script(
        "return [...document.querySelectorAll('div.ddpm-frames')].every(e => e.classList.contains('ddpm-frames-live'))"
        " && [...document.querySelectorAll('div.ddpm-schedule-explorer')].every(e => e.classList.contains('dse-live'))"))


def _network(d) -> list[tuple[str, int]]:
    out = []
    for entry in d.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg["method"] == "Network.responseReceived":
            r = msg["params"]["response"]
            out.append((r["url"], r["status"]))
    return out


# ---------------------------------------------------------------------- loading
@pytest.mark.parametrize("page", list(WIDGET_PAGES))
def test_widget_page_loads_clean(server, browser, page):
    """No console error, no 404, no ipywidgets manager or embedded widget state: the explorers are ours."""
    _open(browser, f"{server}/{page}")
    time.sleep(1.0)  # let late scripts (MathJax fonts, theme) finish
    errors = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    responses = _network(browser)
    assert errors == [], errors
    assert [u for u, status in responses if status >= 400] == []
    assert not [u for u, _ in responses if "html-manager" in u or "require.js" in u or "favicon.ico" in u]
    n_state = browser.execute_script(
        "return document.querySelectorAll('script[type=\"application/vnd.jupyter.widget-state+json\"]').length")
    assert n_state == 0
    assert browser.execute_script("return document.querySelectorAll('div.ddpm-frames').length") == WIDGET_PAGES[page]


# ---------------------------------------------------------------------- dragging
def _drag(d, slider, to_left: bool) -> None:
    """Press the slider's thumb area and drag it to one end, as a reader's pointer would."""
    from selenium.webdriver.common.action_chains import ActionChains

    d.execute_script("arguments[0].scrollIntoView({block: 'center'})", slider)
    half = slider.size["width"] // 2 - 2
    ActionChains(d).click_and_hold(slider).move_by_offset(-half if to_left else half, 0).release().perform()


@pytest.mark.parametrize("page", list(WIDGET_PAGES))
def test_dragging_each_slider_changes_the_picture(server, browser, page):
    _open(browser, f"{server}/{page}")
    for root in browser.find_elements("css selector", "div.ddpm-frames"):
        sliders = root.find_elements("css selector", ".ddpm-frames-controls input[type=range]")
        assert sliders, "a precomputed explorer without controls"
        picture = root.find_element("css selector", ".ddpm-frames-picture")
        readout = root.find_element("css selector", ".ddpm-frames-readout")
        for slider in sliders:
            label = root.find_element("css selector", f"output[for='{slider.get_attribute('id')}']")
            before = (_pixels_of(browser, picture), readout.get_attribute("innerHTML"), label.text)
            index = int(slider.get_attribute("value"))
            _drag(browser, slider, to_left=index > int(slider.get_attribute("max")) / 2)
            after = (_pixels_of(browser, picture), readout.get_attribute("innerHTML"), label.text)
            assert int(slider.get_attribute("value")) != index, f"{slider.get_attribute('name')} did not move"
            assert after[2] != before[2], "the slider's value label did not follow it"
            assert after[0] != before[0] or after[1] != before[1], f"{slider.get_attribute('name')} changed nothing"
        assert browser.execute_script(
            "return [...arguments[0].querySelectorAll('img')].every(i => i.complete && i.naturalWidth > 0)", picture)


def _pixels_of(d, element) -> bytes:
    """What the reader sees of an element: a screenshot of it (base picture and overlays)."""
    d.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
    return element.screenshot_as_png


def _canvas(d, root) -> str:
    return d.execute_script("return arguments[0].querySelector('canvas').toDataURL()", root)


# ---------------------------------------------------------------------- the JavaScript explorer
def _python_values(kind: str, T: int, b1: float, bT: float, m2: float, t: int) -> tuple[float, float, float]:
    s = NoiseSchedule.cosine(T) if kind == "cosine" else NoiseSchedule.from_name(kind, T, beta_1=b1, beta_T=bT)
    return float(s.alpha_bars[T]), float(s.prior_kl_per_dim(m2)) / LN2, float(s.alpha_bars[t])


def _read(root) -> dict:
    g = root.get_attribute
    return {"kind": g("data-kind"), "T": int(g("data-T")), "b1": float(g("data-beta-1")), "t": int(g("data-timestep")),
            "bT": float(g("data-beta-T")), "abar": float(g("data-alpha-bar-T")), "lt": float(g("data-LT-bits")),
            "abar_t": float(g("data-alpha-bar-timestep")), "m2": float(g("data-mean-square"))}


def _agree(v: dict) -> None:
    abar, lt, abar_t = _python_values(v["kind"], v["T"], v["b1"], v["bT"], v["m2"], v["t"])
    assert math.isclose(v["abar"], abar, rel_tol=1e-12), (v, abar)
    assert math.isclose(v["lt"], lt, rel_tol=1e-12), (v, lt)
    assert math.isclose(v["abar_t"], abar_t, rel_tol=1e-12), (v, abar_t)


def _type(d, root, name: str, value: str) -> None:
    d.execute_script(
        "const e = arguments[0].querySelector(`input[name=${arguments[1]}]`); e.value = arguments[2];"
        "e.dispatchEvent(new Event('input')); e.dispatchEvent(new Event('change'));", root, name, value)


def test_js_explorer_starts_exactly_where_python_does(server, browser):
    """Chapter 1 builds schedule_explorer(kind="linear", T=1000, t=100): β₁ = 1e-4, β_T = 0.02 exactly."""
    _open(browser, f"{server}/{CHAPTER_1}")
    root = browser.find_element("css selector", "div.ddpm-schedule-explorer.dse-live")
    v = _read(root)
    assert (v["kind"], v["T"], v["b1"], v["bT"], v["t"]) == ("linear", 1000, 1e-4, 0.02, 100)
    _agree(v)
    abar, lt, abar_t = _python_values("linear", 1000, 1e-4, 0.02, v["m2"], 100)
    shown = root.find_element("css selector", ".dse-readout").text  # "ᾱT = 0.00004036, LT = …"
    assert float(shown.split("=")[1].split(",")[0]) == float(f"{abar:.4g}")  # 4.036e-5, not 4.134e-5
    numbers = {e.get_attribute("name"): e.get_attribute("value")
               for e in root.find_elements("css selector", "input[type=number]")}
    assert numbers == {"T_value": "1000", "beta_1_value": "0.0001", "beta_T_value": "0.02", "t_value": "100"}
    assert len(root.find_elements("css selector", "canvas")) == 1


def test_js_explorer_agrees_with_python_wherever_it_is_dragged(server, browser):
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    _open(browser, f"{server}/{CHAPTER_1}")
    root = browser.find_element("css selector", "div.ddpm-schedule-explorer.dse-live")
    start, picture = _read(root), _canvas(browser, root)

    # The t slider moves the marker and the samples: the picture changes, the end of the chain does not.
    _drag(browser, root.find_element("css selector", "input[name=t]"), to_left=False)
    moved = _read(root)
    assert moved["t"] > start["t"] and moved["abar"] == start["abar"] and _canvas(browser, root) != picture
    _agree(moved)

    # The log-scale T slider: dragged left, a shorter chain keeps more signal.
    t_slider = root.find_element("css selector", "input[name=T]")
    _drag(browser, t_slider, to_left=True)
    v = _read(root)
    assert v["T"] == 1 and v["t"] == 1  # the left end is T = 1, and t follows T down
    _agree(v)
    # Every integer T is reachable from the slider: arrow keys step T by one.
    _type(browser, root, "T_value", "49")
    t_slider.send_keys(Keys.ARROW_RIGHT)
    v = _read(root)
    assert v["T"] == 50 and 0.60 < v["abar"] < 0.61  # the short-chain pitfall of the text
    _agree(v)
    t_slider.send_keys(Keys.ARROW_LEFT, Keys.ARROW_LEFT)
    assert _read(root)["T"] == 48

    # β_T dragged, then every kind at this setting; cosine greys out the β controls and says why.
    _drag(browser, root.find_element("css selector", "input[name=beta_T]"), to_left=False)
    v = _read(root)
    assert v["bT"] == 0.5
    _agree(v)
    note = root.find_element("css selector", ".dse-note")
    for kind in ("cosine", "quadratic", "sigmoid", "linear"):
        Select(root.find_element("css selector", "select[name=kind]")).select_by_value(kind)
        v = _read(root)
        assert v["kind"] == kind
        _agree(v)
        disabled = root.find_element("css selector", "input[name=beta_1_value]").get_attribute("disabled")
        assert bool(disabled) == (kind == "cosine") and note.is_displayed() == (kind == "cosine")

    # Typed values are used exactly as typed.
    _type(browser, root, "beta_1_value", "0.0003")
    _type(browser, root, "T_value", "737")
    _type(browser, root, "t_value", "500")
    v = _read(root)
    assert (v["b1"], v["T"], v["t"]) == (0.0003, 737, 500)
    _agree(v)


# ---------------------------------------------------------------------- phone width and screenshots
@pytest.mark.parametrize("page", list(WIDGET_PAGES))
def test_explorers_fit_a_phone_screen(server, browser, page):
    """At 390 px nothing of an explorer reaches past the screen's edge or scrolls sideways."""
    _open(browser, f"{server}/{page}", width=390)
    overflow = browser.execute_script("""
        const limit = document.documentElement.clientWidth;
        const bad = [];
        for (const root of document.querySelectorAll('div.ddpm-frames, div.ddpm-schedule-explorer')) {
          for (const e of [root, ...root.querySelectorAll('*')]) {
            const r = e.getBoundingClientRect();
            if (r.width > 0 && (r.right > limit + 0.5 || r.left < -0.5))
              bad.push(`${e.tagName}.${e.className} spans ${r.left.toFixed(0)}..${r.right.toFixed(0)} of ${limit}`);
          }
          if (root.scrollWidth > root.clientWidth + 1) bad.push(`${root.className} scrolls sideways`);
        }
        return bad;""")
    assert overflow == []


@pytest.mark.parametrize("width", [1280, 390])
def test_screenshots_of_widget_pages(server, browser, width):
    """Not a check: pictures of every explorer at both widths, for a person to look at."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    for page in WIDGET_PAGES:
        _open(browser, f"{server}/{page}", width=width)
        roots = browser.find_elements("css selector", "div.ddpm-frames, div.ddpm-schedule-explorer")
        for i, root in enumerate(roots):
            browser.execute_script("arguments[0].scrollIntoView({block: 'start'})", root)
            height = browser.execute_script("return Math.ceil(arguments[0].getBoundingClientRect().height)", root)
            browser.set_window_size(width, max(1000, height + 200))
            browser.execute_script("arguments[0].scrollIntoView({block: 'start'})", root)
            browser.save_screenshot(str(SHOTS / f"{Path(page).stem}-explorer{i}-{width}.png"))
    assert roots
