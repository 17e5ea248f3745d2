"""Leak-free splits on generated metadata with many locations and sequences."""

from __future__ import annotations

import random
from collections import defaultdict
from pathlib import Path

import pytest

from tests.download.conftest import lila_row, write_metadata
from tigertrap.core.config import load_settings
from tigertrap.download.config import DownloadSettings
from tigertrap.download.lila import plan_lila
from tigertrap.download.manifest import ManifestRow
from tigertrap.download.spec import load_spec
from tigertrap.download.splits import split_report

SPECIES = ["deer", "wild boar", "leopard", "bird"]


@pytest.fixture(scope="module")
def many_locations(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3000 rows: 4 species over 150 locations of 3 datasets, 2-6 frames per sequence."""
    rng = random.Random(3)
    rows = []
    for number in range(3000):
        dataset = ["WCS Camera Traps", "SWG Camera Traps", "NACTI"][number % 3]
        location = rng.randrange(150)
        sequence = f"{location}-{rng.randrange(40)}"
        rows.append(lila_row(dataset_name=dataset, common_name=rng.choice(SPECIES),
                             image_id=f"{dataset} : img{number}",
                             location_id=f"{dataset} : loc{location}",
                             sequence_id=f"{dataset} : {sequence}"))
    return write_metadata(tmp_path_factory.mktemp("meta") / "m.csv", rows)


def _splits_of(rows: list[ManifestRow], key: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        found[getattr(row, key)].add(row.split)
    return found


def _plan(metadata: Path, **settings: object) -> list[ManifestRow]:
    rows, _ = plan_lila(metadata, load_spec(), load_settings(DownloadSettings, **settings))
    return rows


def test_no_location_appears_in_two_splits(many_locations: Path) -> None:
    rows = _plan(many_locations)
    assert len(rows) == 3000
    assert all(len(splits) == 1 for splits in _splits_of(rows, "location").values())


def test_split_by_sequence_keeps_every_sequence_in_one_split(many_locations: Path) -> None:
    rows = _plan(many_locations, split_by="sequence")
    assert all(len(splits) == 1 for splits in _splits_of(rows, "sequence").values())
    assert any(len(splits) > 1 for splits in _splits_of(rows, "location").values())


def test_each_class_comes_close_to_the_fractions(many_locations: Path) -> None:
    rows = _plan(many_locations, train_fraction=0.7, val_fraction=0.2, test_fraction=0.1)
    for class_name in {row.class_name for row in rows}:
        of_class = [row for row in rows if row.class_name == class_name]
        share = {split: sum(row.split == split for row in of_class) / len(of_class)
                 for split in ("train", "val", "test")}
        assert share == pytest.approx({"train": 0.7, "val": 0.2, "test": 0.1}, abs=0.05)


def test_image_path_follows_split_and_class(many_locations: Path) -> None:
    rows = _plan(many_locations)
    assert all(row.path.startswith(f"images/{row.split}/{row.class_name}/") for row in rows)
    assert len({row.path for row in rows}) == len(rows)


def test_split_report_shows_no_leak(many_locations: Path) -> None:
    report = split_report(_plan(many_locations), "location")
    assert report["leak_free"] is True
    assert report["leaks"] == {}
    assert report["sequence_leaks"] == 0
    assert sum(report["images"].values()) == 3000


def test_split_report_names_a_location_found_in_two_splits(many_locations: Path) -> None:
    rows = _plan(many_locations)
    moved = next(row for row in rows if row.split == "train")
    moved.split = "test"
    report = split_report(rows, "location")
    assert report["leak_free"] is False
    assert report["leaks"][moved.location] == ["test", "train"]


def test_holdout_rows_go_to_their_split_whatever_their_location(tmp_path: Path) -> None:
    metadata = write_metadata(tmp_path / "m.csv", [
        lila_row(image_id=f"W : {i}", location_id=f"W : loc{i % 5}",
                 common_name="tiger" if i % 2 else "leopard") for i in range(40)])
    rows = _plan(metadata)
    assert {row.split for row in rows if row.class_name == "tiger"} == {"test2"}
    assert "test2" not in {row.split for row in rows if row.class_name == "leopard"}
    report = split_report(rows, "location")
    assert report["leak_free"] is True
    assert report["holdout_groups_also_in_regular_splits"]["test2"] > 0


def test_ids_that_slug_to_one_name_get_distinct_files(tmp_path: Path) -> None:
    metadata = write_metadata(tmp_path / "m.csv", [
        lila_row(image_id="W : a/b", location_id="W : 1"),
        lila_row(image_id="W : a_b", location_id="W : 1")])
    rows = _plan(metadata)
    assert len({row.path for row in rows}) == 2
