"""The ``tigertrap download`` command end to end: real processes, real loopback server."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.download.conftest import write_metadata
from tests.download.image_server import ImageServer
from tigertrap.core.images import open_image
from tigertrap.core.md_results import read_md_results

ALL_TIGERS_TRAIN = "classes:\n  tiger:\n    rules:\n      - {common_name: tiger}\n"
FAST = ["--retries", "0", "--backoff", "0.01", "--timeout", "10"]


def _command(data_root: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "tigertrap.core", "download", *args]


def _env(data_root: Path) -> dict[str, str]:
    return {**os.environ, "TIGERTRAP_DATA": str(data_root)}


def _run(data_root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(_command(data_root, *args), env=_env(data_root), capture_output=True,
                          text=True, timeout=120)


def _manifest(data_root: Path, name: str) -> list[dict[str, str]]:
    with open(data_root / "datasets" / name / "manifest.csv", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture
def spec_file(tmp_path: Path) -> Path:
    path = tmp_path / "tigers.yaml"
    path.write_text(ALL_TIGERS_TRAIN, encoding="utf-8")
    return path


def test_dry_run_counts_per_class_and_rule_and_downloads_nothing(
        fixtures_dir: Path, data_root: Path) -> None:
    result = _run(data_root, "lila", str(fixtures_dir / "lila" /
                                         "lila_image_urls_and_labels_sample_rows.csv"),
                  "--dry-run")
    assert result.returncode == 0, result.stderr
    counts = json.loads(result.stdout)
    assert counts["classes"]["black_bear"]["rules"]["asian black bear"]["available"] == 5
    assert counts["classes"]["tiger"]["selected"] == 8
    assert not (data_root / "datasets").exists()


def test_run_downloads_every_image_into_the_layout_with_manifest_and_report(
        data_root: Path, tmp_path: Path, spec_file: Path,
        served_rows: Callable[[str], list[dict[str, str]]]) -> None:
    metadata = write_metadata(tmp_path / "meta.csv", served_rows("img"))
    result = _run(data_root, "lila", str(metadata), "--name", "t", "--spec", str(spec_file),
                  *FAST)
    assert result.returncode == 0, result.stderr
    rows = _manifest(data_root, "t")
    assert rows and all(row["status"] == "ok" for row in rows)
    for row in rows:
        assert row["path"] == f"images/{row['split']}/tiger/{Path(row['path']).name}"
        image = data_root / "datasets" / "t" / row["path"]
        assert image.stat().st_size == int(row["bytes"])
        open_image(image)
    report = json.loads((data_root / "datasets" / "t" / "split_report.json").read_text())
    assert report["leak_free"] is True


def test_failures_are_recorded_per_row_and_set_the_exit_code(
        data_root: Path, tmp_path: Path, spec_file: Path,
        served_rows: Callable[[str], list[dict[str, str]]]) -> None:
    rows = served_rows("img")
    bad = rows[1]
    bad["url_gcp"] = bad["url_aws"] = bad["url_azure"] = bad["url_gcp"].replace("/img/",
                                                                              "/html/")
    metadata = write_metadata(tmp_path / "meta.csv", rows)
    result = _run(data_root, "lila", str(metadata), "--name", "t", "--spec", str(spec_file),
                  *FAST)
    assert result.returncode == 1
    summary = json.loads(result.stdout)
    assert summary["failed"] == 1
    assert summary["failure_kinds"] == {"not an image": 1}
    assert summary["complete"] == len(rows) - 1
    failed = [row for row in _manifest(data_root, "t") if row["status"] == "failed"]
    assert [row["image_id"] for row in failed] == [bad["image_id"]]
    assert "not an image" in failed[0]["error"]


def test_killed_run_resumes_without_downloading_any_file_twice(
        data_root: Path, tmp_path: Path, spec_file: Path, served_images: Path,
        served_rows: Callable[[str], list[dict[str, str]]]) -> None:
    with ImageServer(served_images, gate_after=6) as server:
        rows = served_rows("img")
        for row in rows:
            name = Path(row["url_gcp"]).name
            row["url_gcp"] = row["url_aws"] = row["url_azure"] = server.url("gated", name)
        metadata = write_metadata(tmp_path / "meta.csv", rows)
        args = ["lila", str(metadata), "--name", "k", "--spec", str(spec_file),
                "--concurrency", "4", *FAST]
        process = subprocess.Popen(_command(data_root, *args), env=_env(data_root),
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # 6 served + 4 waiting: each worker asks for a new image only after saving its last.
        reached = server.wait_for_requests(6 + 4, timeout=60)
        process.kill()
        process.wait()
        assert reached
        server.open_gate(abandon=True)
        server.gate_after = None
        partial = list((data_root / "datasets" / "k" / "images").rglob("*.*"))
        assert 6 <= len(partial) < len(rows)

        result = _run(data_root, *args)
        assert result.returncode == 0, result.stderr
        manifest = _manifest(data_root, "k")
        assert len(manifest) == len(rows)
        assert all(row["status"] in ("ok", "existing") for row in manifest)
        for row in manifest:
            open_image(data_root / "datasets" / "k" / row["path"])
        assert sorted(server.served.values()) == [1] * len(rows)


def test_images_under_local_root_are_used_instead_of_downloading(
        data_root: Path, tmp_path: Path, spec_file: Path, image_server: ImageServer,
        served_images: Path, served_rows: Callable[[str], list[dict[str, str]]]) -> None:
    mirror = tmp_path / "mounted" / "img"
    shutil.copytree(served_images, mirror)
    metadata = write_metadata(tmp_path / "meta.csv", served_rows("img"))
    result = _run(data_root, "lila", str(metadata), "--name", "t", "--spec", str(spec_file),
                  "--local-root", str(tmp_path / "mounted"), *FAST)
    assert result.returncode == 0, result.stderr
    assert {row["status"] for row in _manifest(data_root, "t")} == {"local"}
    assert sum(image_server.requests.values()) == 0


def test_published_md_results_are_subset_to_the_sampled_images(
        data_root: Path, tmp_path: Path, spec_file: Path,
        served_rows: Callable[[str], list[dict[str, str]]]) -> None:
    rows = served_rows("img")[:4]
    metadata = write_metadata(tmp_path / "meta.csv", rows)
    sampled = [Path(row["url_gcp"]).name for row in rows]
    published = {
        "info": {"format_version": "1.2", "detector": "md_v5a.0.0.pt"},
        "detection_categories": {"1": "animal", "2": "person", "3": "vehicle"},
        "images": [{"file": f"img/{name}", "max_detection_conf": 0.9,
                    "detections": [{"category": "1", "conf": 0.9,
                                    "bbox": [0.1, 0.1, 0.5, 0.5]}]} for name in sampled]
                  + [{"file": "img/not_sampled.jpg", "detections": []}],
    }
    md_file = tmp_path / "wcs_md.json"
    md_file.write_text(json.dumps(published), encoding="utf-8")
    result = _run(data_root, "lila", str(metadata), "--name", "t", "--spec", str(spec_file),
                  "--md-results", f"WCS Camera Traps={md_file}", *FAST)
    assert result.returncode == 0, result.stderr
    folder = data_root / "datasets" / "t"
    md = read_md_results(folder / "md.json")
    assert md.info["format_version"] == "1.6"
    assert sorted(entry.file for entry in md.images) == sorted(
        row["path"] for row in _manifest(data_root, "t"))
    assert all((folder / entry.file).is_file() for entry in md.images)


def _cvwc_folder(root: Path, served_images: Path) -> Path:
    names = sorted(path.name for path in served_images.iterdir() if path.suffix == ".jpg")
    for index, name in enumerate(names[:8]):
        subset = "test" if index < 2 else "trainval"
        (root / subset).mkdir(parents=True, exist_ok=True)
        shutil.copy2(served_images / name, root / subset / f"{index:04d}.jpg")
    return root


@pytest.mark.parametrize("packing", ["folder", "zip", "tar.gz"])
def test_cvwc_import_puts_tigers_in_train_val_and_test(
        data_root: Path, tmp_path: Path, served_images: Path, packing: str) -> None:
    folder = _cvwc_folder(tmp_path / "atrw", served_images)
    source = folder
    if packing == "zip":
        source = tmp_path / "atrw.zip"
        with zipfile.ZipFile(source, "w") as archive:
            for path in sorted(folder.rglob("*.jpg")):
                archive.write(path, path.relative_to(folder).as_posix())
    elif packing == "tar.gz":
        source = tmp_path / "atrw_detection_train.tar.gz"
        with tarfile.open(source, "w:gz") as archive:
            archive.add(folder, arcname=".")
    result = _run(data_root, "cvwc", str(source), "--name", "c", "--fractions", "0.5,0.5,0")
    assert result.returncode == 0, result.stderr
    rows = _manifest(data_root, "c")
    assert len(rows) == 8
    assert {row["class"] for row in rows} == {"tiger"}
    assert sum(row["split"] == "test" for row in rows) == 2
    assert {row["split"] for row in rows} == {"train", "val", "test"}
    for row in rows:
        open_image(data_root / "datasets" / "c" / row["path"])


def test_cvwc_and_lila_share_one_manifest(
        data_root: Path, tmp_path: Path, served_images: Path, spec_file: Path,
        served_rows: Callable[[str], list[dict[str, str]]]) -> None:
    metadata = write_metadata(tmp_path / "meta.csv", served_rows("img")[:3])
    assert _run(data_root, "lila", str(metadata), "--name", "s", "--spec", str(spec_file),
                *FAST).returncode == 0
    source = _cvwc_folder(tmp_path / "atrw", served_images)
    assert _run(data_root, "cvwc", str(source), "--name", "s").returncode == 0
    again = _run(data_root, "lila", str(metadata), "--name", "s", "--spec", str(spec_file),
                 *FAST)
    assert again.returncode == 0, again.stderr
    sources = sorted(row["source"] for row in _manifest(data_root, "s"))
    assert sources == ["cvwc"] * 8 + ["lila"] * 3
    report = json.loads((data_root / "datasets" / "s" / "split_report.json").read_text())
    assert set(report["params"]) == {"lila", "cvwc"}
    assert report["images_without_group"] == {"cvwc": 8}


def test_bad_input_is_a_clear_error_with_exit_code_2(data_root: Path, tmp_path: Path) -> None:
    result = _run(data_root, "lila", str(tmp_path / "absent.csv"))
    assert result.returncode == 2
    assert "absent.csv" in result.stderr


def test_new_selection_removes_images_the_old_one_saved(
        data_root: Path, tmp_path: Path, spec_file: Path,
        served_rows: Callable[[str], list[dict[str, str]]]) -> None:
    rows = served_rows("img")
    metadata = write_metadata(tmp_path / "meta.csv", rows)
    assert _run(data_root, "lila", str(metadata), "--name", "t", "--spec", str(spec_file),
                "--class-samples-default", "6", "--seed", "1", *FAST).returncode == 0
    first = {row["path"] for row in _manifest(data_root, "t")}
    result = _run(data_root, "lila", str(metadata), "--name", "t", "--spec", str(spec_file),
                  "--class-samples-default", "6", "--seed", "2", *FAST)
    assert result.returncode == 0, result.stderr
    listed = {row["path"] for row in _manifest(data_root, "t")}
    images = data_root / "datasets" / "t"
    on_disk = {path.relative_to(images).as_posix() for path in images.rglob("*.*")
               if path.parent != images}
    assert len(listed) == 6
    assert listed != first
    assert on_disk == listed


def test_a_local_root_file_symlinked_from_outside_it_is_downloaded_instead(
        data_root: Path, tmp_path: Path, spec_file: Path, image_server: ImageServer,
        served_images: Path, served_rows: Callable[[str], list[dict[str, str]]]) -> None:
    mirror = tmp_path / "mounted" / "img"
    shutil.copytree(served_images, mirror)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    linked = sorted(mirror.glob("*.jpg"))[0]
    shutil.move(linked, elsewhere / linked.name)
    linked.symlink_to(elsewhere / linked.name)
    metadata = write_metadata(tmp_path / "meta.csv", served_rows("img"))
    result = _run(data_root, "lila", str(metadata), "--name", "t", "--spec", str(spec_file),
                  "--local-root", str(tmp_path / "mounted"), *FAST)
    assert result.returncode == 0, result.stderr
    statuses = sorted(row["status"] for row in _manifest(data_root, "t"))
    assert statuses.count("local") == len(statuses) - 1 and statuses[-1] == "ok"
    assert sum(image_server.requests.values()) == 1


def test_a_cvwc_folder_file_symlinked_from_outside_is_not_imported(
        data_root: Path, tmp_path: Path, served_images: Path) -> None:
    folder = _cvwc_folder(tmp_path / "atrw", served_images)
    outside = tmp_path / "outside.jpg"
    shutil.copy2(next(folder.rglob("*.jpg")), outside)
    (folder / "trainval" / "linked.jpg").symlink_to(outside)
    result = _run(data_root, "cvwc", str(folder), "--name", "c", "--fractions", "0.5,0.5,0")
    assert result.returncode == 0, result.stderr
    rows = _manifest(data_root, "c")
    assert len(rows) == 8 and not any("linked" in row["path"] for row in rows)
