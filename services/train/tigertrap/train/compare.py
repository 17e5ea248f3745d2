"""Two bundles side by side on the same test sets: what retraining changed.

:func:`compare_bundles` predicts each labelled split (``test``, ``test2``, and ``review``, the
reviewed frames held out by ``tigertrap review export``) with both bundles' ``model.keras`` and
writes to the output folder:

* ``comparison.json``: per split and bundle, accuracy, macro F1 and macro recall over the
  classes present in the split (:func:`tigertrap.train.evaluate.macro_over_present`), and tiger
  precision and recall at *each bundle's own* operating point (its manifest's
  ``tiger_threshold``; the top class when it has none); the number of frames whose answer
  changed, and which got better or worse;
* ``comparison.md``: the same as a side-by-side table, for people;
* ``changed_frames.csv``: every frame whose top class changed: split, path, truth, previous and
  new answer with scores, and whether each is right.

Nothing here promotes a bundle: that is an explicit step (``tigertrap promote``).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from tigertrap.core.bundle import BundleManifest, verify_bundle
from tigertrap.core.class_map import ClassMap
from tigertrap.core.paths import atomic_write_text
from tigertrap.train.data import LabelledImages
from tigertrap.train.evaluate import macro_over_present, tiger_precision_recall

__all__ = ["CHANGED_FRAMES", "COMPARISON_JSON", "COMPARISON_MD", "compare_bundles",
           "predict_bundle", "split_scores"]

COMPARISON_JSON = "comparison.json"
COMPARISON_MD = "comparison.md"
CHANGED_FRAMES = "changed_frames.csv"
PREDICT_BATCH = 32
ROLES = ("previous", "new")


def predict_bundle(bundle_dir: Path, images: LabelledImages, model: Any = None
                   ) -> np.ndarray:
    """Class scores of ``images`` by the bundle's ``model.keras`` (raw 0-255 RGB in); pass
    ``model`` when it is loaded already."""
    import keras

    from tigertrap.train.data import decoded_dataset

    manifest, _ = verify_bundle(bundle_dir)
    if model is None:
        model = keras.saving.load_model(Path(bundle_dir) / "model.keras", compile=False)
    batches = [np.asarray(model.predict_on_batch(np.asarray(batch, dtype="float32")))
               for batch, _ in decoded_dataset(images, manifest.input_size).batch(PREDICT_BATCH)]
    return np.concatenate(batches) if batches else np.zeros((0, len(manifest.classes)))


def split_scores(probabilities: np.ndarray, truth: np.ndarray, class_map: ClassMap,
                 manifest: BundleManifest, tiger_class: str) -> dict[str, Any]:
    """Accuracy, macro F1/recall over the present classes, tiger precision and recall at the
    bundle's operating point."""
    from sklearn.metrics import classification_report

    predicted = probabilities.argmax(axis=1)
    report = macro_over_present(classification_report(
        truth, predicted, labels=list(range(len(class_map))), target_names=list(class_map.names),
        output_dict=True, zero_division=0), class_map)
    scores: dict[str, Any] = {
        "images": len(truth),
        "accuracy": float(np.mean(predicted == truth)) if len(truth) else 0.0,
        "macro_f1": float(report["macro avg"]["f1-score"]),
        "macro_recall": float(report["macro avg"]["recall"]),
        "macro_classes": report["macro classes"],
    }
    if tiger_class in class_map.names:
        index = class_map.index(tiger_class)
        threshold = manifest.tiger_threshold
        if threshold is None:
            flagged_scores = (predicted == index).astype(float)
            threshold_used: float | None = None
            point = tiger_precision_recall(flagged_scores, truth == index, 0.5)
        else:
            threshold_used = float(threshold)
            point = tiger_precision_recall(probabilities[:, index], truth == index, threshold)
        scores["tiger"] = {"threshold": threshold_used, **point}
    return scores


