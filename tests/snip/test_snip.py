"""The snip stage: mewc-snip's crops, named by detection index, robust and resumable."""

from __future__ import annotations

import csv
import functools
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tigertrap.core.config import load_settings
from tigertrap.core.crops import draft_size
from tigertrap.core.images import image_size
from tigertrap.core.md_results import Detection, ImageResult, MDResults, write_md_results
from tigertrap.snip.config import SnipSettings
from tigertrap.snip.snip import run_snip

MS_DIR = "md_outputs/microsoft_CameraTraps_test_images"
MS_FILE = "expected_output_DRAFT.json"
ECO_DIR = "md_outputs/PetervanLunteren_EcoAssist_test_images"
FRAME = "wcs_camera_traps_animals_0245_1477.jpg"


def settings(**values) -> SnipSettings:
    return load_settings(SnipSettings, **values)


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def expected_names(md_file: Path, lower_conf: float = 0.05) -> set[str]:
    names = set()
    for image in json.loads(md_file.read_text())["images"]:
        if not (md_file.parent / image["file"]).is_file():
            continue
        stem, _, ext = Path(image["file"]).name.rpartition(".")
        names |= {f"{stem}-{i}.{ext}" for i, d in enumerate(image["detections"] or [])
                  if d["category"] == "1" and d["conf"] >= lower_conf}
    return names


def test_format_1_1_file_gives_one_snip_per_animal_detection_named_by_index(fixtures_dir,
                                                                            tmp_path):
    folder = fixtures_dir / MS_DIR
    summary = run_snip(settings(input_dir=folder, md_file=MS_FILE, snip_dir=str(tmp_path / "s"),
                                snip_size=96))
    files = {p.name for p in (tmp_path / "s").glob("*.JPG")} | \
            {p.name for p in (tmp_path / "s").glob("*.jpg")}
    assert files == expected_names(folder / MS_FILE)
    assert summary.written == len(files)
    missing = [item for item, reason in summary.failures if reason == "image not found"]
    assert len(missing) == len({i["file"] for i in json.loads((folder / MS_FILE).read_text())[
        "images"] if not (folder / i["file"]).is_file() and any(
        d["category"] == "1" and d["conf"] >= 0.05 for d in i["detections"])})
    for path in (tmp_path / "s").iterdir():
        if path.suffix.lower() == ".jpg":
            with Image.open(path) as snip:
                assert snip.size == (96, 96)


def test_format_1_2_file_with_absolute_paths_finds_images_by_their_tail(fixtures_dir, tmp_path):
    summary = run_snip(settings(input_dir=fixtures_dir / ECO_DIR, md_file="output.json",
                                snip_dir=str(tmp_path / "s"), snip_size=64))
    assert sorted(p.relative_to(tmp_path / "s").as_posix()
                  for p in (tmp_path / "s").rglob("*.jpg")) == ["test_images/2-0.jpg"]
    assert summary.written == 1
    with Image.open(tmp_path / "s" / "test_images" / "2-0.jpg") as snip:
        assert snip.size == (64, 64)
    # 1.jpg has an animal but is not shipped with the fixture: a recorded failure
    assert [reason for _, reason in summary.failures] == ["image not found"]


def test_low_confidence_and_non_animal_detections_do_not_shift_snip_numbers(fixtures_dir,
                                                                            tmp_path):
    shutil.copy(fixtures_dir / MS_DIR / FRAME, tmp_path / "frame.jpg")
    boxes = [(0.01, 0.01, 0.2, 0.2), (0.3, 0.3, 0.2, 0.2), (0.1, 0.5, 0.3, 0.3),
             (0.6, 0.1, 0.2, 0.4)]
    write_md_results(MDResults(images=[ImageResult(file="frame.jpg", detections=[
        Detection(category="1", conf=0.02, bbox=boxes[0]),   # below LOWER_CONF, first
        Detection(category="2", conf=0.90, bbox=boxes[1]),   # a person between animals
        Detection(category="1", conf=0.80, bbox=boxes[2]),
        Detection(category="1", conf=0.30, bbox=boxes[3]),
    ])]), tmp_path / "md.json")
    # write_md_results sorts by conf: read back the order as written in the file
    written = [tuple(d["bbox"]) for d in
               json.loads((tmp_path / "md.json").read_text())["images"][0]["detections"]]
    run_snip(settings(input_dir=tmp_path, snip_size=32))
    rows = read_rows(tmp_path / "snips" / "snips.csv")
    assert {r["snip"]: int(r["detection_index"]) for r in rows} == {
        f"frame-{written.index(boxes[2])}.jpg": written.index(boxes[2]),
        f"frame-{written.index(boxes[3])}.jpg": written.index(boxes[3])}
    for row in rows:  # each snip really shows the box its index names
        assert tuple(float(row[k]) for k in ("bbox_x", "bbox_y", "bbox_w", "bbox_h")) == \
            written[int(row["detection_index"])]


