"""The dry run's folder and the model card generated from the bundle."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.publish.conftest import CLASSES, METRICS, SPLITS, TIGER_THRESHOLD
from tigertrap.core.bundle import load_manifest
from tigertrap.publish.config import PublishSettings
from tigertrap.publish.publish import PublishError, publish_to_hub
from tigertrap.publish.sums import SUMS_FILE, folder_files, read_sums

SETTINGS = PublishSettings(repo_id="tiger-trust/terai-tigers", license="cc-by-4.0",
                           license_url="https://creativecommons.org/licenses/by/4.0/",
                           friendly_name="Terai tigers", model_id="TERAI-TIGER-v1")


@pytest.fixture(scope="module")
def dry_run(evaluated_bundle_source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One dry run shared by the tests that only read it."""
    folder = tmp_path_factory.mktemp("dry-run") / "upload"
    publish_to_hub(evaluated_bundle_source, SETTINGS, dry_run_dir=folder)
    return folder


def _card(folder: Path) -> tuple[dict, str]:
    _, header, body = (folder / "README.md").read_text(encoding="utf-8").split("---\n", 2)
    return yaml.safe_load(header), body


def test_dry_run_folder_passes_sha256sum_check(dry_run: Path) -> None:
    done = subprocess.run(["sha256sum", "--check", "--strict", SUMS_FILE], cwd=dry_run,
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert set(read_sums(dry_run / SUMS_FILE)) == set(folder_files(dry_run))


def test_dry_run_holds_the_bundle_card_and_addaxai_folders(
        dry_run: Path, evaluated_bundle_source: Path) -> None:
    files = set(folder_files(dry_run))
    bundle_files = {path.relative_to(evaluated_bundle_source).as_posix()
                    for path in evaluated_bundle_source.rglob("*") if path.is_file()}
    assert bundle_files <= files
    assert {"README.md", "addaxai/v6/variables.json", "addaxai/v7/inference.py",
            "addaxai/v6/SHA256SUMS", "addaxai/v7/SHA256SUMS"} <= files


def test_card_metadata_names_licence_and_test_metrics(dry_run: Path) -> None:
    metadata, _ = _card(dry_run)
    assert metadata["license"] == "cc-by-4.0"
    assert metadata["pipeline_tag"] == "image-classification"
    results = {result["dataset"]["name"]: {m["type"]: m["value"] for m in result["metrics"]}
               for result in metadata["model-index"][0]["results"]}
    assert results["test"]["accuracy"] == METRICS["test"]["accuracy"]
    assert results["test2"]["macro_f1"] == METRICS["test2"]["macro_f1"]


def test_card_lists_classes_in_output_order(dry_run: Path) -> None:
    _, body = _card(dry_run)
    rows = [f"| {index} | {name} |" for index, name in enumerate(CLASSES)]
    positions = [body.index(row) for row in rows]
    assert positions == sorted(positions)


def test_card_shows_each_test_sets_own_confusion_matrix(dry_run: Path) -> None:
    _, body = _card(dry_run)
    test_section = body.split("### test\n", 1)[1].split("### test2", 1)[0]
    test2_section = body.split("### test2\n", 1)[1].split("## ", 1)[0]
    assert "(metrics/confusion_matrix_test.png)" in test_section
    assert "confusion_matrix_test2" not in test_section
    assert "(metrics/confusion_matrix_test2.png)" in test2_section
    assert (dry_run / "metrics/confusion_matrix_test2.png").is_file()


def test_card_states_the_tiger_operating_point(dry_run: Path) -> None:
    _, body = _card(dry_run)
    section = body.split("## Tiger operating point", 1)[1].split("## ", 1)[0]
    assert f"**{TIGER_THRESHOLD}**" in section
    assert "| test2 | tiger_recall | 0.902 |" in section


def test_card_says_which_classes_each_splits_macro_averages_cover(dry_run: Path) -> None:
    _, body = _card(dry_run)
    test2_section = body.split("### test2\n", 1)[1].split("## ", 1)[0]
    assert "Macro averages cover the 2 classes present in this split: `tiger`, `leopard`." \
        in test2_section
    assert "Left out, with no image in this split: `dhole`, `sambar`" in test2_section
    assert "macro_classes" not in test2_section


def test_card_describes_training_splits_use_licence_and_how_to_run(dry_run: Path) -> None:
    _, body = _card(dry_run)
    for split, count in SPLITS.items():
        assert f"{split}: {count}" in body
    for heading in ("## Intended use and limits", "## Licence", "### With tigertrap",
                    "### With AddaxAI"):
        assert heading in body
    assert "hf download tiger-trust/terai-tigers" in body
    assert "~/AddaxAI/models/cls/TERAI-TIGER-v1/" in body
    assert "https://creativecommons.org/licenses/by/4.0/" in body


def test_card_lists_the_sha256_of_the_weights(dry_run: Path,
                                              evaluated_bundle_source: Path) -> None:
    _, body = _card(dry_run)
    digest = load_manifest(evaluated_bundle_source).files["model.onnx"]
    assert f"| `model.onnx` | `{digest}` |" in body


def test_dry_run_again_replaces_the_folder_whole(bundle: Path, tmp_path: Path) -> None:
    folder = tmp_path / "upload"
    publish_to_hub(bundle, SETTINGS, dry_run_dir=folder)
    (folder / "stale.txt").write_text("from an earlier run", encoding="utf-8")
    publish_to_hub(bundle, SETTINGS, dry_run_dir=folder)
    assert not (folder / "stale.txt").exists()
    assert (folder / "README.md").is_file()


def test_dry_run_refuses_a_folder_holding_other_files(bundle: Path, tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me", encoding="utf-8")
    with pytest.raises(PublishError, match="not empty"):
        publish_to_hub(bundle, SETTINGS, dry_run_dir=tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text(encoding="utf-8") == "keep me"
