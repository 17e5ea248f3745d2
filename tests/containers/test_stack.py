"""The whole stack in containers, driven through the API's published port only.

The images are built from the repository's Dockerfiles by scripts/containers and run by
docker-compose.yml (podman-compose here); the checks are the stage tests' own checks.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from tests.api.conftest import class_png
from tests.conftest import wait_until
from tests.containers.conftest import IMAGE_UID, SERVICES, VISIBILITY_TIMEOUT_S, Stack, chown_tree
from tests.containers.conftest import wait_for_api as api_health
from tests.e2e.conftest import make_snip_dataset
from tests.e2e.test_queue import assert_one_complete_snip_output

PNG = "image/png"
JPEG = "image/jpeg"
SNIP_PARAMS = {"INPUT_DIR": "datasets/e2e/images", "MD_FILE": "md.json", "SNIP_SIZE": 64}
#: Safety limits, not synchronisation.
HEALTH_TIMEOUT_S = 120
JOB_TIMEOUT_S = 300
FULL_FRAMES = ("tiger", "leopard_cat", "empty")
#: The stages docker-compose.yml runs a worker container for.
WORKER_STAGES = {"download", "detect", "snip", "train", "classify", "publish"}

pytestmark = pytest.mark.usefixtures("stack")


def test_every_long_running_service_reports_healthy_and_runs_as_the_one_image_user(stack: Stack):
    health = api_health(stack)
    assert health["status"] in ("ok", "degraded"), health
    for service in SERVICES:
        wait_until(lambda s=service: stack.healthy(s), HEALTH_TIMEOUT_S,
                   f"{service} to report healthy:\n{stack.logs(service)}")
    for service in SERVICES[1:]:
        ids = stack.podman("exec", stack.container(service), "id", "-u").stdout.split()
        assert ids == [str(IMAGE_UID)], f"{service} runs as {ids}"
    # every worker container answers the API's health check on its stage's queue
    wait_until(lambda: not set(api_health(stack)["stages_without_workers"]) & WORKER_STAGES,
               HEALTH_TIMEOUT_S, "every stage worker to answer the API's health check")


def test_crops_are_classified_through_the_published_port(stack: Stack):
    with stack.client() as client:
        response = client.post("/v1/classify", data={"mode": "crops"}, files=[
            ("images", ("t.png", class_png("tiger"), PNG)),
            ("images", ("s.png", class_png("sambar"), PNG))])
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == "tiny" and body["mode"] == "crops"
    tiger, sambar = body["images"]
    assert (tiger["file"], tiger["top_species"], tiger["tiger"]) == ("t.png", "tiger", True)
    assert (sambar["file"], sambar["top_species"], sambar["tiger"]) == ("s.png", "sambar", False)


def test_full_frames_are_detected_by_the_detect_worker_container_then_classified(
        stack: Stack, fixtures_dir: Path):
    files = []
    for species in FULL_FRAMES:
        path = sorted((fixtures_dir / "images" / species).iterdir())[0]
        files.append(("images", (path.name, path.read_bytes(), JPEG)))
    with stack.client(timeout=JOB_TIMEOUT_S) as client:
        response = client.post("/v1/classify", data={"mode": "full"}, files=files)
    assert response.status_code == 200, response.text + stack.logs("detect")
    images = response.json()["images"]
    assert [image["file"] for image in images] == [f[1][0] for f in files]
    detections = [d for image in images for d in image["detections"]]
    assert detections, "the tiny detector finds boxes in real frames"
    for detection in detections:
        assert detection["conf"] >= 0.05 and all(0 <= v <= 1 for v in detection["bbox"])
        if detection["category"] != "1":
            assert detection["species"] == [], "only animals are classified"


def _snip_locally(images_dir: Path, out: Path) -> Path:
    """The same snip with the local command, on a copy of the dataset."""
    shutil.copytree(images_dir, out)
    result = subprocess.run(
        [sys.executable, "-m", "tigertrap.core", "snip", "--input-dir", str(out),
         "--snip-size", "64"], capture_output=True, text=True, check=False, timeout=300)
    assert result.returncode == 0, result.stderr
    return out


def test_a_single_stage_container_snips_the_shared_volume_like_the_local_command(
        stack: Stack, fixtures_dir: Path, tmp_path: Path):
    images_dir = make_snip_dataset(stack.data / "solo", fixtures_dir, images=4)
    chown_tree(stack.data / "solo")
    local = _snip_locally(images_dir, tmp_path / "local")
    container_dir = "/data/" + images_dir.relative_to(stack.data).as_posix()
    stack.compose("run", "--rm", "-T", "snip", "tigertrap", "snip", "--input-dir",
                  container_dir, "--snip-size", "64", timeout=300)

    assert_one_complete_snip_output(images_dir, 4)
    in_container = sorted(p.relative_to(images_dir) for p in (images_dir / "snips").rglob("*")
                          if p.is_file())
    assert in_container == sorted(p.relative_to(local) for p in (local / "snips").rglob("*")
                                  if p.is_file())
    for crop in (images_dir / "snips").rglob("*.jpg"):
        assert crop.read_bytes() == (local / crop.relative_to(images_dir)).read_bytes()
    # written by the image user, group-writable folders for the other stages
    snips = images_dir / "snips"
    assert snips.stat().st_uid == IMAGE_UID and snips.stat().st_mode & 0o020


def test_a_worker_container_killed_mid_job_is_redelivered_and_completes_once(
        stack: Stack, fixtures_dir: Path):
    images = 300
    make_snip_dataset(stack.data, fixtures_dir, images=images)
    chown_tree(stack.data / "datasets")
    images_dir = stack.data / SNIP_PARAMS["INPUT_DIR"]
    with stack.client() as client:
        response = client.post("/v1/jobs", json={"stage": "snip", "params": SNIP_PARAMS})
    assert response.status_code in (200, 201, 202), response.text
    job_id = response.json()["id"]
    wait_until(lambda: stack.job(job_id)["processed"] > 0, JOB_TIMEOUT_S, "the first snips")

    stack.podman("kill", "--signal", "KILL", stack.container("snip"))
    killed_at = time.monotonic()
    status = stack.job(job_id)
    assert status["status"] == "running" and status["processed"] < images
    # compose's restart policy brings the worker back; if the engine does not, start it
    if stack.podman("inspect", "--format", "{{.State.Running}}", stack.container("snip"),
                    check=False).stdout.strip() != "true":
        stack.podman("start", stack.container("snip"), check=False)

    final = stack.wait_for_job(job_id, VISIBILITY_TIMEOUT_S + JOB_TIMEOUT_S)
    assert final["status"] == "succeeded", final.get("error") or stack.logs("snip")
    assert time.monotonic() - killed_at < VISIBILITY_TIMEOUT_S + JOB_TIMEOUT_S
    assert_one_complete_snip_output(images_dir, images)
    with Image.open(next((images_dir / "snips").rglob("*.jpg"))) as crop:
        assert crop.size == (64, 64)