def _changed(split: str, images: LabelledImages, class_map: ClassMap,
             previous: np.ndarray, new: np.ndarray) -> list[dict[str, Any]]:
    before, after = previous.argmax(axis=1), new.argmax(axis=1)
    rows = []
    for i in np.flatnonzero(before != after):
        truth = int(images.labels[i])
        rows.append({"split": split, "path": images.paths[i],
                     "truth": class_map.name(truth),
                     "previous": class_map.name(int(before[i])),
                     "previous_score": round(float(previous[i, before[i]]), 4),
                     "new": class_map.name(int(after[i])),
                     "new_score": round(float(new[i, after[i]]), 4),
                     "previous_right": bool(before[i] == truth),
                     "new_right": bool(after[i] == truth)})
    return rows


def _markdown(report: dict[str, Any]) -> str:
    lines = ["# Retrained bundle compared with the previous one\n",
             f"previous: `{report['previous']}`  \nnew: `{report['new']}`\n",
             "| split | images | metric | previous | new |", "|---|---|---|---|---|"]
    for split, entry in report["splits"].items():
        old, new = entry["previous"], entry["new"]
        for metric in ("accuracy", "macro_f1", "macro_recall"):
            lines.append(f"| {split} | {old['images']} | {metric} | {old[metric]:.4f} | "
                         f"{new[metric]:.4f} |")
        if "tiger" in old:
            for key in ("recall", "precision"):
                lines.append(f"| {split} | {old['images']} | tiger {key} (at its threshold) | "
                             f"{old['tiger'][key]:.4f} | {new['tiger'][key]:.4f} |")
        lines.append(f"| {split} | {old['images']} | answers changed (better / worse) | | "
                     f"{entry['changed']} ({entry['better']} / {entry['worse']}) |")
    lines.append("\nMacro averages cover the classes present in each split. Promotion of the "
                 "new bundle is a separate, explicit step (`tigertrap promote`).")
    return "\n".join(lines) + "\n"


def compare_bundles(previous: Path, new: Path, splits: Mapping[str, LabelledImages],
                    out_dir: Path, *, tiger_class: str = "tiger") -> dict[str, Any]:
    """Evaluate both bundles on every non-empty split of ``splits``; write the report files
    and return ``comparison.json``'s content.

    Raises:
        ValueError: the bundles' class maps differ (their answers cannot be compared).
    """
    old_manifest, class_map = verify_bundle(previous)
    new_manifest, new_map = verify_bundle(new)
    if list(class_map.names) != list(new_map.names):
        raise ValueError(f"the bundles' class maps differ ({list(class_map.names)} vs "
                         f"{list(new_map.names)}); their answers cannot be compared")
    import keras

    models = {path: keras.saving.load_model(Path(path) / "model.keras", compile=False)
              for path in (previous, new)}
    report: dict[str, Any] = {"previous": str(previous), "new": str(new), "splits": {}}
    changed_rows: list[dict[str, Any]] = []
    for split, images in splits.items():
        if not len(images):
            continue
        old_p = predict_bundle(previous, images, models[previous])
        new_p = predict_bundle(new, images, models[new])
        changed = _changed(split, images, class_map, old_p, new_p)
        changed_rows += changed
        report["splits"][split] = {
            "previous": split_scores(old_p, images.labels, class_map, old_manifest, tiger_class),
            "new": split_scores(new_p, images.labels, class_map, new_manifest, tiger_class),
            "changed": len(changed),
            "better": sum(1 for row in changed if row["new_right"] and not row["previous_right"]),
            "worse": sum(1 for row in changed if row["previous_right"] and not row["new_right"]),
        }
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / COMPARISON_JSON, json.dumps(report, indent=2))
    atomic_write_text(out_dir / COMPARISON_MD, _markdown(report))
    buffer = io.StringIO()
    columns = ["split", "path", "truth", "previous", "previous_score", "new", "new_score",
               "previous_right", "new_right"]
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(changed_rows)
    atomic_write_text(out_dir / CHANGED_FRAMES, buffer.getvalue())
    return report
