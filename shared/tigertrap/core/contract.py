"""What each pipeline stage may touch: one declaration of every path key, used everywhere.

A job names files and folders by setting keys (``INPUT_DIR``, ``MD_FILE``, ``CHECKPOINT_FILE``,
``DATASET_NAME``...). Each such key is declared here once, per stage, with

* its **base**: the folder its value is relative to — the data root, a fixed folder under it
  (``datasets/`` for ``DATASET_NAME``), or another key's folder (snip's ``MD_FILE`` is relative
  to ``INPUT_DIR``, detect's ``CHECKPOINT_FILE`` to the MD file's folder);
* its **access** (read or write) and **kind** (file or folder), and its default when the
  default is itself a path (so that a default can be confined too);
* whether it may climb out of its base with ``..`` (``MD_FILE=../md.json`` beside an images
  folder) — it never leaves the data root.

:meth:`StageContract.resolve` turns a job's parameters into absolute paths, refusing absolute
values, ``..`` where not allowed, NUL bytes, and anything whose real path (symlinks resolved,
the bases' too) lies outside the data root. The HTTP API calls it before a job is queued (422),
``tigertrap jobs submit`` before sending, and every stage task again, in the worker, right
before it runs — the files may have changed in between.

This is the seed of the stage contract: the declarations are data, in core, so that a process
that submits jobs (the API's image) needs none of the stages' code.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PureWindowsPath
from typing import Any, Literal, TypeVar

from tigertrap.core.config import StageSettings, load_settings
from tigertrap.core.paths import DataRoot, PathOutsideDataRoot, within

__all__ = [
    "CONTRACTS",
    "FolderOf",
    "PathKey",
    "PathRefused",
    "StageContract",
    "Under",
    "contract",
    "job_settings",
    "looks_like_weights_file",
]

S = TypeVar("S", bound=StageSettings)
Access = Literal["read", "write"]
Kind = Literal["file", "dir"]

#: File name endings of detector weights: ``MD_MODEL`` is a path only when it names a file.
WEIGHT_SUFFIXES = (".pt", ".pth", ".pb", ".onnx")


class PathRefused(PathOutsideDataRoot):
    """A job parameter naming a path outside where it belongs; the message names the key."""

    def __init__(self, stage: str, key: str, value: object, reason: str) -> None:
        ValueError.__init__(self, f"{stage}.{key.upper()}: path {str(value)!r} is not allowed: "
                                  f"{reason}; paths are relative to the data root")
        self.path = str(value)
        self.reason = reason
        self.stage = stage
        self.key = key.upper()


@dataclass(frozen=True)
class Under:
    """Base: a fixed folder under the data root (``""``: the root itself)."""

    folder: str = ""


@dataclass(frozen=True)
class FolderOf:
    """Base: the folder of the first of ``keys`` that has a value (the key's own folder for a
    folder key, the folder holding it for a file key); the data root when none has."""

    keys: tuple[str, ...]


@dataclass(frozen=True)
class PathKey:
    """One setting key that names a file or folder."""

    key: str
    access: Access = "read"
    kind: Kind = "file"
    base: Under | FolderOf = field(default_factory=Under)
    #: The stage's default when it is a path that must be confined too (``md.json``).
    default: str | None = None
    #: ``..`` may climb out of the base (never out of the data root).
    climb: bool = False
    #: The value is a path only when this holds (``MD_MODEL``: a name or a weights file).
    when: Callable[[str], bool] | None = None
    #: The value is ``{name: path}`` (download's ``MD_RESULTS``).
    mapping: bool = False
    #: The value is one folder name the stage joins itself; it is checked and kept as given.
    name_only: bool = False
    description: str = ""


@dataclass(frozen=True)
class StageContract:
    """A stage's path keys, in an order where every base comes before the keys using it."""

    stage: str
    paths: tuple[PathKey, ...]

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for spec in self.paths:
            if isinstance(spec.base, FolderOf):
                missing = [key for key in spec.base.keys if key not in seen]
                if missing:
                    raise ValueError(f"{self.stage}.{spec.key}: base key(s) {missing} must be "
                                     "declared before it")
            seen.add(spec.key)

    @property
    def keys(self) -> frozenset[str]:
        """The lower-case names of the path keys."""
        return frozenset(spec.key for spec in self.paths)

    def spec(self, key: str) -> PathKey | None:
        """The declaration of ``key`` (any case), or None when it is no path key."""
        return next((s for s in self.paths if s.key == key.lower()), None)

    def resolve(self, params: Mapping[str, Any], root: DataRoot, *,
                defaults: bool = True) -> dict[str, Any]:
        """Every path key of ``params`` (keys in any case) as an absolute, confined path.

        Args:
            params: the job's parameters for this stage; other keys are ignored.
            root: the data root.
            defaults: also confine the declared defaults of keys that are not given (the
                task does; the API checks only what the user gave).

        Returns:
            ``{key (lower case): value}`` for the path keys that have a value: a ``Path``, a
            ``{name: Path}`` dict for mapping keys, the given string for name-only keys.

        Raises:
            PathRefused: a value is absolute, holds ``..`` where not allowed or a NUL byte, or
                resolves (through symlinks anywhere along it) outside the data root.
        """
        given = {str(key).lower(): value for key, value in params.items()}
        folders: dict[str, Path] = {}
        resolved: dict[str, Any] = {}
        for spec in self.paths:
            value = given.get(spec.key)
            if value is None or value == "":
                if not defaults or spec.default is None:
                    continue
                value = spec.default
            base = self._base(spec, folders, root)
            if spec.mapping:
                if not isinstance(value, Mapping):
                    raise PathRefused(self.stage, spec.key, value, "give a mapping of names "
                                                                   "to paths")
                resolved[spec.key] = {name: self._confine(spec, path, base, root)
                                      for name, path in value.items()}
                continue
            if isinstance(value, os.PathLike):
                value = os.fspath(value)
            if not isinstance(value, str):
                raise PathRefused(self.stage, spec.key, value, "a path must be a string")
            if spec.when is not None and not spec.when(value):
                continue
            path = self._confine(spec, value, base, root)
            folders[spec.key] = path if spec.kind == "dir" else path.parent
            resolved[spec.key] = value if spec.name_only else path
        return resolved

    def refused(self, params: Mapping[str, Any], root: DataRoot) -> PathRefused | None:
        """The first refusal :meth:`resolve` would raise for the given values, or None."""
        try:
            self.resolve(params, root, defaults=False)
        except PathRefused as error:
            return error
        return None

    @staticmethod
    def _base(spec: PathKey, folders: Mapping[str, Path], root: DataRoot) -> Path:
        if isinstance(spec.base, Under):
            return root.root / spec.base.folder if spec.base.folder else root.root
        for key in spec.base.keys:
            if key in folders:
                return folders[key]
        return root.root

    def _confine(self, spec: PathKey, value: object, base: Path, root: DataRoot) -> Path:
        text = os.fspath(value) if isinstance(value, os.PathLike) else value
        if not isinstance(text, str):
            raise PathRefused(self.stage, spec.key, value, "a path must be a string")

        def refuse(reason: str) -> PathRefused:
            return PathRefused(self.stage, spec.key, text, reason)

        if not text.strip():
            raise refuse("the path is empty")
        if "\x00" in text:
            raise refuse("it contains a NUL byte")
        if text.startswith(("/", "\\", "~")) or Path(text).is_absolute() or \
                PureWindowsPath(text).drive:
            raise refuse("absolute paths are refused")
        parts = Path(text.replace("\\", "/")).parts
        if spec.name_only and (len(parts) != 1 or parts[0] in (".", "..")):
            raise refuse("give a single folder name, without '/' or '..'")
        if ".." in parts and not spec.climb:
            raise refuse("'..' segments are refused")
        joined = Path(os.path.normpath(base / text))
        if not within(joined, root.root, resolve=False):
            raise refuse("it climbs out of the data root")
        real = joined.resolve()
        if not within(real, root.root):
            raise refuse("it resolves outside the data root (a symlink along the path "
                         "points out)")
        return joined


