"""The web page at / in headless Chromium: pick images, upload, boxes and labels drawn, tigers
highlighted (checked in a screenshot's pixels)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.api.browser import HeadlessChromium, chromium_binary
from tests.api.conftest import ApiServer, class_png
from tests.conftest import missing_tool

#: The page's TIGER_COLOUR (static/app.js), #ff1f8f.
TIGER_RGB = (255, 31, 143)
COLOUR_TOLERANCE = 12
#: A tiger card's frame, box and banner cover far more than this many pixels.
MIN_TIGER_PIXELS = 500

SUBMIT_AND_WAIT = """
new Promise((resolve) => {
  document.addEventListener("tigertrap:rendered", (e) => resolve(e.detail), {once: true});
  document.getElementById("mode").value = "crops";
  document.getElementById("submit").click();
})
"""


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[HeadlessChromium]:
    binary = chromium_binary()
    if binary is None:
        missing_tool("Chromium is not installed (Debian package 'chromium'; scripts/install)")
    with HeadlessChromium(binary, tmp_path / "profile") as chromium:
        yield chromium


def _tiger_pixels(png: bytes) -> int:
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.int16)
    close = np.abs(pixels - np.array(TIGER_RGB)).max(axis=-1) <= COLOUR_TOLERANCE
    return int(close.sum())


def _classify_in_page(browser: HeadlessChromium, api: ApiServer, tmp_path: Path,
                      classes: list[str]) -> tuple[str, bytes, list[str]]:
    files = []
    for name in classes:
        path = tmp_path / f"{name}.png"
        path.write_bytes(class_png(name, (240, 180)))
        files.append(path)
    browser.open(f"{api.url}/")
    browser.set_files("#files", files)
    state = browser.evaluate(SUBMIT_AND_WAIT)
    titles = browser.evaluate("[...document.querySelectorAll('.card h2')].map(h => h.textContent)")
    return state, browser.screenshot(), titles


def test_page_draws_the_uploaded_images_and_highlights_the_tiger(
        browser: HeadlessChromium, api: ApiServer, tmp_path: Path):
    state, png, titles = _classify_in_page(browser, api, tmp_path, ["tiger", "sambar"])
    assert state == "done"
    assert titles == ["tiger.png: tiger", "sambar.png: sambar"]
    assert browser.evaluate("document.querySelectorAll('.card.tiger canvas').length") == 1
    assert _tiger_pixels(png) >= MIN_TIGER_PIXELS


def test_page_without_a_tiger_shows_no_tiger_highlight(
        browser: HeadlessChromium, api: ApiServer, tmp_path: Path):
    state, png, titles = _classify_in_page(browser, api, tmp_path, ["leopard", "sambar"])
    assert state == "done" and len(titles) == 2
    assert _tiger_pixels(png) == 0
