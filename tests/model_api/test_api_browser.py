"""The upload page in headless Chromium against real gunicorn: pick an image, see the bars."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from api_testlib import CLASSES, image_bytes

pytestmark = [pytest.mark.slow, pytest.mark.browser]

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


@pytest.fixture
def browser(tmp_path: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.fail("Debian's chromium and chromium-driver are required (make setup-test installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1000,760",
        f"--user-data-dir={tmp_path / 'profile'}",
    ):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(tmp_path / "profile", ignore_errors=True)


def test_upload_shows_label_and_a_bar_per_class(server, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    picture = tmp_path / "xray.png"
    picture.write_bytes(image_bytes(size=(128, 128), seed=3))
    expected = server.post(
        "/predict", data=picture.read_bytes(), headers={"Content-Type": "image/png"}
    ).json()

    browser.get(server.url + "/")
    assert "classifier" in browser.title
    browser.find_element(By.ID, "file").send_keys(str(picture))
    browser.find_element(By.ID, "submit").click()
    WebDriverWait(browser, 30).until(ec.text_to_be_present_in_element((By.ID, "label"), "Prediction"))

    assert browser.find_element(By.ID, "label").text == f"Prediction: {expected['label']}"
    rows = browser.find_elements(By.CSS_SELECTOR, "#bars .row")
    assert [row.get_attribute("data-class") for row in rows] == CLASSES
    for row in rows:
        percent = f"{100 * expected['probabilities'][row.get_attribute('data-class')]:.1f}%"
        assert row.find_element(By.CLASS_NAME, "pct").text == percent
        assert row.find_element(By.CLASS_NAME, "bar").size["width"] > 0
    assert browser.find_element(By.ID, "error").text == ""
    browser.save_screenshot(str(tmp_path / "page.png"))

    # A non-image shows the server's error text, not a broken page.
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not an image")
    browser.find_element(By.ID, "file").send_keys(str(junk))
    browser.find_element(By.ID, "submit").click()
    WebDriverWait(browser, 30).until(ec.text_to_be_present_in_element((By.ID, "error"), "not an image"))
    assert browser.find_elements(By.CSS_SELECTOR, "#bars .row") == []
