"""Headless Chromium (Debian's chromium + chromium-driver) through Selenium, and screenshots as artifacts.

Screenshots go to `test-artifacts/screenshots/` at the repository root (git-ignored), named by the
test that takes them, so CI can archive them and a person can look at what the pages show.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
WIDTH, HEIGHT = 1280, 800  # the size the pages must read well at


@contextmanager
def chromium(profile: Path) -> Iterator[object]:
    """A headless Chromium WebDriver with a fresh profile, a 1280x800 viewport, always quit."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.fail("Debian's chromium and chromium-driver are required (make setup-test installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--hide-scrollbars", "--force-device-scale-factor=1", f"--user-data-dir={profile}",
    ):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        # --window-size sets the outer window; the viewport is what a person reads.
        driver.set_window_size(WIDTH, HEIGHT)
        inner = driver.execute_script("return [window.innerWidth, window.innerHeight]")
        driver.set_window_size(WIDTH + (WIDTH - inner[0]), HEIGHT + (HEIGHT - inner[1]))
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def screenshot(driver: object, name: str) -> Path:
    """Save the viewport as test-artifacts/screenshots/NAME.png and return the path."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    assert driver.save_screenshot(str(path)), f"Chromium did not write {path}"
    return path


def drop_file(driver: object, target_id: str, path: Path, mime: str) -> None:
    """Drop a file on an element as a person dragging it from the desktop would (a DataTransfer)."""
    import base64

    driver.execute_script(
        """
        const [id, name, mime, b64] = arguments;
        const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
        const transfer = new DataTransfer();
        transfer.items.add(new File([bytes], name, { type: mime }));
        const target = document.getElementById(id);
        for (const type of ["dragenter", "dragover", "drop"]) {
          const init = { bubbles: true, cancelable: true, dataTransfer: transfer };
          target.dispatchEvent(new DragEvent(type, init));
        }
        """,
        target_id,
        path.name,
        mime,
        base64.b64encode(path.read_bytes()).decode(),
    )
