"""Honest evaluation: per-split reports, confusion matrices and the tiger operating point.

For each test split (``test``, and the out-of-distribution ``test2``) this writes
``<split>_classification_report.csv`` (per-class precision, recall, F1 and support, then accuracy,
macro and weighted averages) and ``<split>_confusion_matrix.png`` (rows normalised to the true
class). The tiger operating point is chosen on the val split only: the highest tiger-score
threshold whose recall on val reaches the target (default 0.95); its precision and recall are then
reported on each test split.
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
    rows = []
    for name, values in report.items():
        if name == "accuracy":
            rows.append({"class": name, "precision": "", "recall": "", "f1-score": values,
                         "support": len(y_true)})
        else:
            rows.append({"class": name, **values})
    atomic_write_text(path, pd.DataFrame(rows).to_csv(index=False))
    return report


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


def split_metrics(report: dict[str, Any]) -> dict[str, float]:
    """The headline numbers of a report: accuracy, macro and weighted F1."""
    return {
        "accuracy": float(report["accuracy"]),
        "macro_f1": float(report["macro avg"]["f1-score"]),
        "weighted_f1": float(report["weighted avg"]["f1-score"]),
        "macro_recall": float(report["macro avg"]["recall"]),
    }
