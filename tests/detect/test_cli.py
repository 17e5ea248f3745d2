"""``tigertrap detect`` as a real process: killed with SIGKILL part-way, then run again."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tigertrap.core.md_results import read_md_results
from tigertrap.detect.batch import run_detect
from tigertrap.detect.checkpoint import default_checkpoint_path
from tigertrap.detect.config import DetectSettings

#: Small real frames (100x75), copied many times so a run lasts long enough to be killed.
SMALL_FRAMES = [
    "leopard_cat/camtrapR_StationA_PBE_StationA__2009-04-22__20-21-00(1).JPG",
    "civet/camtrapR_StationC_VTA_StationC__2009-04-24__02-57-00(1).JPG",
    "moonrat/camtrapR_StationC_EGY_StationC__2009-04-12__20-26-00(1).JPG",
    "macaque/camtrapR_StationB_MNE_StationB__2009-04-15__07-21-00(1).JPG",
]
COPIES = 12
#: A safety net against a hung child process, not a synchronisation.
PROCESS_TIMEOUT_S = 180


def detect_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "tigertrap.core", "detect", *args]


def child_env(data_root: Path) -> dict[str, str]:
    env = {**os.environ, "TIGERTRAP_DATA": str(data_root)}
    env.pop("PYTEST_CURRENT_TEST", None)
    return env


@pytest.fixture
def long_card(tmp_path: Path, fixtures_dir: Path) -> Path:
    """48 frames in 4 camera folders."""
    folder = tmp_path / "long_card"
    for camera, frame in enumerate(SMALL_FRAMES):
        target = folder / f"cam{camera}"
        target.mkdir(parents=True)
        for copy in range(COPIES):
            shutil.copyfile(fixtures_dir / "images" / frame, target / f"frame_{copy:03d}.jpg")
    return folder


def kill_after_first_checkpoint(command: list[str], env: dict[str, str]) -> str:
    """Start ``command``, SIGKILL it as soon as it reports a checkpoint; return its stderr."""
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    watchdog = threading.Timer(PROCESS_TIMEOUT_S, process.kill)
    watchdog.start()
    seen = []
    try:
        assert process.stderr is not None
        for line in process.stderr:
            seen.append(line)
            if line.startswith("checkpoint:"):
                os.kill(process.pid, signal.SIGKILL)
                break
        process.wait()
    finally:
        watchdog.cancel()
    assert process.returncode == -signal.SIGKILL, "".join(seen[-20:])
    return "".join(seen)


def test_kill_9_part_way_then_rerun_gives_the_uninterrupted_result(long_card, tmp_path,
                                                                   tiny_checkpoint, data_root):
    reference_card = shutil.copytree(long_card, tmp_path / "reference_card")
    reference = read_md_results(run_detect(DetectSettings(
        input_dir=reference_card, md_model=str(tiny_checkpoint))).md_file)
    command = detect_command(str(long_card), "--model", str(tiny_checkpoint),
                             "--checkpoint-freq", "2")

    kill_after_first_checkpoint(command, child_env(data_root))
    saved = default_checkpoint_path(long_card / "md.json").read_text().splitlines()[1:]
    assert 2 <= len(saved) < len(SMALL_FRAMES) * COPIES, "the kill should land mid-run"
    assert not (long_card / "md.json").exists()
    rerun = subprocess.run(command, env=child_env(data_root), capture_output=True, text=True,
                           timeout=PROCESS_TIMEOUT_S, check=False)

    assert rerun.returncode == 0, rerun.stderr[-2000:]
    summary = json.loads(rerun.stdout)  # stdout holds the summary alone
    assert summary["reused"] >= 2 and summary["images"] == len(SMALL_FRAMES) * COPIES
    resumed = read_md_results(long_card / "md.json")
    files = [entry.file for entry in resumed.images]
    assert len(files) == len(set(files)) == len(SMALL_FRAMES) * COPIES
    assert resumed.by_file() == reference.by_file()


def test_missing_weights_offline_exit_with_the_file_and_where_to_put_it(long_card, data_root):
    result = subprocess.run(detect_command(str(long_card), "--model", "MDV5A", "--no-download"),
                            env=child_env(data_root), capture_output=True, text=True,
                            timeout=PROCESS_TIMEOUT_S, check=False)

    assert result.returncode == 2
    assert "md_v5a.0.1.pt" in result.stderr
    assert str(data_root / "models" / "detectors") in result.stderr
    assert "Traceback" not in result.stderr
