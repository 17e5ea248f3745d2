"""The stage contracts: every path key of every stage is confined, at submission and in the task.

The attacks come from :mod:`tests.confinement`, generated from the declarations themselves, so
a key added to a contract is attacked without editing these tests. The API's side of the same
enumeration is tests/api/test_confinement.py.
"""

from __future__ import annotations

import importlib
import typing
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.confinement import ATTACK_KINDS, OutsideFolder, path_attacks
from tigertrap.core.contract import (
    FolderOf,
    PathRefused,
    contract,
    contracts,
    job_settings,
    looks_like_weights_file,
    stage_names,
)
from tigertrap.core.jobs import StageRequest, check_job
from tigertrap.core.paths import DataRoot
from tigertrap.core.queue import STAGES

#: Each stage's settings class, as its task loads it.
SETTINGS = {
    "download": "tigertrap.download.config:DownloadSettings",
    "detect": "tigertrap.detect.config:DetectSettings",
    "snip": "tigertrap.snip.config:SnipSettings",
    "train": "tigertrap.train.config:TrainSettings",
    "classify": "tigertrap.classify.config:ClassifySettings",
    "publish": "tigertrap.publish.stage:PublishJobSettings",
    "rde": "tigertrap.classify.stage:RdeJobSettings",
    "export": "tigertrap.classify.camtrap_dp:CamtrapDPSettings",
    "retrain": "tigertrap.train.stage:RetrainJobSettings",
}
PATH_NAME_ENDINGS = ("_dir", "_file", "_csv", "_path", "_list", "_md", "_root")


def _settings_class(stage: str) -> type:
    module, name = SETTINGS[stage].split(":")
    return getattr(importlib.import_module(module), name)


@pytest.fixture
def hostile(tmp_path: Path) -> tuple[Path, OutsideFolder, list]:
    root = tmp_path / "data"
    (root / "datasets").mkdir(parents=True)
    outside = OutsideFolder(tmp_path / "outside")
    return root, outside, path_attacks(root, outside)


def test_every_worker_stage_has_a_contract_and_every_contract_a_queue():
    assert set(STAGES) <= set(contracts())
    assert {c.queue_name for c in contracts().values()} == set(STAGES)


@pytest.mark.parametrize("stage", stage_names())
def test_every_path_setting_of_a_stage_is_declared(stage):
    """A setting typed as a path, or named like one, must be in the stage's contract."""
    cls = _settings_class(stage)
    hints = typing.get_type_hints(cls)
    path_like = {name for name in cls.model_fields
                 if "Path" in str(hints.get(name)) or name.endswith(PATH_NAME_ENDINGS)}
    assert path_like <= contract(stage).keys, path_like - contract(stage).keys


@pytest.mark.parametrize("stage", stage_names())
def test_declared_defaults_are_the_settings_defaults(stage):
    cls = _settings_class(stage)
    for spec in contract(stage).paths:
        assert spec.key in cls.model_fields, f"{stage}.{spec.key} is no setting"
        if spec.default is not None:
            assert str(cls.model_fields[spec.key].default) == spec.default, spec.key


@pytest.mark.parametrize("value, is_file", [
    ("MDV5A", False), ("MDv1000-redwood", False), ("md_v5a.0.0.pt", True),
    ("models/detectors/x.pt", True), ("weights.pth", True), ("x/y", True)])
def test_weights_files_are_told_from_names_as_detect_tells_them(value, is_file):
    from tigertrap.detect.weights import is_weights_file

    assert looks_like_weights_file(value) is is_file
    assert is_weights_file(value) is is_file


def test_attacks_cover_every_key_and_keys_relative_to_other_bases(hostile):
    _, _, attacks = hostile
    keys = {(stage, spec.key) for stage, c in contracts().items() for spec in c.paths}
    assert {(a.stage, a.key) for a in attacks} == keys
    assert {a.kind for a in attacks} == set(ATTACK_KINDS)
    other_bases = {(a.stage, a.key) for a in attacks
                   if isinstance(contract(a.stage).spec(a.key).base, FolderOf)}
    assert {("detect", "checkpoint_file"), ("snip", "md_file"),
            ("classify", "output_md")} <= other_bases


def test_submission_refuses_every_attack_naming_the_key(hostile):
    root, outside, attacks = hostile
    before = outside.snapshot()
    for attack in attacks:
        with pytest.raises(PathRefused) as refused:
            check_job([StageRequest(stage=attack.stage, params=attack.params)], DataRoot(root))
        assert f"{attack.stage}." in str(refused.value), attack.id
        assert "stages[0]" in str(refused.value)
    assert outside.snapshot() == before


def test_the_task_check_refuses_every_attack(hostile):
    """What each worker runs before its stage: the settings it loads are confined too."""
    root, outside, attacks = hostile
    before = outside.snapshot()
    for attack in attacks:
        with pytest.raises(PathRefused):
            job_settings(attack.stage, _settings_class(attack.stage), attack.params,
                         DataRoot(root))
    assert outside.snapshot() == before


