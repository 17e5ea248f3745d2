"""The compose stack in real containers: images built by scripts/containers, run by compose.

Podman drives it here (Debian's podman with runc, podman-compose); Docker Hub is unreachable, so
scripts/containers first builds Debian stand-ins of the upstream base images. Everything the test
creates (containers, their network and volumes, a data folder) goes at the end; the images stay
(layer-cached for the next run).

Where containers cannot run (not root, no podman), the tests skip saying why; under CI=true a
missing tool that scripts/install provides fails instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.conftest import missing_tool, on_ci, wait_until
from tigertrap.core.redis_server import free_port

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILES = [REPO / "docker-compose.yml", Path(__file__).with_name("compose.test.yml")]
PODMAN_CONF = REPO / "scripts" / "podman-containers.conf"
#: The tiny bundle's classes, as in tests/api (a solid patch of class i's hue is class i).
CLASSES = ["tiger", "leopard", "sambar"]
BUNDLE_NAME = "tiny"
DETECTOR_WEIGHTS = "models/detectors/tiny-md.pt"
#: Seconds after which Redis hands a dead worker's task out again (TIGERTRAP_VISIBILITY_TIMEOUT).
VISIBILITY_TIMEOUT_S = 20
#: The images' user (services/*/Dockerfile): it owns the data folder.
IMAGE_UID = 1000
#: Safety limits, not synchronisation.
BUILD_TIMEOUT_S = 1800
START_TIMEOUT_S = 180
SERVICES = ["redis", "classify", "classify-worker", "download", "detect", "snip", "train",
            "publish-worker"]


def _unavailable(reason: str, *, tool: bool) -> None:
    """Skip saying why (printed: the suite runs with -rs), or fail on CI for a missing tool."""
    print(f"container tests: {reason}", file=sys.stderr)
    if tool:
        missing_tool(f"{reason}; scripts/install (as root) installs it")
    pytest.skip(reason)


def engine_env() -> dict[str, str]:
    """The environment podman and podman-compose run in."""
    env = dict(os.environ)
    if not env.get("CONTAINERS_CONF") and not Path("/etc/containers/containers.conf").exists():
        env["CONTAINERS_CONF"] = str(PODMAN_CONF)
    env["CONTAINER_ENGINE"] = "podman"
    return env


def run(args: list[str], *, env: dict[str, str] | None = None, timeout: float = 600,
        check: bool = True, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, env=env or engine_env(), cwd=cwd, capture_output=True,
                            text=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        pytest.fail(f"{' '.join(args)} failed ({result.returncode}):\n"
                    f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


@pytest.fixture(scope="session")
def podman() -> str:
    """podman, when containers can run here; else a skip (or, on CI, a failure) saying why."""
    if sys.platform != "linux":
        _unavailable("containers run on Linux only", tool=False)
    for tool in ("podman", "podman-compose", "mmdebstrap", "runc"):
        if not shutil.which(tool):
            _unavailable(f"{tool} is not installed", tool=True)
    if os.geteuid() != 0:
        _unavailable("building the base-image stand-ins (mmdebstrap, podman import) needs root",
                     tool=False)
    probe = subprocess.run(["podman", "info"], env=engine_env(), capture_output=True, text=True,
                           check=False)
    if probe.returncode != 0:
        _unavailable(f"podman cannot run here: {probe.stderr.strip()[-300:]}", tool=False)
    return shutil.which("podman") or "podman"


#: The stage images, as scripts/containers tags them.
IMAGE_TAG = "tigertrap/{}:0.1.0"
#: In the order scripts/containers builds them: each image's size on disk (GB, measured with
#: Podman's overlay storage) and how much more its build needs at its peak, while its largest
#: layer is committed. Measured for detect (9.1 GB over its 6.7: about 2.7 times its 3.4 GB
#: layer, as Podman holds the build container's files, the layer's tar in /var/tmp and the
#: stored layer); for the others, 2.7 times their largest layer (docs/benchmarks.md).
IMAGE_DISK_GB = {"detect": (6.7, 9.1), "train": (3.1, 7.5), "publish": (2.5, 6.1),
                 "classify": (1.3, 1.4), "download": (0.4, 0.4), "snip": (0.4, 0.4)}
#: The stand-in base images (one shared root filesystem).
STAND_INS_GB = 0.3
#: The running stack: containers' writable layers and the test's data folder.
STACK_DISK_GB = 1.5


def disk_needed_gb(missing: list[str]) -> float:
    """Free disk the container tests need where the images ``missing`` are still to be built:
    the highest point of the build (images already built, plus the peak of the one building),
    or all of them with the stack running, whichever is more."""
    stored = STAND_INS_GB if missing else 0.0
    peak = 0.0
    for image, (size, transient) in IMAGE_DISK_GB.items():
        if image in missing:
            peak = max(peak, stored + size + transient)
            stored += size
    return max(peak, stored + STACK_DISK_GB)


def check_disk(env: dict[str, str]) -> None:
    """Refuse to start building when the engine's storage cannot hold the images: a build that
    fills the disk fails every other test of the suite with it. Fails on CI, else skips."""
    missing = [image for image in IMAGE_DISK_GB
               if run(["podman", "image", "exists", IMAGE_TAG.format(image)], env=env,
                      check=False).returncode != 0]
    root = run(["podman", "info", "--format", "{{.Store.GraphRoot}}"], env=env).stdout.strip()
    probe = Path(root)
    while not probe.exists():
        probe = probe.parent
    free_gb = shutil.disk_usage(probe).free / 1e9
    needed = disk_needed_gb(missing)
    if free_gb < needed:
        reason = (f"the container images need about {needed:.1f} GB free in {root} "
                  f"(to build: {', '.join(missing) or 'none'}), only {free_gb:.1f} GB is")
        print(f"container tests: {reason}", file=sys.stderr)
        if on_ci():
            pytest.fail(f"{reason}: CI's machine needs more free disk")
        pytest.skip(reason)


@pytest.fixture(scope="session")
def images(podman: str) -> None:
    """Every image, built by scripts/containers (stand-in bases; train without CUDA extras)."""
    check_disk(engine_env())
    started = time.monotonic()
    run([str(REPO / "scripts" / "containers"), "build", "--stand-ins", "--cpu"],
        timeout=BUILD_TIMEOUT_S)
    print(f"container tests: images built in {time.monotonic() - started:.0f}s", file=sys.stderr)


@dataclass
class Stack:
    """A compose project of the test: its name, data folder, API address and environment."""

    project: str
    data: Path
    url: str
    env: dict[str, str]
    logs_dir: Path
    started: list[str] = field(default_factory=list)

    def compose(self, *args: str, timeout: float = 600,
                check: bool = True) -> subprocess.CompletedProcess[str]:
        files = [arg for path in COMPOSE_FILES for arg in ("-f", str(path))]
        return run(["podman-compose", "-p", self.project, *files, *args], env=self.env,
                   timeout=timeout, check=check)

    def container(self, service: str) -> str:
        return f"{self.project}_{service}_1"

    def podman(self, *args: str, check: bool = True,
               timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return run(["podman", *args], env=self.env, check=check, timeout=timeout)

    def healthy(self, service: str) -> bool:
        return self.podman("healthcheck", "run", self.container(service), check=False,
                           timeout=30).returncode == 0

    def logs(self, service: str) -> str:
        result = self.podman("logs", "--tail", "60", self.container(service), check=False)
        return result.stdout + result.stderr

    def client(self, timeout: float = 120) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=timeout)

    def job(self, job_id: str) -> dict:
        with self.client() as client:
            response = client.get(f"/v1/jobs/{job_id}")
        assert response.status_code == 200, response.text
        return response.json()

    def wait_for_job(self, job_id: str, timeout: float) -> dict:
        return wait_until(lambda: (j := self.job(job_id))["status"] in ("succeeded", "failed")
                          and j, timeout, f"job {job_id} to finish")


def chown_tree(path: Path, uid: int = IMAGE_UID) -> None:
    """Hand ``path`` to the images' user (the test runs as root)."""
    for item in [path, *path.rglob("*")]:
        os.chown(item, uid, uid, follow_symlinks=False)


