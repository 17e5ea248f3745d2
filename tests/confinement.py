"""Hostile path parameters for every path key the stage contracts declare.

:func:`path_attacks` builds, for each stage and each declared path key, the ways a job could
try to leave the data root: an absolute path, ``..`` segments, a symlink out in the key's own
base folder, and a symlink in a parent (a folder along the path, or the base key's folder,
pointing out). Keys whose base is not the data root (an input folder, the MD file's folder,
``datasets/``) are attacked relative to that base. Every attack points at a victim file in a
folder outside the data root, so a test can prove that nothing there was read, written or
deleted.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tigertrap.core.contract import FolderOf, PathKey, StageContract, Under, contracts

__all__ = ["Attack", "OutsideFolder", "path_attacks"]

ATTACK_KINDS = ("absolute", "dotdot", "symlink_out", "symlink_parent")
#: Enough ``..`` to climb out of any test data root from any base folder.
CLIMB = "../" * 16


@dataclass(frozen=True)
class Attack:
    """One hostile job step: ``params`` for ``stage``, aimed at ``key``."""

    stage: str
    key: str
    kind: str
    params: dict[str, Any]

    @property
    def id(self) -> str:
        return f"{self.stage}.{self.key.upper()}-{self.kind}"


class OutsideFolder:
    """A folder outside the data root holding a victim file; remembers what it held."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.victim = folder / "victim"
        self.victim.write_text("must survive\n")
        (folder / "victim.pt").write_bytes(b"not weights")

    def snapshot(self) -> dict[str, tuple[str, int]]:
        """Every file below the folder with its content hash and mtime."""
        files = {}
        for path in sorted(self.folder.rglob("*")):
            if path.is_file() and not path.is_symlink():
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                files[str(path.relative_to(self.folder))] = (digest, path.stat().st_mtime_ns)
        return files


def _victim_name(spec: PathKey) -> str:
    if spec.key == "md_model":
        return "victim.pt"  # only a weights-file name is a path for MD_MODEL
    return "victim"


def _value(spec: PathKey, text: str) -> Any:
    return {"ds": text} if spec.mapping else text


def _base_params(stage_contract: StageContract, spec: PathKey, root: Path, tag: str,
                 base_folder: str | None = None) -> tuple[dict[str, Any], Path]:
    """Params that give ``spec`` a base folder inside the root (made real unless
    ``base_folder`` is given), and that folder."""
    if isinstance(spec.base, Under):
        return {}, root / spec.base.folder
    base_key = spec.base.keys[0]
    base_spec = stage_contract.spec(base_key)
    assert base_spec is not None
    folder = base_folder or f"datasets/base-{tag}"
    real = root / folder
    if base_folder is None:
        real.mkdir(parents=True, exist_ok=True)
    # A base key without a base of its own given is relative to the data root.
    if base_spec.kind == "dir":
        return {base_key: folder}, real
    return {base_key: f"{folder}/md.json"}, real


def path_attacks(root: Path, outside: OutsideFolder) -> list[Attack]:
    """Every declared path key of every stage, attacked each way (the links are made here)."""
    attacks: list[Attack] = []
    for stage, stage_contract in contracts().items():
        for spec in stage_contract.paths:
            tag = f"{stage}-{spec.key}"
            victim = _victim_name(spec)
            absolute = str(outside.folder / victim)
            attacks.append(Attack(stage, spec.key, "absolute",
                                  {spec.key: _value(spec, absolute)}))
            climbing = f"{CLIMB}{outside.folder.relative_to('/')}/{victim}"
            attacks.append(Attack(stage, spec.key, "dotdot", {spec.key: _value(spec, climbing)}))

            params, base = _base_params(stage_contract, spec, root, tag)
            base.mkdir(parents=True, exist_ok=True)
            link = base / f"out-{tag}"
            if not link.is_symlink():
                link.symlink_to(outside.folder, target_is_directory=True)
            value = link.name if spec.name_only else f"{link.name}/{victim}"
            attacks.append(Attack(stage, spec.key, "symlink_out",
                                  {**params, spec.key: _value(spec, value)}))

            parent = root / "datasets" / f"parent-{tag}"
            parent.parent.mkdir(parents=True, exist_ok=True)
            if not parent.is_symlink():
                parent.symlink_to(outside.folder, target_is_directory=True)
            if isinstance(spec.base, FolderOf):
                # the base key itself runs through the symlink; the key is a plain name
                params, _ = _base_params(stage_contract, spec, root, tag,
                                         base_folder=f"datasets/parent-{tag}")
                attacks.append(Attack(stage, spec.key, "symlink_parent",
                                      {**params, spec.key: _value(spec, victim)}))
            elif not spec.name_only and not spec.base.folder:
                value = f"datasets/parent-{tag}/sub/{victim}"
                attacks.append(Attack(stage, spec.key, "symlink_parent",
                                      {spec.key: _value(spec, value)}))
    for attack in attacks:  # every value is a string path or a mapping of them
        for value in attack.params.values():
            assert isinstance(value, (str, dict)), attack
            if isinstance(value, str):
                assert os.fspath(value)
    return attacks
