"""``tigertrap download lila`` and ``tigertrap download cvwc``: thin adapters over
:func:`tigertrap.download.lila.download_lila` and :func:`tigertrap.download.cvwc.download_cvwc`.

Options override the YAML file (``--config``), the env file (``--env-file``) and environment
variables, key by key. The summary is printed as JSON; the exit code is 1 when any image failed
and 2 for bad input.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from tigertrap.core.terminal import ProgressBar, fail

__all__ = ["app"]

app = typer.Typer(help="Sample LILA BC images per class into leak-free splits and download "
                       "them; import CVWC2019 Amur tigers.", no_args_is_help=True)

ConfigOption = Annotated[Path | None, typer.Option("--config", help="YAML file of settings.")]
EnvOption = Annotated[Path | None, typer.Option("--env-file", help="Env file of settings.")]
NameOption = Annotated[str | None, typer.Option("--name", help="Writes datasets/<name>/ "
                                                "under the data root (DATASET_NAME).")]
SeedOption = Annotated[int | None, typer.Option(help="Sampling and split seed (SEED).")]
FractionsOption = Annotated[str | None, typer.Option(
    help="train,val,test fractions, e.g. 0.8,0.1,0.1.")]


def _fractions(text: str | None) -> dict[str, float]:
    if text is None:
        return {}
    try:
        train, val, test = (float(part) for part in text.split(","))
    except ValueError:
        raise typer.BadParameter("give three numbers, e.g. 0.8,0.1,0.1",
                                 param_hint="--fractions") from None
    return {"train_fraction": train, "val_fraction": val, "test_fraction": test}


def _md_results(items: list[str] | None) -> dict[str, str] | None:
    if not items:
        return None
    pairs = {}
    for item in items:
        dataset, sep, path = item.rpartition("=")
        if not sep or not dataset or not path:
            raise typer.BadParameter(f"{item!r}: write 'DATASET NAME=path/to/md.json'",
                                     param_hint="--md-results")
        pairs[dataset.strip()] = path
    return pairs


def _run(stage: str, config: Path | None, env_file: Path | None,
         overrides: dict[str, Any]) -> None:
    from tigertrap.core.cli import echo_json
    from tigertrap.core.config import ConfigError, CoreSettings, load_settings
    from tigertrap.core.md_results import MDResultsError
    from tigertrap.download.config import DownloadSettings
    from tigertrap.download.cvwc import download_cvwc
    from tigertrap.download.lila import download_lila
    from tigertrap.download.metadata import MetadataError
    from tigertrap.download.spec import SpecError

    bar = ProgressBar("download" if stage == "lila" else "cvwc import")
    try:
        settings = load_settings(DownloadSettings, yaml_file=config, env_file=env_file,
                                 **overrides)
        data_root = load_settings(CoreSettings).tigertrap_data
        run = download_lila if stage == "lila" else download_cvwc
        if stage == "lila" and not settings.dry_run:
            typer.echo(f"scanning {settings.metadata} ...", err=True)
        summary = run(settings, data_root, bar)
    except (ConfigError, MetadataError, SpecError, MDResultsError, FileNotFoundError,
            ValueError) as error:
        bar.close()
        raise fail(str(error)) from None
    bar.close()
    echo_json(summary)
    if summary.get("failed"):
        typer.secho(f"{summary['failed']} image(s) failed; see the manifest's error column",
                    err=True, fg=typer.colors.RED)
        raise typer.Exit(1)


@app.command("lila")
def lila(
    metadata: Annotated[Path, typer.Argument(
        help="lila_image_urls_and_labels.csv or its zip.")],
    name: NameOption = None,
    spec: Annotated[Path | None, typer.Option(
        help="Class spec YAML (CLASS_SPEC); default: the packaged Nepal spec.")] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Only count available and selected images per class and rule.")
    ] = False,
    seed: SeedOption = None,
    class_samples_default: Annotated[int | None, typer.Option(
        help="Images per class unless the spec says (CLASS_SAMPLES_DEFAULT).")] = None,
    split_by: Annotated[str | None, typer.Option(help="location or sequence (SPLIT_BY).")
                        ] = None,
    fractions: FractionsOption = None,
    concurrency: Annotated[int | None, typer.Option(help="Connections (CONCURRENCY).")] = None,
    retries: Annotated[int | None, typer.Option(help="Retries per mirror (RETRIES).")] = None,
    backoff: Annotated[float | None, typer.Option(help="First retry delay, s (BACKOFF).")
                       ] = None,
    timeout: Annotated[float | None, typer.Option(help="Timeout, s (TIMEOUT).")] = None,
    rate_limit: Annotated[float | None, typer.Option(
        help="Requests per second, 0 = unlimited (RATE_LIMIT).")] = None,
    mirrors: Annotated[str | None, typer.Option(
        help="Mirror order, e.g. gcp,aws,azure (MIRRORS).")] = None,
    verify: Annotated[str | None, typer.Option(
        help="How a re-run checks complete files: size or hash (VERIFY).")] = None,
    local_root: Annotated[Path | None, typer.Option(
        help="Folder with LILA images already on disk (LOCAL_ROOT).")] = None,
    md_results: Annotated[list[str] | None, typer.Option(
        "--md-results", help="'DATASET NAME=file.json': published MegaDetector results of a "
                             "LILA dataset, repeatable (MD_RESULTS).")] = None,
    config: ConfigOption = None,
    env_file: EnvOption = None,
) -> None:
    """Sample LILA BC per the class spec, split without leaks, download, write manifest.csv,
    split_report.json (and md.json)."""
    overrides: dict[str, Any] = {
        "metadata": str(metadata), "dataset_name": name,
        "class_spec": str(spec) if spec else None, "dry_run": dry_run or None, "seed": seed,
        "class_samples_default": class_samples_default, "split_by": split_by,
        "concurrency": concurrency, "retries": retries, "backoff": backoff,
        "timeout": timeout, "rate_limit": rate_limit, "mirrors": mirrors, "verify": verify,
        "local_root": str(local_root) if local_root else None,
        "md_results": _md_results(md_results), **_fractions(fractions),
    }
    _run("lila", config, env_file, overrides)


@app.command("cvwc")
def cvwc(
    source: Annotated[Path, typer.Argument(
        help="CVWC2019 ATRW detection zip, tar.gz or unpacked folder.")],
    name: NameOption = None,
    seed: SeedOption = None,
    fractions: FractionsOption = None,
    config: ConfigOption = None,
    env_file: EnvOption = None,
) -> None:
    """Import CVWC2019 Amur tiger images as tiger train/val (test from its test folder)."""
    overrides: dict[str, Any] = {"cvwc_source": str(source), "dataset_name": name,
                                 "seed": seed, **_fractions(fractions)}
    _run("cvwc", config, env_file, overrides)
