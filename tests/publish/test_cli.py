"""``tigertrap publish``: the commands as a user (or a container) runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from tests.publish.hub_server import FakeHub
from tigertrap.publish.cli import app

#: The installed console script, beside the interpreter running the tests.
TIGERTRAP = str(Path(sys.executable).with_name("tigertrap"))


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([TIGERTRAP, *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **env}, check=False)


def test_hf_command_uploads_to_the_hub_named_by_hf_endpoint(bundle: Path,
                                                            fake_hub: FakeHub) -> None:
    done = _run(["publish", "hf", str(bundle), "--repo-id", "tiger-trust/terai-tigers"],
                {"HF_ENDPOINT": fake_hub.url, "HF_TOKEN": "hf_cli_token"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["commit_url"].startswith(fake_hub.url)
    assert "model.keras" in fake_hub.files("tiger-trust/terai-tigers")


def test_addaxai_command_writes_both_layouts(bundle: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["addaxai", str(bundle), "--out", str(tmp_path / "addaxai")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "addaxai" / "v6" / "variables.json").is_file()
    assert (tmp_path / "addaxai" / "v7" / "inference.py").is_file()


def test_a_missing_bundle_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["addaxai", str(tmp_path / "nope"),
                                      "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "no such bundle folder" in result.output


def test_upload_without_repo_id_names_the_option(bundle: Path) -> None:
    result = CliRunner().invoke(app, ["hf", str(bundle)], env={"HF_TOKEN": "hf_x"})
    assert result.exit_code == 2
    assert "--repo-id" in result.output


def test_an_unknown_layout_is_a_clear_error(bundle: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["addaxai", str(bundle), "--out", str(tmp_path / "o"),
                                      "--layout", "v5"])
    assert result.exit_code == 2
    assert "v6, v7" in result.output


def test_env_file_settings_reach_the_addaxai_folders(bundle: Path, tmp_path: Path) -> None:
    env_file = tmp_path / "publish.env"
    env_file.write_text("CLS_DETEC_THRESH=0.35\nDEVELOPER=Tiger Trust\nREGION=global\n",
                        encoding="utf-8")
    result = CliRunner().invoke(app, ["addaxai", str(bundle), "--out", str(tmp_path / "out"),
                                      "--env-file", str(env_file)])
    assert result.exit_code == 0, result.output
    variables = json.loads((tmp_path / "out/v6/variables.json").read_text(encoding="utf-8"))
    manifest = json.loads((tmp_path / "out/v7/manifest.json").read_text(encoding="utf-8"))
    assert (variables["var_cls_detec_thresh"], variables["developer"]) == ("0.35", "Tiger Trust")
    assert (manifest["region"], manifest["hf_repo"]) == ("global", None)


def test_a_wrong_setting_names_its_key(bundle: Path, tmp_path: Path) -> None:
    env_file = tmp_path / "publish.env"
    env_file.write_text("CLS_CLASS_THRESH=high\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["addaxai", str(bundle), "--out", str(tmp_path / "out"),
                                      "--env-file", str(env_file)])
    assert result.exit_code == 2
    assert "CLS_CLASS_THRESH" in result.output
