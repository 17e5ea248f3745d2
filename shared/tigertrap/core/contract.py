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

Beyond paths, a contract says what else the system needs to know about a stage: every setting
key it takes (so an unknown key is refused at submission), its settings class and the function
that runs it (import paths, loaded only in the worker), which result keys are paths, which of
its inputs an earlier stage of a pipeline provides (:class:`Feed`), and how it splits into
shards and merges them back (:class:`Sharding`). :mod:`tigertrap.core.stages` declares the
pipeline's stages; other packages add stages through the entry-point group
``tigertrap.stages`` (a name -> :class:`StageContract`), with no edit in core. The declarations
are data, so that a process that submits jobs (the API's image) needs none of the stages' code.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PureWindowsPath
from typing import Any, Literal, TypeVar

from tigertrap.core.config import StageSettings, load_settings
from tigertrap.core.paths import DataRoot, PathOutsideDataRoot, within

__all__ = [
    "STAGE_GROUP",
    "Feed",
    "FolderOf",
    "PathKey",
    "PathRefused",
    "Sharding",
    "StageContract",
    "Under",
    "UnknownKey",
    "contract",
    "contracts",
    "job_settings",
    "load_object",
    "looks_like_weights_file",
    "queue_names",
    "stage_names",
]

S = TypeVar("S", bound=StageSettings)
Access = Literal["read", "write"]
Kind = Literal["file", "dir"]

#: Entry-point group through which packages add stages (name -> StageContract).
STAGE_GROUP = "tigertrap.stages"
#: The job-level key that sets a sharded stage's shard size (images per shard; 0: no shards).
SHARD_SIZE_KEY = "shard_size"

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


class UnknownKey(ValueError):
    """A job parameter that is no setting of its stage; the message names it."""

    def __init__(self, stage: str, key: str, known: Iterable[str]) -> None:
        close = difflib.get_close_matches(key.lower(), list(known), n=1)
        hint = f"; did you mean {close[0].upper()}?" if close else ""
        super().__init__(f"{stage}.{key.upper()}: unknown setting of the {stage} stage{hint}")
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
class Feed:
    """In a pipeline, ``key`` defaults to a result of an earlier stage: the first of
    ``results`` (dotted keys into the result, e.g. ``lila.manifest``) that it has, taken whole
    (``path``), as its folder (``folder``) or as its file name (``name``)."""

    key: str
    stage: str
    results: tuple[str, ...]
    part: Literal["path", "folder", "name"] = "path"


@dataclass(frozen=True)
class Sharding:
    """How a stage splits into shards that any worker runs, and merges them back.

    Functions are import paths (``module:function``), loaded in the worker:

    * ``split(settings, shard_size, job_dir) -> list[dict]``: the shards (JSON-able), in order;
      one shard or none means the stage runs whole;
    * ``run_shard(settings, shard, progress, image_root) -> dict``: one shard, checkpointed and
      resumable like the whole stage, writing only files named after its index;
    * ``merge(settings, shards, image_root) -> dict``: the stage's result, its files written
      as an unsharded run writes them, from the shards' files (never from the shard results
      alone, which a redelivered shard may report twice).
    """

    split: str
    run_shard: str
    merge: str
    #: Images per shard: minutes of GPU work for one shard, not hours.
    default_size: int


@dataclass(frozen=True)
class StageContract:
    """What the system knows about a stage (see the module docstring). ``paths`` are in an
    order where every base comes before the keys using it."""

    stage: str
    paths: tuple[PathKey, ...]
    #: Every setting key (lower case); empty: not checked at submission.
    settings_keys: frozenset[str] = frozenset()
    #: ``module:Class`` of the stage's settings.
    settings: str = ""
    #: ``module:function``: ``run(settings, progress, image_root) -> dict`` (the whole stage).
    run: str = ""
    #: Result keys holding absolute paths; reported relative to the data root.
    result_paths: tuple[str, ...] = ()
    feeds: tuple[Feed, ...] = ()
    sharding: Sharding | None = None
    #: The queue (and so the worker service) it runs on; default its own. A stage whose code
    #: lives in another stage's service runs on that one's queue (rde and export on classify's).
    queue: str = ""
    description: str = ""

    @property
    def queue_name(self) -> str:
        """The Celery queue of the stage's tasks."""
        return self.queue or self.stage

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

    def check_keys(self, params: Mapping[str, Any]) -> None:
        """Raise :class:`UnknownKey` for the first parameter that is no setting of the stage
        (``SHARD_SIZE`` is a job-level key every sharded stage takes)."""
        if not self.settings_keys:
            return
        known = self.settings_keys | ({SHARD_SIZE_KEY} if self.sharding else set())
        for key in params:
            if str(key).lower() not in known:
                raise UnknownKey(self.stage, str(key), known)

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


def load_object(path: str) -> Any:
    """The object an import path ``module:name`` names (a contract's settings or function)."""
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


@functools.cache
def contracts() -> dict[str, StageContract]:
    """Every stage's contract: the pipeline's own (:mod:`tigertrap.core.stages`) and those
    installed packages add through the ``tigertrap.stages`` entry points, by stage name."""
    from importlib.metadata import entry_points

    from tigertrap.core.stages import BUILTIN_STAGES

    found = dict(BUILTIN_STAGES)
    for entry in entry_points(group=STAGE_GROUP):
        if entry.name not in found:
            loaded = entry.load()
            if not isinstance(loaded, StageContract) or loaded.stage != entry.name:
                raise TypeError(f"entry point {entry.value} of {STAGE_GROUP} must be the "
                                f"StageContract of stage {entry.name!r}")
            found[entry.name] = loaded
    return found


def stage_names() -> tuple[str, ...]:
    """The stages, the pipeline's own first in pipeline order."""
    return tuple(contracts())


def queue_names() -> tuple[str, ...]:
    """The queues, one per worker service, in stage order."""
    return tuple(dict.fromkeys(c.queue_name for c in contracts().values()))


def contract(stage: str) -> StageContract:
    """The contract of ``stage``. Raises KeyError naming the known stages."""
    known = contracts()
    try:
        return known[stage]
    except KeyError:
        raise KeyError(f"unknown stage {stage!r}; stages are {', '.join(known)}") from None


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
    given = {str(key).lower(): value for key, value in params.items()
             if str(key).lower() != SHARD_SIZE_KEY}
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
