"""The review page at /review in headless Chromium, driven with real clicks and keys against a
real server and database: verdicts by class keys, next/previous, undo, another reviewer's
conflicting verdict shown, and a screenshot checked."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.api.browser import HeadlessChromium, chromium_binary
from tests.api.conftest import ApiServer
from tests.conftest import missing_tool, wait_until
from tests.review.classified import MD_FILE, write_classified_job
from tests.review.conftest import API_KEY, HEADERS, server_env
from tigertrap.classify.review.intake import intake_job
from tigertrap.classify.review.store import ReviewStore, database_url

JOB = "job-page"
STEP_TIMEOUT_S = 30
#: review.js TIGER_COLOUR and review.css #conflict background.
TIGER_RGB = (255, 31, 143)
CONFLICT_RGB = (176, 0, 32)
COLOUR_TOLERANCE = 12
MIN_PIXELS = 300


@pytest.fixture
def page_setup(tmp_path: Path, fixtures_dir: Path) -> Iterator[tuple[ApiServer, list[int]]]:
    """A server on a SQLite store holding the job; bikram has called the 2nd queue item deer."""
    data = tmp_path / "data"
    data.mkdir()
    write_classified_job(data, fixtures_dir)
    store = ReviewStore.open(database_url(data, None))
    intake_job(store, data, name=JOB, md_file=MD_FILE)
    store.close()
    server = ApiServer(server_env(data), tmp_path / "server.log")
    try:
        with server.client(headers=HEADERS) as client:
            items = [i["id"] for i in client.get(f"/v1/reviews/jobs/{JOB}/queue").json()["items"]]
            client.post(f"/v1/reviews/detections/{items[1]}/verdicts",
                        json={"label": "deer", "reviewer": "bikram"}).raise_for_status()
        yield server, items
    finally:
        server.process.stop()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[HeadlessChromium]:
    binary = chromium_binary()
    if binary is None:
        missing_tool("Chromium is not installed (Debian package 'chromium'; scripts/install)")
    with HeadlessChromium(binary, tmp_path / "profile") as chromium:
        yield chromium


def _page_state(browser: HeadlessChromium) -> tuple[str, int | None]:
    state, detection = browser.evaluate(
        "[document.body.dataset.state, document.body.dataset.detection]")
    return state, int(detection) if detection else None


def _wait_for(browser: HeadlessChromium, detection: int) -> None:
    wait_until(lambda: _page_state(browser) == ("shown", detection), STEP_TIMEOUT_S,
               f"the page showing detection {detection}")


def _colour_pixels(png: bytes, rgb: tuple[int, int, int]) -> int:
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.int16)
    return int((np.abs(pixels - np.array(rgb)).max(axis=-1) <= COLOUR_TOLERANCE).sum())


def _current(server: ApiServer, detection: int) -> dict[str, str]:
    with server.client(headers=HEADERS) as client:
        record = client.get(f"/v1/reviews/detections/{detection}").json()
    return {v["reviewer"]: v["label"] for v in record["current"]}


def test_reviewer_works_through_the_queue_with_keys_clicks_and_undo(
        page_setup: tuple[ApiServer, list[int]], browser: HeadlessChromium,
        tmp_path: Path) -> None:
    server, items = page_setup
    browser.open(f"{server.url}/review?job={JOB}")
    browser.click("#api-key")
    browser.type_text(API_KEY)
    browser.click("#reviewer")  # the key field's change event loads the jobs
    browser.type_text("asha")
    wait_until(lambda: browser.evaluate("document.getElementById('job').value") == JOB,
               STEP_TIMEOUT_S, "the job list")
    browser.click("#start")
    _wait_for(browser, items[0])
    keys = browser.evaluate("[...document.querySelectorAll('#verdicts-buttons button')]"
                            ".map(b => b.textContent)")
    assert keys == ["1tiger", "2leopard", "3deer", "nnot an animal", "uunsure"]

    browser.press("1")  # tiger; the page moves on
    _wait_for(browser, items[1])
    browser.press("2")  # leopard, where bikram said deer
    _wait_for(browser, items[2])
    browser.press("k")  # back
    _wait_for(browser, items[1])
    conflict = browser.evaluate("document.getElementById('conflict').textContent")
    assert "asha says leopard" in conflict and "bikram says deer" in conflict
    png = browser.screenshot()
    (tmp_path / "review_page.png").write_bytes(png)  # kept for a look on failure
    assert _colour_pixels(png, TIGER_RGB) >= MIN_PIXELS  # the tiger flag's box and badge
    assert _colour_pixels(png, CONFLICT_RGB) >= MIN_PIXELS  # the conflict banner

    browser.press("z")  # undo asha's leopard
    wait_until(lambda: _current(server, items[1]) == {"bikram": "deer"}, STEP_TIMEOUT_S,
               "the undo")
    _wait_for(browser, items[1])
    assert browser.evaluate("document.getElementById('conflict').hidden") is True
    browser.click("#verdicts-buttons button[data-label='unsure']")
    _wait_for(browser, items[2])
    browser.press("ArrowRight")
    _wait_for(browser, items[3])

    assert _current(server, items[0]) == {"asha": "tiger"}
    assert _current(server, items[1]) == {"bikram": "deer", "asha": "unsure"}
    progress = browser.evaluate("document.getElementById('progress').textContent")
    assert "tiger 2/2" in progress, progress
    with server.client(headers=HEADERS) as client:
        history = client.get(f"/v1/reviews/detections/{items[1]}").json()["history"]
    assert [(v["reviewer"], v["label"]) for v in history] == [
        ("bikram", "deer"), ("asha", "leopard"), ("asha", None), ("asha", "unsure")]
