"""The tiger alert: one webhook call per classified batch with the frames the tiger rule flagged.

After classify has written ``md_classified.json`` (whose image entries carry ``tiger`` and
``tiger_score``), :func:`send_tiger_alert` POSTs, when ``TIGER_WEBHOOK`` is set and at least one
frame is flagged, one JSON document::

    {"event": "tigertrap.tiger_frames", "md_file": ..., "classifier": ...,
     "fingerprint": ..., "count": 2, "frames": [{"file": ..., "tiger_score": 0.97}, ...]}

with the header ``Idempotency-Key: <fingerprint>`` (the fingerprint of the batch's inputs and
settings, recorded in the MD file). Connection errors, timeouts, 429 and 5xx are retried
(``TIGER_WEBHOOK_RETRIES`` more times, the wait doubling from ``TIGER_WEBHOOK_BACKOFF`` seconds);
another 4xx is not. After a 2xx a marker file, ``.tiger_alert_<fingerprint>.json`` beside the
MD file, is written atomically: a re-run of the same batch (a worker restarted, a job retried)
finds it and does not call again. A crash between the receiver's 2xx and the marker can still
repeat the call once; the idempotency key lets the receiver drop it.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tigertrap.core.paths import atomic_write_text

__all__ = ["ALERT_EVENT", "AlertOutcome", "flagged_frames", "marker_path", "send_tiger_alert"]

log = logging.getLogger(__name__)

ALERT_EVENT = "tigertrap.tiger_frames"
RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class AlertOutcome:
    """What :func:`send_tiger_alert` did: ``status`` is one of ``sent``, ``already sent``,
    ``no flagged frames``, ``failed: <reason>``."""

    status: str
    frames: int = 0
    attempts: int = 0


def flagged_frames(md_document: dict[str, Any]) -> list[dict[str, Any]]:
    """``[{"file", "tiger_score"}]`` of the image entries with ``tiger: true``."""
    return [{"file": entry["file"], "tiger_score": entry.get("tiger_score")}
            for entry in md_document.get("images", []) if entry.get("tiger") is True]


def marker_path(md_file: Path, fingerprint: str) -> Path:
    """The file that records a delivered alert for this batch."""
    return md_file.parent / f".tiger_alert_{fingerprint[:32]}.json"


def _post(client: httpx.Client, url: str, payload: dict[str, Any], key: str) -> httpx.Response:
    return client.post(url, json=payload, headers={"Idempotency-Key": key})


def send_tiger_alert(md_file: Path, url: str, *, retries: int = 3, backoff_s: float = 1.0,
                     timeout_s: float = 10.0,
                     sleep: Callable[[float], None] = time.sleep) -> AlertOutcome:
    """Call ``url`` once for the flagged frames of the classified ``md_file`` (see the module
    docstring). Never raises for the receiver's failures: they come back as the outcome (the
    classification itself is complete and stays so)."""
    document = json.loads(md_file.read_text(encoding="utf-8"))
    info = document.get("info", {})
    fingerprint = str(info.get("classifier_metadata", {}).get("fingerprint") or "")
    if not fingerprint:
        return AlertOutcome("failed: the MD file has no classify fingerprint")
    frames = flagged_frames(document)
    if not frames:
        return AlertOutcome("no flagged frames")
    marker = marker_path(md_file, fingerprint)
    if marker.is_file():
        return AlertOutcome("already sent", len(frames))
    payload = {"event": ALERT_EVENT, "md_file": str(md_file), "fingerprint": fingerprint,
               "classifier": info.get("classifier"), "count": len(frames), "frames": frames}
    reason, wait = "", backoff_s
    with httpx.Client(timeout=timeout_s) as client:
        for attempt in range(1, retries + 2):
            try:
                response = _post(client, url, payload, fingerprint)
            except httpx.HTTPError as error:
                reason = f"{type(error).__name__}: {error}"
            else:
                if response.is_success:
                    atomic_write_text(marker, json.dumps(
                        {"url": url, "status": response.status_code, "frames": len(frames),
                         "attempts": attempt}) + "\n")
                    log.info("tiger alert: %d frame(s) sent to %s", len(frames), url)
                    return AlertOutcome("sent", len(frames), attempt)
                reason = f"HTTP {response.status_code}"
                if response.status_code not in RETRY_STATUS:
                    return _failed(reason, len(frames), attempt, url)
            if attempt <= retries:
                log.warning("tiger alert to %s: %s; retrying in %.1f s", url, reason, wait)
                sleep(wait)
                wait *= 2
    return _failed(reason, len(frames), retries + 1, url)


def _failed(reason: str, frames: int, attempts: int, url: str) -> AlertOutcome:
    log.error("tiger alert to %s failed after %d attempt(s): %s", url, attempts, reason)
    return AlertOutcome(f"failed: {reason}", frames, attempts)
