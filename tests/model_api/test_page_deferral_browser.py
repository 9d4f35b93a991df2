"""The page in headless Chromium: a deferred case said plainly, the saliency overlay non-diagnostic."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from api_testlib import image_bytes, in_thread
from browser import chromium, screenshot

from registry.manifest import Deferral

pytestmark = [pytest.mark.slow, pytest.mark.browser]


@pytest.fixture
def deferring_server(bundle):
    """The app on loopback serving a version whose threshold (above 1) defers every case."""
    from model_api import create_app

    served = dataclasses.replace(
        bundle, manifest=bundle.manifest.evolve(deferral=Deferral(1.01, 0.98, 0.0, None, 10))
    )
    app = create_app({"TESTING": True, "MODEL_BUNDLE": served, "PREDICTION_LOG": False})
    with in_thread(app) as url:
        yield url


def test_a_deferred_case_and_the_non_diagnostic_overlay(deferring_server, tmp_path: Path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    picture = tmp_path / "xray.png"
    picture.write_bytes(image_bytes(size=(256, 256), seed=5))
    with chromium(tmp_path / "profile") as browser:
        browser.get(deferring_server + "/")
        browser.find_element(By.ID, "file").send_keys(str(picture))
        WebDriverWait(browser, 60).until(ec.text_to_be_present_in_element((By.ID, "explained"), "grad-cam"))
        label = browser.find_element(By.ID, "label")
        assert label.text == "Defer to radiologist"
        note = browser.find_element(By.ID, "deferral")
        assert note.is_displayed() and "A radiologist must read this image" in note.text
        saliency = browser.find_element(By.ID, "saliency-note")
        assert saliency.is_displayed() and "NOT FOR DIAGNOSTIC USE" in saliency.text
        # The probabilities are still shown beside the referral.
        assert len(browser.find_elements(By.CSS_SELECTOR, "#bars .row")) == 3
        for element in (label, note, saliency):
            assert element.rect["y"] + element.rect["height"] <= 800  # on screen without scrolling
        screenshot(browser, "predict-page-deferred-non-diagnostic-saliency")
