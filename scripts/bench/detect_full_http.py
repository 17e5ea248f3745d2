"""Benchmark: full-frame classification over HTTP (``mode=full``), the detect worker in queue
mode: latency of the first request and of later ones, with the worker keeping its model
loaded (``KEEP_MODEL=true``, issue 13 item 6) and loading it for every job (``KEEP_MODEL=false``,
the code path before item 6).

Set-up, all on loopback: a real Redis (``start_redis``), ``tigertrap serve`` (uvicorn, one
worker, ``BACKEND=onnx``, the tiny classifier bundle of ``tests/train/bundle_factory.py``,
``DETECTION_MODE=queue``) and, for each ``KEEP_MODEL`` value, a fresh ``tigertrap worker detect``
(prefork, one child, ``DEVICE=cpu``). Detectors are random-weight YOLOv5 checkpoints in
MegaDetector's format (``tests/detect/tiny_detector.py``): ``n`` (YOLOv5n, the tests' tiny
detector) and ``x`` (YOLOv5x, 86 M parameters, close to MDv5a's YOLOv5x6 in size and so in load
time), both run at ``IMAGE_SIZE`` 320 px so that inference stays short on a small CPU and the
load is what the figures show. One client sends ``--requests`` POSTs one after another, each
with one real fixture frame; the first request after the worker starts is reported alone, the
others as median, min and max. The worker's log counts its model loads. Last, the time of one
``load_megadetector`` call per detector (best of 3 in a fresh process, after a warm-up load):
what every request pays without item 6, measured without the HTTP and queue noise.

Run: ``.venv/bin/python scripts/bench/detect_full_http.py [--detectors n x] [--requests 8]``
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(REPO))
from classify_engine import machine  # noqa: E402

from tigertrap.core.redis_server import free_port, start_redis  # noqa: E402

CACHE = Path(tempfile.gettempdir()) / "tigertrap-bench" / "detect-full-http"
FIXTURES = Path(os.environ.get("TIGERTRAP_FIXTURES", REPO.parent / "shared" / "fixtures"))
FRAMES = ("bear", "tiger", "leopard", "civet")
CLASSES = ["tiger", "leopard", "sambar"]
BUNDLE = "tiny"
CFG = {"n": "yolov5n.yaml", "s": "yolov5s.yaml", "x": "yolov5x.yaml"}
IMAGE_SIZE = 320
LOAD_LINE = "loading MegaDetector weights"
START_TIMEOUT_S = 300
REQUEST_TIMEOUT_S = 600
POLL_S = 0.2


def _python(code: str) -> None:
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True,
                   env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "KERAS_BACKEND": "tensorflow"})


def prepare_data(data: Path, detectors: list[str]) -> None:
    """The tiny bundle and each detector's checkpoint (cached across runs) under ``data``."""
    bundle = CACHE / "bundle"
    if not bundle.is_dir():
        _python("from tests.train.bundle_factory import build_tiny_bundle; "
                f"build_tiny_bundle({str(bundle)!r}, {CLASSES!r})")
    # Copies, not links: the data root refuses paths that resolve outside it.
    shutil.copytree(bundle, data / "models" / "classifiers" / BUNDLE)
    (data / "models" / "detectors").mkdir(parents=True)
    for name in detectors:
        weights = CACHE / f"yolov5{name}-md-{IMAGE_SIZE}.pt"
        if not weights.is_file():
            _python("from pathlib import Path; from tests.detect.tiny_detector import "
                    f"build_tiny_md_checkpoint; build_tiny_md_checkpoint(Path({str(weights)!r}), "
                    f"cfg={CFG[name]!r}, image_size={IMAGE_SIZE})")
        shutil.copyfile(weights, data / "models" / "detectors" / weights.name)


