"""Camtrap DP 1.0 export of a classified MD file: validated with frictionless, read back."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.classify.frames import write_frame, write_md
from tigertrap.classify.batch import classify_md
from tigertrap.classify.camtrap_dp import (
    PROFILE_URL,
    TIGER_TAG,
    CamtrapDPError,
    CamtrapDPSettings,
    export_camtrap_dp,
    open_package,
    validate_package,
)
from tigertrap.classify.config import ClassifySettings
from tigertrap.core.config import load_settings
from tigertrap.core.md_results import MDResultsError

TIMEOUT_S = 120
#: cam1: a tiger then a sambar 5 s later (one event), a blank frame an hour later; cam2: one.
FRAMES = {"cam1/a.jpg": ("tiger", "2024:03:01 06:00:00"),
          "cam1/b.jpg": ("sambar", "2024:03:01 06:00:05"),
          "cam1/c.jpg": (None, "2024:03:01 07:00:00"),
          "cam2/d.jpg": ("leopard_cat", "2024:03:02 22:10:00")}


def write_deployments(path: Path, rows: list[tuple[str, float, float]],
                      header: tuple[str, ...] = ("deploymentID", "latitude", "longitude")
                      ) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def classified(tmp_path_factory: pytest.TempPathFactory, bundle_dir: Path) -> Path:
    """A classified MD file (classify's own output) of FRAMES, with deployments.csv beside."""
    root = tmp_path_factory.mktemp("camtrap")
    detections = {}
    for file, (name, moment) in FRAMES.items():
        boxes = write_frame(root / file, [(name, 30, 30)] if name else [], exif_time=moment)
        detections[file] = [(box, 0.9) for box in boxes]
    md = write_md(root / "md.json", detections)
    classify_md(load_settings(ClassifySettings, md_file=md, model=bundle_dir,
                              tiger_threshold=0.5))
    write_deployments(root / "deployments.csv", [("cam1", 27.5, 84.4), ("cam2", 27.6, 84.5)])
    return root / "md_classified.json"


def export(md: Path, out: Path, **changes: object):
    values: dict[str, object] = {"md_file": md, "output_dir": out,
                                 "deployments": md.parent / "deployments.csv"} | changes
    return export_camtrap_dp(CamtrapDPSettings(**values))


def rows(package: Path, table: str) -> list[dict[str, str]]:
    with open(package / f"{table}.csv", newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_the_package_validates_against_camtrap_dp_1_0(classified: Path, tmp_path: Path) -> None:
    written = export(classified, tmp_path / "dp")
    assert validate_package(written.package_dir) == []
    descriptor = json.loads((written.package_dir / "datapackage.json").read_text())
    assert descriptor["profile"] == PROFILE_URL
    assert [r["name"] for r in descriptor["resources"]] == ["deployments", "media",
                                                           "observations"]
    assert (written.deployments, written.media, written.events) == (2, 4, 3)


def test_the_package_reads_back_with_frictionless(classified: Path, tmp_path: Path) -> None:
    written = export(classified, tmp_path / "dp")
    package = open_package(written.package_dir)
    media = package.get_resource("media").read_rows()
    assert {row["fileName"] for row in media} == {"a.jpg", "b.jpg", "c.jpg", "d.jpg"}
    assert all(row["timestamp"].tzinfo is not None for row in media)
    observations = package.get_resource("observations").read_rows()
    assert {row["observationLevel"] for row in observations} == {"media", "event"}


def test_media_observations_carry_the_machine_classification_and_box(
        classified: Path, tmp_path: Path) -> None:
    written = export(classified, tmp_path / "dp")
    media = {row["mediaID"]: row["fileName"] for row in rows(written.package_dir, "media")}
    by_file = {media[row["mediaID"]]: row for row in rows(written.package_dir, "observations")
               if row["observationLevel"] == "media"}
    tiger = by_file["a.jpg"]
    assert (tiger["observationType"], tiger["scientificName"]) == ("animal", "tiger")
    assert tiger["classificationMethod"] == "machine"
    assert tiger["classifiedBy"].startswith("tiny")
    assert 0.5 <= float(tiger["classificationProbability"]) <= 1.0
    assert [float(tiger[k]) for k in ("bboxX", "bboxY", "bboxWidth", "bboxHeight")] == \
        pytest.approx([30 / 320, 30 / 240, 64 / 320, 64 / 240], abs=1e-4)
    assert by_file["c.jpg"]["observationType"] == "blank"


def test_a_sequence_becomes_one_event_with_both_species(classified: Path,
                                                        tmp_path: Path) -> None:
    written = export(classified, tmp_path / "dp")
    media = {row["mediaID"]: row["fileName"] for row in rows(written.package_dir, "media")}
    observations = rows(written.package_dir, "observations")
    event_of = {media[r["mediaID"]]: r["eventID"] for r in observations if r["mediaID"]}
    assert event_of["a.jpg"] == event_of["b.jpg"] != event_of["c.jpg"]
    events = [r for r in observations if r["observationLevel"] == "event"
              and r["eventID"] == event_of["a.jpg"]]
    assert {r["scientificName"] for r in events} == {"tiger", "sambar"}
    assert all(r["eventStart"] == "2024-03-01T06:00:00Z" for r in events)
    assert all(r["eventEnd"] == "2024-03-01T06:00:05Z" for r in events)


def test_tiger_flagged_frames_are_tagged_in_observations(classified: Path,
                                                         tmp_path: Path) -> None:
    written = export(classified, tmp_path / "dp")
    media = {row["mediaID"]: row["fileName"] for row in rows(written.package_dir, "media")}
    tagged = {media[r["mediaID"]] for r in rows(written.package_dir, "observations")
              if r["mediaID"] and r["observationTags"] == TIGER_TAG}
    assert tagged == {"a.jpg"}


def test_scientific_names_come_from_a_taxa_file(classified: Path, tmp_path: Path) -> None:
    taxa = tmp_path / "taxa.csv"
    taxa.write_text("class,scientificName\ntiger,Panthera tigris\n")
    written = export(classified, tmp_path / "dp", taxa=taxa)
    names = {r["scientificName"] for r in rows(written.package_dir, "observations")}
    assert "Panthera tigris" in names and "tiger" not in names
    descriptor = json.loads((written.package_dir / "datapackage.json").read_text())
    assert {"scientificName": "Panthera tigris"} in descriptor["taxonomic"]


def test_a_deployments_csv_with_missing_columns_is_refused(classified: Path,
                                                           tmp_path: Path) -> None:
    bad = write_deployments(tmp_path / "bad.csv", [("cam1", 27.5, 84.4)],
                            header=("deploymentID", "lat", "lon"))
    with pytest.raises(CamtrapDPError, match="latitude, longitude"):
        export(classified, tmp_path / "dp", deployments=bad)
    assert not (tmp_path / "dp").exists()


def test_a_deployment_without_coordinates_is_refused(classified: Path, tmp_path: Path) -> None:
    partial = write_deployments(tmp_path / "one.csv", [("cam1", 27.5, 84.4)])
    with pytest.raises(CamtrapDPError, match="cam2"):
        export(classified, tmp_path / "dp", deployments=partial)


def test_images_without_exif_times_fall_back_to_file_times_or_stop(tmp_path: Path) -> None:
    boxes = write_frame(tmp_path / "cam1" / "x.png", [("sambar", 30, 30)])
    md = write_md(tmp_path / "md.json", {"cam1/x.png": [(boxes[0], 0.9)]})
    write_deployments(tmp_path / "deployments.csv", [("cam1", 27.5, 84.4)])
    written = export(md, tmp_path / "dp")
    assert written.time_fallbacks == 1
    assert rows(written.package_dir, "media")[0]["mediaComments"] == "time from file"
    with pytest.raises(CamtrapDPError, match="no capture time"):
        export(md, tmp_path / "dp2", time_fallback="error")


def test_a_malformed_md_file_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "md.json"
    bad.write_text('{"images": "none"}')
    write_deployments(tmp_path / "deployments.csv", [("cam1", 27.5, 84.4)])
    with pytest.raises(MDResultsError):
        export(bad, tmp_path / "dp")


def test_an_md_file_without_images_makes_no_empty_package(tmp_path: Path) -> None:
    md = write_md(tmp_path / "md.json", {})
    write_deployments(tmp_path / "deployments.csv", [("cam1", 27.5, 84.4)])
    with pytest.raises(CamtrapDPError, match="no images"):
        export(md, tmp_path / "dp")


def tigertrap(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tigertrap.core", *args], capture_output=True,
                          text=True, timeout=TIMEOUT_S, check=False)


def test_export_command_writes_the_package(classified: Path, tmp_path: Path) -> None:
    done = tigertrap("export", "camtrap-dp", str(classified), "--output-dir",
                     str(tmp_path / "dp"), "--deployments",
                     str(classified.parent / "deployments.csv"))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["media"] == len(FRAMES)


def test_export_command_without_coordinates_exits_non_zero_saying_why(
        classified: Path, tmp_path: Path) -> None:
    done = tigertrap("export", "camtrap-dp", str(classified), "--output-dir",
                     str(tmp_path / "dp"))
    assert done.returncode == 2
    assert "latitude/longitude" in done.stderr
    assert not (tmp_path / "dp").exists()


def test_validation_reports_values_and_metadata_outside_the_standard(
        classified: Path, tmp_path: Path) -> None:
    written = export(classified, tmp_path / "dp")
    table = written.package_dir / "observations.csv"
    table.write_text(table.read_text().replace(",animal,", ",cat,", 1))
    descriptor_file = written.package_dir / "datapackage.json"
    descriptor = json.loads(descriptor_file.read_text())
    del descriptor["temporal"]
    descriptor_file.write_text(json.dumps(descriptor))
    problems = " ".join(validate_package(written.package_dir))
    assert "cat" in problems
    assert "temporal" in problems
