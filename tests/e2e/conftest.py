"""Real worker processes for end-to-end tests: `tigertrap worker STAGE` against a real Redis."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tigertrap.core.md_results import Detection, ImageResult, MDResults, write_md_results

POLL_S = 0.1


def wait_until(condition: Callable[[], object], timeout: float, what: str) -> object:
    """Poll ``condition`` until it returns something truthy; fail naming ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(POLL_S)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")


class Workers:
    """Starts and kills worker processes; every one is stopped at the end of the test."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, stage: str, pool: str = "prefork") -> subprocess.Popen[bytes]:
        log = open(self.log_dir / f"worker-{stage}-{len(self.processes)}.log", "wb")  # noqa: SIM115
        process = subprocess.Popen(
            [sys.executable, "-m", "tigertrap.core", "worker", stage, "--loglevel", "INFO",
             "--pool", pool],
            env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.processes.append(process)
        return process

    def kill_hard(self, process: subprocess.Popen[bytes]) -> None:
        """SIGKILL the worker and its pool children, as a crashed container would die."""
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-3000:]
                         for p in sorted(self.log_dir.glob("worker-*.log")))


@pytest.fixture
def workers(redis_url: str, data_root: Path, tmp_path: Path) -> Iterator[Workers]:
    env = {**os.environ, "REDIS_URL": redis_url, "TIGERTRAP_DATA": str(data_root),
           # A task whose worker vanished is handed out again after this many seconds; short,
           # so a new worker restores it when it starts (the stack default is 48 hours).
           "TIGERTRAP_VISIBILITY_TIMEOUT": "1"}
    env.pop("PYTEST_CURRENT_TEST", None)
    pool = Workers(env, tmp_path)
    try:
        yield pool
    finally:
        pool.stop_all()


def make_snip_dataset(data_root: Path, fixtures_dir: Path, images: int) -> Path:
    """A dataset of ``images`` real camera-trap frames, each with two animal detections."""
    source = (fixtures_dir / "md_outputs" / "microsoft_CameraTraps_test_images"
              / "wcs_camera_traps_animals_0245_1477.jpg").read_bytes()
    folder = data_root / "datasets" / "e2e" / "images"
    (folder / "cam1").mkdir(parents=True)
    entries = []
    for index in range(images):
        name = f"cam1/frame_{index:04d}.jpg"
        (folder / name).write_bytes(source)
        entries.append(ImageResult(file=name, detections=[
            Detection(category="1", conf=0.9, bbox=(0.30, 0.40, 0.20, 0.25)),
            Detection(category="1", conf=0.6, bbox=(0.05, 0.10, 0.10, 0.15)),
        ]))
    write_md_results(MDResults(info={"detector": "md_v5a.0.0.pt"}, images=entries),
                     folder / "md.json")
    return folder
