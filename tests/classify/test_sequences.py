"""Sequences from a manifest or from EXIF times, and smoothing scores over them."""

from __future__ import annotations

import csv
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from tests.classify.frames import write_frame, write_md
from tigertrap.classify.batch import classify_md
from tigertrap.classify.config import ClassifySettings
from tigertrap.classify.sequences import (
    SequenceFileError,
    capture_time,
    group_by_time,
    read_sequence_file,
    smooth_scores,
)
from tigertrap.core.config import load_settings
from tigertrap.core.md_results import read_md_results


def write_sequences(path: Path, rows: list[tuple[str, str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "class", "sequence"])
        writer.writerows((file, "x", sequence) for file, sequence in rows)
    return path


def test_capture_time_reads_exif_datetime_original(tmp_path: Path) -> None:
    write_frame(tmp_path / "a.jpg", [], exif_time="2023:05:01 06:30:15")
    assert capture_time(tmp_path / "a.jpg") == datetime(2023, 5, 1, 6, 30, 15)


def test_capture_time_is_none_without_exif(tmp_path: Path) -> None:
    write_frame(tmp_path / "a.png", [])
    assert capture_time(tmp_path / "a.png") is None


def test_frames_split_into_sequences_where_the_gap_exceeds_the_limit(tmp_path: Path) -> None:
    start = datetime(2023, 5, 1, 6, 0, 0)
    times = {tmp_path / "cam1" / f"{n}.jpg": start.replace(second=s)
             for n, s in enumerate([0, 2, 4, 50])}
    times[tmp_path / "cam2" / "0.jpg"] = start  # same moment, other camera folder
    times[tmp_path / "cam1" / "x.jpg"] = None
    groups = group_by_time(times, max_gap_s=10)
    cam1 = [groups[tmp_path / "cam1" / f"{n}.jpg"] for n in range(4)]
    assert cam1[0] == cam1[1] == cam1[2] != cam1[3]
    assert groups[tmp_path / "cam2" / "0.jpg"] not in cam1
    assert tmp_path / "cam1" / "x.jpg" not in groups


def test_smoothing_averages_scores_within_a_sequence_only() -> None:
    scores = {"a": np.array([1.0, 0.0]), "b": np.array([0.0, 1.0]), "c": np.array([0.2, 0.8])}
    smoothed = smooth_scores(scores, {"a": "s1", "b": "s1", "c": None})
    np.testing.assert_allclose(smoothed["a"], [0.5, 0.5])
    np.testing.assert_allclose(smoothed["b"], [0.5, 0.5])
    np.testing.assert_allclose(smoothed["c"], [0.2, 0.8])


def test_sequence_file_paths_are_relative_to_its_folder(tmp_path: Path) -> None:
    csv_file = write_sequences(tmp_path / "manifest.csv", [("images/a.jpg", "s1"),
                                                           ("images/b.jpg", "")])
    assert read_sequence_file(csv_file) == {(tmp_path / "images" / "a.jpg").resolve(): "s1"}


def test_sequence_file_without_sequence_column_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("path,class\na.jpg,x\n")
    with pytest.raises(SequenceFileError, match="sequence"):
        read_sequence_file(bad)


def _run(md: Path, bundle: Path, **settings: object):
    return classify_md(load_settings(ClassifySettings, md_file=md, model=bundle, **settings))


def test_manifest_sequences_give_their_frames_the_same_scores(tmp_path: Path,
                                                              bundle_dir: Path) -> None:
    tiger = write_frame(tmp_path / "images" / "1.png", [("tiger", 30, 30)])
    sambar = write_frame(tmp_path / "images" / "2.png", [("sambar", 30, 30)])
    md = write_md(tmp_path / "md.json", {"images/1.png": [(tiger[0], 0.9)],
                                         "images/2.png": [(sambar[0], 0.9)]})
    sequences = write_sequences(tmp_path / "manifest.csv", [("images/1.png", "seq7"),
                                                            ("images/2.png", "seq7")])
    result = _run(md, bundle_dir, sequence_source="manifest", sequence_file=sequences)
    written = read_md_results(result.md_file).by_file()
    first = written["images/1.png"].detections[0].classifications
    assert first == written["images/2.png"].detections[0].classifications
    with open(result.predictions_csv, newline="") as handle:
        assert {row["sequence"] for row in csv.DictReader(handle)} == {"seq7"}


def test_smoothing_never_removes_a_tiger_flag(tmp_path: Path, bundle_dir: Path) -> None:
    tiger = write_frame(tmp_path / "1.png", [("tiger", 30, 30)])
    others = {f"{n}.png": write_frame(tmp_path / f"{n}.png", [("sambar", 30, 30)])
              for n in (2, 3, 4)}
    md = write_md(tmp_path / "md.json", {"1.png": [(tiger[0], 0.9)],
                                         **{f: [(b[0], 0.9)] for f, b in others.items()}})
    sequences = write_sequences(tmp_path / "seq.csv", [(f"{n}.png", "s") for n in range(1, 5)])
    result = _run(md, bundle_dir, sequence_source="manifest", sequence_file=sequences,
                  tiger_threshold=0.5)
    with open(result.images_csv, newline="") as handle:
        flags = {row["file"]: row["tiger"] for row in csv.DictReader(handle)}
    assert flags["1.png"] == "true"


def test_exif_sequences_group_frames_taken_seconds_apart(tmp_path: Path, bundle_dir: Path
                                                        ) -> None:
    frames = {"a.jpg": "2023:05:01 06:00:00", "b.jpg": "2023:05:01 06:00:05",
              "c.jpg": "2023:05:01 09:00:00"}
    boxes = {f: write_frame(tmp_path / f, [("tiger" if f == "a.jpg" else "sambar", 30, 30)],
                            exif_time=t) for f, t in frames.items()}
    md = write_md(tmp_path / "md.json", {f: [(b[0], 0.9)] for f, b in boxes.items()})
    result = _run(md, bundle_dir, sequence_source="exif", sequence_gap=30)
    with open(result.predictions_csv, newline="") as handle:
        sequence = {row["file"]: row["sequence"] for row in csv.DictReader(handle)}
    assert sequence["a.jpg"] == sequence["b.jpg"] != sequence["c.jpg"]
