"""Training logs: a local CSV of per-epoch metrics and a Weights & Biases run.

wandb runs offline by default (``WANDB_MODE=offline``), writing its run folder inside the
training output folder (``<output>/wandb/offline-run-*``) where ``wandb sync`` can upload it
later; ``online`` logs live when the user has configured wandb (``WANDB_API_KEY``); ``disabled``
turns it off. The run id is kept in the training state, so a resumed run continues the same
wandb run.
"""

from __future__ import annotations

import csv
import io
import logging
import os
from pathlib import Path
from typing import Any

from tigertrap.core.paths import atomic_write_text

__all__ = ["HISTORY_CSV", "TrainingLog", "write_history_csv"]

log = logging.getLogger(__name__)

HISTORY_CSV = "history.csv"


def write_history_csv(path: Path, history: list[dict[str, Any]]) -> None:
    """Write one row per epoch (columns: the union of keys, ``epoch`` first)."""
    columns = ["epoch", *sorted({key for row in history for key in row} - {"epoch"})]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    atomic_write_text(path, buffer.getvalue())


class TrainingLog:
    """The CSV history and the wandb run of one training run."""

    def __init__(self, run_dir: Path, *, mode: str, project: str, entity: str | None,
                 run_id: str, name: str, config: dict[str, Any]) -> None:
        self.run_dir = run_dir
        self.history_csv = run_dir / HISTORY_CSV
        self._run: Any = None
        if mode != "disabled":
            self._run = self._start_wandb(mode, project, entity, run_id, name, config)

    def _start_wandb(self, mode: str, project: str, entity: str | None, run_id: str,
                     name: str, config: dict[str, Any]) -> Any:
        import wandb

        os.environ.setdefault("WANDB_SILENT", "true")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        return wandb.init(project=project, entity=entity, id=run_id, name=name,
                          dir=str(self.run_dir), mode=mode, config=config, resume="allow",
                          settings=wandb.Settings(console="off", x_disable_stats=True))

    @property
    def wandb_dir(self) -> Path | None:
        """The wandb run folder (``.../wandb/offline-run-*``), when wandb is on."""
        return Path(self._run.dir).parent if self._run is not None else None

    def log_epoch(self, history: list[dict[str, Any]]) -> None:
        """Record the last epoch of ``history`` (and rewrite the CSV with all of it)."""
        write_history_csv(self.history_csv, history)
        if self._run is not None:
            row = dict(history[-1])
            self._run.log(row, step=int(row["epoch"]))

    def log_final(self, metrics: dict[str, Any], images: dict[str, Path]) -> None:
        """Final metrics into the run summary, and the confusion matrix images."""
        if self._run is None:
            return
        import wandb

        for key, value in _flatten(metrics).items():
            self._run.summary[key] = value
        if images:
            self._run.log({key: wandb.Image(str(path)) for key, path in images.items()})

    def finish(self) -> None:
        if self._run is not None:
            self._run.finish()
            self._run = None


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}/"))
        elif isinstance(value, (int, float, str, bool)) or value is None:
            flat[name] = value
    return flat
