"""``tigertrap review``: import, progress and export as commands (JSON out, exit 2 with a
sentence on bad input)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.review.classified import MD_FILE, write_classified_job


def _review(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    env["TIGERTRAP_DATA"] = str(data)
    return subprocess.run([sys.executable, "-m", "tigertrap.core", "review", *args], env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_import_then_progress_then_export_before_any_verdict(data_root: Path,
                                                             fixtures_dir: Path) -> None:
    write_classified_job(data_root, fixtures_dir)
    done = _review(data_root, "import", MD_FILE, "--name", "cli-job")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"job": "cli-job", "detections": 6}
    again = _review(data_root, "import", MD_FILE, "--name", "cli-job")
    assert again.returncode == 2 and "exists already" in again.stderr
    progress = json.loads(_review(data_root, "progress", "cli-job").stdout)
    assert progress["sections"]["tiger"] == {"total": 2, "reviewed": 0}
    export = _review(data_root, "export", "cli-job", "--output", "sets/x")
    assert export.returncode == 2 and "review some first" in export.stderr