def test_defaults_are_confined_in_the_task(tmp_path):
    """snip's default MD_FILE and SNIP_DIR inside INPUT_DIR may be symlinks out too."""
    root, outside = tmp_path / "data", OutsideFolder(tmp_path / "outside")
    images = root / "datasets" / "x"
    images.mkdir(parents=True)
    (images / "snips").symlink_to(outside.folder, target_is_directory=True)
    with pytest.raises(PathRefused, match="snip.SNIP_DIR"):
        job_settings("snip", _settings_class("snip"), {"INPUT_DIR": "datasets/x"},
                     DataRoot(root))


def test_paths_that_stay_inside_are_made_absolute(tmp_path):
    root = tmp_path / "data"
    (root / "datasets" / "d" / "images").mkdir(parents=True)
    settings = job_settings("detect", _settings_class("detect"), {
        "INPUT_DIR": "datasets/d/images", "MD_FILE": "../md.json",
        "CHECKPOINT_FILE": "ckpt.jsonl"}, DataRoot(root))
    assert settings.input_dir == root / "datasets/d/images"
    assert Path(settings.md_file) == root / "datasets/d/md.json"
    assert Path(settings.checkpoint_file) == root / "datasets/d/ckpt.jsonl"
    inside = job_settings("download", _settings_class("download"),
                          {"DATASET_NAME": "tigers"}, DataRoot(root))
    assert inside.dataset_name == "tigers"


def test_a_symlink_that_stays_inside_the_root_is_allowed(tmp_path):
    root = tmp_path / "data"
    (root / "datasets" / "real").mkdir(parents=True)
    (root / "datasets" / "alias").symlink_to(root / "datasets" / "real")
    resolved = contract("classify").resolve({"MD_FILE": "datasets/alias/md.json"},
                                            DataRoot(root), defaults=False)
    assert resolved["md_file"] == root / "datasets/alias/md.json"


def test_jobs_submit_refuses_an_escaping_path_and_queues_nothing(hostile, monkeypatch):
    from tigertrap.core.cli import app

    root, outside, attacks = hostile
    monkeypatch.setenv("TIGERTRAP_DATA", str(root))
    # An unreachable queue: a refused job must fail before it would connect.
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    before = outside.snapshot()
    runner = CliRunner()
    for attack in attacks:
        params = [f"{attack.stage}.{key.upper()}={value}" for key, value in
                  attack.params.items() if isinstance(value, str)]
        if len(params) != len(attack.params):
            continue  # mapping values cannot be written as STAGE.KEY=VALUE
        args = ["jobs", "submit", attack.stage]
        for param in params:
            args += ["-p", param]
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (attack.id, result.output)
        assert f"{attack.stage}.{attack.key.upper()}" in result.output or \
            "is not allowed" in result.output, (attack.id, result.output)
    assert outside.snapshot() == before


@pytest.mark.parametrize("stage", stage_names())
def test_declared_setting_keys_are_the_settings_fields(stage):
    """The API refuses unknown keys from this list without importing the stage."""
    assert contract(stage).settings_keys == set(_settings_class(stage).model_fields)


def test_an_unknown_key_is_refused_naming_it_and_the_likely_one(tmp_path):
    from tigertrap.core.contract import UnknownKey

    with pytest.raises(UnknownKey, match=r"stages\[0\] detect.TRESHOLD: .*THRESHOLD\?"):
        check_job([StageRequest(stage="detect", params={"TRESHOLD": 0.2})], DataRoot(tmp_path))
    check_job([StageRequest(stage="detect", params={"SHARD_SIZE": 10})], DataRoot(tmp_path))
    with pytest.raises(UnknownKey, match="train.SHARD_SIZE"):  # train does not shard
        check_job([StageRequest(stage="train", params={"SHARD_SIZE": 10})], DataRoot(tmp_path))


def test_pipelines_chain_their_stages_with_the_users_keys_over_the_defaults():
    from tigertrap.core.jobs import pipeline_stages

    steps = pipeline_stages("build-model", {"snip": {"BY_CLASS": False, "SNIP_SIZE": 64}})
    assert [s.stage for s in steps] == ["download", "detect", "snip", "train", "publish"]
    assert steps[2].params == {"by_class": False, "snip_size": 64}
    assert steps[4].params == {"dry_run": True}
    with pytest.raises(KeyError, match="unknown pipeline 'nope'"):
        pipeline_stages("nope")
    with pytest.raises(KeyError, match="has no stage 'train'"):
        pipeline_stages("process-season", {"train": {}})


def test_a_stage_feeds_on_the_results_of_the_stages_before_it():
    from tigertrap.core.runner import fed_params

    results = {"detect": {"md_file": "datasets/x/md.json"},
               "download": {"lila": {"manifest": "datasets/x/manifest.csv"}},
               "train": {"bundle_dir": "models/classifiers/tigers"}}
    assert fed_params(contract("snip"), {}, results) == {"input_dir": "datasets/x",
                                                         "md_file": "md.json"}
    assert fed_params(contract("detect"), {}, results) == {
        "image_list": "datasets/x/manifest.csv"}
    assert fed_params(contract("classify"), {"MODEL": "mine"}, results) == {
        "model": "mine", "md_file": "datasets/x/md.json"}
    assert fed_params(contract("classify"), {}, {}) == {}
