"""``tigertrap detect``: the detect stage from the command line (a thin adapter over
:func:`tigertrap.detect.batch.run_detect`). Heavy imports happen inside the command."""

from __future__ import annotations

import contextlib
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from tigertrap.core.cli import echo_json
from tigertrap.core.config import ConfigError, load_settings
from tigertrap.core.terminal import ProgressBar, fail

__all__ = ["detect"]


def detect(
    source: Annotated[Path | None, typer.Argument(
        help="Folder of images (searched recursively), a .txt/.json image list, or a download "
             "manifest .csv. Default: INPUT_DIR or IMAGE_LIST from the configuration.",
        show_default=False)] = None,
    md_file: Annotated[str | None, typer.Option(
        help="Output file, relative to the folder (or the list's folder). [MD_FILE: md.json]",
        show_default=False)] = None,
    model: Annotated[str | None, typer.Option(
        "--model", "-m", help="MegaDetector name (MDV5A, MDV5B, MDv1000-redwood, ...) or a "
                              ".pt file. [MD_MODEL: MDV5A]", show_default=False)] = None,
    models_dir: Annotated[Path | None, typer.Option(
        help="Folder of detector weights; relative to the data root. "
             "[MODELS_DIR: models/detectors]", show_default=False)] = None,
    threshold: Annotated[float | None, typer.Option(
        help="Lowest confidence written. [THRESHOLD: 0.01]", show_default=False)] = None,
    checkpoint_freq: Annotated[int | None, typer.Option(
        help="Checkpoint every N images. [CHECKPOINT_FREQ: 100]", show_default=False)] = None,
    batch_size: Annotated[int | None, typer.Option(
        help="Images per pass on a GPU. [BATCH_SIZE: 8]", show_default=False)] = None,
    ncores: Annotated[int | None, typer.Option(
        help="Image-loading threads. [NCORES: CPU count]", show_default=False)] = None,
    device: Annotated[str | None, typer.Option(
        help="cpu, cuda, cuda:1, ... [DEVICE: a GPU when present]", show_default=False)] = None,
    image_size: Annotated[int | None, typer.Option(
        help="Inference size, long side. [IMAGE_SIZE: the model's]", show_default=False)] = None,
    recursive: Annotated[bool | None, typer.Option(
        "--recursive/--no-recursive", help="Search sub-folders. [RECURSIVE: true]",
        show_default=False)] = None,
    download: Annotated[bool | None, typer.Option(
        "--download/--no-download", help="Let megadetector download missing known weights. "
                                         "[DOWNLOAD_WEIGHTS: true]", show_default=False)] = None,
    overwrite: Annotated[bool | None, typer.Option(
        "--overwrite", help="Detect every image again instead of reusing the output file's "
                            "results. [OVERWRITE: false]", show_default=False)] = None,
    config: Annotated[Path | None, typer.Option(
        help="YAML file of settings (KEY: value).", show_default=False)] = None,
    env_file: Annotated[Path | None, typer.Option(
        help="Env file of settings (KEY=value).", show_default=False)] = None,
) -> None:
    """Run MegaDetector over images and write MegaDetector batch output (format 1.6).

    Re-run after a crash to continue; new images are detected, earlier results reused.

    Prints a JSON summary on stdout.
    """
    from tigertrap.detect.batch import USER_ERRORS, run_detect
    from tigertrap.detect.config import DetectSettings

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    source_key = None
    if source is not None:
        source_key = "input_dir" if source.is_dir() else "image_list"
    overrides = {source_key: source} if source_key else {}
    try:
        settings = load_settings(
            DetectSettings, yaml_file=config,
            env_file=env_file,
            md_file=md_file, md_model=model, models_dir=models_dir, threshold=threshold,
            checkpoint_freq=checkpoint_freq, batch_size=batch_size, ncores=ncores,
            device=device, image_size=image_size, recursive=recursive,
            download_weights=download, overwrite=overwrite, **overrides)
        if source_key == "input_dir":
            settings.image_list = None
        elif source_key == "image_list":
            settings.input_dir = None
        # megadetector prints as it goes; stdout is kept for the summary alone.
        with contextlib.redirect_stdout(sys.stderr), ProgressBar("detect") as bar:
            summary = run_detect(settings, progress=bar)
    except (ConfigError, *USER_ERRORS) as error:
        raise fail(str(error)) from None
    echo_json(summary.model_dump(mode="json"))
