"""Retraining as a queued job on a real train worker: the previous bundle's weights, the job's
data, the side-by-side comparison written, and the served bundle left as it was (promotion is
an explicit command, never a job's side effect)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import Workers, wait_for_job
from tests.train.bundle_factory import TINY_BACKBONE, build_tiny_bundle
from tests.train.synthetic import write_image_folders
from tigertrap.core.bundle import load_manifest
from tigertrap.core.class_map import ClassMap
from tigertrap.core.jobs import StageRequest, submit_job

CLASSES = ["tiger", "deer", "boar"]
INPUT_SIZE = 64
TIMEOUT_S = 600


def test_a_retrain_job_starts_from_the_previous_bundle_and_compares_both(
        workers: Workers, data_root: Path):
    write_image_folders(data_root / "merged", CLASSES,
                        {"train": 12, "val": 6, "test": 6, "test2": 3}, size=48, seed=3)
    ClassMap(CLASSES).save(data_root / "merged" / "class_map.yaml")
    served = data_root / "models" / "classifiers" / "served"
    build_tiny_bundle(served, CLASSES, input_size=INPUT_SIZE)
    before = (served / "manifest.json").read_bytes()
    workers.start("train", pool="solo")
    job = submit_job([StageRequest(stage="retrain", params={
        "PREVIOUS_BUNDLE": "models/classifiers/served", "DATA_DIR": "merged",
        "OUTPUT_PATH": "runs/retrain-1", "MODEL": TINY_BACKBONE, "INPUT_SIZE": INPUT_SIZE,
        "HEAD": "terainet", "FROZ_EPOCH": 1, "BUF": 1, "PROG_STAGE_LEN": 1,
        "PROG_TOT_EPOCH": 1, "MAGNITUDES": [0.1], "DROPOUTS": [0.1],
        "CLASS_SAMPLES_DEFAULT": 12, "BATCH_SIZE": 16, "WANDB_MODE": "disabled"})])
    status = wait_for_job(job, workers, TIMEOUT_S)

    assert status.status == "succeeded", status.error or workers.logs()
    result = status.results["retrain"]
    assert result["previous_bundle"] == "models/classifiers/served"
    assert result["bundle_dir"] == "runs/retrain-1/bundle"
    assert load_manifest(data_root / result["bundle_dir"]).input_size == INPUT_SIZE
    report = json.loads((data_root / result["comparison_dir"] / "comparison.json").read_text())
    assert set(report["splits"]) == {"test", "test2"}
    for entry in report["splits"].values():
        for role in ("previous", "new"):
            assert {"accuracy", "macro_f1", "tiger"} <= set(entry[role])
    assert (served / "manifest.json").read_bytes() == before  # nothing promoted
