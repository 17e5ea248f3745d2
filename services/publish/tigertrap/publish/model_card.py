"""The Hugging Face model card: ``README.md`` with YAML metadata, written from the bundle.

Everything in it comes from the verified bundle (``manifest.json``, ``class_map.yaml``,
``metrics/``) and the publish settings; nothing is typed by hand, so the card cannot drift from
the model it describes. The body is ``templates/model_card.md``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from importlib.resources import files
from pathlib import Path
from string import Template
from typing import Any

import yaml

from tigertrap.core.bundle import TIGER, BundleManifest
from tigertrap.core.class_map import ClassMap
from tigertrap.publish.config import PublishSettings

__all__ = ["MAIN_SPLITS", "card_metadata", "default_description", "render_model_card"]

#: The splits the card reports first: the held-out test set and the out-of-distribution set.
MAIN_SPLITS = ("test", "test2")
#: Manifest keys (besides the declared fields) that describe the training data.
TRAINING_DATA_KEYS = ("training_data", "data", "dataset", "datasets", "sources", "splits",
                      "split_counts", "class_counts", "samples")
#: Scalar metrics put into the Hub's ``model-index`` (others stay in the card's tables).
INDEX_METRICS = ("accuracy", "macro_f1", "weighted_f1", "macro_precision", "macro_recall",
                 "top1_accuracy", "top3_accuracy", "balanced_accuracy")
CARD_TEMPLATE = "model_card.md"
#: Per-split keys naming the classes the macro averages cover (written by train's evaluation).
MACRO_COVERAGE_KEYS = ("macro_classes", "absent_classes")


def default_description(manifest: BundleManifest, class_map: ClassMap) -> str:
    """One paragraph saying what the model is, from the manifest alone."""
    backbone = f" on a {manifest.backbone} backbone" if manifest.backbone else ""
    accuracy = _split_scalars(manifest.metrics.get("test", {})).get("accuracy")
    score = f" Accuracy on the held-out test set: {accuracy:.3f}." if accuracy is not None else ""
    return (f"Classifies MegaDetector animal crops into {len(class_map)} classes "
            f"({', '.join(class_map.names)}){backbone}, to find tigers in camera-trap images."
            f"{score}")


def _split_scalars(split_metrics: Any) -> dict[str, float]:
    if not isinstance(split_metrics, Mapping):
        return {}
    return {str(key): float(value) for key, value in split_metrics.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool)}


def _report_splits(manifest: BundleManifest) -> list[str]:
    splits = [split for split in MAIN_SPLITS if split in manifest.metrics]
    return splits + sorted(split for split, value in manifest.metrics.items()
                           if split not in splits and isinstance(value, Mapping))


def card_metadata(manifest: BundleManifest, class_map: ClassMap,
                  settings: PublishSettings) -> dict[str, Any]:
    """The YAML header of the card (Hub model-card metadata)."""
    results = []
    for split in _report_splits(manifest):
        scalars = _split_scalars(manifest.metrics[split])
        metrics = [{"type": name, "name": name.replace("_", " "), "value": round(value, 4)}
                   for name, value in scalars.items() if name in INDEX_METRICS]
        if metrics:
            results.append({"task": {"type": "image-classification",
                                     "name": "Camera-trap species classification"},
                            "dataset": {"type": "camera-traps", "name": split, "split": split},
                            "metrics": metrics})
    metadata: dict[str, Any] = {
        "license": settings.license,
        "library_name": "keras",
        "pipeline_tag": "image-classification",
        "tags": ["camera-traps", "wildlife", "tiger", "megadetector", "addaxai", "mewc",
                 "tigertrap", "onnx", "image-classification"],
    }
    if results:
        metadata["model-index"] = [{"name": manifest.name, "results": results}]
    return metadata


def _table(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _classes_table(class_map: ClassMap) -> str:
    return _table(("index", "class"), list(class_map.as_dict().items()))


def _training_data(manifest: BundleManifest) -> str:
    extra = manifest.model_extra or {}
    found = {key: extra[key] for key in TRAINING_DATA_KEYS if key in extra}
    if not found:
        return "The bundle's manifest does not describe its training data."
    dumped = yaml.safe_dump(found, sort_keys=False, allow_unicode=True).rstrip()
    return f"From the bundle's `manifest.json`:\n\n```yaml\n{dumped}\n```"


def _split_tokens(path: Path) -> set[str]:
    return set(re.split(r"[_\-.\s]+", path.stem.lower()))


def _metric_files(bundle_dir: Path, split: str, suffix: str) -> list[Path]:
    folder = bundle_dir / "metrics"
    if not folder.is_dir():
        return []
    return sorted(path for path in folder.rglob(f"*{suffix}") if split in _split_tokens(path))


def _format(value: float) -> str:
    return f"{value:.4f}".rstrip("0").rstrip(".") if not float(value).is_integer() else str(value)


def _split_section(manifest: BundleManifest, bundle_dir: Path, split: str) -> str:
    scalars = _split_scalars(manifest.metrics[split])
    parts = [f"### {split}"]
    if scalars:
        parts.append(_table(("metric", "value"),
                            [(name, _format(value)) for name, value in scalars.items()]))
    coverage = _macro_coverage(manifest.metrics[split])
    if coverage:
        parts.append(coverage)
    nested = {key: value for key, value in manifest.metrics[split].items()
              if isinstance(value, (Mapping, list)) and key not in MACRO_COVERAGE_KEYS}
    if nested:
        dumped = yaml.safe_dump(nested, sort_keys=False, allow_unicode=True).rstrip()
        parts.append(f"<details><summary>more</summary>\n\n```yaml\n{dumped}\n```\n\n</details>")
    for image in _metric_files(bundle_dir, split, ".png"):
        relative = image.relative_to(bundle_dir).as_posix()
        parts.append(f"Confusion matrix ({split}):\n\n![confusion matrix, {split}]({relative})")
    for report in _metric_files(bundle_dir, split, ".csv"):
        relative = report.relative_to(bundle_dir).as_posix()
        parts.append(f"Per-class precision, recall and F1: [`{relative}`]({relative})")
    return "\n\n".join(parts)


def _macro_coverage(split_metrics: Mapping[str, Any]) -> str:
    """The sentence saying which classes the split's macro averages run over."""
    covered = split_metrics.get("macro_classes")
    if not isinstance(covered, list):
        return ""
    absent = split_metrics.get("absent_classes") or []
    names = ", ".join(f"`{name}`" for name in covered) or "none"
    sentence = f"Macro averages cover the {len(covered)} classes present in this split: {names}."
    if absent:
        sentence += (" Left out, with no image in this split: "
                     + ", ".join(f"`{name}`" for name in absent) + ".")
    return sentence