def looks_like_weights_file(model: str) -> bool:
    """``MD_MODEL`` names a file (a path or a weights suffix), not a MegaDetector short name."""
    return model.lower().endswith(WEIGHT_SUFFIXES) or "/" in model or "\\" in model


def _keys(*specs: PathKey) -> tuple[PathKey, ...]:
    return specs


def _not_a_word(words: Iterable[str]) -> Callable[[str], bool]:
    reserved = frozenset(words)
    return lambda value: value.strip().lower() not in reserved


CONTRACTS: dict[str, StageContract] = {contract.stage: contract for contract in (
    StageContract("download", _keys(
        PathKey("metadata", description="LILA metadata CSV or zip"),
        PathKey("class_spec", description="class spec YAML"),
        PathKey("local_root", kind="dir", description="LILA images already on disk"),
        PathKey("md_results", mapping=True, description="dataset -> published MD results"),
        PathKey("cvwc_source", description="CVWC2019 archive or folder"),
        PathKey("dataset_name", access="write", kind="dir", base=Under("datasets"),
                default="nepal", name_only=True, description="writes datasets/<name>/"),
    )),
    StageContract("detect", _keys(
        PathKey("input_dir", kind="dir", description="images to detect on"),
        PathKey("image_list", description="a .txt/.json list or a manifest .csv"),
        PathKey("models_dir", kind="dir", default="models/detectors",
                description="where weights are looked for"),
        PathKey("md_model", when=looks_like_weights_file, description="a weights file"),
        PathKey("md_file", access="write", base=FolderOf(("input_dir", "image_list")),
                default="md.json", climb=True, description="the MD output file"),
        PathKey("checkpoint_file", access="write", base=FolderOf(("md_file",)),
                description="checkpoint beside the output (deleted after the run)"),
    )),
    StageContract("snip", _keys(
        PathKey("input_dir", kind="dir", default=".", description="images and the MD file"),
        PathKey("manifest", description="download manifest.csv (labels, splits)"),
        PathKey("md_file", base=FolderOf(("input_dir",)), default="md.json", climb=True,
                description="MD file to snip"),
        PathKey("snip_dir", access="write", kind="dir", base=FolderOf(("input_dir",)),
                default="snips", climb=True, description="crops and snips.csv"),
        PathKey("by_class_dir", access="write", kind="dir", base=FolderOf(("snip_dir",)),
                default="by_class", description="the by-class layout"),
    )),
    StageContract("train", _keys(
        PathKey("data_dir", kind="dir", description="train/val/test folders"),
        PathKey("snips_csv", description="snips CSV with label and split"),
        PathKey("class_map", description="class_map.yaml"),
        PathKey("weights", when=_not_a_word(("", "none", "null", "random", "imagenet")),
                description="a local weights file"),
        PathKey("output_path", access="write", kind="dir", default="runs/train",
                description="run folder"),
        PathKey("savefile", access="write", kind="dir", base=Under("models/classifiers"),
                default="tigertrap", name_only=True, description="bundle name"),
        PathKey("bundle_path", access="write", kind="dir", description="bundle folder"),
    )),
    StageContract("classify", _keys(
        PathKey("md_file", description="MD file to classify"),
        PathKey("model", kind="dir", description="classifier bundle folder"),
        PathKey("sequence_file", description="CSV with path and sequence columns"),
        PathKey("output_dir", access="write", kind="dir",
                description="default: the MD file's folder"),
        *(PathKey(key, access="write", base=FolderOf(("output_dir", "md_file")),
                  default=default, description=description)
          for key, default, description in (
              ("output_md", "md_classified.json", "classified MD file"),
              ("pred_csv", "predictions.csv", "one row per detection"),
              ("images_csv", "images.csv", "one row per image"),
              ("long_csv", "predictions_long.csv", "long table"))),
    )),
)}


