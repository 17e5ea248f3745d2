"""``tigertrap train CONFIG.yaml``: a thin adapter over :func:`tigertrap.train.training.train`.

Settings come from the YAML file, then ``--env-file``, the environment and ``--set KEY=VALUE``
(highest). Relative paths are relative to the data root (``TIGERTRAP_DATA``), as in jobs;
absolute paths are used as given. The result (run folder, bundle, metrics) is printed as JSON;
bad input exits with code 2 and a sentence naming the key to fix.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from tigertrap.core.terminal import ProgressBar, fail

__all__ = ["app"]

app = typer.Typer(help="Train a kimm classifier (MEWC or TeraiNet recipe), evaluate it on "
                       "test and test2, and export the model bundle.",
                  no_args_is_help=True, add_completion=False,
                  context_settings={"allow_interspersed_args": True})


def _overrides(pairs: list[str]) -> dict[str, Any]:
    import yaml

    values: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"{pair!r}: write KEY=VALUE, e.g. BATCH_SIZE=32",
                                     param_hint="--set")
        values[key.strip().lower()] = yaml.safe_load(value) if value else ""
    return values


def _resolver(root: Path) -> Callable[[Path], Path]:
    def resolve(path: Path) -> Path:
        return path if path.is_absolute() else (root / path).resolve()

    return resolve


@app.callback(invoke_without_command=True)
def train(
    config: Annotated[Path, typer.Argument(help="YAML file of settings (MEWC key names).",
                                           exists=True, dir_okay=False)],
    env_file: Annotated[Path | None, typer.Option("--env-file",
                                                  help="Env file of settings.")] = None,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="KEY=VALUE, repeatable; overrides every other source.")] = None,
) -> None:
    """Train, evaluate and export as CONFIG says; an interrupted run resumes where it stopped."""
    from tigertrap.core.cli import echo_json
    from tigertrap.core.config import CoreSettings, load_settings
    from tigertrap.train.config import TrainSettings, resolve_paths

    settings = load_settings(TrainSettings, yaml_file=config, env_file=env_file,
                             **_overrides(set_ or []))
    root = load_settings(CoreSettings).tigertrap_data.resolve()
    settings = resolve_paths(settings, _resolver(root))
    try:
        from tigertrap.train.backbones import BackboneError
        from tigertrap.train.data import DataError
        from tigertrap.train.export import ExportError
        from tigertrap.train.training import TrainError
        from tigertrap.train.training import train as run_training

        # Keras prints epoch lines to stdout; stdout is kept for the JSON summary.
        with contextlib.redirect_stdout(sys.stderr), ProgressBar("train", unit="epoch") as bar:
            result = run_training(settings, progress=bar)
    except (BackboneError, DataError, ExportError, TrainError, ValueError) as error:
        raise fail(str(error)) from None
    echo_json({"run_dir": result.run_dir, "bundle_dir": result.bundle_dir,
               "epochs": result.epochs, "resumed_from": result.resumed_from,
               "metrics": result.metrics})
