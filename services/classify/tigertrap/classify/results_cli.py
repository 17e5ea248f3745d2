"""``tigertrap rde`` (repeat-detection elimination) and ``tigertrap export``: thin adapters.

``rde find`` / ``rde remove`` call :mod:`tigertrap.classify.rde`; ``export camtrap-dp`` calls
:mod:`tigertrap.classify.camtrap_dp`. Heavy imports (megadetector, pandas) happen inside the
commands so that ``tigertrap --help`` stays fast. Each prints a JSON summary, or exits with 2 and
a sentence saying what to fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tigertrap.core.cli import echo_json
from tigertrap.core.config import ConfigError, load_settings
from tigertrap.core.terminal import fail

__all__ = ["export_app", "rde_app"]

rde_app = typer.Typer(
    help="Repeat-detection elimination (MegaDetector's): find boxes repeated at one camera, "
         "review their examples, remove them.", no_args_is_help=True)
export_app = typer.Typer(help="Export classified results to the field's formats.",
                         no_args_is_help=True)


@rde_app.command("find")
def rde_find(
    md_file: Annotated[Path | None, typer.Argument(
        help="MegaDetector file (any format version). [MD_FILE]", show_default=False)] = None,
    output_dir: Annotated[Path | None, typer.Option(
        help="Where the review folder goes. [OUTPUT_DIR: <MD file folder>/rde]",
        show_default=False)] = None,
    occurrence_threshold: Annotated[int | None, typer.Option(
        help="Images a box must repeat on. [OCCURRENCE_THRESHOLD: 20]", show_default=False)
    ] = None,
    iou_threshold: Annotated[float | None, typer.Option(
        help="IoU at which two boxes are the same. [IOU_THRESHOLD: 0.9]", show_default=False)
    ] = None,
    max_suspicious_size: Annotated[float | None, typer.Option(
        help="Larger boxes (fraction of the image) are never suspicious. "
             "[MAX_SUSPICIOUS_SIZE: 0.2]", show_default=False)] = None,
    min_conf: Annotated[float | None, typer.Option(
        help="Less confident boxes are ignored. [MIN_CONF: 0.1]", show_default=False)] = None,
    camera: Annotated[str | None, typer.Option(
        help="A camera is the image's folder (folder) or its location in MANIFEST (manifest). "
             "[CAMERA: folder]", show_default=False)] = None,
    manifest: Annotated[Path | None, typer.Option(
        help="CSV with path and location columns (the download manifest). [MANIFEST]",
        show_default=False)] = None,
    workers: Annotated[int | None, typer.Option(help="Threads. [WORKERS: 2]",
                                                show_default=False)] = None,
    env_file: Annotated[Path | None, typer.Option(
        help="Env file of settings (KEY=value).", show_default=False)] = None,
) -> None:
    """Find detections repeated at one camera and write a review folder: an example image per
    suspicious detection and suspicious.csv. Delete the examples that show real animals, then
    run `tigertrap rde remove`."""
    from tigertrap.classify.rde import RepeatDetectionSettings, find_repeats
    from tigertrap.classify.sequences import SequenceFileError
    from tigertrap.core.md_results import MDResultsError

    try:
        settings = load_settings(
            RepeatDetectionSettings, env_file=env_file, md_file=md_file, output_dir=output_dir,
            occurrence_threshold=occurrence_threshold, iou_threshold=iou_threshold,
            max_suspicious_size=max_suspicious_size, min_conf=min_conf, camera=camera,
            manifest=manifest, workers=workers)
        review = find_repeats(settings)
    except (ConfigError, MDResultsError, SequenceFileError) as error:
        raise fail(str(error)) from None
    echo_json(review.as_dict())


@rde_app.command("remove")
def rde_remove(
    md_file: Annotated[Path, typer.Argument(help="The MegaDetector file `rde find` read.")],
    review_dir: Annotated[Path, typer.Argument(
        help="The review folder `rde find` wrote (examples still in it are removed).")],
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Cleaned MD file. [md_rde.json beside MD_FILE]",
        show_default=False)] = None,
    accept_all: Annotated[bool, typer.Option(
        "--accept-all", help="Remove every suspicious detection, whatever the folder holds.")
    ] = False,
) -> None:
    """Write the MD file without the repeated detections whose examples were kept."""
    from tigertrap.classify.rde import remove_repeats
    from tigertrap.core.md_results import MDResultsError

    if not md_file.is_file():
        raise fail(f"{md_file} does not exist")
    try:
        removal = remove_repeats(md_file, review_dir, output, accept_all=accept_all)
    except (ConfigError, MDResultsError) as error:
        raise fail(str(error)) from None
    echo_json(removal.as_dict())


@export_app.command("camtrap-dp")
def export_camtrap_dp(
    md_file: Annotated[Path | None, typer.Argument(
        help="Classified MD file (md_classified.json). [MD_FILE]", show_default=False)] = None,
    output_dir: Annotated[Path | None, typer.Option(
        help="Package folder. [OUTPUT_DIR: <MD file folder>/camtrap-dp]", show_default=False)
    ] = None,
    deployments: Annotated[Path | None, typer.Option(
        help="CSV with deploymentID, latitude, longitude (and any Camtrap DP deployment "
             "column). [DEPLOYMENTS]", show_default=False)] = None,
    manifest: Annotated[Path | None, typer.Option(
        help="Download manifest.csv: locations and datetimes. [MANIFEST]", show_default=False)
    ] = None,
    deployment_by: Annotated[str | None, typer.Option(
        help="A deployment is the image's folder or its manifest location. "
             "[DEPLOYMENT_BY: folder]", show_default=False)] = None,
    taxa: Annotated[Path | None, typer.Option(
        help="CSV with class and scientificName columns. [TAXA]", show_default=False)] = None,
    min_conf: Annotated[float | None, typer.Option(
        help="Detections at or above this conf become observations. [MIN_CONF: 0.2]",
        show_default=False)] = None,
    event_gap: Annotated[float | None, typer.Option(
        help="Max seconds between frames of one event. [EVENT_GAP: 60]", show_default=False)
    ] = None,
    utc_offset: Annotated[str | None, typer.Option(
        help="Camera clocks' offset from UTC, e.g. +05:45. [UTC_OFFSET: +00:00]",
        show_default=False)] = None,
    time_fallback: Annotated[str | None, typer.Option(
        help="Images without EXIF or manifest time: file (modification time) or error. "
             "[TIME_FALLBACK: file]", show_default=False)] = None,
    env_file: Annotated[Path | None, typer.Option(
        help="Env file of settings (KEY=value): also TITLE, PROJECT_TITLE, CONTRIBUTOR, "
             "DATA_LICENSE, MEDIA_LICENSE.", show_default=False)] = None,
) -> None:
    """Write a Camtrap DP 1.0 package (datapackage.json, deployments.csv, media.csv,
    observations.csv) from a classified MD file; it is validated before it is written."""
    from tigertrap.classify.camtrap_dp import (
        CamtrapDPError,
        CamtrapDPSettings,
    )
    from tigertrap.classify.camtrap_dp import export_camtrap_dp as export
    from tigertrap.core.md_results import MDResultsError

    try:
        settings = load_settings(
            CamtrapDPSettings, env_file=env_file, md_file=md_file, output_dir=output_dir,
            deployments=deployments, manifest=manifest, deployment_by=deployment_by, taxa=taxa,
            min_conf=min_conf, event_gap=event_gap, utc_offset=utc_offset,
            time_fallback=time_fallback)
        written = export(settings)
    except (ConfigError, MDResultsError, CamtrapDPError) as error:
        raise fail(str(error)) from None
    echo_json(written.as_dict())
