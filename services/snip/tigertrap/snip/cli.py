"""``tigertrap snip``: crop detections from an MD file (mewc-snip's job, numbering fixed)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["snip"]


def snip(
    input_dir: Annotated[Path | None, typer.Option(
        help="Folder with the images and the MD file [INPUT_DIR].")] = None,
    md_file: Annotated[str | None, typer.Option(
        help="MD batch output, relative to INPUT_DIR [MD_FILE, md.json].")] = None,
    snip_dir: Annotated[str | None, typer.Option(
        help="Output folder, relative to INPUT_DIR [SNIP_DIR, snips].")] = None,
    lower_conf: Annotated[float | None, typer.Option(
        help="Lowest detection confidence cropped [LOWER_CONF, 0.05].")] = None,
    snip_size: Annotated[int | None, typer.Option(
        help="Side of the square snips in pixels [SNIP_SIZE, 600].")] = None,
    crop_method: Annotated[str | None, typer.Option(
        help="exact (mewc-snip) or square (context, no stretching) [CROP_METHOD].")] = None,
    categories: Annotated[str | None, typer.Option(
        help="Comma-separated categories to crop: animal,person,vehicle [CATEGORIES].")] = None,
    max_crops: Annotated[int | None, typer.Option(
        help="At most this many crops per image, highest confidence first [MAX_CROPS].")] = None,
    max_crops_by_class: Annotated[str | None, typer.Option(
        help="Per class label (from the manifest) limits, e.g. tiger=10,deer=2 "
             "[MAX_CROPS_BY_CLASS].")] = None,
    jpeg_quality: Annotated[int | None, typer.Option(help="JPEG quality [JPEG_QUALITY, 95].")
                            ] = None,
    manifest: Annotated[Path | None, typer.Option(
        help="Download manifest.csv for class and split [MANIFEST; default: found near the "
             "MD file].")] = None,
    by_class: Annotated[bool | None, typer.Option(
        "--by-class/--no-by-class", help="Also lay snips out as <split>/<class>/ [BY_CLASS].")
    ] = None,
    workers: Annotated[int | None, typer.Option(help="Parallel images [WORKERS].")] = None,
    config: Annotated[Path | None, typer.Option(help="YAML file of settings.")] = None,
    env_file: Annotated[Path | None, typer.Option(help="Env file of settings.")] = None,
) -> None:
    """Crop every animal detection at or above LOWER_CONF into SNIP_SIZE squares."""
    from tigertrap.core.cli import echo_json
    from tigertrap.core.config import load_settings
    from tigertrap.core.md_results import MDResultsError
    from tigertrap.core.terminal import ProgressBar, fail
    from tigertrap.snip.config import SnipSettings
    from tigertrap.snip.snip import run_snip

    settings = load_settings(
        SnipSettings, yaml_file=config, env_file=env_file, input_dir=input_dir, md_file=md_file,
        snip_dir=snip_dir, lower_conf=lower_conf, snip_size=snip_size, crop_method=crop_method,
        categories=categories, max_crops=max_crops,
        max_crops_by_class=max_crops_by_class, jpeg_quality=jpeg_quality,
        manifest=manifest, by_class=by_class, workers=workers)
    try:
        with ProgressBar("snip") as bar:
            summary = run_snip(settings, progress=bar)
    except MDResultsError as error:
        raise fail(str(error)) from None
    echo_json(summary.as_dict())
    for item, reason in summary.failures[:20]:
        typer.secho(f"failed: {item}: {reason}", err=True, fg=typer.colors.YELLOW)
    if summary.failures:
        typer.secho(f"{len(summary.failures)} failures, listed in snip_failures.csv", err=True)
        raise typer.Exit(1)
