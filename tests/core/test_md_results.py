"""MegaDetector batch JSON: reading every real variant, writing format 1.6."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tigertrap.core.md_results import (
    Detection,
    ImageResult,
    MDResults,
    MDResultsError,
    locate_image,
    read_md_results,
    write_md_results,
)

MS_FILE = "md_outputs/microsoft_CameraTraps_test_images/expected_output_DRAFT.json"
ECO_FILE = "md_outputs/PetervanLunteren_EcoAssist_test_images/output.json"


def validate(path: Path, *, check_images: bool = False) -> dict:
    from megadetector.postprocessing.validate_batch_results import (
        ValidateBatchResultsOptions,
        validate_batch_results,
    )

    options = ValidateBatchResultsOptions()
    options.check_image_existence = check_images
    options.relative_path_base = str(path.parent)
    options.raise_errors = True
    return validate_batch_results(str(path), options)["validation_results"]


@pytest.mark.parametrize("name", [MS_FILE, ECO_FILE])
def test_real_files_round_trip_and_pass_megadetector_validator(fixtures_dir, tmp_path, name):
    original = read_md_results(fixtures_dir / name)
    out = tmp_path / "md.json"
    write_md_results(original, out)
    again = read_md_results(out)
    assert again.info["format_version"] == "1.6"
    assert [e.file for e in again.images] == [e.file for e in original.images]
    for before, after in zip(original.images, again.images, strict=True):
        assert (before.detections is None) == (after.detections is None)
        key = lambda d: (d.category, round(d.conf, 3), tuple(round(v, 4) for v in d.bbox))  # noqa: E731
        assert sorted(map(key, before.detections or [])) == sorted(map(key, after.detections or []))
    result = validate(out)
    assert result["errors"] == []


def test_written_detections_are_sorted_by_confidence_descending(fixtures_dir, tmp_path):
    original = read_md_results(fixtures_dir / MS_FILE)
    ascending = [e for e in original.images if e.detections and len(e.detections) > 1
                 and e.detections[0].conf < e.detections[-1].conf]
    assert ascending, "the 1.1 fixture has ascending detection order"
    write_md_results(original, tmp_path / "md.json")
    raw = json.loads((tmp_path / "md.json").read_text())
    for image in raw["images"]:
        confs = [d["conf"] for d in image["detections"] or []]
        assert confs == sorted(confs, reverse=True)


def test_reading_keeps_detection_order_of_the_file(fixtures_dir):
    raw = json.loads((fixtures_dir / MS_FILE).read_text())
    results = read_md_results(fixtures_dir / MS_FILE)
    for raw_image, image in zip(raw["images"], results.images, strict=True):
        assert [d["conf"] for d in raw_image["detections"]] == [d.conf for d in image.detections]


def test_max_detection_conf_is_read_and_dropped_on_write(fixtures_dir, tmp_path):
    results = read_md_results(fixtures_dir / ECO_FILE)
    assert results.images[1].model_extra["max_detection_conf"] == pytest.approx(0.877)
    write_md_results(results, tmp_path / "md.json")
    assert "max_detection_conf" not in (tmp_path / "md.json").read_text()


def test_failures_are_written_with_null_detections_and_classifications_sorted(tmp_path):
    results = MDResults(
        info={"detector": "md_v5a.0.0.pt"},
        classification_categories={"0": "tiger", "1": "leopard"},
        images=[
            ImageResult(file="a/bad.jpg", failure="truncated image file"),
            ImageResult(file="a/good.jpg", detections=[Detection(
                category="1", conf=0.91234, bbox=(0.1, 0.2, 0.3, 0.4),
                classifications=[("1", 0.2), ("0", 0.8)])]),
        ],
    )
    write_md_results(results, tmp_path / "md.json")
    raw = json.loads((tmp_path / "md.json").read_text())
    assert raw["images"][0] == {"file": "a/bad.jpg", "failure": "truncated image file",
                                "detections": None}
    detection = raw["images"][1]["detections"][0]
    assert detection["conf"] == 0.912
    assert detection["classifications"] == [["0", 0.8], ["1", 0.2]]
    assert validate(tmp_path / "md.json")["errors"] == []


def test_integer_category_ids_from_old_files_become_strings():
    results = MDResults.model_validate({"images": [{"file": "x.jpg", "detections": [
        {"category": 1, "conf": 0.5, "bbox": [0, 0, 1, 1]}]}],
        "detection_categories": {1: "animal"}})
    assert results.images[0].detections[0].category == "1"
    assert results.detection_categories == {"1": "animal"}


def test_absolute_paths_from_another_machine_are_found_by_their_tail(fixtures_dir):
    json_file = fixtures_dir / ECO_FILE
    results = read_md_results(json_file)
    found = {e.file.rsplit("/", 1)[-1]: locate_image(e.file, json_file.parent)
             for e in results.images}
    assert found["2.jpg"] == json_file.parent / "test_images" / "2.jpg"
    assert found["5.jpg"] is None  # not shipped with the fixture


def test_relative_paths_resolve_against_the_json_folder(fixtures_dir):
    json_file = fixtures_dir / MS_FILE
    entry = read_md_results(json_file).images[0]
    assert locate_image(entry.file, json_file.parent) == json_file.parent / entry.file


@pytest.mark.parametrize("content, message", [
    ("not json", "not a JSON file"),
    ('{"info": {}}', "no 'images' list"),
    ('{"images": [{"file": "a.jpg", "detections": [{"conf": 0.5}]}]}', "images.0.detections"),
])
def test_bad_files_raise_an_error_naming_the_problem(tmp_path, content, message):
    path = tmp_path / "md.json"
    path.write_text(content)
    with pytest.raises(MDResultsError, match=message):
        read_md_results(path)


def test_file_names_of_symlinked_images_keep_their_own_folder(tmp_path):
    from tigertrap.core.md_results import relative_file_name

    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "a.jpg").write_bytes(b"x")
    (tmp_path / "cam").mkdir()
    (tmp_path / "cam" / "a.jpg").symlink_to(tmp_path / "store" / "a.jpg")
    assert relative_file_name(tmp_path / "cam" / "a.jpg", tmp_path) == "cam/a.jpg"
