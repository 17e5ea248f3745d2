"""The service's env file documents every key with its default."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tigertrap.classify.config import ClassifySettings
from tigertrap.core.config import ConfigError, load_settings

ENV_FILE = Path(__file__).resolve().parents[2] / "services" / "classify" / "classify.env"


def test_env_file_lists_every_key() -> None:
    listed = set(re.findall(r"^#?([A-Z_]+)=", ENV_FILE.read_text(), flags=re.MULTILINE))
    assert listed == {ClassifySettings.key(name) for name in ClassifySettings.model_fields}


def test_env_file_values_are_the_defaults() -> None:
    from_file = load_settings(ClassifySettings, env_file=ENV_FILE)
    assert from_file.model_dump() == ClassifySettings().model_dump()


def test_unknown_backend_names_the_key() -> None:
    with pytest.raises(ConfigError, match="BACKEND"):
        load_settings(ClassifySettings, backend="tpu")
