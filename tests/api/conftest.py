"""Real processes for the API tests: uvicorn servers (``tigertrap serve``), a detect worker,
a classifier bundle and a tiny MegaDetector checkpoint on one data root, all on a real Redis.

Everything here is package-scoped: started once for tests/api and stopped after it.
"""

from __future__ import annotations

import colorsys
import io
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.conftest import wait_until
from tigertrap.core.redis_server import RedisServer, free_port

#: The tiny bundle's classes in output order; the synthetic training images of class i have
#: hue i/len(CLASSES) (tests/train/synthetic.py), so a solid patch of that hue is that class.
CLASSES = ["tiger", "leopard", "sambar"]
BUNDLE_NAME = "tiny"
DETECTOR_WEIGHTS = "models/detectors/tiny-md.pt"
#: Redis database of this package, so other packages' flushes do not touch its queues.
REDIS_DB = 7
START_TIMEOUT_S = 120
BUILD_TIMEOUT_S = 600
REPO = Path(__file__).resolve().parents[2]
#: Limits of the test servers (small, so that the limit tests stay small).
MAX_UPLOAD_BYTES = 2_000_000
MAX_IMAGES = 40
API_KEY = "s3cret-key"


def class_png(name: str, size: tuple[int, int] = (120, 90)) -> bytes:
    """A solid PNG in the training colour of class ``name``."""
    hue = CLASSES.index(name) / len(CLASSES)
    colour = tuple(int(v * 255) for v in colorsys.hsv_to_rgb(hue, 0.9, 0.9))
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


class Process:
    """A child process in its own session, logged to a file, stopped with its children."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self.handle = subprocess.Popen(args, env=env, stdout=open(log, "wb"),  # noqa: SIM115
                                       stderr=subprocess.STDOUT, start_new_session=True)

    def alive(self) -> bool:
        return self.handle.poll() is None

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.alive():
            os.killpg(self.handle.pid, signal.SIGTERM)
        try:
            self.handle.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.handle.pid, signal.SIGKILL)
            self.handle.wait()


class ApiServer:
    """``tigertrap serve`` on a free loopback port."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = Process([sys.executable, "-m", "tigertrap.core", "serve", "--host",
                                "127.0.0.1", "--port", str(self.port), "--log-level",
                                "warning"], env, log)
        wait_until(self._ready, START_TIMEOUT_S, f"the API server on {self.url}")

    def _ready(self) -> bool:
        if not self.process.alive():
            pytest.fail(f"the API server exited:\n{self.process.output()}")
        try:
            return httpx.get(f"{self.url}/health", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    def client(self, **kwargs: object) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=120, **kwargs)  # type: ignore[arg-type]


def _build_in_subprocess(code: str) -> None:
    # Importing PyTorch after TensorFlow has trained in the same process crashes it
    # (segmentation fault), so each model is made in a process of its own.
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                            text=True, check=False, timeout=BUILD_TIMEOUT_S)
    if result.returncode != 0:
        pytest.fail(f"building a test model failed:\n{code}\n{result.stderr[-3000:]}")


@pytest.fixture(scope="package")
def api_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The data root the servers and the worker share, with the bundle and detector in it."""
    root = tmp_path_factory.mktemp("api") / "data"
    _build_in_subprocess(
        "from tests.train.bundle_factory import build_tiny_bundle; "
        f"build_tiny_bundle({str(root / 'models' / 'classifiers' / BUNDLE_NAME)!r}, {CLASSES!r})")
    _build_in_subprocess(
        "from tests.detect.tiny_detector import build_tiny_md_checkpoint; from pathlib import "
        f"Path; build_tiny_md_checkpoint(Path({str(root / DETECTOR_WEIGHTS)!r}))")
    return root


@pytest.fixture(scope="package")
def api_redis_url(redis_server: RedisServer) -> str:
    import redis

    url = f"{redis_server.url.rsplit('/', 1)[0]}/{REDIS_DB}"
    redis.Redis.from_url(url).flushdb()
    return url


@pytest.fixture(scope="package")
def base_env(api_data: Path, api_redis_url: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if key not in ("PYTEST_CURRENT_TEST", "TIGERTRAP_API_KEY", "MODEL")}
    env.update(TIGERTRAP_DATA=str(api_data), REDIS_URL=api_redis_url, MODEL=BUNDLE_NAME,
               BACKEND="onnx", MD_MODEL=DETECTOR_WEIGHTS, MAX_UPLOAD_BYTES=str(MAX_UPLOAD_BYTES),
               MAX_IMAGES=str(MAX_IMAGES), TOP_K="3", DETECTION_THRESHOLD="0.05",
               LOWER_CONF="0.05")
    return env


@pytest.fixture(scope="package")
def start_server(base_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
                 ) -> Iterator[Callable[..., ApiServer]]:
    """``start_server(KEY=value, ...)``: a server with these settings on top of the base ones."""
    servers: list[ApiServer] = []
    logs = tmp_path_factory.mktemp("server-logs")

    def start(**settings: str) -> ApiServer:
        server = ApiServer({**base_env, **settings}, logs / f"server-{len(servers)}.log")
        servers.append(server)
        return server

    try:
        yield start
    finally:
        for server in servers:
            server.process.stop()


@pytest.fixture(scope="package")
def api(start_server: Callable[..., ApiServer]) -> ApiServer:
    """The main server: the tiny bundle, detection through the queue, no API key."""
    return start_server()


@pytest.fixture(scope="package")
def api_without_redis(start_server: Callable[..., ApiServer]) -> ApiServer:
    """A server whose REDIS_URL points at a port where nothing listens, and without a model."""
    return start_server(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0", MODEL="")


@pytest.fixture(scope="package")
def detect_worker(base_env: dict[str, str], api: ApiServer,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    """``tigertrap worker detect``, ready once the API's /health lists it on queue detect."""
    log = tmp_path_factory.mktemp("worker") / "worker-detect.log"
    worker = Process([sys.executable, "-m", "tigertrap.core", "worker", "detect",
                      "--loglevel", "INFO"], base_env, log)

    def serving() -> bool:
        if not worker.alive():
            pytest.fail(f"the detect worker exited:\n{worker.output()}")
        return bool(httpx.get(f"{api.url}/health", timeout=10).json()["workers"]["detect"])

    try:
        wait_until(serving, START_TIMEOUT_S, "the detect worker to consume queue detect")
        yield worker
    finally:
        worker.stop()
