"""Per-split averages: macro averages run over the classes present in the split, and say so."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from tigertrap.core.class_map import ClassMap
from tigertrap.train.evaluate import classification_report_csv, split_metrics

CLASS_MAP = ClassMap(["tiger", "leopard", "other"])


def test_tiger_only_split_where_every_tiger_is_found_has_macro_recall_one(
        tmp_path: Path) -> None:
    truth = np.zeros(5, dtype=int)
    report = classification_report_csv(truth, truth.copy(), CLASS_MAP, tmp_path / "r.csv")
    metrics = split_metrics(report)
    assert metrics["macro_recall"] == 1.0
    assert metrics["macro_f1"] == 1.0
    assert metrics["macro_precision"] == 1.0
    assert metrics["macro_classes"] == ["tiger"]
    assert metrics["absent_classes"] == ["leopard", "other"]
    row = pd.read_csv(tmp_path / "r.csv").set_index("class").loc["macro avg"]
    assert row["recall"] == 1.0


def test_macro_average_counts_misses_of_present_classes_only(tmp_path: Path) -> None:
    truth = np.array([0, 0, 0, 0, 1, 1])
    predicted = np.array([0, 0, 2, 2, 1, 1])  # half the tigers called "other"
    metrics = split_metrics(classification_report_csv(truth, predicted, CLASS_MAP,
                                                      tmp_path / "r.csv"))
    assert metrics["macro_classes"] == ["tiger", "leopard"]
    assert metrics["macro_recall"] == 0.75  # (0.5 + 1.0) / 2, "other" has no support
    assert metrics["accuracy"] == 4 / 6
