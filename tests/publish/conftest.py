"""Fixtures of the publish tests: a tiny trained 12-class bundle, with and without metrics, and
the local Hub stand-in."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from tests.publish.hub_server import FakeHub
from tests.train.bundle_factory import build_tiny_bundle
from tigertrap.core.bundle import load_manifest, write_manifest

#: Twelve classes, so that string-sorted indices (0, 1, 10, 11, 2, ...) would mislabel.
CLASSES = ["tiger", "leopard", "dhole", "sambar", "chital", "wild_boar", "asian_elephant",
           "sloth_bear", "macaque", "langur", "porcupine", "human"]
TIGER_THRESHOLD = 0.31
METRICS = {
    "test": {"accuracy": 0.912, "macro_f1": 0.905, "tiger_precision": 0.88,
             "tiger_recall": 0.961},
    "test2": {"accuracy": 0.774, "macro_f1": 0.751, "tiger_precision": 0.93,
              "tiger_recall": 0.902, "macro_classes": ["tiger", "leopard"],
              "absent_classes": CLASSES[2:]},
}
SPLITS = {"train": 4800, "val": 600, "test": 600, "test2": 150}


@pytest.fixture(scope="session")
def tiny_bundle_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 12-class tiny bundle, built once per session (read-only: copy before changing)."""
    return build_tiny_bundle(tmp_path_factory.mktemp("bundles") / "tiny-tiger", CLASSES)


@pytest.fixture
def bundle(tiny_bundle_source: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny bundle."""
    return Path(shutil.copytree(tiny_bundle_source, tmp_path / "tiny-tiger"))


def add_evaluation(bundle_dir: Path) -> Path:
    """Give a bundle what train's evaluation writes: metrics, reports, confusion matrices."""
    metrics = bundle_dir / "metrics"
    metrics.mkdir(exist_ok=True)
    for split, colour in (("test", "navy"), ("test2", "darkred")):
        Image.new("RGB", (32, 32), colour).save(metrics / f"confusion_matrix_{split}.png")
        (metrics / f"classification_report_{split}.csv").write_text(
            "class,precision,recall,f1,support\ntiger,0.9,0.95,0.92,50\n", encoding="utf-8")
    manifest = load_manifest(bundle_dir)
    write_manifest(bundle_dir, manifest.model_copy(update={
        "metrics": METRICS, "tiger_threshold": TIGER_THRESHOLD, "splits": SPLITS}))
    return bundle_dir


@pytest.fixture
def evaluated_bundle(bundle: Path) -> Path:
    """The tiny bundle with metrics for test and test2 and a tiger threshold."""
    return add_evaluation(bundle)


@pytest.fixture(scope="session")
def evaluated_bundle_source(tiny_bundle_source: Path,
                            tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Like ``evaluated_bundle``, built once per session (read-only)."""
    target = tmp_path_factory.mktemp("evaluated") / "tiny-tiger"
    return add_evaluation(Path(shutil.copytree(tiny_bundle_source, target)))


@pytest.fixture(scope="module")
def module_hub() -> Iterator[FakeHub]:
    """A Hub stand-in shared by one test module."""
    hub = FakeHub().start()
    try:
        yield hub
    finally:
        hub.stop()


@pytest.fixture
def fake_hub() -> Iterator[FakeHub]:
    """The local Hub stand-in on a free loopback port."""
    hub = FakeHub().start()
    try:
        yield hub
    finally:
        hub.stop()
