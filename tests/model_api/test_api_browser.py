"""The prediction page in headless Chromium against real gunicorn: pick or drop, bars, overlay, DICOM."""

from __future__ import annotations

from pathlib import Path

import pytest
from api_testlib import CLASSES, image_bytes
from browser import chromium, drop_file, screenshot
from dicom_files import JPEG_LOSSLESS, WINDOWED, dicom_path

pytestmark = [pytest.mark.slow, pytest.mark.browser]

OVERLAY_ALPHA = """
const canvas = document.getElementById("overlay");
if (!canvas.width) return 0;
const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
let lit = 0;
for (let i = 3; i < data.length; i += 4) if (data[i] > 0) lit++;
return lit;
"""


@pytest.fixture
def browser(tmp_path: Path):
    with chromium(tmp_path / "profile") as driver:
        yield driver


def wait_for(browser, element_id: str, text: str, timeout: float = 60) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, timeout).until(ec.text_to_be_present_in_element((By.ID, element_id), text))


def assert_fits_the_viewport(browser) -> None:
    """Readable at 1280x800: no sideways scrolling; the image and the answer side by side, on screen."""
    from selenium.webdriver.common.by import By

    assert browser.execute_script("return document.documentElement.scrollWidth") <= 1280
    for element_id in ("label", "bars", "latency"):
        rect = browser.find_element(By.ID, element_id).rect
        assert rect["y"] + rect["height"] <= 800, element_id
    assert float(browser.execute_script("return parseFloat(getComputedStyle(document.body).fontSize)")) >= 15


def test_pick_an_image_see_bars_latency_and_the_saliency_overlay(server, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    picture = tmp_path / "xray.png"
    picture.write_bytes(image_bytes(size=(256, 256), seed=3))
    expected = server.post(
        "/predict", data=picture.read_bytes(), headers={"Content-Type": "image/png"}
    ).json()

    browser.get(server.url + "/")
    assert "classifier" in browser.title
    browser.find_element(By.ID, "file").send_keys(str(picture))  # choosing a file classifies it
    wait_for(browser, "explained", "grad-cam")

    assert browser.find_element(By.ID, "label").text == f"Prediction: {expected['label']}"
    rows = browser.find_elements(By.CSS_SELECTOR, "#bars .row")
    assert [row.get_attribute("data-class") for row in rows] == CLASSES
    for row in rows:
        percent = f"{100 * expected['probabilities'][row.get_attribute('data-class')]:.1f}%"
        assert row.find_element(By.CLASS_NAME, "pct").text == percent
        assert row.find_element(By.CLASS_NAME, "bar").size["width"] > 0
    latency = browser.find_element(By.ID, "latency").text
    assert f"v{expected['model']['version']}" in latency and "ms" in latency
    assert browser.find_element(By.ID, "error").text == ""
    preview = browser.find_element(By.ID, "preview")
    assert browser.execute_script("return arguments[0].naturalWidth", preview) == 256
    overlay = browser.find_element(By.ID, "overlay")
    assert overlay.is_displayed() and browser.execute_script(OVERLAY_ALPHA) > 0
    assert overlay.rect == preview.rect  # the heatmap lies exactly over the picture
    assert_fits_the_viewport(browser)
    screenshot(browser, "predict-page-png-with-saliency")

    # The overlay toggles from the keyboard.
    toggle = browser.find_element(By.ID, "show-overlay")
    toggle.send_keys(Keys.SPACE)
    assert not toggle.is_selected() and not overlay.is_displayed()
    toggle.send_keys(Keys.SPACE)
    assert overlay.is_displayed()

    # A non-image shows the server's error text, not a broken page.
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not an image")
    browser.find_element(By.ID, "file").send_keys(str(junk))
    wait_for(browser, "error", "not an image")
    assert browser.find_elements(By.CSS_SELECTOR, "#bars .row") == []
    assert not overlay.is_displayed()


def test_drop_a_dicom_file_and_see_the_server_rendering_with_its_overlay(server, browser):
    from selenium.webdriver.common.by import By

    expected = server.post(
        "/predict", data=dicom_path(WINDOWED).read_bytes(), headers={"Content-Type": "application/dicom"}
    ).json()
    browser.get(server.url + "/")
    drop_file(browser, "drop", dicom_path(WINDOWED), "application/dicom")
    wait_for(browser, "explained", "grad-cam")

    assert browser.find_element(By.ID, "label").text == f"Prediction: {expected['label']}"
    assert "DICOM rendered by the server" in browser.find_element(By.ID, "caption").text
    preview = browser.find_element(By.ID, "preview")
    assert preview.get_attribute("src").startswith("data:image/png;base64,")
    assert browser.execute_script("return arguments[0].naturalWidth", preview) == 64
    assert browser.execute_script(OVERLAY_ALPHA) > 0
    assert_fits_the_viewport(browser)
    screenshot(browser, "predict-page-dicom-with-saliency")

    drop_file(browser, "drop", dicom_path(JPEG_LOSSLESS), "application/dicom")
    wait_for(browser, "error", "JPEG Lossless")
    assert "cannot decode" in browser.find_element(By.ID, "error").text
    screenshot(browser, "predict-page-dicom-unsupported-syntax")


def test_the_page_is_usable_from_the_keyboard(server, browser, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    browser.get(server.url + "/")
    ActionChains(browser).send_keys(Keys.TAB).perform()
    assert browser.switch_to.active_element.get_attribute("id") == "file"
    # the focused (visually hidden) file input shows its focus on the drop zone around it
    outline = browser.execute_script("return getComputedStyle(document.getElementById('drop')).outlineStyle")
    assert outline != "none"
    screenshot(browser, "predict-page-keyboard-focus")
    ActionChains(browser).send_keys(Keys.TAB).perform()
    assert browser.switch_to.active_element.get_attribute("id") == "submit"
    ActionChains(browser).send_keys(Keys.ENTER).perform()
    wait_for(browser, "error", "Choose an image first.")

    picture = tmp_path / "xray.png"
    picture.write_bytes(image_bytes(size=(120, 120), seed=9))
    browser.find_element(By.ID, "file").send_keys(str(picture))
    wait_for(browser, "explained", "grad-cam")
    browser.find_element(By.ID, "submit").send_keys(Keys.ENTER)  # Enter on the button classifies again
    wait_for(browser, "explained", "grad-cam")
    assert browser.find_element(By.ID, "label").text.startswith("Prediction: ")
