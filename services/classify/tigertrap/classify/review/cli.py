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
