"""Streaming LILA metadata: real fixture rows, zips, quoting, and rule matching."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from tests.download.conftest import LILA_COLUMNS, lila_row, write_metadata
from tigertrap.download.metadata import MetadataError, read_records, scan
from tigertrap.download.spec import load_spec

SAMPLE_32 = "lila/lila_image_urls_and_labels_sample_rows.csv"
SAMPLE_33 = "lila/terainet_lila_rows_with_subset_column.csv"


def _spec(tmp_path: Path, body: str):
    path = tmp_path / "spec.yaml"
    path.write_text(body, encoding="utf-8")
    return load_spec(path)


def _counts(found) -> dict[str, int]:
    totals: dict[str, int] = {}
    for (class_name, _rule), matches in found.matches.items():
        totals[class_name] = totals.get(class_name, 0) + len(matches)
    return {name: count for name, count in totals.items() if count}


def test_real_32_column_rows_parse_into_the_nepal_classes(fixtures_dir: Path) -> None:
    found = scan(fixtures_dir / SAMPLE_32, load_spec(), seed=1)
    assert (found.rows, found.columns, found.malformed) == (23, 32, 0)
    assert _counts(found) == {"tiger": 8, "black_bear": 5, "deer": 4, "bird": 4}


def test_real_33_column_rows_with_extra_column_parse(fixtures_dir: Path) -> None:
    found = scan(fixtures_dir / SAMPLE_33, load_spec(), seed=1)
    assert (found.rows, found.columns) == (20, 33)
    assert _counts(found) == {"tiger": 2, "leopard": 4, "black_bear": 1,
                              "other_carnivores": 6, "deer": 1, "wild_boar": 3, "elephant": 3}


def test_zipped_metadata_reads_like_the_csv(fixtures_dir: Path, tmp_path: Path) -> None:
    archive = tmp_path / "lila_image_urls_and_labels.csv.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as handle:
        handle.write(fixtures_dir / SAMPLE_32, "lila_image_urls_and_labels.csv")
    assert _counts(scan(archive, load_spec(), 1)) == _counts(
        scan(fixtures_dir / SAMPLE_32, load_spec(), 1))


def test_match_ignores_case_and_spacing_of_the_metadata(tmp_path: Path) -> None:
    path = write_metadata(tmp_path / "m.csv", [
        lila_row(image_id="d : 1", common_name="Asian  Black Bear"),
        lila_row(image_id="d : 2", common_name="asian black bear cub"),
    ])
    spec = _spec(tmp_path, "classes:\n  bear:\n    rules:\n"
                           "      - {common_name: asian black bear}\n")
    assert _counts(scan(path, spec, 1)) == {"bear": 1}


def test_taxon_rule_matches_any_taxonomy_column(tmp_path: Path) -> None:
    path = write_metadata(tmp_path / "m.csv", [
        lila_row(image_id="d : 1", common_name="leopard", family="felidae"),
        lila_row(image_id="d : 2", common_name="dhole", family="canidae"),
    ])
    spec = _spec(tmp_path, "classes:\n  cats:\n    rules:\n      - {taxon: Felidae}\n")
    assert _counts(scan(path, spec, 1)) == {"cats": 1}


def test_row_goes_to_the_first_class_that_matches(tmp_path: Path) -> None:
    path = write_metadata(tmp_path / "m.csv", [lila_row(image_id="d : 1")])
    spec = _spec(tmp_path, "classes:\n  tiger:\n    rules:\n      - {common_name: tiger}\n"
                           "  cats:\n    rules:\n      - {family: felidae}\n")
    assert _counts(scan(path, spec, 1)) == {"tiger": 1}


def test_quoted_field_with_comma_and_newline_stays_one_record(tmp_path: Path) -> None:
    path = write_metadata(tmp_path / "m.csv", [
        lila_row(image_id="d : 1", original_label="tiger,\nadult"),
        lila_row(image_id="d : 2"),
    ])
    spec = load_spec()
    found = scan(path, spec, 1)
    assert found.rows == 2
    rows = dict(read_records(path, [0, 1]))
    assert rows[0]["original_label"] == "tiger,\nadult"
    assert rows[1]["image_id"] == "d : 2"


def test_missing_required_column_is_named(tmp_path: Path) -> None:
    columns = [name for name in LILA_COLUMNS if name != "location_id"]
    path = write_metadata(tmp_path / "m.csv", [lila_row()], columns)
    with pytest.raises(MetadataError, match="location_id"):
        scan(path, load_spec(), 1)


def test_rule_on_a_column_the_file_lacks_is_named(tmp_path: Path) -> None:
    path = write_metadata(tmp_path / "m.csv", [lila_row()])
    spec = _spec(tmp_path, "classes:\n  x:\n    rules:\n      - {subgenus: tigris}\n")
    with pytest.raises(MetadataError, match="subgenus"):
        scan(path, spec, 1)


def test_read_records_returns_only_the_wanted_rows(fixtures_dir: Path) -> None:
    rows = list(read_records(fixtures_dir / SAMPLE_32, [3, 0, 22]))
    assert [number for number, _ in rows] == [0, 3, 22]
    assert rows[2][1]["common_name"] == "bobcat"


def test_scan_reports_progress_and_stops_when_the_report_raises(
        fixtures_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tigertrap.core.jobs import JobCancelled
    from tigertrap.download import metadata

    monkeypatch.setattr(metadata, "REPORT_EVERY", 5)
    seen: list[int] = []

    def report(rows: int) -> None:
        seen.append(rows)
        if rows >= 10:
            raise JobCancelled("cancelled")

    with pytest.raises(JobCancelled):
        scan(fixtures_dir / SAMPLE_32, load_spec(), 1, report)
    assert seen == [5, 10]
