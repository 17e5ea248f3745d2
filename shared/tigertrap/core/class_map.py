"""The class map: which class name each model output index stands for.

One explicit order, written next to every model as ``class_map.yaml`` (``0: tiger``,
``1: leopard``, ...). Folder listings, string-sorted keys and label encoders never decide the
order; every other order a consumer needs (AddaxAI's ``class_list.yaml``, a Hugging Face
config) is derived from this one.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import yaml

from tigertrap.core.paths import atomic_write_text

__all__ = ["CLASS_MAP_FILE", "ClassMap", "ClassMapError"]

CLASS_MAP_FILE = "class_map.yaml"


class ClassMapError(ValueError):
    """A class map whose indices are not 0..n-1 or whose names repeat."""


class ClassMap:
    """Output index (0-based) to class name, in the model's output order."""

    def __init__(self, names: Iterable[str]) -> None:
        self.names: tuple[str, ...] = tuple(str(name) for name in names)
        if not self.names:
            raise ClassMapError("a class map needs at least one class")
        duplicates = sorted({n for n in self.names if self.names.count(n) > 1})
        if duplicates:
            raise ClassMapError(f"class names repeat: {', '.join(duplicates)}")
        self._index = {name: index for index, name in enumerate(self.names)}

    def __len__(self) -> int:
        return len(self.names)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ClassMap) and other.names == self.names

    def __hash__(self) -> int:
        return hash(self.names)

    def __repr__(self) -> str:
        return f"ClassMap({list(self.names)!r})"

    def name(self, index: int) -> str:
        """The class name of output ``index``."""
        return self.names[index]

    def index(self, name: str) -> int:
        """The output index of class ``name``; KeyError names the unknown class."""
        try:
            return self._index[name]
        except KeyError:
            raise KeyError(f"unknown class {name!r}; known: {', '.join(self.names)}") from None

    def as_dict(self) -> dict[int, str]:
        """``{index: name}`` in output order."""
        return dict(enumerate(self.names))

    @classmethod
    def from_dict(cls, mapping: dict[object, object]) -> ClassMap:
        """Build from ``{index: name}``; indices may be ints or digit strings, any order."""
        try:
            by_index = {int(str(key)): str(value) for key, value in mapping.items()}
        except ValueError as error:
            raise ClassMapError(f"class map keys must be integers: {error}") from error
        expected = list(range(len(by_index)))
        if sorted(by_index) != expected:
            raise ClassMapError(f"class map indices must be 0..{len(by_index) - 1} without gaps, "
                                f"got {sorted(by_index)}")
        return cls(by_index[index] for index in expected)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ClassMap:
        """Read ``class_map.yaml`` (``index: name`` lines)."""
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ClassMapError(f"{path}: expected a mapping of index to class name")
        try:
            return cls.from_dict(data)
        except ClassMapError as error:
            raise ClassMapError(f"{path}: {error}") from error

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write ``class_map.yaml`` atomically, one ``index: name`` line per class in order."""
        atomic_write_text(path, yaml.safe_dump(self.as_dict(), sort_keys=False,
                                               allow_unicode=True))
