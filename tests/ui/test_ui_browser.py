"""The registry browser in headless Chromium against `mlops ui` (real gunicorn): every page, by keyboard."""

from __future__ import annotations

from pathlib import Path

import pytest
from browser import chromium, screenshot
from registry_builder import approver_env, many, story
from ui_server import start_ui, stop_ui

from registry import Registry

pytestmark = [pytest.mark.slow, pytest.mark.browser]


@pytest.fixture(scope="module")
def ui_url(tmp_path_factory: pytest.TempPathFactory):
    """Twelve versions (nine older ones, then the story: v10 in production, v12 the candidate), 10 a page."""
    folder = tmp_path_factory.mktemp("ui")
    uri = f"file://{folder / 'registry'}"
    with pytest.MonkeyPatch.context() as env:  # promote as an approver's OS account (no trust policy)
        for key, value in approver_env().items():
            env.setenv(key, value)
        reg = Registry.open(uri, "xray-classifier", cache_dir=folder / "cache")
        many(reg, folder / "runs", 9)
        story(reg, folder / "runs")
    server = start_ui(uri, folder, page_size=10)
    try:
        yield server.url
    finally:
        stop_ui(server)


@pytest.fixture
def browser(tmp_path: Path):
    with chromium(tmp_path / "profile") as driver:
        yield driver


def readable(browser) -> None:
    """At 1280x800: no sideways scrolling, body text at least 15 px."""
    assert browser.execute_script("return document.documentElement.scrollWidth") <= 1280
    assert float(browser.execute_script("return parseFloat(getComputedStyle(document.body).fontSize)")) >= 15


def tab_to(browser, text: str, limit: int = 40):
    """Press Tab until the focused element's text is TEXT; fail if it never is."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    for _ in range(limit):
        ActionChains(browser).send_keys(Keys.TAB).perform()
        focused = browser.switch_to.active_element
        if focused.text.strip() == text:
            outline = browser.execute_script("return getComputedStyle(arguments[0]).outlineStyle", focused)
            assert outline != "none", f"{text!r} has focus but shows no focus ring"
            return focused
    raise AssertionError(f"{text!r} is not reachable with Tab")


def follow(browser, link) -> None:
    """Press Enter on a focused link and wait until the next page has replaced this one."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    old = browser.find_element(By.TAG_NAME, "html")
    link.send_keys(Keys.ENTER)
    WebDriverWait(browser, 30).until(ec.staleness_of(old))


def test_versions_page_then_a_version_by_keyboard(ui_url, browser):
    from selenium.webdriver.common.by import By

    browser.get(ui_url + "/")
    rows = browser.find_elements(By.CSS_SELECTOR, "#versions tbody tr")
    assert [r.get_attribute("data-version") for r in rows] == [str(v) for v in range(12, 2, -1)]
    first = rows[0].find_elements(By.TAG_NAME, "td")
    assert [c.text for c in first[3:8]] == [
        "failed",
        "failed 2 failed, 0 errors",
        "unsigned",
        "testing",
        "jenkins",
    ]
    assert browser.find_element(By.ID, "page-of").text == "page 1 of 2"
    assert "promote testing:12" in browser.find_element(By.ID, "approve-command").text
    readable(browser)
    screenshot(browser, "ui-versions")

    follow(browser, tab_to(browser, "older »"))
    assert browser.find_element(By.ID, "page-of").text == "page 2 of 2"
    assert len(browser.find_elements(By.CSS_SELECTOR, "#versions tbody tr")) == 2

    browser.get(ui_url + "/")
    follow(browser, tab_to(browser, "testing:12"))
    assert "testing:12" in browser.title
    plot = browser.find_element(By.CSS_SELECTOR, ".plots img")
    assert browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", plot) == 90
    assert (
        browser.find_element(By.ID, "approve-jenkins").get_attribute("href").endswith("/job/xray/13/input/")
    )
    assert "Viral Pneumonia 3 0 2" in browser.find_element(By.ID, "confusion").text
    readable(browser)
    screenshot(browser, "ui-version")


def test_open_the_comparison_from_a_version(ui_url, browser):
    from selenium.webdriver.common.by import By

    browser.get(ui_url + "/versions/12")
    follow(browser, tab_to(browser, "compare with production"))
    assert "testing:12 vs production:10" in browser.title
    assert "same test split" in browser.find_element(By.ID, "split-note").text
    cells = [c.text for c in browser.find_elements(By.CSS_SELECTOR, "#headline tbody tr:first-child td")]
    assert cells == ["0.800", "0.867", "-0.067"]
    covid = browser.find_element(By.CSS_SELECTOR, '#per-class tr[data-class="COVID"]').text
    assert covid.split() == [
        "COVID",
        "0.625",
        "0.800",
        "-0.175",
        "1.000",
        "0.800",
        "+0.200",
        "0.769",
        "0.800",
        "-0.031",
    ]
    for matrix in ("confusion-candidate", "confusion-production"):
        assert browser.find_element(By.ID, matrix).is_displayed()
    assert "recall:Viral Pneumonia 0.400 < 0.600" in browser.find_element(By.ID, "gate-reasons").text
    readable(browser)
    screenshot(browser, "ui-compare")


def test_filter_the_audit_log(ui_url, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import Select, WebDriverWait

    browser.get(ui_url + "/audit")
    before = browser.find_element(By.ID, "count")
    assert "events, newest first" in before.text
    Select(browser.find_element(By.ID, "f-actor")).select_by_visible_text("alice")
    browser.find_element(By.ID, "f-version").send_keys("10", Keys.ENTER)  # Enter submits the filter form
    WebDriverWait(browser, 30).until(ec.staleness_of(before))  # the filtered page replaced it
    assert browser.find_element(By.ID, "count").text.startswith("1 of ")
    rows = browser.find_elements(By.CSS_SELECTOR, "#events tbody tr")
    assert {(r.get_attribute("data-actor"), r.get_attribute("data-action")) for r in rows} == {
        ("alice", "promote"),
    }
    assert Select(browser.find_element(By.ID, "f-actor")).first_selected_option.text == "alice"
    readable(browser)
    screenshot(browser, "ui-audit-filtered")