class Process:
    """A child in its own process group, its output in a log file."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        with open(log, "wb") as out:
            self.process = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT,
                                            start_new_session=True)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def wait_for(condition: Callable[[], object], what: str, process: Process) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.process.poll() is not None:
            raise SystemExit(f"{what}: the process exited\n{process.log.read_text()[-3000:]}")
        try:
            if condition():
                return
        except httpx.HTTPError:
            pass
        time.sleep(POLL_S)
    raise SystemExit(f"timed out waiting for {what}")


def frames() -> list[tuple[str, bytes]]:
    files = [sorted((FIXTURES / "images" / species).iterdir())[0] for species in FRAMES]
    return [(path.name, path.read_bytes()) for path in files]


def measure(url: str, images: list[tuple[str, bytes]], requests: int) -> list[float]:
    """Seconds of each of ``requests`` sequential ``mode=full`` POSTs of one frame."""
    latencies = []
    with httpx.Client(base_url=url, timeout=REQUEST_TIMEOUT_S) as client:
        for number in range(requests):
            name, body = images[number % len(images)]
            start = time.perf_counter()
            response = client.post("/v1/classify", data={"mode": "full"},
                                   files=[("images", (name, body, "image/jpeg"))])
            latencies.append(time.perf_counter() - start)
            if response.status_code != 200:
                raise SystemExit(f"request {number}: {response.status_code} {response.text}")
    return latencies


def run(work: Path, detector: str, keep_model: bool, requests: int, redis_url: str,
        data: Path) -> tuple[list[float], int]:
    """Latencies and model loads with a fresh API server and detect worker."""
    weights = f"models/detectors/yolov5{detector}-md-{IMAGE_SIZE}.pt"
    env = {key: value for key, value in os.environ.items()
           if key not in ("TIGERTRAP_API_KEY", "MODEL", "PYTEST_CURRENT_TEST")}
    env.update(TIGERTRAP_DATA=str(data), REDIS_URL=redis_url, MODEL=BUNDLE, BACKEND="onnx",
               MD_MODEL=weights, DETECTION_MODE="queue", DETECTION_THRESHOLD="0.05",
               DEVICE="cpu", KEEP_MODEL=str(keep_model).lower(), TF_CPP_MIN_LOG_LEVEL="2")
    url = f"http://127.0.0.1:{free_port()}"
    tag = f"{detector}-{'keep' if keep_model else 'reload'}"
    server = Process([sys.executable, "-m", "tigertrap.core", "serve", "--port",
                      url.rsplit(":", 1)[1], "--log-level", "warning"], env,
                     work / f"server-{tag}.log")
    worker = None
    try:
        wait_for(lambda: httpx.get(f"{url}/v1/models", timeout=5).json()["models"],
                 "the API server", server)
        worker = Process([sys.executable, "-m", "tigertrap.core", "worker", "detect",
                          "--loglevel", "INFO"], env, work / f"worker-{tag}.log")
        wait_for(lambda: httpx.get(f"{url}/health", timeout=10).json()["workers"]["detect"],
                 "the detect worker", worker)
        latencies = measure(url, frames(), requests)
    finally:
        if worker is not None:
            worker.stop()
        server.stop()
    loads = (work / f"worker-{tag}.log").read_text(errors="replace").count(LOAD_LINE)
    return latencies, loads


def load_seconds(data: Path, detector: str, rounds: int = 3) -> float:
    """Best time of ``load_megadetector`` (CPU) for ``detector``'s weights, in a fresh process
    after one warm-up load: what each request pays when the worker does not keep the model."""
    weights = data / "models" / "detectors" / f"yolov5{detector}-md-{IMAGE_SIZE}.pt"
    code = ("import time; from tigertrap.core.megadetector import load_megadetector as load; "
            f"load({str(weights)!r}, {{'force_cpu': True}}); best = min("
            f"(lambda t: (load({str(weights)!r}, {{'force_cpu': True}}), time.perf_counter() - t)"
            f"[1])(time.perf_counter()) for _ in range({rounds})); print(best)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, text=True,
                         capture_output=True).stdout
    return float(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detectors", nargs="+", choices=sorted(CFG), default=["n", "x"])
    parser.add_argument("--requests", type=int, default=8, help="sequential requests per run")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        data = work / "data"
        prepare_data(data, args.detectors)
        redis = start_redis(work / "redis")
        rows = []
        try:
            for detector in args.detectors:
                for keep_model in (False, True):
                    latencies, loads = run(work, detector, keep_model, args.requests,
                                           redis.url, data)
                    rows.append((detector, keep_model, latencies, loads))
        finally:
            redis.stop()
        loading = {detector: load_seconds(data, detector) for detector in args.detectors}
    print(f"mode=full over HTTP, detect worker in queue mode (prefork, 1 child, DEVICE=cpu), "
          f"1 frame per request, {args.requests} sequential requests per run, detector at "
          f"{IMAGE_SIZE} px; {machine()}; load average {os.getloadavg()[0]:.1f}")
    print(f"{'detector':<10} {'KEEP_MODEL':<11} {'first s':>8} {'later p50 s':>12} "
          f"{'later min':>10} {'later max':>10} {'loads':>6} {'one load s':>11}")
    for detector, keep_model, latencies, loads in rows:
        later = latencies[1:]
        print(f"{'YOLOv5' + detector:<10} {str(keep_model).lower():<11} {latencies[0]:>8.2f} "
              f"{statistics.median(later):>12.2f} {min(later):>10.2f} {max(later):>10.2f} "
              f"{loads:>6} {loading[detector]:>11.2f}")


if __name__ == "__main__":
    main()
