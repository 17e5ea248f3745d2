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
    smoothing_options,
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


SPECIES = ["tiger", "deer", "sambar", "other"]


def clear(name: str, score: float = 0.9) -> np.ndarray:
    """Scores with ``name`` on top at ``score`` and the rest spread evenly."""
    scores = np.full(len(SPECIES), (1 - score) / (len(SPECIES) - 1))
    scores[SPECIES.index(name)] = score
    return scores


def smooth(frames: list[str], sequence: str | None = "s1", *, image_level: bool = False,
           keep_tigers: bool = True, **changes: object) -> list[str]:
    """Smooth one detection per frame (frames in one sequence); returns the top classes."""
    options = smoothing_options(min_dominant=4, max_nondominant=1, min_dominant_over_other=2,
                                other_classes=["other"], classification_threshold=0.5,
                                detection_threshold=0.15)
    for name, value in changes.items():
        setattr(options, name, value)
    scores = {(n, 0): clear(name) for n, name in enumerate(frames)}
    smoothed = smooth_scores(
        scores, dict.fromkeys(scores, 0.9), dict.fromkeys(scores, sequence), SPECIES, options,
        image_level=image_level,
        keep=(lambda s: int(np.argmax(s)) == 0) if keep_tigers else None)
    return [SPECIES[int(np.argmax(smoothed[key]))] for key in sorted(scores)]


def test_a_sequence_holding_a_clear_deer_and_a_clear_tiger_keeps_both() -> None:
    assert smooth(["deer", "tiger"]) == ["deer", "tiger"]


def test_a_lone_tiger_among_many_deer_is_never_relabelled() -> None:
    frames = ["deer"] * 5 + ["tiger"]
    assert smooth(frames) == frames
    # MegaDetector alone would call it a deer: the rule is tigertrap's.
    assert smooth(frames, keep_tigers=False) == ["deer"] * 6


def test_a_lone_other_species_in_a_dominant_sequence_takes_the_dominant_class() -> None:
    assert smooth(["deer"] * 4 + ["sambar"]) == ["deer"] * 5


def test_two_detections_of_a_second_species_keep_their_class() -> None:
    frames = ["deer"] * 4 + ["sambar"] * 2
    assert smooth(frames) == frames


def test_other_classes_take_the_dominant_class_sooner() -> None:
    assert smooth(["deer", "deer", "other"]) == ["deer"] * 3


def test_frames_without_a_sequence_are_not_smoothed_together() -> None:
    frames = ["deer"] * 4 + ["sambar"]
    assert smooth(frames, sequence=None) == frames


def test_image_level_smoothing_works_within_one_frame() -> None:
    options = smoothing_options(min_dominant=4, max_nondominant=1, min_dominant_over_other=2,
                                other_classes=[], classification_threshold=0.5,
                                detection_threshold=0.15)
    scores = {(0, d): clear("deer") for d in range(4)} | {(0, 4): clear("sambar"),
                                                          (1, 0): clear("sambar")}
    smoothed = smooth_scores(scores, dict.fromkeys(scores, 0.9), {}, SPECIES, options,
                             image_level=True)
    assert SPECIES[int(np.argmax(smoothed[(0, 4)]))] == "deer"
    assert SPECIES[int(np.argmax(smoothed[(1, 0)]))] == "sambar"


def test_a_relabelled_detection_keeps_its_confidence_and_scores_sum_to_one() -> None:
    options = smoothing_options(min_dominant=4, max_nondominant=1, min_dominant_over_other=2,
                                other_classes=[], classification_threshold=0.5,
                                detection_threshold=0.15)
    scores = {(n, 0): clear("deer") for n in range(4)} | {(4, 0): clear("sambar", 0.7)}
    smoothed = smooth_scores(scores, dict.fromkeys(scores, 0.9), dict.fromkeys(scores, "s"),
                             SPECIES, options)
    assert smoothed[(4, 0)][SPECIES.index("deer")] == pytest.approx(0.7)
    assert smoothed[(4, 0)].sum() == pytest.approx(1.0)


