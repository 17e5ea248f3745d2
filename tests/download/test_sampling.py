"""Seeded sampling: quotas, spread over locations and sequences, reproducibility."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

from tests.download.conftest import lila_row, write_metadata
from tigertrap.core.config import load_settings
from tigertrap.download.config import DownloadSettings
from tigertrap.download.lila import plan_lila
from tigertrap.download.sampling import allocate
from tigertrap.download.spec import load_spec

SPEC = "classes:\n  deer:\n    target: {target}\n    rules:\n      - {{common_name: deer}}\n"


def _skewed_metadata(path: Path) -> Path:
    """One camera with 2000 deer frames in 100 sequences, 30 cameras with 5 frames each."""
    rows = [lila_row(common_name="deer", image_id=f"D : big{i}", location_id="D : big",
                     sequence_id=f"D : bigseq{i // 20}") for i in range(2000)]
    rows += [lila_row(common_name="deer", image_id=f"D : s{loc}-{i}", location_id=f"D : {loc}",
                      sequence_id=f"D : seq{loc}-{i // 2}") for loc in range(30) for i in range(5)]
    random.Random(0).shuffle(rows)
    return write_metadata(path, rows)


def _plan(metadata: Path, tmp_path: Path, target: int, seed: int = 7):
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(SPEC.format(target=target), encoding="utf-8")
    settings = load_settings(DownloadSettings, seed=seed)
    rows, _counts = plan_lila(metadata, load_spec(spec_file), settings)
    return rows


def test_quota_rules_get_their_quota_and_the_rest_share_the_target() -> None:
    assert allocate(100, [1000, 1000, 1000], [10, None, None]) == [10, 45, 45]


def test_rule_with_few_rows_passes_its_share_to_the_others() -> None:
    assert allocate(100, [5, 1000, 1000], [None, None, None]) == [5, 48, 47]


def test_allocation_never_exceeds_what_is_available() -> None:
    assert allocate(4000, [321, 10], [None, 50]) == [321, 10]


def test_sample_takes_every_camera_before_many_frames_of_one(tmp_path: Path) -> None:
    rows = _plan(_skewed_metadata(tmp_path / "m.csv"), tmp_path, target=100)
    per_location = Counter(row.location for row in rows)
    assert len(rows) == 100
    assert len(per_location) == 31
    assert per_location["D : big"] <= 5


def test_frames_from_one_camera_come_from_different_sequences(tmp_path: Path) -> None:
    rows = _plan(_skewed_metadata(tmp_path / "m.csv"), tmp_path, target=300)
    big = [row for row in rows if row.location == "D : big"]
    assert len(big) == 300 - 150
    assert len({row.sequence for row in big}) == 100  # every sequence before a second frame


def test_same_seed_gives_the_same_sample_and_another_seed_another(tmp_path: Path) -> None:
    metadata = _skewed_metadata(tmp_path / "m.csv")
    first = {row.image_id for row in _plan(metadata, tmp_path, 100, seed=1)}
    again = {row.image_id for row in _plan(metadata, tmp_path, 100, seed=1)}
    other = {row.image_id for row in _plan(metadata, tmp_path, 100, seed=2)}
    assert first == again
    assert first != other
