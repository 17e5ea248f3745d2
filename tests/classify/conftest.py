"""Fixtures of the classify tests: the train stage's tiny bundle and a started engine."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.train.bundle_factory import build_tiny_bundle
from tests.train.synthetic import class_images
from tigertrap.classify.engine import InferenceEngine

#: Output order of the tiny bundle; each class is a colour and stripe direction it learned.
CLASSES = ["tiger", "leopard_cat", "sambar"]
INPUT_SIZE = 64


def known_crops(name: str, count: int, size: int = INPUT_SIZE, seed: int = 11) -> np.ndarray:
    """``count`` images the tiny bundle labels ``name``: (count, size, size, 3) uint8."""
    rng = np.random.default_rng(seed)
    return class_images(CLASSES.index(name), len(CLASSES), count, size, rng)


@pytest.fixture(scope="session")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny trained bundle (tests/train/bundle_factory.py) for :data:`CLASSES`."""
    return build_tiny_bundle(tmp_path_factory.mktemp("bundle") / "tiny", CLASSES,
                             input_size=INPUT_SIZE)


@pytest.fixture(scope="session")
def engine(bundle_dir: Path) -> Iterator[InferenceEngine]:
    """A started ONNX engine on the tiny bundle, shared by the tests that only read it."""
    with InferenceEngine(bundle_dir, backend="onnx", max_batch_size=8, max_wait_ms=20) as started:
        yield started