def test_low_confidence_detections_take_no_part_in_smoothing() -> None:
    options = smoothing_options(min_dominant=4, max_nondominant=1, min_dominant_over_other=2,
                                other_classes=[], classification_threshold=0.5,
                                detection_threshold=0.15)
    scores = {(n, 0): clear("deer") for n in range(4)} | {(4, 0): clear("sambar")}
    confs = dict.fromkeys(scores, 0.9) | {(4, 0): 0.1}
    smoothed = smooth_scores(scores, confs, dict.fromkeys(scores, "s"), SPECIES, options)
    assert SPECIES[int(np.argmax(smoothed[(4, 0)]))] == "sambar"


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


def test_a_manifest_sequence_of_a_tiger_and_a_sambar_keeps_both(tmp_path: Path,
                                                                 bundle_dir: Path) -> None:
    tiger = write_frame(tmp_path / "images" / "1.png", [("tiger", 30, 30)])
    sambar = write_frame(tmp_path / "images" / "2.png", [("sambar", 30, 30)])
    md = write_md(tmp_path / "md.json", {"images/1.png": [(tiger[0], 0.9)],
                                         "images/2.png": [(sambar[0], 0.9)]})
    sequences = write_sequences(tmp_path / "manifest.csv", [("images/1.png", "seq7"),
                                                            ("images/2.png", "seq7")])
    result = _run(md, bundle_dir, sequence_source="manifest", sequence_file=sequences)
    written = read_md_results(result.md_file)
    top = {entry.file: written.classification_categories[entry.detections[0].classifications[0][0]]
           for entry in written.images}
    assert top == {"images/1.png": "tiger", "images/2.png": "sambar"}
    with open(result.predictions_csv, newline="") as handle:
        assert {row["sequence"] for row in csv.DictReader(handle)} == {"seq7"}


def test_a_lone_leopard_cat_in_a_sambar_sequence_becomes_sambar(tmp_path: Path,
                                                               bundle_dir: Path) -> None:
    names = {1: "leopard_cat", 2: "sambar", 3: "sambar", 4: "sambar", 5: "sambar"}
    boxes = {f"{n}.png": write_frame(tmp_path / f"{n}.png", [(name, 30, 30)], seed=n)
             for n, name in names.items()}
    md = write_md(tmp_path / "md.json", {f: [(b[0], 0.9)] for f, b in boxes.items()})
    sequences = write_sequences(tmp_path / "seq.csv", [(f, "s") for f in boxes])
    result = _run(md, bundle_dir, sequence_source="manifest", sequence_file=sequences)
    with open(result.predictions_csv, newline="") as handle:
        assert {row["top_class"] for row in csv.DictReader(handle)} == {"sambar"}
    unsmoothed = _run(md, bundle_dir, output_dir=tmp_path / "plain")
    with open(unsmoothed.predictions_csv, newline="") as handle:
        tops = {Path(row["file"]).name: row["top_class"] for row in csv.DictReader(handle)}
    assert tops["1.png"] == "leopard_cat"


def test_smoothing_never_removes_a_tiger_flag(tmp_path: Path, bundle_dir: Path) -> None:
    tiger = write_frame(tmp_path / "1.png", [("tiger", 30, 30)])
    others = {f"{n}.png": write_frame(tmp_path / f"{n}.png", [("sambar", 30, 30)], seed=n)
              for n in (2, 3, 4, 5, 6)}
    md = write_md(tmp_path / "md.json", {"1.png": [(tiger[0], 0.9)],
                                         **{f: [(b[0], 0.9)] for f, b in others.items()}})
    sequences = write_sequences(tmp_path / "seq.csv", [(f"{n}.png", "s") for n in range(1, 7)])
    result = _run(md, bundle_dir, sequence_source="manifest", sequence_file=sequences,
                  tiger_threshold=0.5, image_smoothing=True)
    with open(result.images_csv, newline="") as handle:
        rows = {row["file"]: row for row in csv.DictReader(handle)}
    assert rows["1.png"]["tiger"] == "true"
    assert rows["1.png"]["top_class"] == "tiger"


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
