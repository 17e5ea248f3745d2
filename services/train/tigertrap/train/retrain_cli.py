"""``tigertrap retrain`` and ``tigertrap promote``: thin adapters over :mod:`.retrain` and
:mod:`tigertrap.core.promotion`.

``retrain CONFIG.yaml --previous BUNDLE`` trains from the previous bundle's weights on the
(merged) training set CONFIG names, compares both bundles and prints the comparison's summary as
JSON; ``promote CANDIDATE --model NAME`` makes a bundle the served ``MODEL``. Relative paths are
relative to the data root (``TIGERTRAP_DATA``). Bad input exits with 2 and a sentence saying
what to fix.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Annotated

import typer

from tigertrap.core.terminal import ProgressBar, fail

__all__ = ["promote", "retrain"]


def retrain(
    config: Annotated[Path, typer.Argument(help="YAML file of training settings (SNIPS_CSV: "
                                                "the merged set from tigertrap review export).",
                                           exists=True, dir_okay=False)],
    previous: Annotated[Path, typer.Option(help="The previous bundle folder to start from.")],
    env_file: Annotated[Path | None, typer.Option("--env-file",
                                                  help="Env file of settings.")] = None,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="KEY=VALUE, repeatable; overrides every other source.")] = None,
) -> None:
    """Retrain a previous bundle on corrected data, then compare old and new on test, test2 and
    the reviewed frames held out. Never promotes."""
    from tigertrap.core.cli import echo_json
    from tigertrap.core.config import ConfigError, CoreSettings, load_settings
    from tigertrap.train.cli import _overrides, _resolver
    from tigertrap.train.config import TrainSettings, resolve_paths

    settings = load_settings(TrainSettings, yaml_file=config, env_file=env_file,
                             **_overrides(set_ or []))
    root = load_settings(CoreSettings).tigertrap_data.resolve()
    resolve = _resolver(root)
    if settings.bundle_path is None:  # the new bundle stays in the run folder
        settings = settings.model_copy(update={"bundle_path": settings.output_path / "bundle"})
    settings = resolve_paths(settings, resolve)
    try:
        from tigertrap.core.bundle import BundleError
        from tigertrap.train.backbones import BackboneError
        from tigertrap.train.data import DataError
        from tigertrap.train.export import ExportError
        from tigertrap.train.retrain import retrain_and_compare
        from tigertrap.train.training import TrainError
        from tigertrap.train.warm_start import WarmStartError

        with contextlib.redirect_stdout(sys.stderr), ProgressBar("retrain", unit="epoch") as bar:
            result = retrain_and_compare(settings, resolve(previous), progress=bar)
    except (BackboneError, BundleError, ConfigError, DataError, ExportError, TrainError,
            WarmStartError, ValueError) as error:
        raise fail(str(error)) from None
    echo_json({"run_dir": result.trained.run_dir, "bundle_dir": result.trained.bundle_dir,
               "comparison_dir": result.comparison_dir,
               "splits": {split: {role: {k: v for k, v in entry[role].items()
                                         if k in ("accuracy", "macro_f1", "tiger")}
                                  for role in ("previous", "new")} | {"changed": entry["changed"]}
                          for split, entry in result.comparison["splits"].items()}})


def promote(
    candidate: Annotated[Path, typer.Argument(help="The bundle folder to serve.")],
    model: Annotated[str, typer.Option(help="The served bundle's name (the API's MODEL), under "
                                            "models/classifiers/.")] = "tigertrap",
) -> None:
    """Make a bundle the served model (models/classifiers/MODEL), keeping the one it replaces
    as MODEL.replaced-<time>. The API loads it at its next start."""
    from tigertrap.core.bundle import BundleError
    from tigertrap.core.cli import echo_json
    from tigertrap.core.config import CoreSettings, load_settings
    from tigertrap.core.paths import DataRoot, PathOutsideDataRoot
    from tigertrap.core.promotion import PromotionError, promote_bundle

    root = DataRoot(load_settings(CoreSettings).tigertrap_data)
    try:
        source = candidate if candidate.is_absolute() else root.resolve(candidate,
                                                                        must_exist=True)
        served = root.resolve(Path("models/classifiers") / model)
        echo_json(promote_bundle(source, served))
    except (BundleError, PromotionError, PathOutsideDataRoot, FileNotFoundError) as error:
        raise fail(str(error)) from None
