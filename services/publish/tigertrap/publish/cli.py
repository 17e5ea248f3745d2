"""``tigertrap publish``: a classifier bundle to the Hugging Face Hub or to AddaxAI folders.

Thin adapters over :mod:`tigertrap.publish.publish`; TensorFlow is imported only when a folder is
written.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from tigertrap.core.cli import echo_json
from tigertrap.core.terminal import fail

__all__ = ["app"]

app = typer.Typer(help="Publish a classifier bundle: Hugging Face Hub, AddaxAI model folders.",
                  no_args_is_help=True)

BundleArg = Annotated[Path, typer.Argument(
    help="Classifier bundle folder (a path, or relative to the data root).")]
ConfigOpt = Annotated[Path | None, typer.Option(
    "--config", help="YAML file of publish settings (keys as in publish.env).")]
EnvFileOpt = Annotated[Path | None, typer.Option(
    "--env-file", help="Env file of publish settings (default: none).")]


def _bundle_path(bundle: Path) -> Path:
    """``bundle`` as given, or under the data root when it is not found as given."""
    from tigertrap.core.config import CoreSettings, load_settings
    from tigertrap.core.paths import DataRoot, PathOutsideDataRoot

    if bundle.exists() or bundle.is_absolute() or "TIGERTRAP_DATA" not in os.environ:
        return bundle
    try:
        return DataRoot(load_settings(CoreSettings).tigertrap_data).resolve(bundle)
    except PathOutsideDataRoot:
        return bundle


def _settings(config: Path | None, env_file: Path | None, **overrides: object):
    from tigertrap.core.config import load_settings
    from tigertrap.publish.config import PublishSettings

    return load_settings(PublishSettings, yaml_file=config, env_file=env_file, **overrides)


@app.command("hf")
def hf(
    bundle: BundleArg,
    repo_id: Annotated[str | None, typer.Option(
        "--repo-id", help="Hub model repo ORG/NAME (or REPO_ID).")] = None,
    dry_run: Annotated[Path | None, typer.Option(
        "--dry-run", help="Write the exact folder that would be uploaded here; upload nothing.")
    ] = None,
    private: Annotated[bool | None, typer.Option(
        "--private/--public", help="Visibility of a repo this creates.")] = None,
    config: ConfigOpt = None,
    env_file: EnvFileOpt = None,
) -> None:
    """Upload BUNDLE with its model card and AddaxAI folders (token: HF_TOKEN; HF_ENDPOINT)."""
    from tigertrap.core.bundle import BundleError
    from tigertrap.core.config import ConfigError
    from tigertrap.publish.hub import HubUploadError
    from tigertrap.publish.publish import PublishError, publish_to_hub

    try:
        settings = _settings(config, env_file, repo_id=repo_id, private=private)
        published = publish_to_hub(_bundle_path(bundle), settings, dry_run_dir=dry_run)
    except (BundleError, ConfigError, HubUploadError, PublishError, ValueError) as error:
        raise fail(str(error)) from None
    echo_json({"folder": str(published.folder) if dry_run else None,
               "repo_id": settings.repo_id, "commit_url": published.commit_url,
               "files": published.files})


@app.command("addaxai")
def addaxai(
    bundle: BundleArg,
    out: Annotated[Path, typer.Option("--out", help="Folder to write v6/ and/or v7/ into.")],
    layout: Annotated[list[str] | None, typer.Option(
        "--layout", help="v6 (mewc-keras, legacy) or v7 (current); repeatable; default both.")
    ] = None,
    config: ConfigOpt = None,
    env_file: EnvFileOpt = None,
) -> None:
    """Write AddaxAI model folders for BUNDLE (copy one into AddaxAI's models/cls/)."""
    from tigertrap.core.bundle import BundleError
    from tigertrap.core.config import ConfigError
    from tigertrap.publish.publish import ADDAXAI_LAYOUTS, PublishError, build_addaxai

    try:
        settings = _settings(config, env_file)
        published = build_addaxai(_bundle_path(bundle), out, settings,
                                  layouts=layout or ADDAXAI_LAYOUTS)
    except (BundleError, ConfigError, PublishError, ValueError) as error:
        raise fail(str(error)) from None
    echo_json({"folder": str(published.folder), "files": published.files})
