"""Finding MegaDetector weights: by short name or local file, checked, never guessed.

A model is named the way MegaDetector names it (``MDV5A``, ``MDV5B``, ``MDv1000-redwood``, any
string ``megadetector.detection.run_detector`` knows) or given as a local ``.pt`` file. A named
model's weights are looked for, in order:

1. MegaDetector's environment-variable convention: ``MDV5A=/path/to/md_v5a.0.0.pt``;
2. the models folder, under the canonical file name (``<models>/md_v5a.0.1.pt``; for MDv5 the
   original ``md_v5a.0.0.pt`` release is accepted too, it is the file most people have);
3. megadetector's own download (when allowed and online), then kept in the models folder.

When ``<weights file>.sha256`` exists beside the weights (``sha256sum`` output or the bare
hex digest), the file must match it. The weights' file name goes into ``info.detector`` and
the model's typical and conservative thresholds into ``info.detector_metadata``.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tigertrap.core.bundle import file_sha256

__all__ = [
    "SHA256_SUFFIX",
    "DetectorWeights",
    "UnknownModelError",
    "WeightsChecksumError",
    "WeightsNotFound",
    "detector_metadata",
    "is_weights_file",
    "resolve_weights",
    "same_detector",
    "verify_sha256",
]

SHA256_SUFFIX = ".sha256"
WEIGHT_SUFFIXES = (".pt", ".pth", ".pb")

#: MegaDetector re-released MDv5 as v5a.0.1/v5b.0.1 (same model, re-saved); the short names
#: now point at those, but the v5.0.0 files are what most installations hold.
_EARLIER_RELEASES = {"v5a.0.1": ("v5a.0.0",), "v5b.0.1": ("v5b.0.0",)}

#: MegaDetector's defaults for a model whose version it does not know.
_UNKNOWN_TYPICAL_THRESHOLD = 0.2
_UNKNOWN_CONSERVATIVE_THRESHOLD = 0.1


class WeightsNotFound(FileNotFoundError):
    """No weights for the requested model; the message says which file to put where."""


class WeightsChecksumError(ValueError):
    """A weights file that does not match the sha256 written beside it."""


class UnknownModelError(ValueError):
    """A model name that is neither a MegaDetector short name nor a weights file."""


@dataclass(frozen=True)
class DetectorWeights:
    """A weights file ready to load, with what the output file records about it."""

    path: Path
    #: The canonical file name, written as ``info.detector``.
    file_name: str
    metadata: dict[str, Any] = field(default_factory=dict)


def _run_detector() -> Any:
    from megadetector.detection import run_detector

    return run_detector


def _known_version(model: str) -> str | None:
    run_detector = _run_detector()
    name = model.lower()
    version = run_detector.model_string_to_model_version.get(name, name)
    return version if version in run_detector.known_models else None


def _file_name_of(version: str) -> str:
    return _run_detector().known_models[version]["url"].rsplit("/", 1)[-1]


def detector_metadata(file_name: str, path: Path | None = None) -> dict[str, Any]:
    """``info.detector_metadata`` for weights called ``file_name``: MegaDetector's version
    string and its typical and conservative thresholds (MegaDetector's defaults when unknown)."""
    run_detector = _run_detector()
    version = run_detector.get_detector_version_from_filename(file_name)
    if version not in run_detector.known_models and path is not None and path.suffix == ".pt":
        version = run_detector.get_detector_version_from_model_file(str(path)) or "unknown"
    known = dict(run_detector.known_models.get(version, {}))
    return {
        "megadetector_version": version if known else "unknown",
        "typical_detection_threshold": known.get("typical_detection_threshold",
                                                 _UNKNOWN_TYPICAL_THRESHOLD),
        "conservative_detection_threshold": known.get("conservative_detection_threshold",
                                                      _UNKNOWN_CONSERVATIVE_THRESHOLD),
    }


def same_detector(file_a: str, file_b: str) -> bool:
    """True when two weights file names are the same MegaDetector model (``md_v5a.0.0.pt``
    and its re-release ``md_v5a.0.1.pt`` are), or the same file name."""
    if file_a == file_b:
        return True
    run_detector = _run_detector()
    version_a = run_detector.get_detector_version_from_filename(file_a)
    version_b = run_detector.get_detector_version_from_filename(file_b)
    return version_a == version_b and version_a in run_detector.known_models


def _expected_sha256(weights: Path) -> str | None:
    sidecar = weights.with_name(weights.name + SHA256_SUFFIX)
    if not sidecar.is_file():
        return None
    words = sidecar.read_text(encoding="utf-8").split()
    if not words:
        raise WeightsChecksumError(f"{sidecar} is empty; it should hold the sha256 of "
                                   f"{weights.name}")
    return words[0].lower()


def verify_sha256(weights: Path) -> None:
    """Check ``weights`` against ``<weights>.sha256`` when that file exists.

    Raises:
        WeightsChecksumError: the digests differ (a corrupt or different file).
    """
    expected = _expected_sha256(weights)
    if expected is None:
        return
    actual = file_sha256(weights)
    if actual != expected:
        raise WeightsChecksumError(
            f"{weights} does not match {weights.name}{SHA256_SUFFIX}: expected sha256 "
            f"{expected}, the file has {actual}; replace the weights file (corrupt or "
            f"incomplete copy?)")


def is_weights_file(model: str) -> bool:
    """True when ``model`` names a file rather than a MegaDetector short name."""
    if _known_version(model) is not None:
        return False
    return model.lower().endswith(WEIGHT_SUFFIXES) or "/" in model or os.sep in model


def _local_weights(model: str) -> DetectorWeights:
    path = Path(model).expanduser()
    if not path.is_file():
        raise WeightsNotFound(f"detector weights file {path} not found")
    return DetectorWeights(path=path.resolve(), file_name=path.name,
                           metadata=detector_metadata(path.name, path))


def _from_environment(model: str) -> Path | None:
    for variable in dict.fromkeys((model, model.upper())):
        value = os.environ.get(variable)
        if value:
            path = Path(value).expanduser()
            if not path.is_file():
                raise WeightsNotFound(f"environment variable {variable}={value}: no such file; "
                                      f"point it at the {model} weights file")
            return path
    return None


def _download(model: str, models_dir: Path) -> Path | None:
    try:
        fetched = _run_detector().try_download_known_detector(model)
    except Exception:  # offline, or any network failure: reported as missing weights
        return None
    if not fetched or not Path(fetched).is_file():
        return None
    kept = models_dir / Path(fetched).name
    try:
        models_dir.mkdir(parents=True, exist_ok=True)
        partial = kept.with_name(f".{kept.name}.partial")
        shutil.copyfile(fetched, partial)
        os.replace(partial, kept)
    except OSError:  # a read-only models folder: use megadetector's cached copy
        return Path(fetched)
    return kept


def _not_found_message(model: str, models_dir: Path, names: list[str], download: bool) -> str:
    alternatives = " or ".join(names)
    reason = ("downloading failed (no network?)" if download
              else "downloading is switched off (DOWNLOAD_WEIGHTS=false)")
    return (f"MegaDetector weights for {model} not found: put {alternatives} in {models_dir}, "
            f"or set the environment variable {model.upper()}=/path/to/{names[0]}; "
            f"{reason}")


def resolve_weights(model: str, *, models_dir: Path, download: bool = True) -> DetectorWeights:
    """Find (or fetch) the weights of ``model`` and check them.

    Args:
        model: a MegaDetector short name or a path to a weights file.
        models_dir: the models folder (``<data>/models/detectors``).
        download: let megadetector download a known model that is not found locally.

    Raises:
        WeightsNotFound: nothing found; the message names the file and where to put it.
        WeightsChecksumError: the file does not match its ``.sha256``.
        UnknownModelError: ``model`` is neither a known name nor a file.
    """
    version = _known_version(model)
    if version is None:
        if is_weights_file(model) or Path(model).is_file():
            weights = _local_weights(model)
            verify_sha256(weights.path)
            return weights
        known = sorted(_run_detector().model_string_to_model_version)
        raise UnknownModelError(f"unknown MegaDetector model {model!r}: give a weights file "
                                f"(.pt) or one of {', '.join(known)}")
    names = [_file_name_of(v) for v in (version, *_EARLIER_RELEASES.get(version, ()))]
    path = _from_environment(model)
    if path is None:
        path = next((models_dir / name for name in names if (models_dir / name).is_file()), None)
    if path is None and download:
        path = _download(model, models_dir)
    if path is None:
        raise WeightsNotFound(_not_found_message(model, models_dir, names, download))
    verify_sha256(path)
    file_name = path.name if path.name in names else names[0]
    return DetectorWeights(path=path.resolve(), file_name=file_name,
                           metadata=detector_metadata(file_name, path))
