"""Promotion: a candidate bundle becomes the served model, by an explicit command or API call
only (retraining never promotes on its own).

:func:`promote_bundle` verifies the candidate (its manifest's sha256 of every file), copies it
beside the served folder ``<data>/models/classifiers/<MODEL>`` and swaps it in with renames; the
bundle it replaces is kept as ``<MODEL>.replaced-<UTC time>`` so a promotion can be undone by
hand. ``promotion.json`` inside the promoted bundle folder's parent records what was promoted
when. A running API keeps the model it loaded until it restarts.
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import datetime, timezone
from pathlib import Path

from tigertrap.core.bundle import verify_bundle

__all__ = ["PROMOTIONS_LOG", "PromotionError", "promote_bundle"]

#: One JSON line per promotion, in the classifiers folder.
PROMOTIONS_LOG = "promotions.jsonl"


class PromotionError(ValueError):
    """A promotion that cannot be made; the message says why."""


def promote_bundle(candidate: Path, served: Path) -> dict[str, str | None]:
    """Make ``candidate`` the bundle at ``served``; return what was done (``served``, the
    ``replaced`` folder or None, the ``candidate`` and the time).

    Raises:
        PromotionError: the candidate is the served folder itself.
        tigertrap.core.bundle.BundleError: the candidate fails verification.
    """
    candidate, served = Path(candidate).resolve(), Path(served)
    if candidate == served.resolve():
        raise PromotionError(f"{candidate} is already the served bundle")
    manifest, _ = verify_bundle(candidate)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    served.parent.mkdir(parents=True, exist_ok=True)
    staging = served.with_name(f".{served.name}.promoting-{stamp}")
    shutil.copytree(candidate, staging)
    replaced = None
    if served.exists():
        replaced = served.with_name(f"{served.name}.replaced-{stamp}")
        os.replace(served, replaced)
    os.replace(staging, served)
    record = {"served": str(served), "replaced": str(replaced) if replaced else None,
              "candidate": str(candidate), "bundle": f"{manifest.name} {manifest.version}",
              "promoted_at": datetime.now(timezone.utc).isoformat()}
    with (served.parent / PROMOTIONS_LOG).open("a", encoding="utf-8") as log:
        log.write(json.dumps(record) + "\n")
    return record
