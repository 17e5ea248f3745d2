"""``tigertrap review``: bring a classify job into the review store, follow its progress,
export the verdicts as a training set. Thin adapters over :mod:`tigertrap.classify.review`;
each prints a JSON summary, or exits with 2 and a sentence saying what to fix."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from tigertrap.core.cli import echo_json
from tigertrap.core.config import ConfigError, load_settings

__all__ = ["review_app"]

review_app = typer.Typer(help="Review classified detections in the browser and turn the "
                              "verdicts into training data.", no_args_is_help=True)


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(2)


def _open_store(env_file: Path | None) -> tuple[Any, Any]:
    from tigertrap.classify.review.config import ReviewSettings
    from tigertrap.classify.review.store import (
        DatabaseUnreachable,
        MigrationFailed,
        ReviewStore,
    )

    try:
        settings = load_settings(ReviewSettings, env_file=env_file)
        return settings, ReviewStore.open(settings.store_url())
    except (ConfigError, DatabaseUnreachable, MigrationFailed) as error:
        raise _fail(str(error)) from None


EnvFile = Annotated[Path | None, typer.Option(help="Env file of settings (KEY=value).",
                                              show_default=False)]


@review_app.command("import")
def review_import(
    md_file: Annotated[str, typer.Argument(
        help="The classified MD file (md_classified.json), relative to the data root.")],
    name: Annotated[str, typer.Option(help="The review job's name (e.g. the classify job id).")],
    image_base: Annotated[str | None, typer.Option(
        help="Folder the MD file's image paths are relative to (default: its folder).",
        show_default=False)] = None,
    tiger_class: Annotated[str, typer.Option(help="The tiger class's name.")] = "tiger",
    env_file: EnvFile = None,
) -> None:
    """Bring a classify job's detections into the review store."""
    from tigertrap.classify.review.intake import intake_job
    from tigertrap.classify.review.store import JobExists
    from tigertrap.core.paths import PathOutsideDataRoot

    settings, store = _open_store(env_file)
    try:
        count = intake_job(store, settings.tigertrap_data, name=name, md_file=md_file,
                           image_base=image_base, tiger_class=tiger_class)
    except (JobExists, PathOutsideDataRoot, FileNotFoundError, ValueError) as error:
        raise _fail(str(error)) from None
    finally:
        store.close()
    echo_json({"job": name, "detections": count})


@review_app.command("progress")
def review_progress(
    name: Annotated[str, typer.Argument(help="The review job.")],
    env_file: EnvFile = None,
) -> None:
    """Queue counts and progress of a review job."""
    from tigertrap.classify.review.queues import job_queue
    from tigertrap.classify.review.store import ReviewJobNotFound

    _, store = _open_store(env_file)
    try:
        queue = job_queue(store, name)
    except ReviewJobNotFound as error:
        raise _fail(str(error)) from None
    finally:
        store.close()
    echo_json({"job": name, "sections": queue.counts, "progress": queue.progress})


@review_app.command("export")
def review_export(
    jobs: Annotated[list[str], typer.Argument(help="Review jobs whose verdicts to export.")],
    output: Annotated[str, typer.Option(
        help="Folder for snips/, snips.csv and class_map.yaml, relative to the data root.")],
    merge_with: Annotated[str | None, typer.Option(
        help="A training set to merge with: its snips.csv, or a folder of <split>/<class>/.",
        show_default=False)] = None,
    fractions: Annotated[str, typer.Option(
        help="train,val,review shares of the reviewed locations.")] = "0.7,0.15,0.15",
    seed: Annotated[int, typer.Option(help="Breaks ties when placing locations.")] = 0,
    snip_size: Annotated[int, typer.Option(help="Crop side in pixels.")] = 600,
    crop_method: Annotated[str, typer.Option(help="exact or square (as snip).")] = "exact",
    env_file: EnvFile = None,
) -> None:
    """Write the reviewed crops as a training set (snips.csv with label and split, split by
    location; the held-out reviewed frames in split 'review') that train takes as SNIPS_CSV."""
    from tigertrap.classify.review.export import DEFAULT_FRACTIONS, ExportError, export_training_set
    from tigertrap.classify.review.store import ReviewJobNotFound
    from tigertrap.core.paths import PathOutsideDataRoot

    try:
        shares = dict(zip(DEFAULT_FRACTIONS, (float(v) for v in fractions.split(",")),
                          strict=True))
    except ValueError:
        raise _fail(f"--fractions {fractions!r}: give three numbers, e.g. 0.7,0.15,0.15") \
            from None
    settings, store = _open_store(env_file)
    try:
        summary = export_training_set(store, settings.tigertrap_data, jobs, output,
                                      merge_with=merge_with, fractions=shares, seed=seed,
                                      snip_size=snip_size, crop_method=crop_method)
    except (ExportError, ReviewJobNotFound, PathOutsideDataRoot, FileNotFoundError) as error:
        raise _fail(str(error)) from None
    finally:
        store.close()
    echo_json(summary.as_json())


@review_app.command("camtrap-dp")
def review_camtrap_dp(
    job: Annotated[str, typer.Argument(help="The review job.")],
    output_dir: Annotated[Path, typer.Option(help="Folder of the Camtrap DP package.")],
    deployments: Annotated[Path, typer.Option(
        help="CSV: deploymentID, latitude, longitude (deploymentID = the image folder).")],
    taxa: Annotated[Path | None, typer.Option(help="CSV: class, scientificName.",
                                              show_default=False)] = None,
    env_file: EnvFile = None,
) -> None:
    """The job as a Camtrap DP package in which people's agreed verdicts are observations with
    classificationMethod human (md_reviewed.json is written beside the job's images)."""
    from tigertrap.classify.camtrap_dp import CamtrapDPError, CamtrapDPSettings, export_camtrap_dp
    from tigertrap.classify.review.camtrap import write_reviewed_md
    from tigertrap.classify.review.store import ReviewJobNotFound

    settings, store = _open_store(env_file)
    try:
        md = write_reviewed_md(store, settings.tigertrap_data, job)
        written = export_camtrap_dp(CamtrapDPSettings(
            md_file=md, output_dir=output_dir, deployments=deployments, taxa=taxa))
    except (ReviewJobNotFound, CamtrapDPError, ConfigError, FileNotFoundError) as error:
        raise _fail(str(error)) from None
    finally:
        store.close()
    echo_json(written.as_dict())