def _prepare_data(data: Path) -> None:
    """The bundle the API serves and the tiny detector, built on the host as tests/api does."""
    data.mkdir(parents=True)
    for code in (
        "from tests.train.bundle_factory import build_tiny_bundle; "
        f"build_tiny_bundle({str(data / 'models' / 'classifiers' / BUNDLE_NAME)!r}, {CLASSES!r})",
        "from tests.detect.tiny_detector import build_tiny_md_checkpoint; from pathlib import "
        f"Path; build_tiny_md_checkpoint(Path({str(data / DETECTOR_WEIGHTS)!r}))",
    ):
        result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                                text=True, check=False, timeout=900)
        assert result.returncode == 0, result.stderr[-3000:]
    chown_tree(data)
    data.chmod(0o2775)


@pytest.fixture(scope="module")
def stack(images: None, tmp_path_factory: pytest.TempPathFactory,
          fixtures_dir: Path) -> Iterator[Stack]:
    """`compose up` of the whole stack on a data folder of the test's, API on a loopback port."""
    base = tmp_path_factory.mktemp("containers")
    base.chmod(0o755)
    data = base / "data"
    _prepare_data(data)
    served = base / "served"
    shutil.copytree(fixtures_dir / "images", served)
    served.chmod(0o755)
    port = free_port()
    project = f"tt{uuid.uuid4().hex[:8]}"
    env = engine_env() | {
        "TIGERTRAP_DATA_DIR": str(data), "TIGERTRAP_API_PORT": str(port),
        "TIGERTRAP_API_BIND": "127.0.0.1", "MODEL": BUNDLE_NAME, "TEST_IMAGES_DIR": str(served),
        "TIGERTRAP_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT_S), "REDIS_PASSWORD": "",
        "TIGERTRAP_API_KEY": "",
    }
    deployed = Stack(project, data, f"http://127.0.0.1:{port}", env, base)
    try:
        deployed.compose("up", "-d", timeout=START_TIMEOUT_S)
        yield deployed
    finally:
        logs = base / "logs"
        logs.mkdir(exist_ok=True)
        for service in [*SERVICES, "images"]:
            (logs / f"{service}.log").write_text(deployed.logs(service))
        deployed.compose("down", "-v", "-t", "5", check=False, timeout=300)
        leftover = deployed.podman("ps", "-a", "--filter", f"name={project}", "--format",
                                   "{{.Names}}", check=False).stdout.split()
        if leftover:
            deployed.podman("rm", "-f", *leftover, check=False)
        deployed.podman("network", "rm", "-f", f"{project}_default", check=False)
        volumes = deployed.podman("volume", "ls", "--format", "{{.Name}}",
                                  check=False).stdout.split()
        mine = [v for v in volumes if v.startswith(f"{project}_")]
        if mine:
            deployed.podman("volume", "rm", "-f", *mine, check=False)


def wait_for_api(stack: Stack) -> dict:
    """/health of the API through the published port, once it answers 200."""
    def answer() -> dict | None:
        try:
            with stack.client(timeout=10) as client:
                response = client.get("/health")
        except httpx.HTTPError:
            return None
        return response.json() if response.status_code == 200 else None

    return wait_until(answer, START_TIMEOUT_S, "the API in its container to answer /health")


__all__ = ["BUNDLE_NAME", "CLASSES", "DETECTOR_WEIGHTS", "IMAGE_UID", "SERVICES",
           "VISIBILITY_TIMEOUT_S", "Stack", "chown_tree", "wait_for_api"]
