"""Batch mode over real MegaDetector files and synthetic frames the tiny bundle knows."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from megadetector.postprocessing.validate_batch_results import (
    ValidateBatchResultsOptions,
    validate_batch_results,
)

from tests.classify.conftest import CLASSES
from tests.classify.frames import write_frame, write_md
from tigertrap.classify.batch import ClassifyResult, classify_md
from tigertrap.classify.config import ClassifySettings
from tigertrap.core.bundle import load_manifest, write_manifest
from tigertrap.core.config import load_settings
from tigertrap.core.md_results import read_md_results

MD_SETS = {
    "relative-1.1": ("microsoft_CameraTraps_test_images", "expected_output_DRAFT.json"),
    "absolute-1.2": ("PetervanLunteren_EcoAssist_test_images", "output.json"),
}


def run(md_file: Path, bundle: Path, **settings: object) -> ClassifyResult:
    return classify_md(load_settings(ClassifySettings, md_file=md_file, model=bundle,
                                     **settings))


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(params=sorted(MD_SETS))
def md_set(request: pytest.FixtureRequest, fixtures_dir: Path, tmp_path: Path) -> Path:
    """A copy of one real MD file with its images; returns the MD file."""
    folder, name = MD_SETS[request.param]
    copy = shutil.copytree(fixtures_dir / "md_outputs" / folder, tmp_path / folder)
    return Path(copy) / name


@pytest.fixture
def ms_md(fixtures_dir: Path, tmp_path: Path) -> Path:
    folder, name = MD_SETS["relative-1.1"]
    return Path(shutil.copytree(fixtures_dir / "md_outputs" / folder, tmp_path / folder)) / name


@pytest.fixture
def ecoassist_md(fixtures_dir: Path, tmp_path: Path) -> Path:
    folder, name = MD_SETS["absolute-1.2"]
    return Path(shutil.copytree(fixtures_dir / "md_outputs" / folder, tmp_path / folder)) / name


def validate(md_file: Path) -> dict:
    options = ValidateBatchResultsOptions()
    options.raise_errors = True
    return validate_batch_results(str(md_file), options)["validation_results"]


def test_classified_md_file_passes_megadetector_validator(md_set: Path, bundle_dir: Path
                                                          ) -> None:
    result = run(md_set, bundle_dir)
    report = validate(result.md_file)
    assert report["errors"] == [] and report["warnings"] == []
    assert result.classified > 0
    assert json.loads(result.md_file.read_text())["info"]["format_version"] == "1.6"


def test_classification_categories_are_class_map_indices_as_strings(ms_md: Path,
                                                                     bundle_dir: Path) -> None:
    written = json.loads(run(ms_md, bundle_dir).md_file.read_text())
    assert written["classification_categories"] == {str(i): n for i, n in enumerate(CLASSES)}


def test_each_animal_detection_at_or_above_lower_conf_is_classified_and_no_other(
        ms_md: Path, bundle_dir: Path) -> None:
    lower_conf = 0.2
    written = read_md_results(run(ms_md, bundle_dir, lower_conf=lower_conf).md_file)
    source = read_md_results(ms_md).by_file()
    for entry in written.images:
        if entry.failed:
            continue
        expected = sorted(round(d.conf, 3) for d in source[entry.file].detections or []
                          if d.category == "1" and d.conf >= lower_conf)
        classified = sorted(d.conf for d in entry.detections or [] if d.classifications)
        assert classified == expected, entry.file


def test_classifications_are_top_k_sorted_by_score(ms_md: Path, bundle_dir: Path) -> None:
    written = read_md_results(run(ms_md, bundle_dir, top_k=2).md_file)
    lists = [d.classifications for e in written.images for d in e.detections or []
             if d.classifications]
    assert lists and all(len(pairs) == 2 for pairs in lists)
    assert all(pairs[0][1] >= pairs[1][1] for pairs in lists)


def test_prediction_indices_refer_to_detections_of_the_written_file(ms_md: Path,
                                                                    bundle_dir: Path) -> None:
    # The source lists detections in ascending confidence; the written file sorts them.
    result = run(ms_md, bundle_dir)
    written = read_md_results(result.md_file).by_file()
    rows = read_csv(result.predictions_csv)
    assert len(rows) == result.classified
    for row in rows:
        detection = written[row["file"]].detections[int(row["detection_index"])]
        assert detection.conf == float(row["detection_conf"])
        assert list(detection.bbox) == [float(row[k]) for k in ("bbox_x", "bbox_y", "bbox_w",
                                                               "bbox_h")]
        top_id, top_score = detection.classifications[0]
        assert CLASSES[int(top_id)] == row["top_class"]
        assert top_score == pytest.approx(float(row["top_prob"]), abs=1e-3)


def test_absolute_paths_are_found_under_the_md_folder_and_written_relative(
        ecoassist_md: Path, bundle_dir: Path) -> None:
    result = run(ecoassist_md, bundle_dir)
    written = read_md_results(result.md_file).by_file()
    assert written["test_images/2.jpg"].detections[0].classifications
    found = [e for e in written.values() if not e.file.startswith("/")]
    assert {e.file for e in found} == {"test_images/2.jpg", "test_images/4.jpg"}


def test_missing_image_becomes_a_failure_and_the_batch_goes_on(ecoassist_md: Path,
                                                               bundle_dir: Path) -> None:
    result = run(ecoassist_md, bundle_dir)
    written = read_md_results(result.md_file).by_file()
    missing = written["/Users/petervanlunteren/EcoAssist_files/EcoAssist/test_images/1.jpg"]
    assert missing.failure and "not found" in missing.failure and missing.detections is None
    assert (result.failures, result.classified) == (1, 1)
    rows = {row["file"]: row for row in read_csv(result.images_csv)}
    assert "not found" in rows[missing.file]["failure"]


def test_truncated_image_becomes_a_failure(fixtures_dir: Path, tmp_path: Path,
                                           bundle_dir: Path) -> None:
    truncated = fixtures_dir / "edge_cases" / "cameratrapai_african_elephants_truncated_file.jpg"
    shutil.copy(truncated, tmp_path / "truncated.jpg")
    boxes = write_frame(tmp_path / "good.png", [("tiger", 40, 40)])
    md = write_md(tmp_path / "md.json", {"truncated.jpg": [([0.1, 0.1, 0.5, 0.5], 0.9)],
                                         "good.png": [(boxes[0], 0.9)]})
    result = run(md, bundle_dir)
    written = read_md_results(result.md_file).by_file()
    assert "truncated" in written["truncated.jpg"].failure
    assert written["good.png"].detections[0].classifications


def test_learned_patterns_in_a_frame_get_their_classes(tmp_path: Path, bundle_dir: Path
                                                       ) -> None:
    boxes = write_frame(tmp_path / "frame.png",
                        [("tiger", 10, 20), ("leopard_cat", 120, 100), ("sambar", 230, 160)])
    md = write_md(tmp_path / "md.json", {"frame.png": [(b, 0.9 - i / 10)
                                                       for i, b in enumerate(boxes)]})
    rows = read_csv(run(md, bundle_dir).predictions_csv)
    assert [row["top_class"] for row in rows] == ["tiger", "leopard_cat", "sambar"]


def test_images_csv_flags_tiger_at_the_bundle_threshold(tmp_path: Path, bundle_dir: Path
                                                        ) -> None:
    bundle = Path(shutil.copytree(bundle_dir, tmp_path / "bundle"))
    write_manifest(bundle, load_manifest(bundle).model_copy(update={"tiger_threshold": 0.3}))
    tiger = write_frame(tmp_path / "tiger.png", [("tiger", 50, 50)])
    sambar = write_frame(tmp_path / "sambar.png", [("sambar", 50, 50)])
    md = write_md(tmp_path / "md.json", {"tiger.png": [(tiger[0], 0.8)],
                                         "sambar.png": [(sambar[0], 0.8)], "empty.png": []})
    rows = {row["file"]: row for row in read_csv(run(md, bundle).images_csv)}
    assert rows["tiger.png"]["tiger"] == "true" and float(rows["tiger.png"]["tiger_score"]) >= 0.3
    assert rows["sambar.png"]["tiger"] == "false"
    assert (rows["empty.png"]["animals"], rows["empty.png"]["tiger"]) == ("0", "false")
    assert rows["sambar.png"]["top_class"] == "sambar"


def test_images_csv_counts_animals_and_reports_max_confidence(tmp_path: Path,
                                                              bundle_dir: Path) -> None:
    boxes = write_frame(tmp_path / "f.png", [("tiger", 10, 10), ("tiger", 200, 100)])
    md = write_md(tmp_path / "md.json", {"f.png": [(boxes[0], 0.5), (boxes[1], 0.93),
                                                   ([0.0, 0.0, 0.1, 0.1], 0.01)]})
    row = read_csv(run(md, bundle_dir, lower_conf=0.1).images_csv)[0]
    assert (row["animals"], row["classified"], row["max_detection_conf"]) == ("2", "2", "0.93")


def test_rerun_with_same_inputs_does_no_work(ms_md: Path, bundle_dir: Path) -> None:
    first = run(ms_md, bundle_dir)
    written = first.md_file.read_bytes()
    again = run(ms_md, bundle_dir)
    assert (first.skipped, again.skipped) == (False, True)
    assert first.md_file.read_bytes() == written


def test_rerun_with_changed_settings_classifies_again(ms_md: Path, bundle_dir: Path) -> None:
    run(ms_md, bundle_dir)
    again = run(ms_md, bundle_dir, lower_conf=0.5)
    assert not again.skipped
    assert all(float(r["detection_conf"]) >= 0.5 for r in read_csv(again.predictions_csv))


def test_long_table_has_a_ranked_row_per_detection_and_class(ms_md: Path, bundle_dir: Path
                                                             ) -> None:
    result = run(ms_md, bundle_dir, long_table=True)
    rows = read_csv(result.long_csv)
    assert len(rows) == result.classified * len(CLASSES)
    first = [r for r in rows if (r["file"], r["detection_index"]) ==
             (rows[0]["file"], rows[0]["detection_index"])]
    assert sorted(int(r["class_rank"]) for r in first) == [1, 2, 3]
    best = min(first, key=lambda r: int(r["class_rank"]))
    assert float(best["prob"]) == max(float(r["prob"]) for r in first)


def test_bad_md_file_is_a_clear_error(tmp_path: Path, bundle_dir: Path) -> None:
    from tigertrap.core.md_results import MDResultsError

    bad = tmp_path / "md.json"
    bad.write_text("{}")
    with pytest.raises(MDResultsError, match="not MegaDetector output"):
        run(bad, bundle_dir)


def test_an_image_the_md_file_names_outside_the_data_root_is_a_failure_never_read(
        tmp_path: Path, bundle_dir: Path) -> None:
    root, outside = tmp_path / "data", tmp_path / "outside"
    root.mkdir()
    boxes = write_frame(outside / "secret.png", [("tiger", 10, 20)])
    write_frame(root / "inside.png", [("tiger", 10, 20)])
    md = write_md(root / "md.json", {str(outside / "secret.png"): [(boxes[0], 0.9)],
                                     "inside.png": [(boxes[0], 0.9)]})

    result = classify_md(load_settings(ClassifySettings, md_file=md, model=bundle_dir),
                         image_root=root)

    entries = {entry.file: entry for entry in read_md_results(result.md_file).images}
    refused = next(entry for name, entry in entries.items() if "secret" in name)
    assert refused.failure is not None and "outside the data root" in refused.failure
    assert entries["inside.png"].detections[0].classifications
    assert all("secret" not in row["file"] for row in read_csv(result.predictions_csv))
