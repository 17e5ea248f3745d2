"""Fixtures of the classify tests: one trained colour bundle and a started engine per session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.classify.tiny_bundle import build_colour_bundle
from tigertrap.classify.engine import InferenceEngine


@pytest.fixture(scope="session")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A classifier bundle that labels solid-colour crops (see tiny_bundle.CLASS_COLOURS)."""
    return build_colour_bundle(tmp_path_factory.mktemp("bundle") / "colours")


@pytest.fixture(scope="session")
def engine(bundle_dir: Path) -> Iterator[InferenceEngine]:
    """A started ONNX engine on the colour bundle, shared by the tests that only read it."""
    with InferenceEngine(bundle_dir, backend="onnx", max_batch_size=8, max_wait_ms=20) as started:
        yield started
