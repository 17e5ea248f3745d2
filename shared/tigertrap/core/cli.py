"""The ``tigertrap`` command.

The core provides ``jobs`` (submit, status, cancel, list), ``worker STAGE`` and ``stack`` (the
local stack without Docker). Each installed stage adds its own subcommands through the entry-point
group ``tigertrap.commands`` (a ``typer.Typer`` or a plain function), and its Celery tasks through
``tigertrap.tasks``; so ``tigertrap --help`` in a single-stage image lists only what that image has.
Stage command modules keep heavy imports (TensorFlow, PyTorch) inside their functions so that
``--help`` stays fast.
"""

from __future__ import annotations

import json
import sys
import time
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from tigertrap.core.config import ConfigError
from tigertrap.core.terminal import fail as _fail

__all__ = ["app", "command_entry_points", "main", "task_entry_points"]

COMMAND_GROUP = "tigertrap.commands"
TASK_GROUP = "tigertrap.tasks"

app = typer.Typer(
    name="tigertrap",
    help="Camera-trap images to a tiger-focused species classifier: download, detect, snip, "
         "train, classify, publish.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
jobs_app = typer.Typer(help="Submit and follow pipeline jobs on the Redis job queue.",
                       no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")


def command_entry_points() -> dict[str, EntryPoint]:
    """Installed stage commands, by command name."""
    return {ep.name: ep for ep in entry_points(group=COMMAND_GROUP)}


def task_entry_points() -> dict[str, EntryPoint]:
    """Installed stage task modules, by stage name."""
    return {ep.name: ep for ep in entry_points(group=TASK_GROUP)}


def _parse_params(stages: list[str], params: list[str]) -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = [{"stage": stage, "params": {}} for stage in stages]
    for item in params:
        target, sep, value = item.partition("=")
        stage, dot, key = target.partition(".")
        if not sep or not dot or not key:
            raise _fail(f"--param {item!r}: write STAGE.KEY=VALUE, e.g. snip.LOWER_CONF=0.1")
        matching = [step for step in steps if step["stage"] == stage]
        if not matching:
            raise _fail(f"--param {item!r}: stage {stage!r} is not part of this job")
        for step in matching:
            step["params"][key] = yaml.safe_load(value) if value else ""
    return steps


@jobs_app.command("submit")
def jobs_submit(
    stages: Annotated[list[str] | None, typer.Argument(
        help="A named pipeline (build-model, process-season) or stages to run in order, "
             "e.g. 'detect snip'.")] = None,
    param: Annotated[list[str] | None, typer.Option(
        "--param", "-p", help="STAGE.KEY=VALUE, repeatable (paths relative to the data root).")
    ] = None,
    job_file: Annotated[Path | None, typer.Option(
        "--file", "-f", help="YAML or JSON file: a list of {stage, params}.")] = None,
) -> None:
    """Queue a job (a named pipeline, stages in order, or one stage) and print its id. In a
    job of several stages, each stage's inputs default to the earlier stages' outputs."""
    from pydantic import TypeAdapter, ValidationError

    from tigertrap.core.contract import PathRefused, UnknownKey
    from tigertrap.core.jobs import StageRequest, pipeline_stages, submit_job
    from tigertrap.core.stages import PIPELINES

    pipeline = stages[0] if stages and len(stages) == 1 and stages[0] in PIPELINES else None
    try:
        if job_file is not None:
            raw = yaml.safe_load(job_file.read_text(encoding="utf-8"))
        elif pipeline is not None:
            steps = [s.model_dump() for s in pipeline_stages(pipeline)]
            raw = _parse_params([s["stage"] for s in steps], param or [])
            for default, given in zip(steps, raw, strict=True):
                given["params"] = {**default["params"],
                                   **{k.lower(): v for k, v in given["params"].items()}}
        else:
            raw = _parse_params(stages or [], param or [])
        if not raw:
            raise _fail("name a pipeline or at least one stage, or give --file")
        steps_ = TypeAdapter(list[StageRequest]).validate_python(raw)
        typer.echo(submit_job(steps_, pipeline=pipeline))
    except ValidationError as error:
        raise _fail(str(error.errors()[0]["msg"])) from None
    except (PathRefused, UnknownKey) as error:
        raise _fail(str(error)) from None


def _silent_workers(status: Any) -> str:
    """``  worker W silent for N s`` for each running shard (or stage) whose worker is gone."""
    held = [(shard.worker, shard.worker_silent_s) for stage in status.stage_progress
            for shard in stage.shards if shard.status == "running" and shard.worker_alive is False]
    if status.worker_alive is False:
        held.append((status.worker, status.worker_silent_s))
    return "".join(f"  worker {worker} silent for {silent or 0:.0f} s" for worker, silent in held)


def _show(status: Any) -> str:
    progress = f"{status.processed}/{status.total}" if status.total else "-"
    line = (f"{status.id}  {status.status:<9}  stage {status.stage_index + 1}/"
            f"{len(status.stages)} {status.stage or '-':<8}  {progress}")
    line += _silent_workers(status)
    return line + (f"  error: {status.error}" if status.error else "")


@jobs_app.command("status")
def jobs_status(
    job_id: str,
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole record as JSON.")
                       ] = False,
    wait: Annotated[bool, typer.Option("--wait", help="Follow the job until it ends.")] = False,
) -> None:
    """Show a job's status, stage and progress."""
    from tigertrap.core.jobs import FINISHED, JobNotFound, job_status

    try:
        status = job_status(job_id)
        while wait and status.status not in FINISHED:
            typer.echo(_show(status))
            time.sleep(1.0)  # a person watching a job, not synchronisation
            status = job_status(job_id)
    except JobNotFound:
        raise _fail(f"no job {job_id}") from None
    typer.echo(status.model_dump_json(indent=2) if as_json else _show(status))
    if status.status == "failed":
        raise typer.Exit(1)


@jobs_app.command("cancel")
def jobs_cancel(job_id: str) -> None:
    """Cancel a job: queued stages are revoked, the running one stops at its next step."""
    from tigertrap.core.jobs import JobNotFound, cancel_job

    try:
        typer.echo(_show(cancel_job(job_id)))
    except JobNotFound:
        raise _fail(f"no job {job_id}") from None


@jobs_app.command("list")
def jobs_list(limit: Annotated[int, typer.Option(help="How many, newest first.")] = 20) -> None:
    """List recent jobs."""
    from tigertrap.core.jobs import list_jobs

    for status in list_jobs(limit):
        typer.echo(_show(status))


@app.command("worker")
def worker(
    stage: Annotated[str, typer.Argument(help="The stage whose queue this worker serves.")],
    concurrency: Annotated[int, typer.Option(help="Tasks run at once.")] = 1,
    loglevel: Annotated[str, typer.Option(help="Celery log level.")] = "INFO",
    pool: Annotated[str, typer.Option(
        help="Celery pool: prefork (a task runs in a child process), or solo (in the worker "
             "process itself, so a stage may start its own process pool).")] = "prefork",
) -> None:
    """Run a Celery worker bound to one stage's queue (REDIS_URL names the broker)."""
    import os

    from tigertrap.core.queue import STAGES, celery_app

    tasks = task_entry_points()
    if stage not in STAGES:
        raise _fail(f"unknown stage {stage!r}; stages are {', '.join(STAGES)}")
    if stage not in tasks:
        installed = ", ".join(sorted(tasks)) or "none"
        raise _fail(f"the {stage} stage is not installed here (installed: {installed})")
    tasks[stage].load()
    celery_app().worker_main([
        "worker", "--queues", stage, "--hostname", f"{stage}.{os.getpid()}@%h",
        "--concurrency", str(concurrency), "--loglevel", loglevel, "--pool", pool,
        "--without-gossip", "--without-mingle",
    ])


@app.command("stack")
def stack(
    port: Annotated[int, typer.Option(help="Port of the HTTP API.")] = 8000,
    host: Annotated[str, typer.Option(help="Address the HTTP API listens on.")] = "127.0.0.1",
    redis_port: Annotated[int | None, typer.Option(help="Redis port (default: a free one).")
                          ] = None,
    stage: Annotated[list[str] | None, typer.Option(
        help="A stage to run a worker for; repeat for several (default: every installed "
             "stage).")] = None,
    api: Annotated[bool, typer.Option(help="Run the HTTP API.")] = True,
) -> None:
    """Start Redis, the API and one worker per installed stage, restart any that dies (with
    backoff); Ctrl-C stops them all."""
    from tigertrap.core.stack import run_stack

    try:
        code = run_stack(host=host, port=port, redis_port=redis_port, stages=stage, api=api)
    except (ValueError, RuntimeError) as error:  # a bad setting or stage, Redis not starting
        raise _fail(str(error)) from None
    sys.exit(code)


def _register_plugins() -> None:
    for name, ep in sorted(command_entry_points().items()):
        try:
            target = ep.load()
        except ImportError as error:  # a broken stage must not take the others down
            typer.secho(f"warning: command {name!r} unavailable: {error}", err=True)
            continue
        if isinstance(target, typer.Typer):
            app.add_typer(target, name=name)
        else:
            app.command(name)(target)


def main() -> None:
    """Entry point of the ``tigertrap`` executable."""
    _register_plugins()
    try:
        app()
    except ConfigError as error:
        typer.secho(f"error: {error}", err=True, fg=typer.colors.RED)
        sys.exit(2)


def _json_default(value: Any) -> Any:
    return str(value)


def echo_json(data: Any) -> None:
    """Print ``data`` as indented JSON (for stage commands' summaries)."""
    typer.echo(json.dumps(data, indent=2, default=_json_default))
