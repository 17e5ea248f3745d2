"""Request folders of full-frame detection that a dead API process left behind."""

from __future__ import annotations

import os
import time
from pathlib import Path

from tigertrap.classify.api.config import ApiSettings
from tigertrap.classify.api.detection import QueueDetector

TIMEOUT_S = 60.0


def _folder(root: Path, name: str, age_s: float) -> Path:
    folder = root / "jobs" / name
    (folder / "uploads").mkdir(parents=True)
    (folder / "uploads" / "frame.jpg").write_bytes(b"jpeg")
    stamp = time.time() - age_s
    os.utime(folder, (stamp, stamp))
    return folder


def test_start_up_removes_only_folders_no_request_can_still_wait_for(tmp_path: Path) -> None:
    stale = _folder(tmp_path, "stale", age_s=3 * TIMEOUT_S)
    recent = _folder(tmp_path, "recent", age_s=TIMEOUT_S / 2)
    QueueDetector(ApiSettings(tigertrap_data=tmp_path, detect_timeout_s=TIMEOUT_S))
    assert not stale.exists()
    assert (recent / "uploads" / "frame.jpg").is_file()


def test_keep_uploads_leaves_every_folder(tmp_path: Path) -> None:
    stale = _folder(tmp_path, "stale", age_s=3 * TIMEOUT_S)
    QueueDetector(ApiSettings(tigertrap_data=tmp_path, detect_timeout_s=TIMEOUT_S,
                              keep_uploads=True))
    assert stale.is_dir()
