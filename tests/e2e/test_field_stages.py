"""Repeat-detection elimination and the Camtrap DP export as job stages, chained with classify
on one real classify worker: rde (unattended: ACCEPT_ALL) -> classify -> export, each fed by the
stage before it."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from tests.classify.conftest import CLASSES, INPUT_SIZE
from tests.classify.frames import write_frame
from tests.conftest import Workers, wait_for_job
from tests.train.bundle_factory import build_tiny_bundle
from tigertrap.core.jobs import StageRequest, submit_job

TIMEOUT_S = 300
ROCK = [0.05, 0.05, 0.1, 0.1]


def _camera(folder: Path, frames: int) -> Path:
    images = []
    for n in range(frames):
        file = f"cam1/IMG_{n:04d}.jpg"
        boxes = write_frame(folder / file, [("tiger", 20 + 15 * n, 120)], seed=n,
                            exif_time=f"2024:03:01 06:{n:02d}:00")
        images.append({"file": file, "detections": [
            {"category": "1", "conf": 0.9, "bbox": boxes[0]},
            {"category": "1", "conf": 0.4, "bbox": ROCK}]})
    md_file = folder / "md.json"
    md_file.write_text(json.dumps({
        "info": {"format_version": "1.4", "detector": "md_v5a.0.0.pt"},
        "detection_categories": {"1": "animal", "2": "person", "3": "vehicle"},
        "images": images}))
    return md_file


def test_rde_then_classify_then_camtrap_dp_export_as_one_job(workers: Workers,
                                                             data_root: Path):
    folder = data_root / "datasets" / "field"
    _camera(folder, frames=12)
    with open(folder / "deployments.csv", "w", newline="") as handle:
        csv.writer(handle).writerows([("deploymentID", "latitude", "longitude"),
                                      ("cam1", 27.5, 84.4)])
    build_tiny_bundle(data_root / "models" / "classifiers" / "tiny", CLASSES,
                      input_size=INPUT_SIZE)
    workers.start("classify", pool="solo")
    job = submit_job([
        StageRequest(stage="rde", params={"MD_FILE": "datasets/field/md.json",
                                          "MODE": "find-remove", "ACCEPT_ALL": True,
                                          "OCCURRENCE_THRESHOLD": 10}),
        StageRequest(stage="classify", params={"MODEL": "models/classifiers/tiny"}),
        StageRequest(stage="export", params={
            "DEPLOYMENTS": "datasets/field/deployments.csv"}),
    ])
    status = wait_for_job(job, workers, TIMEOUT_S)

    assert status.status == "succeeded", status.error or workers.logs()
    rde, classified, exported = (status.results[s] for s in ("rde", "classify", "export"))
    assert rde["md_file"] == "datasets/field/md_rde.json" and rde["removed_detections"] == 12
    assert classified["md_file"] == "datasets/field/md_classified.json"
    cleaned = json.loads((folder / "md_classified.json").read_text())
    assert all(len(image["detections"]) == 1 for image in cleaned["images"])  # rock gone
    package = data_root / exported["package_dir"]
    assert (package / "datapackage.json").is_file()
    with open(package / "observations.csv", newline="") as handle:
        observations = list(csv.DictReader(handle))
    assert observations and {o["classificationMethod"] for o in observations
                             if o["classificationMethod"]} == {"machine"}
