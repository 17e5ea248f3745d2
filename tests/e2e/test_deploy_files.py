"""docker-compose.yml and the Dockerfiles, checked statically (no Docker engine here)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tigertrap.core.cli import task_entry_points
from tigertrap.core.queue import STAGES

REPO = Path(__file__).resolve().parents[2]
DOCKERFILES = sorted(REPO.glob("services/*/Dockerfile"))


def tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if not found:
        pytest.fail(f"{name} is not installed; scripts/install installs it")
    return found


def volumes(service: dict) -> dict[str, str]:
    """Target -> source of a service's volumes, in either of compose's notations."""
    mounts = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
        else:
            source, target = volume.get("source", ""), volume["target"]
        mounts[target] = source
    return mounts


@pytest.fixture(scope="module")
def compose() -> dict:
    result = subprocess.run([tool("docker-compose"), "config"], cwd=REPO, capture_output=True,
                            text=True, check=False)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def test_compose_file_is_valid():
    result = subprocess.run([tool("docker-compose"), "config", "-q"], cwd=REPO,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_every_stage_queue_has_a_worker_service(compose):
    commands = [service.get("command") or [] for service in compose["services"].values()]
    served = {command[2] for command in commands if command[:2] == ["tigertrap", "worker"]}
    assert served == set(STAGES)


def test_redis_persists_and_reports_health(compose):
    redis = compose["services"]["redis"]
    assert "--appendonly" in redis["command"] and "healthcheck" in redis
    assert "/data" in volumes(redis)


def published(port: str | dict) -> tuple[str, int]:
    """(host address, container port) of a port in either of compose's notations."""
    if isinstance(port, dict):
        return port.get("host_ip", ""), int(port["target"])
    parts = port.split(":")
    return (parts[0] if len(parts) == 3 else ""), int(parts[-1].split("/")[0])


def test_api_is_published_on_loopback_port_8000_and_gpu_stages_reserve_a_gpu(compose):
    services = compose["services"]
    assert ("127.0.0.1", 8000) in [published(port) for port in services["classify"]["ports"]]
    assert "ports" not in services["redis"], "Redis stays on the stack's own network"
    for stage in ("detect", "train"):
        devices = services[stage]["deploy"]["resources"]["reservations"]["devices"]
        assert devices[0]["capabilities"] == ["gpu"]


def test_all_stage_services_share_one_data_volume(compose):
    stage_services = [s for name, s in compose["services"].items() if name != "redis"]
    sources = {volumes(s).get("/data") for s in stage_services}
    assert len(sources) == 1 and None not in sources


def test_every_stage_service_reads_its_env_file():
    raw = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    for name, service in raw["services"].items():
        if name == "redis":
            continue
        files = service["env_file"] if isinstance(service["env_file"], list) \
            else [service["env_file"]]
        stage = name.removesuffix("-worker")
        assert f"services/{stage}/{stage}.env" in files and all(
            (REPO / f).is_file() for f in files)


def test_every_command_compose_runs_exists_in_the_cli(compose):
    for name, service in compose["services"].items():
        command = service.get("command") or []
        if command[:1] != ["tigertrap"]:
            continue
        args = [arg for arg in command[1:] if not arg.startswith("-")][:2]
        if args[:1] == ["worker"]:  # `worker --help` alone would not show the stage exists
            assert args[1] in task_entry_points(), f"{name}: no tasks installed for {args[1]}"
        else:
            args = args[:1]
        result = subprocess.run([sys.executable, "-m", "tigertrap.core", *args, "--help"],
                                capture_output=True, text=True, check=False)
        assert result.returncode == 0, f"{name}: {' '.join(command)}\n{result.stderr}"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_dockerfile_passes_hadolint(dockerfile):
    result = subprocess.run([tool("hadolint"), str(dockerfile)], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_each_stage_has_a_dockerfile():
    assert {p.parent.name for p in DOCKERFILES} >= set(STAGES)


def test_publish_runs_only_on_demand_with_the_callers_hub_token():
    raw = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    publish = raw["services"]["publish"]
    assert publish["profiles"] == ["tools"], "`docker compose up` must not start publish"
    assert publish["command"][:2] == ["tigertrap", "publish"]
    # no value: taken from the caller's environment (an empty default, ${HF_TOKEN:-}, is left
    # unexpanded by podman-compose 1.0.3)
    assert "HF_TOKEN" in publish["environment"] and publish["environment"]["HF_TOKEN"] is None
    assert publish["volumes"] == raw["services"]["snip"]["volumes"], "the same data volume"