@functools.lru_cache(maxsize=4)
def megadetector_image(path: Path) -> Image.Image:
    from megadetector.visualization import visualization_utils as viz

    return viz.load_image(str(path))


def reference_crop(path: Path, bbox, size: int) -> np.ndarray:
    """MegaDetector's crop without expansion, LANCZOS to ``size`` (mewc-snip's snip), saved
    as the snips are (JPEG quality 95) and decoded, so that only the crops are compared."""
    from megadetector.visualization import visualization_utils as viz

    crop = viz.crop_image([{"conf": 1.0, "bbox": list(bbox)}], megadetector_image(path),
                          confidence_threshold=0, expansion=0)[0]
    buffer = io.BytesIO()
    crop.resize((size, size), Image.Resampling.LANCZOS).save(buffer, "JPEG", quality=95)
    return np.asarray(Image.open(buffer), dtype=np.float64)


def drafted_images(folder: Path, rows: list[dict[str, str]]) -> set[str]:
    """The images of ``rows`` that draft mode decodes at reduced scale."""
    boxes: dict[str, list[list[float]]] = {}
    for row in rows:
        boxes.setdefault(row["image"], []).append(
            [float(row[k]) for k in ("bbox_x", "bbox_y", "bbox_w", "bbox_h")])
    return {image for image, bboxes in boxes.items()
            if draft_size(bboxes, *image_size(folder / image), 600) is not None}


@pytest.mark.parametrize("draft", [False, True])
def test_snips_match_megadetector_crop_within_two_grey_levels(fixtures_dir, tmp_path, draft):
    folder = fixtures_dir / MS_DIR
    run_snip(settings(input_dir=folder, md_file=MS_FILE, snip_dir=str(tmp_path / "s"),
                      draft=draft))
    rows = sorted(read_rows(tmp_path / "s" / "snips.csv"), key=lambda row: row["image"])
    assert len(rows) == len(expected_names(folder / MS_FILE))
    assert drafted_images(folder, rows), "the fixture set has a frame decoded in draft mode"
    for row in rows:
        bbox = [float(row[k]) for k in ("bbox_x", "bbox_y", "bbox_w", "bbox_h")]
        expected = reference_crop(folder / row["image"], bbox, 600)
        actual = np.asarray(Image.open(tmp_path / "s" / row["snip"]), dtype=np.float64)
        assert np.abs(actual - expected).mean() <= 2.0, row["snip"]


def test_broken_inputs_become_failures_and_the_batch_goes_on(fixtures_dir, tmp_path):
    shutil.copy(fixtures_dir / "edge_cases" / "cameratrapai_african_elephants_truncated_file.jpg",
                tmp_path / "truncated.jpg")
    shutil.copy(fixtures_dir / MS_DIR / FRAME, tmp_path / "good.jpg")
    (tmp_path / "notimage.jpg").write_text("<html>error</html>")
    (tmp_path / "empty.jpg").write_bytes(b"")
    box = Detection(category="1", conf=0.9, bbox=(0.25, 0.25, 0.5, 0.5))
    entries = [ImageResult(file=name, detections=[box]) for name in
               ("truncated.jpg", "notimage.jpg", "empty.jpg", "missing.jpg")]
    entries.append(ImageResult(file="good.jpg", detections=[
        box,
        Detection(category="1", conf=0.8, bbox=(1.5, 1.5, 0.1, 0.1)),   # outside the image
        Detection(category="1", conf=0.7, bbox=(0.3, 0.3, 0.0, 0.2)),   # zero width
        Detection(category="1", conf=0.6, bbox=(0.6, 0.6, 0.1, 0.1))]))
    write_md_results(MDResults(images=entries), tmp_path / "md.json")
    summary = run_snip(settings(input_dir=tmp_path, snip_size=64))
    failed = dict(summary.failures)
    assert set(failed) == {"truncated.jpg", "notimage.jpg", "empty.jpg", "missing.jpg",
                           "good-1.jpg", "good-2.jpg"}
    assert "truncated" in failed["truncated.jpg"]
    assert "not an image" in failed["notimage.jpg"]
    assert failed["missing.jpg"] == "image not found"
    assert "no area" in failed["good-1.jpg"] and "no area" in failed["good-2.jpg"]
    assert sorted(r["snip"] for r in read_rows(tmp_path / "snips" / "snips.csv")) == [
        "good-0.jpg", "good-3.jpg"]
    assert len(read_rows(tmp_path / "snips" / "snip_failures.csv")) == 6


