"""The AddaxAI v7 folder: its manifest against AddaxAI's schema, and its ``inference.py`` run
as AddaxAI's worker runs it, on a real camera-trap image and MegaDetector box."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

import pytest
from PIL import Image
from pydantic import BaseModel

from tests.publish.conftest import CLASSES
from tigertrap.core.crops import crop_detection
from tigertrap.core.images import open_image
from tigertrap.core.md_results import locate_image, read_md_results
from tigertrap.publish.config import PublishSettings
from tigertrap.publish.publish import build_addaxai

RUNNER = Path(__file__).with_name("addaxai_v7_runner.py")
MD_SET = "md_outputs/microsoft_CameraTraps_test_images"
MD_FILE = "expected_output_DRAFT.json"
IMAGE = "channel_islands_camera_traps_loc-h500ee07133550_010_643.jpg"
SETTINGS = PublishSettings(repo_id="tiger-trust/terai-tigers", developer="Tiger Trust",
                           owner="Tiger Trust", citation="https://example.org/paper",
                           info_url="https://example.org/tigers")


class AddaxModelManifest(BaseModel):
    """AddaxAI's ``ModelManifest`` (backend/app/ml/schemas/model_manifest.py), restated."""

    model_id: str
    friendly_name: str
    emoji: str | None = None
    env: str
    model_fname: str
    hf_repo: str | None = None
    description: str
    description_short: str | None = None
    developer: str
    owner: str | None = None
    citation: str | None = None
    license: str | None = None
    info_url: str
    min_app_version: str
    species_list: list[str] | None = None
    region: Literal["global", "africa", "americas", "asia", "europe", "oceania"] | None = None


@pytest.fixture(scope="module")
def v7_folder(tiny_bundle_source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("addaxai") / "out"
    build_addaxai(tiny_bundle_source, out, SETTINGS, layouts=["v7"])
    return out / "v7"


@pytest.fixture(scope="module")
def md_box(fixtures_dir: Path) -> tuple[Path, list[float]]:
    """The fixture image and the bbox of its first animal detection in its real MD file."""
    folder = fixtures_dir / MD_SET
    entry = read_md_results(folder / MD_FILE).by_file()[IMAGE]
    detection = next(d for d in entry.detections or [] if d.category == "1")
    image = locate_image(entry.file, folder)
    assert image is not None
    return image, list(detection.bbox)


@pytest.fixture(scope="module")
def run_report(v7_folder: Path, md_box: tuple[Path, list[float]]) -> dict[str, Any]:
    image, bbox = md_box
    done = subprocess.run([sys.executable, str(RUNNER), str(v7_folder), str(image),
                           *map(str, bbox)], capture_output=True, text=True, timeout=300,
                          check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _load_inference(folder: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("published_inference", folder / "inference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_manifest_validates_against_addaxai_schema(v7_folder: Path) -> None:
    manifest = AddaxModelManifest(**json.loads((v7_folder / "manifest.json").read_text()))
    assert manifest.species_list == CLASSES
    assert (manifest.env, manifest.model_fname) == ("tensorflow-v2", "model.keras")
    assert (manifest.hf_repo, manifest.region) == ("tiger-trust/terai-tigers", "asia")
    assert (manifest.developer, manifest.owner) == ("Tiger Trust", "Tiger Trust")
    assert manifest.model_id == manifest.friendly_name == "tiny-tiger"


def test_inference_implements_the_whole_contract(run_report: dict[str, Any]) -> None:
    assert run_report["missing"] == []
    assert run_report["gpu"] is False


def test_inference_runs_without_tigertrap(run_report: dict[str, Any]) -> None:
    assert run_report["tigertrap_loaded"] is False


def test_classification_scores_every_class(run_report: dict[str, Any]) -> None:
    classification = run_report["classification"]
    assert sorted(name for name, _ in classification) == sorted(CLASSES)
    assert all(0.0 <= score <= 1.0 for _, score in classification)
    assert sum(score for _, score in classification) == pytest.approx(1.0, abs=1e-4)


def test_class_names_are_one_indexed_in_output_order(run_report: dict[str, Any]) -> None:
    expected = {str(index + 1): name for index, name in enumerate(CLASSES)}
    assert run_report["class_names"] == expected


def test_batch_methods_agree_with_single_crop(run_report: dict[str, Any]) -> None:
    single = dict(run_report["classification"])
    for result in run_report["batch"]:
        assert dict(result) == pytest.approx(single, abs=1e-5)


def test_crop_is_the_snip_stage_crop(v7_folder: Path, md_box: tuple[Path, list[float]]) -> None:
    image_path, bbox = md_box
    module = _load_inference(v7_folder)
    model = module.ModelInference(v7_folder, v7_folder / "model.keras")
    crop = model.get_crop(Image.open(image_path).convert("RGB"), tuple(bbox))
    expected = crop_detection(open_image(image_path), bbox, size=600, method="exact")
    assert crop.size == (600, 600)
    assert list(crop.getdata()) == list(expected.getdata())


def test_a_box_without_area_gives_no_crop(v7_folder: Path) -> None:
    module = _load_inference(v7_folder)
    model = module.ModelInference(v7_folder, v7_folder / "model.keras")
    assert model.get_crop(Image.new("RGB", (100, 80)), (0.5, 0.5, 0.0, 0.2)) is None
