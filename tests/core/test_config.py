"""Configuration: defaults < YAML < env file < environment < direct values; clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import Field, model_validator

from tigertrap.core.config import ConfigError, StageSettings, load_settings


class ExampleSettings(StageSettings):
    input_dir: Path = Path("images")
    lower_conf: float = 0.05
    snip_size: int = 600
    by_class: bool = False


def test_defaults_apply_without_any_source(monkeypatch):
    monkeypatch.delenv("LOWER_CONF", raising=False)
    settings = load_settings(ExampleSettings)
    assert settings.lower_conf == 0.05 and settings.snip_size == 600


def test_precedence_yaml_then_env_file_then_environment_then_direct(tmp_path, monkeypatch):
    (tmp_path / "c.yaml").write_text("LOWER_CONF: 0.1\nSNIP_SIZE: 300\nINPUT_DIR: a\n"
                                     "BY_CLASS: true\n")
    (tmp_path / "s.env").write_text("SNIP_SIZE=400\nINPUT_DIR=b\n")
    monkeypatch.setenv("INPUT_DIR", "c")
    settings = load_settings(ExampleSettings, yaml_file=tmp_path / "c.yaml",
                             env_file=tmp_path / "s.env", by_class=False)
    assert settings.lower_conf == 0.1  # only in YAML
    assert settings.snip_size == 400  # env file beats YAML
    assert settings.input_dir == Path("c")  # environment beats env file
    assert settings.by_class is False  # direct value beats all


def test_lower_case_yaml_keys_work_too(tmp_path):
    (tmp_path / "c.yaml").write_text("snip_size: 224\n")
    assert load_settings(ExampleSettings, yaml_file=tmp_path / "c.yaml").snip_size == 224


def test_wrong_type_names_the_key_and_the_expected_type(monkeypatch):
    monkeypatch.setenv("SNIP_SIZE", "large")
    with pytest.raises(ConfigError, match=r"SNIP_SIZE.*expected int.*'large'"):
        load_settings(ExampleSettings)


def test_booleans_are_parsed_not_guessed(monkeypatch):
    monkeypatch.setenv("BY_CLASS", "False")
    assert load_settings(ExampleSettings).by_class is False
    monkeypatch.setenv("BY_CLASS", "perhaps")
    with pytest.raises(ConfigError, match="BY_CLASS"):
        load_settings(ExampleSettings)


def test_unknown_direct_setting_is_refused():
    with pytest.raises(ConfigError, match="SNIPSIZE"):
        load_settings(ExampleSettings, snipsize=3)


def test_missing_yaml_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml"):
        load_settings(ExampleSettings, yaml_file=tmp_path / "nope.yaml")


class PairedSettings(StageSettings):
    low: float = 0.1
    high: float = 0.9

    @model_validator(mode="after")
    def _ordered(self) -> PairedSettings:
        if self.low > self.high:
            raise ValueError("LOW must not exceed HIGH")
        return self


def test_error_of_a_whole_settings_check_is_its_own_message():
    with pytest.raises(ConfigError, match=r"\(settings\): LOW must not exceed HIGH$"):
        load_settings(PairedSettings, low=0.95)


class ListSettings(StageSettings):
    names: list[str] = Field(default_factory=lambda: ["a"])


def test_list_setting_that_is_not_json_names_the_key(monkeypatch):
    monkeypatch.setenv("NAMES", "a,b")
    with pytest.raises(ConfigError, match="NAMES.*JSON"):
        load_settings(ListSettings)


def test_a_misspelt_yaml_key_stops_loading_naming_it_and_the_likely_key(tmp_path):
    (tmp_path / "c.yaml").write_text("SNIP_SIZE: 224\nLOWER_CONFF: 0.2\n")
    with pytest.raises(ConfigError, match="LOWER_CONFF.*did you mean LOWER_CONF") as error:
        load_settings(ExampleSettings, yaml_file=tmp_path / "c.yaml")
    assert error.value.key == "LOWER_CONFF"
