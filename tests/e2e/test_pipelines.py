"""The two named pipelines end to end on real workers and a real Redis, each stage fed by the one
before it: building a model (download -> detect -> snip -> train -> publish dry run) from a
LILA-shaped metadata file served on loopback, and processing a season (detect -> classify).
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import Workers, wait_for_job
from tests.detect.conftest import FRAMES, tiny_checkpoint  # noqa: F401 (a fixture)
from tests.download.conftest import lila_row, write_metadata
from tests.download.image_server import ImageServer
from tests.train.bundle_factory import build_tiny_bundle
from tests.train.conftest import INPUT_SIZE, TINY_MODEL
from tigertrap.core.bundle import load_manifest
from tigertrap.core.jobs import pipeline_stages, submit_job
from tigertrap.core.md_results import read_md_results

TIMEOUT_S = 600
WEIGHTS = "models/detectors/tiny.pt"
#: Two classes, each on frames the tiny detector finds boxes on.
CLASS_FRAMES = {"bear": ("bear", "civet"), "cat": ("leopard_cat",)}
SPEC = ("classes:\n  bear:\n    rules:\n      - {common_name: bear}\n"
        "  cat:\n    rules:\n      - {common_name: cat}\n")
TINY_TRAINING = {
    "CLASSES": ["bear", "cat"], "MODEL": TINY_MODEL, "WEIGHTS": "none",
    "INPUT_SIZE": INPUT_SIZE, "FROZ_EPOCH": 1, "BUF": 1, "PROG_STAGE_LEN": 1,
    "PROG_TOT_EPOCH": 1, "MAGNITUDES": [0.1], "DROPOUTS": [0.1],
    "CLASS_SAMPLES_DEFAULT": 8, "BATCH_SIZE": 8, "WANDB_MODE": "disabled", "SAVEFILE": "pipe",
}


@pytest.fixture
def weights(data_root: Path, tiny_checkpoint: Path) -> str:  # noqa: F811
    target = data_root / WEIGHTS
    target.parent.mkdir(parents=True)
    shutil.copyfile(tiny_checkpoint, target)
    return WEIGHTS


def _served(folder: Path, fixtures_dir: Path, copies: int) -> list[tuple[str, str]]:
    folder.mkdir(parents=True)
    served = []
    for class_name, frames in CLASS_FRAMES.items():
        for frame in frames:
            for copy in range(copies):
                name = f"{frame}_{copy}.jpg"
                shutil.copyfile(fixtures_dir / "images" / frame / FRAMES[frame], folder / name)
                served.append((class_name, name))
    return served


def test_build_model_pipeline_downloads_detects_snips_trains_and_publishes(
        workers: Workers, data_root: Path, fixtures_dir: Path, weights: str, tmp_path: Path):
    served = _served(tmp_path / "served", fixtures_dir, copies=6)
    with ImageServer(tmp_path / "served") as server:
        rows = [lila_row(url_gcp=server.url("img", name), url_aws="", url_azure="",
                         common_name=class_name, image_id=f"ds : {name}",
                         sequence_id=f"ds : seq-{name}", location_id=f"ds : loc-{index % 6}")
                for index, (class_name, name) in enumerate(served)]
        inputs = data_root / "inputs"
        inputs.mkdir()
        write_metadata(inputs / "lila.csv", rows)
        (inputs / "spec.yaml").write_text(SPEC)
        for stage in ("download", "detect", "snip", "train", "publish"):
            workers.start(stage, pool="solo")
        steps = pipeline_stages("build-model", {
            "download": {"METADATA": "inputs/lila.csv", "CLASS_SPEC": "inputs/spec.yaml",
                         "DATASET_NAME": "pipe", "MIRRORS": "gcp", "RETRIES": 0,
                         "TRAIN_FRACTION": 0.6, "VAL_FRACTION": 0.4, "TEST_FRACTION": 0.0},
            "detect": {"MD_MODEL": weights},
            "snip": {"SNIP_SIZE": 64},
            "train": TINY_TRAINING,
        })
        job = submit_job(steps, pipeline="build-model")
        status = wait_for_job(job, workers, TIMEOUT_S)

    assert status.status == "succeeded", status.error or workers.logs()
    assert status.pipeline == "build-model"
    assert [p.status for p in status.stage_progress] == ["succeeded"] * 5
    results = status.results
    dataset = data_root / "datasets" / "pipe"
    assert results["download"]["lila"]["manifest"] == "datasets/pipe/manifest.csv"
    # detect ran on the manifest download wrote, snip on detect's MD file, train on snip's
    # by-class folder, publish on train's bundle
    assert results["detect"]["md_file"] == "datasets/pipe/md.json"
    md = read_md_results(dataset / "md.json")
    assert len(md.images) == len(served) and not any(e.failure for e in md.images)
    assert results["snip"]["by_class_dir"] == "datasets/pipe/snips/by_class"
    with open(dataset / "snips" / "snips.csv", newline="") as handle:
        snips = list(csv.DictReader(handle))
    assert snips and {row["class"] for row in snips} == {"bear", "cat"}
    for row in snips:
        assert (dataset / "snips" / "by_class" / row["split"] / row["class"]).is_dir()
    assert results["train"]["bundle_dir"] == "models/classifiers/pipe"
    manifest = load_manifest(data_root / "models" / "classifiers" / "pipe")
    assert manifest.input_size == INPUT_SIZE
    published = data_root / results["publish"]["folder"]
    assert results["publish"]["dry_run"] is True and published.is_dir()
    assert (published / "README.md").is_file()


def test_process_season_pipeline_detects_and_classifies(
        workers: Workers, data_root: Path, fixtures_dir: Path, weights: str):
    images = data_root / "datasets" / "season" / "images"
    images.mkdir(parents=True)
    for name, file in FRAMES.items():
        shutil.copyfile(fixtures_dir / "images" / name / file, images / f"{name}.jpg")
    build_tiny_bundle(data_root / "models" / "classifiers" / "tiny", ["tiger", "leopard", "deer"])
    workers.start("detect", pool="solo")
    workers.start("classify", pool="solo")
    job = submit_job(pipeline_stages("process-season", {
        "detect": {"INPUT_DIR": "datasets/season/images", "MD_MODEL": weights},
        "classify": {"MODEL": "models/classifiers/tiny"}}), pipeline="process-season")
    status = wait_for_job(job, workers, TIMEOUT_S)

    assert status.status == "succeeded", status.error or workers.logs()
    assert status.results["classify"]["md_file"] == "datasets/season/images/md_classified.json"
    classified = json.loads((images / "md_classified.json").read_text())
    assert classified["classification_categories"] == {"0": "tiger", "1": "leopard",
                                                       "2": "deer"}
    found = [d for e in classified["images"] for d in e["detections"] or []
             if d.get("classifications")]
    assert found, "the detections the detector found were classified"
    assert (images / "predictions.csv").is_file() and (images / "images.csv").is_file()
