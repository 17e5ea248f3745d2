"""``tigertrap classify`` as a real process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.classify.frames import write_frame, write_md

TIMEOUT_S = 120


def tigertrap(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tigertrap.core", *args], capture_output=True,
                          text=True, timeout=TIMEOUT_S, check=False)


def test_classify_command_writes_outputs_and_prints_a_summary(tmp_path: Path,
                                                               bundle_dir: Path) -> None:
    boxes = write_frame(tmp_path / "f.png", [("tiger", 20, 20)])
    md = write_md(tmp_path / "md.json", {"f.png": [(boxes[0], 0.9)]})
    done = tigertrap("classify", str(md), "--model", str(bundle_dir), "--top-k", "2")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert (summary["classified"], summary["failures"]) == (1, 0)
    for key in ("md_file", "predictions_csv", "images_csv"):
        assert Path(summary[key]).is_file()


def test_classify_command_reads_settings_from_an_env_file(tmp_path: Path,
                                                          bundle_dir: Path) -> None:
    boxes = write_frame(tmp_path / "f.png", [("tiger", 20, 20)])
    md = write_md(tmp_path / "md.json", {"f.png": [(boxes[0], 0.9)]})
    env = tmp_path / "classify.env"
    env.write_text(f"MD_FILE={md}\nMODEL={bundle_dir}\nOUTPUT_MD=out.json\n")
    done = tigertrap("classify", "--env-file", str(env))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out.json").is_file()


def test_classify_command_without_model_names_the_missing_key(tmp_path: Path) -> None:
    md = write_md(tmp_path / "md.json", {})
    done = tigertrap("classify", str(md))
    assert done.returncode != 0
    assert "MODEL" in done.stderr


def test_classify_command_with_wrongly_typed_value_names_the_key(tmp_path: Path,
                                                                 bundle_dir: Path) -> None:
    md = write_md(tmp_path / "md.json", {})
    env = tmp_path / "bad.env"
    env.write_text("TOP_K=many\n")
    done = tigertrap("classify", str(md), "-m", str(bundle_dir), "--env-file", str(env))
    assert done.returncode != 0
    assert "TOP_K" in done.stderr
