"""The request limits' settings: MAX_REQUEST_BYTES's default follows the per-image limits within
a bound, and limits that contradict each other stop start-up naming the keys."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.api.conftest import REPO
from tigertrap.classify.api.config import MIB, ApiSettings
from tigertrap.core.config import ConfigError, load_settings


def test_the_default_request_cap_is_the_images_allowed_plus_room_for_their_part_headers():
    settings = ApiSettings(max_images=4, max_upload_bytes=2 * MIB)
    assert settings.request_byte_limit() == 4 * 2 * MIB + MIB


def test_the_default_request_cap_is_bounded_at_256_mib():
    assert ApiSettings().request_byte_limit() == 256 * MIB  # 32 x 20 MiB would be 641 MiB


def test_the_default_request_cap_always_fits_one_image_of_the_upload_limit():
    settings = ApiSettings(max_images=1, max_upload_bytes=300 * MIB)
    assert settings.request_byte_limit() == 301 * MIB


def test_a_given_request_cap_is_used_as_given():
    settings = ApiSettings(max_request_bytes=5 * MIB, max_upload_bytes=MIB)
    assert settings.request_byte_limit() == 5 * MIB


@pytest.mark.parametrize(("values", "named"), [
    ({"MAX_REQUEST_BYTES": "1000", "MAX_UPLOAD_BYTES": "2000"}, "MAX_REQUEST_BYTES (1000)"),
    ({"BODY_IDLE_TIMEOUT_S": "30", "BODY_TIMEOUT_S": "10"}, "BODY_IDLE_TIMEOUT_S (30)"),
    ({"HEADER_TIMEOUT_S": "0"}, "HEADER_TIMEOUT_S"),
    ({"MAX_PROCESS_PIXELS": "lots"}, "MAX_PROCESS_PIXELS"),
])
def test_contradicting_or_wrong_limits_are_refused_naming_the_key(
        monkeypatch: pytest.MonkeyPatch, values: dict[str, str], named: str):
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError, match=named.replace("(", r"\(").replace(")", r"\)")):
        load_settings(ApiSettings)


def test_serve_with_a_request_cap_below_the_upload_limit_stops_naming_both(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "TIGERTRAP_DATA": str(tmp_path),
           "MAX_REQUEST_BYTES": "1000", "MAX_UPLOAD_BYTES": "2000"}
    result = subprocess.run([sys.executable, "-m", "tigertrap.core", "serve"], cwd=REPO,
                            env=env, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 2
    assert "MAX_REQUEST_BYTES" in result.stderr and "MAX_UPLOAD_BYTES" in result.stderr
