"""``tigertrap review export``: reviewed crops as a training set, split leak-free by location,
merged with an existing set when asked."""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from pathlib import Path

import pytest
from PIL import Image

from tests.review.conftest import JOB
from tests.train.synthetic import write_image_folders
from tigertrap.classify.review.export import ExportError, export_training_set
from tigertrap.classify.review.store import ReviewStore
from tigertrap.core.class_map import ClassMap

SNIP = 48


def _rows(folder: Path) -> list[dict[str, str]]:
    with (folder / "snips.csv").open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture
def reviewed(job_store: ReviewStore) -> ReviewStore:
    """Verdicts on every detection: four agreed, one conflict, one unsure."""
    ids = [row["id"] for row in job_store.detections(JOB)]
    labels = ["tiger", "leopard", "leopard", "deer", "deer", "unsure"]
    for detection, label in zip(ids, labels, strict=True):
        job_store.add_verdict(detection, label, "asha")
    job_store.add_verdict(ids[2], "deer", "bikram")  # a conflict on the third
    return job_store


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_export_writes_agreed_crops_with_label_and_location_split(
        reviewed: ReviewStore, data_root: Path) -> None:
    summary = export_training_set(reviewed, data_root, [JOB], "sets/reviewed", snip_size=SNIP)
    out = data_root / "sets" / "reviewed"
    rows = _rows(out)
    assert [row["label"] for row in rows] == ["tiger", "leopard", "deer", "deer"]
    assert summary.left_out == {"conflict": 1, "unsure": 1}
    splits_of = defaultdict(set)
    for row in rows:
        assert Image.open(out / row["snip"]).size == (SNIP, SNIP)
        assert row["snip"].startswith(f"snips/{JOB}/cam-")
        splits_of[row["location"]].add(row["split"])
    assert all(len(found) == 1 for found in splits_of.values())
    assert list(ClassMap.load(out / "class_map.yaml").names) == ["tiger", "leopard", "deer"]
    report = json.loads((out / "export_report.json").read_text())
    assert sum(len(v) for v in report["locations"].values()) == len(splits_of)


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_export_merged_keeps_the_existing_rows_and_their_splits(
        reviewed: ReviewStore, data_root: Path) -> None:
    write_image_folders(data_root / "sets" / "base", ["tiger", "leopard", "deer"],
                        {"train": 2, "val": 1, "test": 1}, size=32)
    ClassMap(["tiger", "leopard", "deer"]).save(data_root / "sets" / "base" / "class_map.yaml")
    summary = export_training_set(reviewed, data_root, [JOB], "sets/merged",
                                  merge_with="sets/base", snip_size=SNIP)
    out = data_root / "sets" / "merged"
    rows = _rows(out)
    merged = [row for row in rows if row["source"] == "merged"]
    assert summary.merged == {"test": 3, "train": 6, "val": 3}
    assert all((out / row["snip"]).is_file() for row in rows)
    assert {row["split"] for row in merged} == {"train", "val", "test"}
    assert len(rows) == len(merged) + 4


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_export_without_any_agreed_verdict_says_to_review_first(
        job_store: ReviewStore, data_root: Path) -> None:
    with pytest.raises(ExportError, match="review some first"):
        export_training_set(job_store, data_root, [JOB], "sets/none")


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_camtrap_dp_export_carries_agreed_verdicts_as_human_classifications(
        reviewed: ReviewStore, data_root: Path) -> None:
    from tigertrap.classify.camtrap_dp import CamtrapDPSettings, export_camtrap_dp
    from tigertrap.classify.review.camtrap import write_reviewed_md

    ids = [row["id"] for row in reviewed.detections(JOB)]
    reviewed.add_verdict(ids[4], "not_an_animal", "asha")  # the 5th: no animal after all
    md = write_reviewed_md(reviewed, data_root, JOB)
    deployments = data_root / "deployments.csv"
    deployments.write_text("deploymentID,latitude,longitude\ncam-a,27.5,84.4\n"
                           "cam-b,27.6,84.5\ncam-c,27.7,84.6\n", encoding="utf-8")
    export_camtrap_dp(CamtrapDPSettings(md_file=md, output_dir=data_root / "dp",
                                        deployments=deployments))
    with (data_root / "dp" / "observations.csv").open(newline="", encoding="utf-8") as handle:
        media = [row for row in csv.DictReader(handle) if row["observationLevel"] == "media"]
    methods = [(row["scientificName"], row["classificationMethod"], row["classifiedBy"])
               for row in media]
    assert methods[:2] == [("tiger", "human", "asha"), ("leopard", "human", "asha")]
    assert ("leopard", "machine", "tiny 1") in methods  # the conflict keeps the model's answer
    assert ("deer", "human", "asha") in methods
    kinds = [row["observationType"] for row in media]
    assert kinds == ["animal"] * 4 + ["blank", "animal"]  # not_an_animal: the frame is blank
    assert media[5]["classificationMethod"] == "machine"  # unsure keeps the model's answer
    assert all(row["classificationTimestamp"] for row in media
               if row["classificationMethod"] == "human")