def contract(stage: str) -> StageContract:
    """The contract of ``stage``. Raises KeyError naming the known stages."""
    try:
        return CONTRACTS[stage]
    except KeyError:
        raise KeyError(f"unknown stage {stage!r}; stages are {', '.join(CONTRACTS)}") from None


def job_settings(stage: str, settings_cls: type[S], params: Mapping[str, Any],
                 root: DataRoot) -> S:
    """A job's settings for ``stage``, every path key confined and made absolute.

    The settings are loaded once as given (types checked, env file and defaults applied), the
    effective value of every declared path key — given or default — is confined with
    :meth:`StageContract.resolve`, and the settings are loaded again with those paths.

    Raises:
        PathRefused: a path key's value leaves the data root (see :meth:`StageContract.resolve`).
        tigertrap.core.config.ConfigError: a value of the wrong type.
    """
    stage_contract = contract(stage)
    given = {str(key).lower(): value for key, value in params.items()}
    loaded = load_settings(settings_cls, **given)
    effective = {spec.key: getattr(loaded, spec.key) for spec in stage_contract.paths
                 if hasattr(loaded, spec.key)}
    confined = stage_contract.resolve(effective, root, defaults=False)
    for key, value in confined.items():
        if isinstance(value, Mapping):
            given[key] = {name: str(path) for name, path in value.items()}
        else:
            given[key] = str(value)
    return load_settings(settings_cls, **given)
