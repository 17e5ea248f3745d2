"""POST /v1/jobs refuses every hostile path of every stage with 422 before anything is queued.

The attacks (absolute, ``..``, a symlink out, a symlink in a parent, relative to each key's own
base) come from the stage contracts themselves (tests/confinement.py); the same enumeration
through ``tigertrap jobs submit`` and the tasks' own check is in tests/core/test_contract.py.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from tests.api.conftest import ApiServer
from tests.confinement import OutsideFolder, path_attacks


def test_every_path_key_of_every_stage_is_refused_before_queueing(
        api: ApiServer, api_data: Path, tmp_path: Path):
    outside = OutsideFolder(tmp_path / f"outside-{uuid.uuid4().hex[:8]}")
    (api_data / "datasets").mkdir(parents=True, exist_ok=True)
    attacks = path_attacks(api_data, outside)
    before = outside.snapshot()
    with api.client() as client:
        jobs_before = {job["id"] for job in client.get("/v1/jobs?limit=1000").json()}
        for attack in attacks:
            response = client.post("/v1/jobs", json={"stage": attack.stage,
                                                     "params": attack.params})
            assert response.status_code == 422, (attack.id, response.text)
            detail = response.json()["detail"]
            assert f"{attack.stage}." in detail and "is not allowed" in detail, attack.id
        jobs_after = {job["id"] for job in client.get("/v1/jobs?limit=1000").json()}
        # the server is still fine: a good job goes through
        good = client.post("/v1/jobs", json={"stage": "snip", "params": {
            "MD_FILE": "datasets/nothing-here/md.json"}})
    assert jobs_after == jobs_before, "a refused job was queued"
    assert outside.snapshot() == before
    assert good.status_code == 202, good.text


def test_the_refusal_names_the_key_the_value_and_what_to_do(api: ApiServer, tmp_path: Path):
    with api.client() as client:
        response = client.post("/v1/jobs", json={"stage": "detect", "params": {
            "INPUT_DIR": "datasets/x", "CHECKPOINT_FILE": str(tmp_path / "victim.txt")}})
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert detail.startswith("stages[0] detect.CHECKPOINT_FILE: path ")
    assert "absolute paths are refused" in detail and "relative to the data root" in detail
