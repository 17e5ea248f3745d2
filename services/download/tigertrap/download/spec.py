"""The class spec: which LILA BC metadata rows make up each target class.

A YAML file (the default, ``nepal.yaml``, ships with the package) lists the classes in order.
Each class has matching ``rules`` (column -> value or values, compared after :func:`normalise`),
an optional ``target`` image count (else ``CLASS_SAMPLES_DEFAULT``), an optional ``holdout``
split that all its rows go to (the seed puts every LILA tiger into ``test2``), and per rule an
optional ``quota`` (e.g. how many Asian versus American black bears). A row belongs to the first
class, and within it to the first rule, that matches.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "DEFAULT_SPEC",
    "REGULAR_SPLITS",
    "TAXONOMY_COLUMNS",
    "TAXON_KEY",
    "ClassSpec",
    "Rule",
    "SpecError",
    "TargetClass",
    "load_spec",
    "normalise",
]

#: The spec that ships with the package: the seed's Nepal classes.
DEFAULT_SPEC = "nepal.yaml"
#: Splits drawn by fraction; any other split name is a holdout (e.g. ``test2``).
REGULAR_SPLITS = ("train", "val", "test")
#: Rule key that matches any taxonomy column.
TAXON_KEY = "taxon"
TAXONOMY_COLUMNS = (
    "common_name", "scientific_name", "kingdom", "phylum", "subphylum", "superclass", "class",
    "subclass", "infraclass", "superorder", "order", "suborder", "infraorder", "superfamily",
    "family", "subfamily", "tribe", "genus", "subgenus", "species", "subspecies", "variety",
)
_RULE_KEYS = {"name", "quota", "holdout"}
_CLASS_KEYS = {"rules", "target", "holdout"}


class SpecError(ValueError):
    """A class spec that cannot be used; the message names the class and rule."""


def normalise(value: str) -> str:
    """Lower case, surrounding spaces removed, inner runs of whitespace made one space."""
    return " ".join(value.lower().split())


@dataclass(frozen=True)
class Rule:
    """One matching rule: every column in ``conditions`` must hold one of its values."""

    name: str
    conditions: dict[str, frozenset[str]]
    quota: int | None = None
    holdout: str | None = None



@dataclass(frozen=True)
class TargetClass:
    """A class of the model and the rules that fill it."""

    name: str
    rules: tuple[Rule, ...]
    target: int | None = None
    holdout: str | None = None

    def rule_holdout(self, rule: Rule) -> str | None:
        """The holdout split of rows matched by ``rule`` (rule setting over class setting)."""
        return rule.holdout or self.holdout


@dataclass(frozen=True)
class ClassSpec:
    """All target classes, in order of precedence."""

    classes: tuple[TargetClass, ...]
    source: str = field(default="", compare=False)

    @property
    def names(self) -> list[str]:
        return [target.name for target in self.classes]

    def columns(self) -> set[str]:
        """Metadata columns the rules read (``taxon`` expanded to the taxonomy columns)."""
        used: set[str] = set()
        for target in self.classes:
            for rule in target.rules:
                used.update(rule.conditions)
        return used


def _values(where: str, key: str, raw: Any) -> frozenset[str]:
    items = raw if isinstance(raw, list) else [raw]
    if not items or not all(isinstance(item, (str, int, float)) for item in items):
        raise SpecError(f"{where}: {key} must be a value or a list of values")
    values = frozenset(normalise(str(item)) for item in items)
    if "" in values:
        raise SpecError(f"{where}: {key} has an empty value")
    return values


def _positive(where: str, key: str, raw: Any) -> int | None:
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 0:
        raise SpecError(f"{where}: {key} must be a whole number >= 0, got {raw!r}")
    return raw


def _holdout(where: str, raw: Any) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, str) or not raw.strip() or raw in REGULAR_SPLITS:
        raise SpecError(f"{where}: holdout must name a split other than "
                        f"{', '.join(REGULAR_SPLITS)} (e.g. test2), got {raw!r}")
    return raw.strip()


def _rule(where: str, raw: Any) -> Rule:
    if not isinstance(raw, dict):
        raise SpecError(f"{where}: a rule must be a mapping of column: value(s)")
    conditions = {str(key): _values(where, str(key), value)
                  for key, value in raw.items() if key not in _RULE_KEYS}
    if not conditions:
        raise SpecError(f"{where}: a rule needs at least one column to match")
    default_name = "; ".join("|".join(sorted(values)) if len(conditions) == 1
                             else f"{key}={'|'.join(sorted(values))}"
                             for key, values in conditions.items())
    return Rule(name=str(raw.get("name") or default_name), conditions=conditions,
                quota=_positive(where, "quota", raw.get("quota")),
                holdout=_holdout(where, raw.get("holdout")))


def _target_class(name: str, raw: Any) -> TargetClass:
    where = f"class {name!r}"
    if not isinstance(raw, dict) or not isinstance(raw.get("rules"), list) or not raw["rules"]:
        raise SpecError(f"{where}: give a non-empty list of rules")
    unknown = sorted(set(raw) - _CLASS_KEYS)
    if unknown:
        raise SpecError(f"{where}: unknown key(s) {', '.join(unknown)}; use "
                        f"{', '.join(sorted(_CLASS_KEYS))}")
    rules = tuple(_rule(f"{where} rule {index + 1}", rule)
                  for index, rule in enumerate(raw["rules"]))
    names = [rule.name for rule in rules]
    if len(set(names)) != len(names):
        raise SpecError(f"{where}: rule names repeat; give each rule a distinct name")
    return TargetClass(name=name, rules=rules, target=_positive(where, "target", raw.get("target")),
                       holdout=_holdout(where, raw.get("holdout")))


def load_spec(path: str | os.PathLike[str] | None = None) -> ClassSpec:
    """Read a class spec YAML; ``None`` reads the packaged default (:data:`DEFAULT_SPEC`).

    Raises:
        SpecError: unreadable file or a class or rule that is malformed (the message says which).
    """
    if path is None:
        text, source = files(__package__).joinpath(DEFAULT_SPEC).read_text("utf-8"), DEFAULT_SPEC
    else:
        try:
            text, source = Path(path).read_text(encoding="utf-8"), str(path)
        except OSError as error:
            raise SpecError(f"class spec {path}: {error.strerror or error}") from error
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise SpecError(f"class spec {source}: not valid YAML ({error})") from error
    if not isinstance(data, dict) or not isinstance(data.get("classes"), dict) \
            or not data["classes"]:
        raise SpecError(f"class spec {source}: expected a top-level 'classes' mapping")
    classes = tuple(_target_class(str(name), raw) for name, raw in data["classes"].items())
    return ClassSpec(classes=classes, source=source)
