"""The tiger flag in md_classified.json, and the tiger alert webhook (a loopback server)."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from megadetector.postprocessing.validate_batch_results import (
    ValidateBatchResultsOptions,
    validate_batch_results,
)

from tests.classify.frames import write_frame, write_md
from tests.classify.webhook_server import WebhookServer
from tigertrap.classify.batch import classify_md
from tigertrap.classify.config import ClassifySettings
from tigertrap.classify.tiger_alert import ALERT_EVENT, marker_path, send_tiger_alert
from tigertrap.core.config import load_settings


def frames(folder: Path, names: dict[str, str | None]) -> Path:
    """One frame per ``file: class`` (None: an empty frame) and their MD file."""
    detections = {}
    for file, name in names.items():
        boxes = write_frame(folder / file, [(name, 30, 30)] if name else [])
        detections[file] = [(box, 0.9) for box in boxes]
    return write_md(folder / "md.json", detections)


def classify(md: Path, bundle: Path, **settings: object):
    values: dict[str, object] = {"tiger_threshold": 0.5, "tiger_webhook_backoff": 0.0} | settings
    return classify_md(load_settings(ClassifySettings, md_file=md, model=bundle, **values))


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_each_image_carries_the_tiger_flag_and_passes_megadetectors_validator(
        tmp_path: Path, bundle_dir: Path) -> None:
    md = frames(tmp_path, {"t.png": "tiger", "s.png": "sambar", "e.png": None})
    result = classify(md, bundle_dir)
    images = {e["file"]: e for e in json.loads(result.md_file.read_text())["images"]}
    assert images["t.png"]["tiger"] is True and images["t.png"]["tiger_score"] >= 0.5
    assert images["s.png"]["tiger"] is False
    assert images["e.png"]["tiger"] is False and "tiger_score" not in images["e.png"]
    options = ValidateBatchResultsOptions()
    options.raise_errors = True
    assert validate_batch_results(str(result.md_file), options)["validation_results"][
        "errors"] == []


def test_the_webhook_is_called_once_with_the_flagged_frames(tmp_path: Path,
                                                            bundle_dir: Path) -> None:
    md = frames(tmp_path, {"t.png": "tiger", "s.png": "sambar"})
    with WebhookServer() as hook:
        result = classify(md, bundle_dir, tiger_webhook=hook.url)
    assert result.tiger_alert == "sent"
    (headers, body), = hook.calls
    assert body["event"] == ALERT_EVENT
    assert [frame["file"] for frame in body["frames"]] == ["t.png"]
    fingerprint = json.loads(result.md_file.read_text())["info"]["classifier_metadata"][
        "fingerprint"]
    assert headers["Idempotency-Key"] == fingerprint


def test_a_failing_receiver_is_retried_until_it_answers(tmp_path: Path,
                                                       bundle_dir: Path) -> None:
    md = frames(tmp_path, {"t.png": "tiger"})
    with WebhookServer(statuses=[503, 500]) as hook:
        result = classify(md, bundle_dir, tiger_webhook=hook.url, tiger_webhook_retries=3)
    assert result.tiger_alert == "sent"
    assert len(hook.calls) == 3


def test_a_client_error_is_not_retried(tmp_path: Path, bundle_dir: Path) -> None:
    md = frames(tmp_path, {"t.png": "tiger"})
    with WebhookServer(statuses=[400]) as hook:
        result = classify(md, bundle_dir, tiger_webhook=hook.url, tiger_webhook_retries=3)
    assert result.tiger_alert == "failed: HTTP 400"
    assert len(hook.calls) == 1


def test_a_restarted_job_does_not_call_again(tmp_path: Path, bundle_dir: Path) -> None:
    md = frames(tmp_path, {"t.png": "tiger"})
    with WebhookServer() as hook:
        first = classify(md, bundle_dir, tiger_webhook=hook.url)
        again = classify(md, bundle_dir, tiger_webhook=hook.url)  # the same job, re-run
        direct = send_tiger_alert(first.md_file, hook.url, backoff_s=0.0)
    assert (first.tiger_alert, again.tiger_alert, direct.status) == \
        ("sent", "already sent", "already sent")
    assert again.skipped
    assert len(hook.calls) == 1


def test_an_alert_that_never_arrived_is_sent_when_the_job_runs_again(
        tmp_path: Path, bundle_dir: Path) -> None:
    md = frames(tmp_path, {"t.png": "tiger"})
    down = f"http://127.0.0.1:{unused_port()}/hook"
    first = classify(md, bundle_dir, tiger_webhook=down, tiger_webhook_retries=1)
    assert first.tiger_alert.startswith("failed: ConnectError")
    assert not marker_path(first.md_file, json.loads(first.md_file.read_text())["info"][
        "classifier_metadata"]["fingerprint"]).exists()
    with WebhookServer() as hook:
        again = classify(md, bundle_dir, tiger_webhook=hook.url)
    assert again.skipped and again.tiger_alert == "sent"
    assert len(hook.calls) == 1


def test_no_flagged_frame_means_no_call(tmp_path: Path, bundle_dir: Path) -> None:
    md = frames(tmp_path, {"s.png": "sambar"})
    with WebhookServer() as hook:
        result = classify(md, bundle_dir, tiger_webhook=hook.url)
    assert result.tiger_alert == "no flagged frames"
    assert hook.calls == []


def test_without_a_webhook_nothing_is_sent(tmp_path: Path, bundle_dir: Path) -> None:
    md = frames(tmp_path, {"t.png": "tiger"})
    assert classify(md, bundle_dir).tiger_alert is None
