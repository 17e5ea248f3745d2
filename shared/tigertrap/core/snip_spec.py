"""``snips.json``: how a folder of snips was cut, written by snip and read by train.

A classifier must be trained on crops cut the way classify will cut them, and classify cuts
them as the bundle's manifest says (``crop_method``, ``snip_size``). Before this file, the
crop crossed from snip to train only because a person set ``SNIP_SIZE`` and ``CROP_METHOD``
twice. Now snip writes, atomically, beside ``snips.csv`` (and in its ``--by-class`` folder,
which train takes as ``DATA_DIR``)::

    {"format": "tigertrap.snips/1", "snip_size": 600, "crop_method": "exact",
     "jpeg_quality": 95, "draft": true}

``snip_size`` and ``crop_method`` shape the crop (:func:`tigertrap.core.crops.crop_detection`);
``jpeg_quality`` and ``draft`` (decoding large JPEGs at a reduced scale) shape its pixels and
are recorded for the bundle's provenance. Train reads the file from the ``SNIPS_CSV``'s folder
or from ``DATA_DIR`` (:func:`find_snip_spec`): a crop setting train was not given is taken
from it, one given with another value stops training naming the key
(:func:`reconcile_crop_settings`), and the record goes into the bundle manifest under
``snips``. Folders without the file (made by hand, or by MEWC) train on train's own settings.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tigertrap.core.config import ConfigError
from tigertrap.core.crops import DEFAULT_SNIP_SIZE
from tigertrap.core.paths import atomic_write_json

__all__ = [
    "CROP_KEYS",
    "FORMAT",
    "SNIPS_JSON",
    "SnipSpec",
    "SnipSpecError",
    "find_snip_spec",
    "read_snip_spec",
    "reconcile_crop_settings",
    "write_snip_spec",
]

SNIPS_JSON = "snips.json"
FORMAT = "tigertrap.snips/1"
#: The settings, shared by snip and train (and the bundle manifest), that shape a crop.
CROP_KEYS = ("snip_size", "crop_method")


class SnipSpecError(ValueError):
    """A ``snips.json`` that cannot be read; the message names the file."""


class SnipSpec(BaseModel):
    """How the snips of one folder were cut."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    format: Literal["tigertrap.snips/1"] = FORMAT
    snip_size: int = Field(DEFAULT_SNIP_SIZE, gt=0)
    crop_method: Literal["exact", "square"] = "exact"
    jpeg_quality: int = Field(95, ge=1, le=100)
    draft: bool = True


def write_snip_spec(folder: Path, spec: SnipSpec) -> Path:
    """Write ``<folder>/snips.json`` atomically; the file written."""
    path = Path(folder) / SNIPS_JSON
    atomic_write_json(path, spec.model_dump(mode="json"), indent=1)
    return path


def read_snip_spec(path: Path) -> SnipSpec:
    """The record in ``path``.

    Raises:
        SnipSpecError: not JSON, or not a snips record (the message says which field).
    """
    try:
        return SnipSpec.model_validate(json.loads(Path(path).read_text(encoding="utf-8")))
    except (OSError, json.JSONDecodeError) as error:
        raise SnipSpecError(f"{path}: cannot read the snips record ({error})") from error
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "(file)"
        raise SnipSpecError(f"{path}: field {field}: {first['msg']}") from error


def find_snip_spec(*folders: Path | None) -> tuple[Path, SnipSpec] | None:
    """The first ``snips.json`` in ``folders`` (None entries skipped), with its path."""
    for folder in folders:
        if folder is not None and (Path(folder) / SNIPS_JSON).is_file():
            path = Path(folder) / SNIPS_JSON
            return path, read_snip_spec(path)
    return None


def reconcile_crop_settings(spec: SnipSpec, where: Path, values: Mapping[str, Any],
                            given: set[str]) -> dict[str, Any]:
    """The crop settings a stage must use with snips cut as ``spec`` says.

    Args:
        spec: the snips' record (read from ``where``).
        values: the stage's current ``snip_size`` and ``crop_method``.
        given: which of them the user set (the others are the stage's defaults).

    Returns:
        ``{key: value}`` for every key of :data:`CROP_KEYS`, taken from ``spec``.

    Raises:
        ConfigError: a key the user set to another value than the snips were cut with; the
            message names the key, both values and the way out.
    """
    recorded = spec.model_dump()
    for key in CROP_KEYS:
        if key in given and values[key] != recorded[key]:
            raise ConfigError(key.upper(), f"is {values[key]!r} but the snips were cut with "
                                           f"{recorded[key]!r} ({where}); leave {key.upper()} "
                                           "unset to take it from there, or snip again")
    return {key: recorded[key] for key in CROP_KEYS}