def upright_reference(path: Path, bbox, size: int) -> np.ndarray:
    """The exact crop by hand: full decode, RGB, the box rounded as Pillow's crop does."""
    with Image.open(path) as image:
        rgb = image.convert("RGB")
    x, y, w, h = bbox
    box = (x * rgb.width, y * rgb.height, min((x + w) * rgb.width, rgb.width - 1),
           min((y + h) * rgb.height, rgb.height - 1))
    crop = rgb.crop(box).resize((size, size), Image.Resampling.LANCZOS)
    return np.asarray(crop, dtype=np.float64)


@pytest.mark.parametrize("kind", ["cmyk", "5152x3968"])
def test_cmyk_and_large_frames_give_the_correct_rgb_crop(fixtures_dir, tmp_path, kind):
    source = Image.open(fixtures_dir / MS_DIR / FRAME).convert("RGB")
    image = source.convert("CMYK") if kind == "cmyk" else source.resize((5152, 3968))
    image.save(tmp_path / "frame.jpg", quality=95)
    bbox = (0.3, 0.2, 0.4, 0.5)
    write_md_results(MDResults(images=[ImageResult(file="frame.jpg", detections=[
        Detection(category="1", conf=0.9, bbox=bbox)])]), tmp_path / "md.json")
    summary = run_snip(settings(input_dir=tmp_path, snip_size=600))
    assert summary.failures == []
    with Image.open(tmp_path / "snips" / "frame-0.jpg") as snip:
        assert (snip.mode, snip.size) == ("RGB", (600, 600))
        actual = np.asarray(snip, dtype=np.float64)
    expected = upright_reference(tmp_path / "frame.jpg", bbox, 600)
    assert np.abs(actual - expected).mean() <= 2.0


def test_exif_rotation_is_applied_before_cropping(fixtures_dir, tmp_path):
    shutil.copy(fixtures_dir / "edge_cases"
                / "cameratrapai_african_elephants_with_exif_orientation.jpg", tmp_path / "r.jpg")
    write_md_results(MDResults(images=[ImageResult(file="r.jpg", detections=[
        Detection(category="1", conf=0.9, bbox=(0.0, 0.0, 0.5, 1.0))])]), tmp_path / "md.json")
    run_snip(settings(input_dir=tmp_path, snip_size=600, draft=False))
    from tigertrap.core.images import open_image

    upright = open_image(tmp_path / "r.jpg")
    expected = upright.crop((0, 0, upright.width * 0.5, upright.height - 1)).resize(
        (600, 600), Image.Resampling.LANCZOS)
    expected.save(tmp_path / "expected.jpg", quality=95)  # the same JPEG encoding as snips
    actual = np.asarray(Image.open(tmp_path / "snips" / "r-0.jpg"), dtype=np.float64)
    wanted = np.asarray(Image.open(tmp_path / "expected.jpg"), dtype=np.float64)
    assert np.abs(actual - wanted).mean() <= 2.0
    with Image.open(tmp_path / "r.jpg") as raw:  # the same box on the unrotated pixels
        sideways = raw.convert("RGB").crop((0, 0, raw.width * 0.5, raw.height - 1)).resize(
            (600, 600), Image.Resampling.LANCZOS)
    assert np.abs(actual - np.asarray(sideways, dtype=np.float64)).mean() > 10.0


