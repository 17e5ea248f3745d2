"""Published MegaDetector results streamed and subset to the sampled images."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from tigertrap.core.md_results import MDResultsError, read_md_results
from tigertrap.download.manifest import ManifestRow
from tigertrap.download.md_subset import subset_md_results

DATASET = "WCS Camera Traps"
BASE_URL = "https://storage.googleapis.com/public-datasets-lila/wcs-unzipped"
SAMPLED = ["animals/0001/a.jpg", "animals/0002/b.jpg"]


def _rows() -> list[ManifestRow]:
    return [ManifestRow(source="lila", class_name="tiger", split="train", dataset=DATASET,
                        path=f"images/train/tiger/{Path(name).name}", image_id=name,
                        url_gcp=f"{BASE_URL}/{name}", status="ok") for name in SAMPLED]


def _published(extra_images: int = 50) -> dict:
    detection = {"category": "1", "conf": 0.93, "bbox": [0.1, 0.2, 0.3, 0.4]}
    images = [{"file": f"animals/9999/{i}.jpg", "detections": []} for i in range(extra_images)]
    images += [{"file": name, "max_detection_conf": 0.93, "detections": [detection]}
               for name in SAMPLED]
    return {"info": {"format_version": "1.3", "detector": "md_v5a.0.0.pt"},
            "detection_categories": {"1": "animal", "2": "person", "3": "vehicle"},
            "images": images}


def _write(folder: Path, packing: str, content: bytes) -> Path:
    if packing == "json":
        path = folder / "wcs_mdv5a.json"
        path.write_bytes(content)
        return path
    path = folder / "wcs_mdv5a.json.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("wcs_mdv5a.json", content)
    return path


@pytest.mark.parametrize("packing", ["json", "zip"])
def test_sampled_entries_are_kept_renamed_with_their_detections(tmp_path: Path,
                                                                packing: str) -> None:
    md_file = _write(tmp_path, packing, json.dumps(_published()).encode())
    matched = subset_md_results({DATASET: md_file}, _rows(), tmp_path / "ds")
    assert matched == {DATASET: len(SAMPLED)}
    md = read_md_results(tmp_path / "ds" / "md.json")
    assert sorted(entry.file for entry in md.images) == sorted(row.path for row in _rows())
    assert md.detection_categories["1"] == "animal"
    assert md.info["detector"] == "md_v5a.0.0.pt"
    detection = md.images[0].detections[0]
    assert (detection.category, detection.conf, detection.bbox) == ("1", 0.93,
                                                                    (0.1, 0.2, 0.3, 0.4))


@pytest.mark.parametrize(("packing", "content", "message"), [
    ("json", b'{"images": [{"file": "a.jpg"', "not a JSON file"),
    ("json", b'{"info": {}, "detection_categories": {}}', "no 'images' list"),
    ("zip", b"not json at all", "not a JSON file"),
])
def test_a_file_that_is_not_md_output_is_refused_naming_it(
        tmp_path: Path, packing: str, content: bytes, message: str) -> None:
    md_file = _write(tmp_path, packing, content)
    with pytest.raises(MDResultsError, match=message) as error:
        subset_md_results({DATASET: md_file}, _rows(), tmp_path / "ds")
    assert md_file.name in str(error.value)
    assert not (tmp_path / "ds" / "md.json").exists()


def test_a_zip_without_exactly_one_json_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "two.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("a.json", "{}")
        archive.writestr("b.json", "{}")
    with pytest.raises(MDResultsError, match="expected one .json file inside, found 2"):
        subset_md_results({DATASET: path}, _rows(), tmp_path / "ds")
