"""The detect stage as a library function, with the real megadetector and a tiny checkpoint."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from tigertrap.core.md_results import read_md_results
from tigertrap.detect.batch import ExistingResultsConflict, run_detect
from tigertrap.detect.checkpoint import Checkpoint, OutputLocked, default_checkpoint_path
from tigertrap.detect.config import DetectSettings
from tigertrap.detect.weights import WeightsNotFound

READABLE = {
    "site_a/bear/cameratrapai_american_black_bear.jpg",
    "site_a/leopard_cat/camtrapR_StationA_PBE_StationA__2009-04-22__20-21-00(1).JPG",
    "site_b/civet/camtrapR_StationC_VTA_StationC__2009-04-24__02-57-00(1).JPG",
    "site_b/tiger/terainet_anno_1440.jpg",
    "broken/cameratrapai_african_elephants_with_exif_orientation.jpg",
}
UNREADABLE = {
    "broken/cameratrapai_african_elephants_truncated_file.jpg",
    "broken/zero_bytes.jpg",
    "broken/error_page.jpg",
}


def settings_for(source: Path, weights: Path, **values: object) -> DetectSettings:
    key = "input_dir" if source.is_dir() else "image_list"
    return DetectSettings(**{key: source, "md_model": str(weights), "ncores": 2, **values})


class StopAfter:
    """A progress callback that stops the run (like a cancelled job) after ``limit`` images."""

    def __init__(self, limit: int) -> None:
        self.limit = limit

    def __call__(self, done: int, total: int) -> None:
        if done >= self.limit:
            raise KeyboardInterrupt


def test_output_passes_megadetectors_validator_with_every_image_found(camera_folder,
                                                                      tiny_checkpoint):
    from megadetector.postprocessing.validate_batch_results import (
        ValidateBatchResultsOptions,
        validate_batch_results,
    )

    summary = run_detect(settings_for(camera_folder, tiny_checkpoint))

    options = ValidateBatchResultsOptions()
    options.check_image_existence = True
    options.relative_path_base = str(summary.md_file.parent)
    report = validate_batch_results(str(summary.md_file), options)["validation_results"]
    assert report["errors"] == []
    assert report["detection_category_id_to_count"], "the tiny model should find some boxes"


def test_md_json_lists_each_image_once_relative_to_its_folder(camera_folder, tiny_checkpoint):
    summary = run_detect(settings_for(camera_folder, tiny_checkpoint))

    assert summary.md_file == camera_folder / "md.json"
    files = [entry.file for entry in read_md_results(summary.md_file).images]
    assert sorted(files) == sorted(READABLE | UNREADABLE)


def test_unreadable_images_become_failures_and_the_rest_are_detected(camera_folder,
                                                                     tiny_checkpoint):
    summary = run_detect(settings_for(camera_folder, tiny_checkpoint))

    entries = read_md_results(summary.md_file).by_file()
    assert {f for f, e in entries.items() if e.failed} == UNREADABLE
    assert all(entries[f].detections is None for f in UNREADABLE)
    assert "truncated" in entries["broken/cameratrapai_african_elephants_truncated_file.jpg"
                                  ].failure
    assert all(entries[f].detections is not None for f in READABLE)
    assert summary.failures == len(UNREADABLE)


def test_exif_rotated_image_gets_the_boxes_of_its_upright_version(tmp_path, fixtures_dir,
                                                                  tiny_checkpoint):
    folder = tmp_path / "rotation"
    folder.mkdir()
    upright = Image.open(fixtures_dir / "images/bear/cameratrapai_american_black_bear.jpg")
    upright = upright.convert("RGB")
    upright.save(folder / "upright.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display": the pixels are stored turned left
    upright.transpose(Image.Transpose.ROTATE_90).save(folder / "rotated.png", exif=exif)

    entries = read_md_results(run_detect(settings_for(folder, tiny_checkpoint)).md_file).by_file()

    assert entries["rotated.png"].detections
    assert entries["rotated.png"].detections == entries["upright.png"].detections
    assert (entries["rotated.png"].width, entries["rotated.png"].height) == upright.size


def test_results_match_megadetectors_own_batch_function(camera_folder, tiny_checkpoint):
    from megadetector.detection.run_detector_batch import load_and_run_detector_batch

    readable = sorted(READABLE)
    expected = load_and_run_detector_batch(
        str(tiny_checkpoint), [str(camera_folder / f) for f in readable],
        confidence_threshold=0.01, quiet=True)
    entries = read_md_results(run_detect(settings_for(camera_folder, tiny_checkpoint)).md_file
                              ).by_file()

    for file, theirs in zip(readable, expected, strict=True):
        ours = [(d.category, d.conf, list(d.bbox)) for d in entries[file].detections]
        mine = sorted(ours, key=lambda d: -d[1])
        reference = sorted(((d["category"], d["conf"], d["bbox"]) for d in theirs["detections"]),
                           key=lambda d: -d[1])
        assert mine == reference, file


def test_threshold_drops_lower_confidences(camera_folder, tiny_checkpoint):
    low = read_md_results(run_detect(settings_for(camera_folder, tiny_checkpoint)).md_file)
    high = read_md_results(run_detect(settings_for(
        camera_folder, tiny_checkpoint, threshold=0.5, md_file="high.json")).md_file)

    def confidences(results):
        return [d.conf for e in results.images for d in e.detections or []]

    assert min(confidences(low)) < 0.5 <= min(confidences(high))
    assert len(confidences(high)) < len(confidences(low))


def test_images_added_later_are_detected_and_earlier_results_reused(camera_folder,
                                                                    tiny_checkpoint,
                                                                    fixtures_dir):
    first = run_detect(settings_for(camera_folder, tiny_checkpoint))
    before = read_md_results(first.md_file).by_file()
    new = camera_folder / "site_c" / "bird.jpg"
    new.parent.mkdir()
    shutil.copyfile(fixtures_dir / "images/bird/megadetector_nacti.jpg", new)

    second = run_detect(settings_for(camera_folder, tiny_checkpoint))

    after = read_md_results(second.md_file).by_file()
    assert second.detected == 1 + len(UNREADABLE)  # the new image, and failures are retried
    assert after["site_c/bird.jpg"].detections is not None
    assert all(after[f] == before[f] for f in READABLE)


def test_image_that_failed_is_detected_once_it_is_fixed(camera_folder, tiny_checkpoint,
                                                        fixtures_dir):
    run_detect(settings_for(camera_folder, tiny_checkpoint))
    shutil.copyfile(fixtures_dir / "images/tiger/terainet_anno_1440.jpg",
                    camera_folder / "broken/zero_bytes.jpg")

    summary = run_detect(settings_for(camera_folder, tiny_checkpoint))

    entry = read_md_results(summary.md_file).by_file()["broken/zero_bytes.jpg"]
    assert not entry.failed and entry.detections is not None


def test_interrupted_run_resumes_without_redoing_checkpointed_images(camera_folder,
                                                                     tiny_checkpoint):
    settings = settings_for(camera_folder, tiny_checkpoint, checkpoint_freq=2)
    with pytest.raises(KeyboardInterrupt):
        run_detect(settings, progress=StopAfter(3))
    assert not (camera_folder / "md.json").exists()

    summary = run_detect(settings)

    assert summary.reused == 3 and summary.detected == summary.images - 3
    files = [entry.file for entry in read_md_results(summary.md_file).images]
    assert sorted(files) == sorted(READABLE | UNREADABLE)
    assert not default_checkpoint_path(summary.md_file).exists()


def test_checkpoint_made_with_another_threshold_is_not_mixed_in(camera_folder, tiny_checkpoint):
    with pytest.raises(KeyboardInterrupt):
        run_detect(settings_for(camera_folder, tiny_checkpoint, checkpoint_freq=1,
                                threshold=0.9), progress=StopAfter(3))

    summary = run_detect(settings_for(camera_folder, tiny_checkpoint))

    assert summary.reused == 0
    confidences = [d.conf for e in read_md_results(summary.md_file).images
                   for d in e.detections or []]
    assert min(confidences) < 0.9


def test_results_of_another_detector_are_kept_unless_overwrite_is_set(camera_folder,
                                                                      tiny_checkpoint,
                                                                      weights_as):
    run_detect(settings_for(camera_folder, tiny_checkpoint))
    other = weights_as("other_detector.pt")

    with pytest.raises(ExistingResultsConflict, match="tiny_md.pt"):
        run_detect(settings_for(camera_folder, other))
    summary = run_detect(settings_for(camera_folder, other, overwrite=True))

    assert read_md_results(summary.md_file).info["detector"] == "other_detector.pt"
    assert summary.reused == 0


def test_manifest_rows_are_detected_beside_the_manifest(tmp_path, camera_folder,
                                                        tiny_checkpoint):
    dataset = camera_folder
    manifest = dataset / "manifest.csv"
    rows = [("site_a/bear/cameratrapai_american_black_bear.jpg", "ok"),
            ("site_b/tiger/terainet_anno_1440.jpg", "existing"),
            ("site_b/tiger/never_arrived.jpg", "failed"),
            ("site_b/tiger/still_queued.jpg", "pending")]
    with manifest.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["class", "path", "status"])
        writer.writerows(("x", path, status) for path, status in rows)

    summary = run_detect(settings_for(manifest, tiny_checkpoint))

    assert summary.md_file == dataset / "md.json"
    files = sorted(e.file for e in read_md_results(summary.md_file).images)
    assert files == sorted(path for path, _ in rows[:2])
    assert summary.not_downloaded == 2


def test_list_file_paths_are_taken_from_the_list_folder(camera_folder, tiny_checkpoint):
    listing = camera_folder / "site_a" / "todo.json"
    listing.write_text(json.dumps(["bear/cameratrapai_american_black_bear.jpg",
                                   "bear/cameratrapai_american_black_bear.jpg"]))

    summary = run_detect(settings_for(listing, tiny_checkpoint))

    assert summary.md_file == camera_folder / "site_a" / "md.json"
    assert [e.file for e in read_md_results(summary.md_file).images] == [
        "bear/cameratrapai_american_black_bear.jpg"]


def test_md_file_may_sit_above_the_image_folder(camera_folder, tiny_checkpoint):
    summary = run_detect(settings_for(camera_folder / "site_a", tiny_checkpoint,
                                      md_file="../md.json"))

    assert summary.md_file == camera_folder / "md.json"
    assert all(e.file.startswith("site_a/") for e in read_md_results(summary.md_file).images)


def test_snips_folder_is_not_searched(camera_folder, tiny_checkpoint):
    crops = camera_folder / "snips" / "bear"
    crops.mkdir(parents=True)
    shutil.copyfile(camera_folder / "site_a/bear/cameratrapai_american_black_bear.jpg",
                    crops / "cameratrapai_american_black_bear-0.jpg")

    summary = run_detect(settings_for(camera_folder, tiny_checkpoint))

    assert not any(e.file.startswith("snips/") for e in read_md_results(summary.md_file).images)


def test_second_run_on_the_same_output_is_refused_while_the_first_runs(camera_folder,
                                                                       tiny_checkpoint):
    md_file = camera_folder / "md.json"
    with Checkpoint(default_checkpoint_path(md_file), {"detector": "x"}), \
            pytest.raises(OutputLocked, match="another detect run"):
        run_detect(settings_for(camera_folder, tiny_checkpoint))


def test_missing_named_weights_offline_say_which_file_to_put_where(camera_folder, tmp_path):
    settings = DetectSettings(input_dir=camera_folder, md_model="MDV5A",
                              models_dir=tmp_path / "models", download_weights=False)

    with pytest.raises(WeightsNotFound) as raised:
        run_detect(settings)

    message = str(raised.value)
    assert "md_v5a.0.1.pt" in message and str(tmp_path / "models") in message
    assert "MDV5A=" in message


def test_an_image_symlinked_from_outside_the_data_root_is_a_failure_never_opened(
        camera_folder, tiny_checkpoint, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "secret.jpg"
    shutil.copyfile(camera_folder / "site_b" / "tiger" / "terainet_anno_1440.jpg", secret)
    (camera_folder / "site_b" / "tiger" / "linked.jpg").symlink_to(secret)
    inside = camera_folder / "site_b" / "tiger" / "also_linked.jpg"
    inside.symlink_to(camera_folder / "site_b" / "tiger" / "terainet_anno_1440.jpg")

    summary = run_detect(settings_for(camera_folder, tiny_checkpoint), image_root=camera_folder)

    entries = {entry.file: entry for entry in read_md_results(summary.md_file).images}
    refused = entries["site_b/tiger/linked.jpg"]
    assert refused.failure is not None and "outside the data root" in refused.failure
    assert refused.detections is None
    # a symlink that stays inside the root is an image like any other
    assert entries["site_b/tiger/also_linked.jpg"].failure is None
    assert summary.failures == len(UNREADABLE) + 1
