"""The exercises' answer boxes in the built book, in headless Chromium, without a kernel.

Selenium types the solution, a listed mistake and an unparsable string into an answer box,
presses Enter, and reads the verdict; the Python checker must give the same verdict on the
same text.  Needs the built book and Chromium: outside CI a missing one skips with the
reason, in CI (CI=true) it fails.  Screenshots of an exercise at 1280 and 390 px go to
_build/screenshots/.
"""

from __future__ import annotations


import pytest

from browser_support import ROOT, chromium, open_page, served_book
from ddpm_lite.book.exercises import all_exercises

pytestmark = pytest.mark.browser

EXERCISES = {ex.key: ex for ex in all_exercises()}
PAGES = {"04-mu-tilde": "notebooks/04_posterior.html", "03-gaussian-kl": "notebooks/03_kl_split.html",
         "01-abar-T": "notebooks/01_forward_process.html", "03-kl-first-line": "notebooks/03_kl_split.html",
         "09-beta-ratio-T": "notebooks/09_paper_claims.html", "04-mean-x-prev": "notebooks/04_posterior.html"}
SHOTS = ROOT / "_build" / "screenshots"


@pytest.fixture(scope="module")
def base():
    with served_book(PAGES.values()) as url:
        yield url


@pytest.fixture(scope="module")
def driver():
    with chromium(1280) as d:
        yield d


def _answer(driver, key: str, text: str, choice: int | None = None) -> tuple[str, str, str]:
    """Type ``text`` (and pick ``choice``) in exercise ``key``; press Enter; (status, message, preview)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    root = driver.find_element(By.ID, f"exercise-{key}")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", root)
    verdict = root.find_element(By.CSS_SELECTOR, ".ddpm-exercise-verdict")
    driver.execute_script("arguments[0].removeAttribute('data-status'); arguments[0].textContent = '';", verdict)
    if choice is not None:
        root.find_elements(By.CSS_SELECTOR, "input[type=radio]")[choice].click()
    boxes = root.find_elements(By.CSS_SELECTOR, "input.ddpm-exercise-input")
    if boxes:
        boxes[0].clear()
        boxes[0].send_keys(text)
        boxes[0].send_keys(Keys.ENTER)  # the keyboard alone is enough
    else:
        root.find_element(By.CSS_SELECTOR, "button.ddpm-exercise-check").click()
    WebDriverWait(driver, 10).until(lambda d: verdict.get_attribute("data-status"))
    preview = root.find_element(By.CSS_SELECTOR, ".ddpm-exercise-preview")
    WebDriverWait(driver, 10).until(lambda d: not preview.text or preview.find_elements(By.TAG_NAME, "mjx-container"))
    return verdict.get_attribute("data-status"), verdict.text, preview.get_attribute("innerHTML")


@pytest.mark.parametrize("key", ["04-mu-tilde", "03-gaussian-kl"])
def test_derive_box_judges_solution_mistake_and_nonsense(base, driver, key):
    ex = EXERCISES[key]
    open_page(driver, f"{base}/{PAGES[key]}")
    status, _, preview = _answer(driver, key, ex.forms[1])
    assert status == "correct" == ex.check(ex.forms[1]).status
    assert "mjx-container" in preview  # the typed expression, typeset
    mistake, hint = ex.mistakes[0]
    status, message, _ = _answer(driver, key, mistake)
    assert status == "mistake" == ex.check(mistake).status
    assert "At " in message and len(message) > 40
    status, _, _ = _answer(driver, key, ex.near[0])
    assert status == "wrong" == ex.check(ex.near[0]).status
    for nonsense in ("2 x_t", "sqrt(x_t", "alpha"):
        status, message, _ = _answer(driver, key, nonsense)
        assert status == "unparsable" == ex.check(nonsense).status and message.strip(), nonsense
    assert "unknown name 'alpha'" in message


def test_compute_and_choice_boxes(base, driver):
    ex = EXERCISES["01-abar-T"]
    open_page(driver, f"{base}/{PAGES['01-abar-T']}")
    assert _answer(driver, ex.key, repr(ex.answer()))[0] == "correct"
    wrong = repr(float(ex.mistakes[1][0]()))
    assert _answer(driver, ex.key, wrong)[0] == "mistake" == ex.check(wrong).status
    assert _answer(driver, ex.key, "four")[0] == "unparsable"

    spot = EXERCISES["03-kl-first-line"]
    open_page(driver, f"{base}/{PAGES[spot.key]}")
    assert _answer(driver, spot.key, "E - C", choice=0)[0] == "correct"
    assert _answer(driver, spot.key, "C + E", choice=0)[0] == "mistake" == spot.check(0, "C + E").status
    assert _answer(driver, spot.key, "E - C", choice=1)[0] == "wrong"

    predict = EXERCISES["09-beta-ratio-T"]
    open_page(driver, f"{base}/{PAGES[predict.key]}")
    from selenium.webdriver.common.by import By

    assert _answer(driver, predict.key, "", choice=predict.answer_index)[0] == "correct"
    details = driver.find_element(By.CSS_SELECTOR, f"#exercise-{predict.key} details")
    assert details.get_attribute("open") is not None  # the answer is revealed after predicting


def test_a_closing_set_box_judges_choice_and_form(base, driver):
    ex = EXERCISES["04-mean-x-prev"]  # chapter 4's closing set: the reference's mean in x_{t-1}
    open_page(driver, f"{base}/{PAGES[ex.key]}")
    for choice, text in ((ex.answer_index, ex.form.forms[0]), (ex.answer_index, ex.form.mistakes[0][0]),
                         (ex.answer_index, ex.form.near[0]), (ex.answer_index + 1, ex.form.solution)):
        status, message, _ = _answer(driver, ex.key, text, choice=choice)
        assert status == ex.check(choice, text).status, (choice, text, status, message)
    assert status == "wrong" and message.strip()


def test_page_loads_checker_once_without_errors_and_fits_a_phone(base):
    from selenium.webdriver.common.by import By

    SHOTS.mkdir(parents=True, exist_ok=True)
    for width in (1280, 390):
        with chromium(width) as d:
            open_page(d, f"{base}/{PAGES['04-mu-tilde']}")
            scripts = d.execute_script("return Array.from(document.scripts).map(s => s.src.split('?')[0])"
                                       ".filter(Boolean)")
            assert sum(s.endswith("/exercises.js") for s in scripts) == 1
            assert sum(s.endswith("/mathjs/math.js") for s in scripts) == 1
            assert not [s for s in scripts if not s.startswith(base)]  # nothing from the network
            d.execute_script("console.error('probe')")  # the log is read for real: the probe shows up
            errors = [e["message"] for e in d.get_log("browser") if e["level"] == "SEVERE"]
            assert errors and all("probe" in e for e in errors), errors
            box = d.find_element(By.ID, "exercise-04-mu-tilde")
            _answer(d, "04-mu-tilde", EXERCISES["04-mu-tilde"].mistakes[0][0])
            assert d.execute_script("return document.documentElement.scrollWidth") <= width
            assert box.size["width"] <= width
            box.screenshot(str(SHOTS / f"exercise-04-mu-tilde@{width}.png"))