def _metrics(manifest: BundleManifest, bundle_dir: Path) -> str:
    splits = _report_splits(manifest)
    if not splits:
        return "The bundle's manifest carries no metrics."
    intro = ("`test` is the held-out test set; `test2` is the out-of-distribution tiger set "
             "(other sites and cameras than training).")
    return "\n\n".join([intro, *(_split_section(manifest, bundle_dir, s) for s in splits)])


def _tiger(manifest: BundleManifest, class_map: ClassMap) -> str:
    if TIGER not in class_map.names:
        return "This model has no `tiger` class."
    lines = []
    if manifest.tiger_threshold is not None:
        lines.append(f"Call a crop a tiger when its `tiger` score is at least "
                     f"**{manifest.tiger_threshold:.4g}**: the threshold at which tiger recall "
                     "on the validation set reached its target.")
    else:
        lines.append("The manifest records no tiger threshold; use the top class.")
    rows = []
    for split in _report_splits(manifest):
        for key, value in _split_scalars(manifest.metrics[split]).items():
            if TIGER in key.lower():
                rows.append((split, key, _format(value)))
    operating = (manifest.model_extra or {}).get("tiger_operating_point")
    if isinstance(operating, Mapping):
        dumped = yaml.safe_dump(dict(operating), sort_keys=False).rstrip()
        lines.append(f"```yaml\n{dumped}\n```")
    if rows:
        lines.append(_table(("split", "metric", "value"), rows))
    return "\n\n".join(lines)


def _files_table(sums: Mapping[str, str]) -> str:
    return _table(("file", "sha256"), [(f"`{path}`", f"`{digest}`")
                                       for path, digest in sorted(sums.items())])


def render_model_card(manifest: BundleManifest, class_map: ClassMap, bundle_dir: Path,
                      settings: PublishSettings, sums: Mapping[str, str]) -> str:
    """The whole ``README.md``: YAML metadata, then the body. ``sums`` lists the published files."""
    metadata = yaml.safe_dump(card_metadata(manifest, class_map, settings), sort_keys=False,
                              allow_unicode=True)
    license_text = f"`{settings.license}`" + (f" ({settings.license_url})"
                                               if settings.license_url else "")
    if settings.citation:
        license_text += f"\n\nPlease cite: {settings.citation}"
    template = Template(files("tigertrap.publish").joinpath("templates", CARD_TEMPLATE)
                        .read_text(encoding="utf-8"))
    body = template.substitute(
        title=settings.friendly_name or manifest.name,
        description=settings.description or default_description(manifest, class_map),
        info_link=f" ({settings.info_url})" if settings.info_url else "",
        version=manifest.version, backbone=manifest.backbone or "-",
        recipe=manifest.recipe or "-", input_size=manifest.input_size,
        crop_method=manifest.crop_method, snip_size=manifest.snip_size,
        created=manifest.created or "-", config_hash=manifest.config_hash or "-",
        classes_table=_classes_table(class_map), training_data=_training_data(manifest),
        metrics=_metrics(manifest, bundle_dir), tiger=_tiger(manifest, class_map),
        n_classes=len(class_map), license_text=license_text,
        repo_id=settings.repo_id or "ORG/NAME", name=manifest.name,
        model_id=settings.model_id or manifest.name,
        friendly_name=settings.friendly_name or manifest.name,
        files_table=_files_table(sums),
    )
    return f"---\n{metadata}---\n\n{body}"