def test_rerun_skips_complete_snips_and_keeps_one_row_each(fixtures_dir, tmp_path):
    folder = fixtures_dir / MS_DIR
    options = {"input_dir": folder, "md_file": MS_FILE, "snip_dir": str(tmp_path / "s"),
               "snip_size": 48}
    first = run_snip(settings(**options))
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "s").rglob("*.[jJ][pP][gG]")}
    second = run_snip(settings(**options))
    assert second.written == 0 and second.skipped == first.written
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert len(read_rows(tmp_path / "s" / "snips.csv")) == first.written


def test_square_method_max_crops_and_categories(fixtures_dir, tmp_path):
    shutil.copy(fixtures_dir / MS_DIR / FRAME, tmp_path / "f.jpg")
    write_md_results(MDResults(images=[ImageResult(file="f.jpg", detections=[
        Detection(category="1", conf=0.9, bbox=(0.1, 0.1, 0.4, 0.1)),
        Detection(category="1", conf=0.5, bbox=(0.5, 0.5, 0.1, 0.1)),
        Detection(category="2", conf=0.8, bbox=(0.6, 0.2, 0.1, 0.3))])]), tmp_path / "md.json")
    run_snip(settings(input_dir=tmp_path, snip_size=32, max_crops=1, categories="animal,person",
                      crop_method="square"))
    assert sorted(r["snip"] for r in read_rows(tmp_path / "snips" / "snips.csv")) == [
        "f-0.jpg"]
    run_snip(settings(input_dir=tmp_path, snip_dir="all", snip_size=32,
                      categories="animal,person"))
    assert sorted(r["category"] for r in read_rows(tmp_path / "all" / "snips.csv")) == [
        "1", "1", "2"]


def test_categories_are_matched_by_name_in_the_files_detection_categories(fixtures_dir,
                                                                          tmp_path):
    """A detector that numbers its classes otherwise: "animal" is its "2", not MD's "1"."""
    shutil.copy(fixtures_dir / MS_DIR / FRAME, tmp_path / "f.jpg")
    write_md_results(MDResults(
        detection_categories={"1": "vehicle", "2": "Animal"},
        images=[ImageResult(file="f.jpg", detections=[
            Detection(category="1", conf=0.9, bbox=(0.1, 0.1, 0.4, 0.1)),
            Detection(category="2", conf=0.5, bbox=(0.5, 0.5, 0.1, 0.1))])]),
        tmp_path / "md.json")
    run_snip(settings(input_dir=tmp_path, snip_size=32, categories="1"))  # MD's id: animal
    assert [(r["snip"], r["category"]) for r in read_rows(tmp_path / "snips" / "snips.csv")
            ] == [("f-1.jpg", "2")]


def test_manifest_labels_go_into_snips_csv_and_by_class_layout(fixtures_dir, tmp_path):
    images = tmp_path / "dataset" / "images"
    (images / "train" / "tiger").mkdir(parents=True)
    shutil.copy(fixtures_dir / MS_DIR / FRAME, images / "train" / "tiger" / "a.jpg")
    (tmp_path / "dataset" / "manifest.csv").write_text(
        "class_name,split,path\ntiger,train,images/train/tiger/a.jpg\n")
    write_md_results(MDResults(images=[ImageResult(file="train/tiger/a.jpg", detections=[
        Detection(category="1", conf=0.9, bbox=(0.1, 0.1, 0.4, 0.4))])]), images / "md.json")
    run_snip(settings(input_dir=images, snip_size=32, by_class=True))
    row = read_rows(images / "snips" / "snips.csv")[0]
    assert (row["snip"], row["class"], row["split"]) == ("train/tiger/a-0.jpg", "tiger", "train")
    linked = images / "snips" / "by_class" / "train" / "tiger" / "a-0.jpg"
    assert linked.samefile(images / "snips" / "train" / "tiger" / "a-0.jpg")


def test_by_class_names_join_sub_folders_outside_the_download_layout(fixtures_dir, tmp_path):
    for camera in ("cam1", "cam2"):  # two images of one class with the same file name
        copy_to = tmp_path / camera
        copy_to.mkdir()
        shutil.copy(fixtures_dir / MS_DIR / FRAME, copy_to / "a.jpg")
    (tmp_path / "manifest.csv").write_text(
        "class_name,split,path\ntiger,val,cam1/a.jpg\ntiger,val,cam2/a.jpg\n")
    box = Detection(category="1", conf=0.9, bbox=(0.1, 0.1, 0.4, 0.4))
    write_md_results(MDResults(images=[ImageResult(file=f"{camera}/a.jpg", detections=[box])
                                       for camera in ("cam1", "cam2")]), tmp_path / "md.json")
    run_snip(settings(input_dir=tmp_path, snip_size=32, by_class=True))
    assert sorted(p.name for p in (tmp_path / "snips" / "by_class" / "val" / "tiger").iterdir()
                  ) == ["cam1__a-0.jpg", "cam2__a-0.jpg"]


