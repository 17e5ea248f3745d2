"""Benchmark: scan and sample LILA metadata, tigertrap's streaming reader against pandas.

Builds a synthetic ``lila_image_urls_and_labels.csv`` of ``--rows`` rows (default 5 million)
from the shapes of the real rows in ``../shared/fixtures/lila`` (same columns, URL patterns,
id prefixes, empty datetimes; about 5 % of rows in the Nepal classes, as in LILA), then runs in
separate subprocesses, so each peak RSS is its own:

- tigertrap: ``plan_lila`` with the packaged Nepal spec (scan, spread sampling, second read of
  the chosen rows, leak-free splits);
- pandas: ``pandas.read_csv`` of the whole file and a filter on the Nepal common names (no
  sampling or splitting at all).

Usage: .venv/bin/python scripts/bench/download_scan.py [--rows N] [--keep DIR]
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO.parent / "shared" / "fixtures" / "lila"
#: Share of rows in the Nepal classes (LILA: about 1.16 million of 23.7 million).
TARGET_SHARE = 0.05
OTHER_NAMES = ["empty", "human", "zebra", "wildebeest", "gazelle thomsons", "impala", "cattle",
               "domestic dog", "raccoon", "coyote", "elk", "mule deer", "white-tailed deer",
               "red fox", "squirrel", "vehicle", "hare", "baboon", "warthog", "giraffe"]


def _templates() -> list[dict[str, str]]:
    rows = []
    for path in sorted(FIXTURES.glob("*.csv")):
        with open(path, encoding="utf-8", newline="") as handle:
            rows.extend(csv.DictReader(handle))
    return rows


def build_metadata(path: Path, rows: int, seed: int = 0) -> None:
    """Write ``rows`` synthetic rows shaped like the fixture rows (32 columns)."""
    rng = random.Random(seed)
    templates = _templates()
    targets = sorted({row["common_name"] for row in templates})
    with open(FIXTURES / "lila_image_urls_and_labels_sample_rows.csv", encoding="utf-8") as f:
        columns = next(csv.reader(f))
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(columns)
        for number in range(rows):
            row = dict(rng.choice(templates))
            dataset = row["dataset_name"]
            location = rng.randrange(3000)
            folder = f"{number // 2000:04d}/{number % 2000:04d}"
            for key in ("url_gcp", "url_aws", "url_azure"):
                base = row[key].rsplit("/", 2)[0]
                row[key] = f"{base}/{folder}.jpg"
            row["image_id"] = f"{dataset} : {number:08x}-92d4-11e9-8a91-000d3a74c7de"
            row["location_id"] = f"{dataset} : {location}"
            row["sequence_id"] = f"{dataset} : loc{location}-seq{rng.randrange(400)}"
            if rng.random() >= TARGET_SHARE:
                row["common_name"] = row["original_label"] = rng.choice(OTHER_NAMES)
            else:
                row["common_name"] = rng.choice(targets)
            if rng.random() < 0.1:
                row["datetime"] = ""
            writer.writerow([row.get(column, "") for column in columns])


def run_tigertrap(path: Path) -> int:
    from tigertrap.core.config import load_settings
    from tigertrap.download.config import DownloadSettings
    from tigertrap.download.lila import plan_lila
    from tigertrap.download.spec import load_spec

    rows, _ = plan_lila(path, load_spec(), load_settings(DownloadSettings))
    return len(rows)


def run_pandas(path: Path) -> int:
    import pandas as pd

    from tigertrap.download.spec import load_spec

    names = {value for target in load_spec().classes for rule in target.rules
             for value in rule.conditions.get("common_name", ())}
    frame = pd.read_csv(path)
    normalised = frame["common_name"].astype(str).str.lower().str.split().str.join(" ")
    return int(normalised.isin(names).sum())


def child(kind: str, path: Path) -> None:
    start = time.perf_counter()
    selected = run_tigertrap(path) if kind == "tigertrap" else run_pandas(path)
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "peak_mb": peak_mb, "rows_out": selected}))


def measure(kind: str, path: Path) -> dict[str, float]:
    output = subprocess.run([sys.executable, __file__, "--child", kind, str(path)],
                            check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--keep", type=Path, help="reuse/keep the generated CSV in this folder")
    parser.add_argument("--child", nargs=2, metavar=("KIND", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]))
        return
    folder = args.keep or Path(tempfile.mkdtemp(prefix="tigertrap-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"lila_synthetic_{args.rows}.csv"
    try:
        if not path.exists():
            start = time.perf_counter()
            build_metadata(path, args.rows)
            print(f"built {args.rows:,} rows ({path.stat().st_size / 1e9:.2f} GB) in "
                  f"{time.perf_counter() - start:.0f} s")
        tigertrap = measure("tigertrap", path)
        pandas = measure("pandas", path)
        print(f"{'':28}{'wall s':>10}{'peak RSS MB':>14}{'rows out':>10}")
        print(f"{'tigertrap scan+sample':28}{tigertrap['seconds']:>10.1f}"
              f"{tigertrap['peak_mb']:>14.0f}{tigertrap['rows_out']:>10}")
        print(f"{'pandas read_csv + filter':28}{pandas['seconds']:>10.1f}"
              f"{pandas['peak_mb']:>14.0f}{pandas['rows_out']:>10}")
        print(f"time ratio pandas/tigertrap: {pandas['seconds'] / tigertrap['seconds']:.2f}x; "
              f"memory ratio pandas/tigertrap: {pandas['peak_mb'] / tigertrap['peak_mb']:.1f}x")
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
