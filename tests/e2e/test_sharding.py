"""Sharded stages across real workers: a Celery chord of shards and a merge, on a real Redis.

Each sharded run is compared with an unsharded run (``SHARD_SIZE=0``) over a copy of the same
input: the merged outputs must be what one run writes. The detect runs use the real
``megadetector`` package with the tiny random-weight checkpoint (it finds boxes on three of the
four frames), the snip runs real crops.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import Workers, wait_for_job, worker_env
from tests.detect.conftest import FRAMES, tiny_checkpoint  # noqa: F401 (a fixture)
from tests.download.conftest import (  # noqa: F401 (fixtures)
    image_server,
    served_images,
    served_rows,
)
from tests.e2e.conftest import make_snip_dataset
from tigertrap.core.jobs import StageRequest, submit_job
from tigertrap.core.md_results import read_md_results

TIMEOUT_S = 240
WEIGHTS = "models/detectors/tiny.pt"


def _frames(folder: Path, fixtures_dir: Path, copies: int) -> int:
    folder.mkdir(parents=True)
    for name, file in FRAMES.items():
        for copy in range(copies):
            shutil.copyfile(fixtures_dir / "images" / name / file, folder / f"{name}_{copy}.jpg")
    return len(FRAMES) * copies


def _md_text(md_file: Path) -> str:
    document = json.loads(md_file.read_text())
    document["info"].pop("detection_completion_time")
    return json.dumps(document, sort_keys=True)


def _hashes(folder: Path) -> dict[str, str]:
    return {path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.fixture
def weights(data_root: Path, tiny_checkpoint: Path) -> str:  # noqa: F811
    target = data_root / WEIGHTS
    target.parent.mkdir(parents=True)
    shutil.copyfile(tiny_checkpoint, target)
    return WEIGHTS


def test_sharded_detect_on_two_workers_writes_what_one_unsharded_run_writes(
        workers: Workers, data_root: Path, fixtures_dir: Path, weights: str):
    images = _frames(data_root / "datasets" / "a" / "images", fixtures_dir, copies=3)
    shutil.copytree(data_root / "datasets" / "a", data_root / "datasets" / "b")
    workers.start("detect")
    workers.start("detect")

    sharded = submit_job([StageRequest(stage="detect", params={
        "INPUT_DIR": "datasets/a/images", "MD_MODEL": weights, "SHARD_SIZE": 5})])
    whole = submit_job([StageRequest(stage="detect", params={
        "INPUT_DIR": "datasets/b/images", "MD_MODEL": weights, "SHARD_SIZE": 0})])
    status = wait_for_job(sharded, workers, TIMEOUT_S)
    unsharded = wait_for_job(whole, workers, TIMEOUT_S)

    assert status.status == "succeeded", status.error or workers.logs()
    assert unsharded.status == "succeeded", unsharded.error
    shards = status.stage_progress[0].shards
    assert len(shards) == 3 and [s.total for s in shards] == [5, 5, 2]
    assert all(s.status == "succeeded" and s.worker for s in shards)
    assert (status.processed, status.total) == (images, images)
    assert status.results["detect"]["shards"] == 3
    assert status.results["detect"]["md_file"] == "datasets/a/images/md.json"
    assert not unsharded.stage_progress[0].shards
    folder_a = data_root / "datasets" / "a" / "images"
    assert _md_text(folder_a / "md.json") == _md_text(
        data_root / "datasets" / "b" / "images" / "md.json")
    assert sum(bool(e.detections) for e in read_md_results(folder_a / "md.json").images) == 9
    assert sorted(p.name for p in folder_a.iterdir() if p.name.startswith(".")) == []


def test_a_shard_whose_images_are_all_unreadable_completes_with_every_image_a_failure(
        workers: Workers, data_root: Path, fixtures_dir: Path, weights: str):
    folder = data_root / "datasets" / "broken" / "images"
    _frames(folder, fixtures_dir, copies=1)
    for index in range(2):  # listed first: the first shard holds only these
        (folder / f"0_broken_{index}.jpg").write_bytes(b"<html>not an image</html>")
    workers.start("detect")
    job = submit_job([StageRequest(stage="detect", params={
        "INPUT_DIR": "datasets/broken/images", "MD_MODEL": weights, "SHARD_SIZE": 2})])
    status = wait_for_job(job, workers, TIMEOUT_S)

    assert status.status == "succeeded", status.error or workers.logs()
    entries = {e.file: e for e in read_md_results(folder / "md.json").images}
    assert len(entries) == 6
    assert all(entries[f"0_broken_{i}.jpg"].failure for i in range(2))
    assert status.results["detect"]["failures"] == 2


def test_sharded_snip_writes_the_crops_and_tables_of_one_unsharded_run(
        workers: Workers, data_root: Path, fixtures_dir: Path):
    folder = make_snip_dataset(data_root, fixtures_dir, images=7)
    shutil.copytree(folder.parent, data_root / "datasets" / "e2e-whole")
    workers.start("snip", pool="solo")
    workers.start("snip", pool="solo")
    params = {"MD_FILE": "md.json", "SNIP_SIZE": 64}
    sharded = submit_job([StageRequest(stage="snip", params={
        **params, "INPUT_DIR": "datasets/e2e/images", "SHARD_SIZE": 3})])
    whole = submit_job([StageRequest(stage="snip", params={
        **params, "INPUT_DIR": "datasets/e2e-whole/images", "SHARD_SIZE": 0})])
    status = wait_for_job(sharded, workers, TIMEOUT_S)
    unsharded = wait_for_job(whole, workers, TIMEOUT_S)

    assert status.status == "succeeded", status.error or workers.logs()
    assert unsharded.status == "succeeded", unsharded.error
    assert len(status.stage_progress[0].shards) == 3
    assert status.results["snip"]["crops"] == 14
    ours = _hashes(folder / "snips")
    assert ours == _hashes(data_root / "datasets" / "e2e-whole" / "images" / "snips")
    assert "snips.csv" in ours and len([n for n in ours if n.endswith(".jpg")]) == 14
    assert not [p for p in folder.iterdir() if p.name.startswith(".md.json.shard")]


def test_a_failing_shard_is_retried_then_fails_the_job_with_its_reason(
        redis_url: str, data_root: Path, fixtures_dir: Path, tmp_path: Path):
    folder = make_snip_dataset(data_root, fixtures_dir, images=4)
    (folder / "snips").write_text("a file where the snips folder should be")
    pool = Workers(worker_env(redis_url, data_root, TIGERTRAP_SHARD_RETRIES="1"), tmp_path)
    try:
        pool.start("snip", pool="solo")
        job = submit_job([StageRequest(stage="snip", params={
            "INPUT_DIR": "datasets/e2e/images", "MD_FILE": "md.json", "SHARD_SIZE": 2})])
        status = wait_for_job(job, pool, TIMEOUT_S)
    finally:
        pool.stop_all()

    assert status.status == "failed"
    assert status.error.startswith("snip: shard ") and "after 2 attempts" in status.error
    failed = [s for s in status.stage_progress[0].shards if s.status == "failed"]
    assert any(s.attempts == 2 for s in failed) and all(s.error for s in failed)
    assert "snips.csv" not in status.results.get("snip", {})


def test_sharded_classify_writes_what_one_unsharded_run_writes(
        workers: Workers, data_root: Path):
    from tests.classify.conftest import CLASSES, INPUT_SIZE
    from tests.classify.frames import write_frame, write_md
    from tests.train.bundle_factory import build_tiny_bundle

    build_tiny_bundle(data_root / "models" / "classifiers" / "tiny", CLASSES,
                      input_size=INPUT_SIZE)
    frames = data_root / "datasets" / "c" / "images"
    entries = {}
    for index, name in enumerate(["tiger", "leopard_cat", "sambar", "tiger", "sambar"]):
        boxes = write_frame(frames / f"f{index}.png", [(name, 10 + 20 * index, 30)],
                            seed=index)
        entries[f"f{index}.png"] = [(boxes[0], 0.9)]
    write_md(frames / "md.json", entries)
    shutil.copytree(frames.parent, data_root / "datasets" / "c2")
    workers.start("classify", pool="solo")
    workers.start("classify", pool="solo")
    params = {"MD_FILE": "datasets/c/images/md.json", "MODEL": "models/classifiers/tiny"}
    sharded = submit_job([StageRequest(stage="classify", params={**params, "SHARD_SIZE": 2})])
    whole = submit_job([StageRequest(stage="classify", params={
        **params, "MD_FILE": "datasets/c2/images/md.json", "SHARD_SIZE": 0})])
    status = wait_for_job(sharded, workers, TIMEOUT_S)
    unsharded = wait_for_job(whole, workers, TIMEOUT_S)

    assert status.status == "succeeded", status.error or workers.logs()
    assert unsharded.status == "succeeded", unsharded.error
    assert len(status.stage_progress[0].shards) == 3
    ours, theirs = frames, data_root / "datasets" / "c2" / "images"

    def classified(folder: Path) -> dict:
        document = json.loads((folder / "md_classified.json").read_text())
        # the input is a format-1.1 file without a detection time: writing adds one
        for stamp in ("classification_completion_time", "detection_completion_time"):
            document["info"].pop(stamp)
        document["info"]["classifier_metadata"].pop("fingerprint")  # names the output files
        return document

    assert classified(ours) == classified(theirs)
    for table in ("predictions.csv", "images.csv"):
        assert (ours / table).read_bytes() == (theirs / table).read_bytes(), table
    assert sorted(p.name for p in ours.iterdir() if p.name.startswith(".")) == []
    # the merged output carries the fingerprint of the whole input: a re-run knows it is done
    again = submit_job([StageRequest(stage="classify", params={**params, "SHARD_SIZE": 0})])
    rerun = wait_for_job(again, workers, TIMEOUT_S)
    assert rerun.status == "succeeded" and rerun.results["classify"]["skipped"] is True


def test_sharded_download_fetches_what_one_unsharded_run_fetches(
        workers: Workers, data_root: Path, served_rows, image_server):  # noqa: F811
    from tests.download.conftest import write_metadata

    inputs = data_root / "inputs"
    inputs.mkdir()
    write_metadata(inputs / "lila.csv", served_rows("img"))
    (inputs / "spec.yaml").write_text("classes:\n  tiger:\n    rules:\n"
                                      "      - {common_name: tiger}\n")
    workers.start("download", pool="solo")
    workers.start("download", pool="solo")
    params = {"METADATA": "inputs/lila.csv", "CLASS_SPEC": "inputs/spec.yaml", "RETRIES": 0}
    sharded = submit_job([StageRequest(stage="download", params={
        **params, "DATASET_NAME": "a", "SHARD_SIZE": 4})])
    whole = submit_job([StageRequest(stage="download", params={
        **params, "DATASET_NAME": "b", "SHARD_SIZE": 0})])
    status = wait_for_job(sharded, workers, TIMEOUT_S)
    unsharded = wait_for_job(whole, workers, TIMEOUT_S)

    assert status.status == "succeeded", status.error or workers.logs()
    assert unsharded.status == "succeeded", unsharded.error
    rows = len(served_rows("img"))
    assert len(status.stage_progress[0].shards) == -(-rows // 4)
    ours, theirs = data_root / "datasets" / "a", data_root / "datasets" / "b"
    assert (ours / "manifest.csv").read_bytes() == (theirs / "manifest.csv").read_bytes()
    assert _hashes(ours / "images") == _hashes(theirs / "images")
    summary, whole_summary = status.results["download"]["lila"], unsharded.results[
        "download"]["lila"]
    assert summary["status"] == whole_summary["status"] and summary["complete"] == rows
    assert summary["manifest"] == "datasets/a/manifest.csv"
    assert not [p for p in ours.iterdir() if p.name.startswith(".manifest.csv.shard")]
