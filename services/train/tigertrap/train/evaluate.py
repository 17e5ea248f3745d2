"""Honest evaluation: per-split reports, confusion matrices and the tiger operating point.

For each test split (``test``, and the out-of-distribution ``test2``) this writes
``<split>_classification_report.csv`` (per-class precision, recall, F1 and support, then accuracy,
macro and weighted averages) and ``<split>_confusion_matrix.png`` (rows normalised to the true
class). Macro averages run over the classes present in the split (support > 0) only: a class
with no image in ``test2`` has no recall to average, and counting it as 0 would make a tiger-only
``test2`` where every tiger is found read as a macro recall of 0.333. Each split's metrics name
the classes the macro averages cover (``macro_classes``) and the ones left out
(``absent_classes``).

The tiger operating point is chosen on the val split only: the highest tiger-score threshold
whose recall on val reaches the target (default 0.95); its precision and recall are then reported
on each test split.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import numpy as np

from tigertrap.core.class_map import ClassMap
from tigertrap.core.paths import atomic_write_bytes, atomic_write_text

__all__ = [
    "classification_report_csv",
    "confusion_matrix_png",
    "macro_over_present",
    "split_metrics",
    "tiger_precision_recall",
    "tiger_threshold",
]

MAX_ANNOTATED_CLASSES = 12


def classification_report_csv(y_true: np.ndarray, y_pred: np.ndarray, class_map: ClassMap,
                              path: Path) -> dict[str, Any]:
    """Write the report CSV (class map order) and return it as scikit-learn's dict."""
    import pandas as pd
    from sklearn.metrics import classification_report

    report = classification_report(y_true, y_pred, labels=list(range(len(class_map))),
                                   target_names=list(class_map.names), output_dict=True,
                                   zero_division=0)
    report = macro_over_present(report, class_map)
    rows = []
    for name, values in report.items():
        if name == "accuracy":
            rows.append({"class": name, "precision": "", "recall": "", "f1-score": values,
                         "support": len(y_true)})
        elif name in ("macro classes", "absent classes"):
            continue
        else:
            rows.append({"class": name, **values})
    atomic_write_text(path, pd.DataFrame(rows).to_csv(index=False))
    return report


def macro_over_present(report: dict[str, Any], class_map: ClassMap) -> dict[str, Any]:
    """``report`` with its ``macro avg`` taken over the classes with support in the split, and
    the classes it covers (``macro classes``) and leaves out (``absent classes``) added."""
    present = [name for name in class_map.names if report[name]["support"] > 0]
    absent = [name for name in class_map.names if report[name]["support"] == 0]
    macro = {key: (float(np.mean([report[name][key] for name in present])) if present else 0.0)
             for key in ("precision", "recall", "f1-score")}
    macro["support"] = report["macro avg"]["support"]
    return {**report, "macro avg": macro, "macro classes": present, "absent classes": absent}


def confusion_matrix_png(y_true: np.ndarray, y_pred: np.ndarray, class_map: ClassMap,
                         path: Path, title: str) -> np.ndarray:
    """Write the row-normalised confusion matrix as a PNG and return the matrix."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay, confusion_matrix

    labels = list(range(len(class_map)))
    matrix = confusion_matrix(y_true, y_pred, labels=labels, normalize="true")
    matrix = np.nan_to_num(matrix)
    size = max(4.0, 0.45 * len(labels) + 2.5)
    figure, axes = plt.subplots(figsize=(size, size))
    display = ConfusionMatrixDisplay(matrix, display_labels=list(class_map.names))
    display.plot(ax=axes, cmap="Blues", include_values=len(labels) <= MAX_ANNOTATED_CLASSES,
                 values_format=".2f", xticks_rotation=90, colorbar=False)
    axes.set_title(title)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    atomic_write_bytes(path, buffer.getvalue())
    return matrix


def tiger_threshold(scores: np.ndarray, is_tiger: np.ndarray, target_recall: float
                    ) -> float | None:
    """The highest threshold ``t`` such that ``scores >= t`` finds ``target_recall`` of the
    tigers; None when there is no tiger to find."""
    positives = np.sort(scores[is_tiger])[::-1]
    if len(positives) == 0:
        return None
    needed = max(1, math.ceil(target_recall * len(positives) - 1e-9))
    return float(positives[needed - 1])


def tiger_precision_recall(scores: np.ndarray, is_tiger: np.ndarray, threshold: float
                           ) -> dict[str, float | int]:
    """Precision and recall of "tiger when the tiger score >= threshold"."""
    flagged = scores >= threshold
    hits = int(np.sum(flagged & is_tiger))
    return {
        "precision": hits / int(flagged.sum()) if flagged.any() else 0.0,
        "recall": hits / int(is_tiger.sum()) if is_tiger.any() else 0.0,
        "tigers": int(is_tiger.sum()),
        "flagged": int(flagged.sum()),
    }


def split_metrics(report: dict[str, Any]) -> dict[str, Any]:
    """The headline numbers of a report (accuracy, macro F1/recall/precision, weighted F1) and
    the classes the macro averages cover and leave out (from :func:`macro_over_present`)."""
    return {
        "accuracy": float(report["accuracy"]),
        "macro_f1": float(report["macro avg"]["f1-score"]),
        "weighted_f1": float(report["weighted avg"]["f1-score"]),
        "macro_recall": float(report["macro avg"]["recall"]),
        "macro_precision": float(report["macro avg"]["precision"]),
        "macro_classes": list(report.get("macro classes", [])),
        "absent_classes": list(report.get("absent classes", [])),
    }
