"""Repeat-detection elimination over a synthetic camera: MegaDetector's finder, review, removal."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tigertrap.classify.rde import (
    RepeatDetectionSettings,
    find_repeats,
    remove_repeats,
)
from tigertrap.core.config import ConfigError
from tigertrap.core.md_results import MDResultsError, read_md_results

FRAME = (320, 240)
ROCK = [0.1, 0.1, 0.1, 0.1]
FRAMES = 12
TIMEOUT_S = 120


def animal_box(n: int) -> list[float]:
    """A deer walking left to right: no two frames' boxes overlap by IoU 0.9."""
    return [round(0.3 + 0.04 * n, 4), 0.5, 0.2, 0.3]


def write_camera(root: Path, folder: str, frames: int, *, rock: bool,
                 seed: int = 0) -> dict[str, list[dict]]:
    rng = np.random.default_rng(seed)
    images = {}
    for n in range(frames):
        file = f"{folder}/IMG_{n:04d}.jpg"
        (root / folder).mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 255, (FRAME[1], FRAME[0], 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / file, quality=80)
        detections = [{"category": "1", "conf": 0.9, "bbox": animal_box(n)}]
        if rock:
            detections.append({"category": "1", "conf": 0.4, "bbox": ROCK})
        images[file] = detections
    return images


def write_md(root: Path, images: dict[str, list[dict]]) -> Path:
    document = {"info": {"format_version": "1.4", "detector": "md_v5a.0.0.pt"},
                "detection_categories": {"1": "animal", "2": "person", "3": "vehicle"},
                "images": [{"file": file, "detections": detections}
                           for file, detections in images.items()]}
    md_file = root / "md.json"
    md_file.write_text(json.dumps(document), encoding="utf-8")
    return md_file


@pytest.fixture
def camera(tmp_path: Path) -> Path:
    """cam1: a rock box on 12 frames and a moving deer; cam2: a deer on 3 frames."""
    images = write_camera(tmp_path, "cam1", FRAMES, rock=True)
    images |= write_camera(tmp_path, "cam2", 3, rock=False, seed=1)
    return write_md(tmp_path, images)


def settings(md_file: Path, **changes: object) -> RepeatDetectionSettings:
    values: dict[str, object] = {"occurrence_threshold": 10, "workers": 1} | changes
    return RepeatDetectionSettings(md_file=md_file, **values)


def boxes(md_file: Path) -> dict[str, list[list[float]]]:
    return {entry.file: [list(d.bbox) for d in entry.detections or []]
            for entry in read_md_results(md_file).images}


def test_the_repeated_box_is_found_with_an_example_to_review(camera: Path) -> None:
    review = find_repeats(settings(camera))
    assert review.suspicious == 1
    assert review.occurrences == FRAMES
    with open(review.suspicious_csv, newline="") as handle:
        (row,) = list(csv.DictReader(handle))
    assert row["camera"] == "cam1"
    assert [float(row[k]) for k in ("bbox_x", "bbox_y", "bbox_w", "bbox_h")] == ROCK
    example = review.review_dir / row["example"]
    with Image.open(example) as image:
        assert image.width > 0


def test_accepting_all_removes_the_repeat_and_keeps_the_moving_animals(camera: Path) -> None:
    review = find_repeats(settings(camera))
    removal = remove_repeats(camera, review.review_dir, accept_all=True)
    assert removal.removed_detections == FRAMES
    kept = boxes(removal.md_file)
    for n in range(FRAMES):
        assert kept[f"cam1/IMG_{n:04d}.jpg"] == [animal_box(n)]
    assert all(len(b) == 1 for file, b in kept.items() if file.startswith("cam2/"))


def test_a_deleted_example_keeps_its_detections(camera: Path) -> None:
    review = find_repeats(settings(camera))
    for example in review.review_dir.glob("dir*.jpg"):
        example.unlink()  # the reviewer saw a real animal
    removal = remove_repeats(camera, review.review_dir)
    assert removal.removed_detections == 0
    assert removal.dropped_examples == 1
    assert boxes(removal.md_file) == boxes(camera)


def test_a_kept_example_is_removed_and_the_output_passes_megadetectors_validator(
        camera: Path) -> None:
    from megadetector.postprocessing.validate_batch_results import (
        ValidateBatchResultsOptions,
        validate_batch_results,
    )

    review = find_repeats(settings(camera))
    removal = remove_repeats(camera, review.review_dir, camera.parent / "clean.json")
    assert removal.removed_detections == FRAMES
    options = ValidateBatchResultsOptions()
    options.raise_errors = True
    report = validate_batch_results(str(removal.md_file), options)["validation_results"]
    assert report["errors"] == []
    assert ROCK not in boxes(removal.md_file)["cam1/IMG_0000.jpg"]


def test_fewer_repeats_than_the_occurrence_threshold_are_not_suspicious(camera: Path) -> None:
    assert find_repeats(settings(camera, occurrence_threshold=FRAMES + 1)).suspicious == 0


def test_a_camera_split_over_folders_is_one_camera_by_the_manifests_location(
        tmp_path: Path) -> None:
    images = write_camera(tmp_path, "card1", FRAMES // 2, rock=True)
    images |= write_camera(tmp_path, "card2", FRAMES // 2, rock=True, seed=2)
    md_file = write_md(tmp_path, images)
    with open(tmp_path / "manifest.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "location"])
        writer.writerows((file, "site_A") for file in images)
    assert find_repeats(settings(md_file)).suspicious == 0
    by_location = find_repeats(settings(md_file, camera="manifest",
                                        manifest=tmp_path / "manifest.csv"))
    assert by_location.suspicious == 1
    assert by_location.occurrences == FRAMES


def test_a_malformed_md_file_is_refused_with_its_reason(tmp_path: Path) -> None:
    bad = tmp_path / "md.json"
    bad.write_text('{"images": [{"detections": []}]}')
    with pytest.raises(MDResultsError):
        find_repeats(settings(bad))


def test_a_folder_without_a_detection_index_is_refused(camera: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="REVIEW_DIR"):
        remove_repeats(camera, tmp_path / "empty", accept_all=True)


def test_camera_by_manifest_needs_the_manifest(camera: Path) -> None:
    with pytest.raises(ConfigError, match="MANIFEST"):
        find_repeats(settings(camera, camera="manifest"))


def tigertrap(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tigertrap.core", *args], capture_output=True,
                          text=True, timeout=TIMEOUT_S, check=False)


def test_rde_commands_find_then_remove_after_review(camera: Path) -> None:
    found = tigertrap("rde", "find", str(camera), "--occurrence-threshold", "10",
                      "--workers", "1")
    assert found.returncode == 0, found.stderr
    review = json.loads(found.stdout)
    assert review["suspicious"] == 1
    removed = tigertrap("rde", "remove", str(camera), review["review_dir"])
    assert removed.returncode == 0, removed.stderr
    summary = json.loads(removed.stdout)
    assert summary["removed_detections"] == FRAMES
    assert Path(summary["md_file"]).is_file()


def test_rde_command_names_the_bad_key(camera: Path) -> None:
    done = tigertrap("rde", "find", str(camera), "--camera", "manifest")
    assert done.returncode == 2
    assert "MANIFEST" in done.stderr