def test_bad_setting_names_the_key(monkeypatch):
    from tigertrap.core.config import ConfigError

    monkeypatch.setenv("SNIP_SIZE", "big")
    with pytest.raises(ConfigError, match="SNIP_SIZE"):
        settings()
    monkeypatch.delenv("SNIP_SIZE")
    with pytest.raises(ConfigError, match="CATEGORIES"):
        settings(categories="lion")


def test_service_env_file_loads_with_mewc_defaults():
    env_file = Path(__file__).resolve().parents[2] / "services" / "snip" / "snip.env"
    loaded = load_settings(SnipSettings, env_file=env_file)
    assert (loaded.md_file, loaded.snip_dir, loaded.lower_conf, loaded.snip_size,
            loaded.categories) == ("md.json", "snips", 0.05, 600, ["animal"])


def test_comma_separated_categories_and_class_limits_from_the_environment(monkeypatch):
    monkeypatch.setenv("CATEGORIES", "animal,vehicle")
    monkeypatch.setenv("MAX_CROPS_BY_CLASS", "tiger=10, deer=2")
    loaded = settings()
    assert loaded.categories == ["animal", "vehicle"]
    assert loaded.max_crops_by_class == {"tiger": 10, "deer": 2}


def test_per_class_limit_overrides_max_crops_for_images_of_that_class(fixtures_dir, tmp_path):
    images = tmp_path / "images"
    for name in ("tiger", "deer"):
        (images / name).mkdir(parents=True)
        shutil.copy(fixtures_dir / MS_DIR / FRAME, images / name / "a.jpg")
    (images / "manifest.csv").write_text(
        "class_name,split,path\ntiger,train,tiger/a.jpg\ndeer,train,deer/a.jpg\n")
    detections = [Detection(category="1", conf=0.9 - 0.1 * i, bbox=(0.1 * i, 0.1, 0.1, 0.1))
                  for i in range(4)]
    write_md_results(MDResults(images=[ImageResult(file=f"{name}/a.jpg", detections=detections)
                                       for name in ("tiger", "deer")]), images / "md.json")
    run_snip(settings(input_dir=images, snip_size=32, max_crops=1,
                      max_crops_by_class="tiger=3"))
    rows = read_rows(images / "snips" / "snips.csv")
    assert sorted(r["snip"] for r in rows) == [
        "deer/a-0.jpg", "tiger/a-0.jpg", "tiger/a-1.jpg", "tiger/a-2.jpg"]


def test_progress_is_reported_once_per_image_with_crops(fixtures_dir, tmp_path):
    calls: list[tuple[int, int]] = []
    summary = run_snip(settings(input_dir=fixtures_dir / MS_DIR, md_file=MS_FILE,
                                snip_dir=str(tmp_path / "s"), snip_size=32),
                       progress=lambda done, total: calls.append((done, total)))
    total = summary.images_with_crops
    assert calls == [(done, total) for done in range(total + 1)]


def test_images_outside_the_md_folder_snip_into_snip_dir_by_file_name(fixtures_dir, tmp_path):
    (tmp_path / "other").mkdir()
    shutil.copy(fixtures_dir / MS_DIR / FRAME, tmp_path / "other" / "a.jpg")
    (tmp_path / "md").mkdir()
    write_md_results(MDResults(images=[ImageResult(file="../other/a.jpg", detections=[
        Detection(category="1", conf=0.9, bbox=(0.1, 0.1, 0.4, 0.4))])]),
        tmp_path / "md" / "md.json")
    run_snip(settings(input_dir=tmp_path / "md", snip_size=32))
    assert [r["snip"] for r in read_rows(tmp_path / "md" / "snips" / "snips.csv")] == ["a-0.jpg"]
    assert (tmp_path / "md" / "snips" / "a-0.jpg").is_file()
