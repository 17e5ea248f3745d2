"""The inference engine: right labels, dynamic batching, bounded queue, backends that agree."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np
import pytest

from tests.classify.conftest import CLASSES, known_crops
from tigertrap.classify.engine import EngineOverloaded, InferenceEngine
from tigertrap.core.bundle import BundleError


def _one_crop_per_class(seed: int = 7) -> tuple[list[str], np.ndarray]:
    crops = np.concatenate([known_crops(name, 1, seed=seed) for name in CLASSES])
    return list(CLASSES), crops


def test_predict_labels_each_learned_pattern_as_its_class(engine: InferenceEngine) -> None:
    names, crops = _one_crop_per_class()
    probabilities = engine.predict(crops)
    assert probabilities.shape == (len(names), len(engine.class_map))
    assert [engine.class_map.name(i) for i in probabilities.argmax(axis=1)] == names


def test_predict_returns_probabilities_that_sum_to_one(engine: InferenceEngine) -> None:
    _, crops = _one_crop_per_class()
    np.testing.assert_allclose(engine.predict(crops).sum(axis=1), 1.0, atol=1e-4)


def test_predict_splits_more_crops_than_the_max_batch_size(engine: InferenceEngine) -> None:
    crops = known_crops("sambar", engine.max_batch_size * 2 + 3)
    probabilities = engine.predict(crops)
    assert len(probabilities) == len(crops)
    assert set(probabilities.argmax(axis=1)) == {engine.class_map.index("sambar")}


def test_submit_resolves_to_the_same_probabilities_as_predict(engine: InferenceEngine) -> None:
    _, crops = _one_crop_per_class()
    futures = [engine.submit(crop) for crop in crops]
    answers = np.stack([future.result(timeout=30) for future in futures])
    np.testing.assert_allclose(answers, engine.predict(crops), atol=1e-5)


def test_wrong_crop_shape_is_refused(engine: InferenceEngine) -> None:
    with pytest.raises(ValueError, match="shape"):
        engine.submit(np.zeros((10, 10, 3), dtype=np.uint8))


def test_concurrent_submissions_are_run_in_shared_batches(bundle_dir: Path) -> None:
    crops = known_crops("tiger", 24)
    # A long wait lets every crop submitted by the threads join a batch of max_batch_size.
    with InferenceEngine(bundle_dir, max_batch_size=8, max_wait_ms=2000) as batching:
        barrier = threading.Barrier(len(crops))
        futures: list = [None] * len(crops)

        def send(index: int) -> None:
            barrier.wait()
            futures[index] = batching.submit(crops[index])

        threads = [threading.Thread(target=send, args=(i,)) for i in range(len(crops))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        results = [future.result(timeout=60) for future in futures]
        stats = batching.stats()
    assert len(results) == len(crops)
    assert stats["crops"] == len(crops)
    assert stats["batches"] < len(crops)
    assert stats["mean_batch_size"] > 1


def test_full_queue_raises_engine_overloaded(bundle_dir: Path) -> None:
    engine = InferenceEngine(bundle_dir, max_batch_size=1, max_wait_ms=0, max_queue=2)
    engine.load()
    # The batching thread is held inside its first batch, so nothing more leaves the queue.
    entered, release = threading.Event(), threading.Event()
    runner = engine._runner

    def held_runner(batch: np.ndarray) -> np.ndarray:
        entered.set()
        release.wait(30)
        return runner(batch)

    engine._runner = held_runner
    engine.start()
    crop = known_crops("tiger", 1)[0]
    accepted = [engine.submit(crop)]
    try:
        assert entered.wait(30)
        accepted += [engine.submit(crop), engine.submit(crop)]  # fills the queue of 2
        with pytest.raises(EngineOverloaded):
            engine.submit(crop)
        assert engine.stats()["queue_depth"] == 2
    finally:
        release.set()
        results = [future.result(timeout=30) for future in accepted]
        engine.stop()
    assert len(results) == 3


def test_submit_before_start_raises_engine_overloaded(bundle_dir: Path) -> None:
    engine = InferenceEngine(bundle_dir)
    with pytest.raises(EngineOverloaded):
        engine.submit(np.zeros((engine.input_size, engine.input_size, 3), dtype=np.uint8))


def test_onnx_and_keras_backends_agree(bundle_dir: Path, engine: InferenceEngine) -> None:
    _, crops = _one_crop_per_class()
    keras_engine = InferenceEngine(bundle_dir, backend="keras")
    keras_engine.load()
    assert (engine.backend, keras_engine.backend) == ("onnx", "keras")
    np.testing.assert_allclose(keras_engine.predict(crops), engine.predict(crops), atol=1e-3)


def test_auto_backend_falls_back_to_keras_without_onnx_file(bundle_dir: Path,
                                                            tmp_path: Path) -> None:
    import shutil

    copy = Path(shutil.copytree(bundle_dir, tmp_path / "bundle"))
    (copy / "model.onnx").unlink()
    manifest = (copy / "manifest.json").read_text()
    import json

    data = json.loads(manifest)
    del data["files"]["model.onnx"]
    (copy / "manifest.json").write_text(json.dumps(data))
    fallback = InferenceEngine(copy)
    fallback.load()
    assert fallback.backend == "keras"


def test_altered_bundle_is_refused(bundle_dir: Path, tmp_path: Path) -> None:
    import shutil

    copy = Path(shutil.copytree(bundle_dir, tmp_path / "bundle"))
    (copy / "class_map.yaml").write_text("0: tiger\n1: sambar\n2: leopard_cat\n")
    with pytest.raises(BundleError, match="class_map.yaml"):
        InferenceEngine(copy)


def test_openvino_backend_agrees_with_onnx_runtime(bundle_dir: Path,
                                                   engine: InferenceEngine) -> None:
    _, crops = _one_crop_per_class()
    openvino_engine = InferenceEngine(bundle_dir, backend="openvino")
    openvino_engine.load()
    np.testing.assert_allclose(openvino_engine.predict(crops), engine.predict(crops), atol=1e-4)


def test_bfloat16_openvino_keeps_every_top_class(bundle_dir: Path, engine: InferenceEngine,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    import openvino

    names, crops = _one_crop_per_class()
    bf16 = InferenceEngine(bundle_dir, backend="openvino", precision="bf16")
    with caplog.at_level(logging.WARNING, logger="tigertrap.classify.engine"):
        bf16.load()
    # The engine reports what OpenVINO really computes in: f32 on a CPU without bfloat16.
    cpu_has_bf16 = "BF16" in openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    assert bf16.precision == ("bf16" if cpu_has_bf16 else "f32")
    assert ("no bfloat16 instructions" in caplog.text) is not cpu_has_bf16
    assert bf16.stats()["precision"] == bf16.precision
    probabilities = bf16.predict(crops)
    assert [CLASSES[i] for i in probabilities.argmax(axis=1)] == names
    np.testing.assert_allclose(probabilities, engine.predict(crops), atol=3e-2)


def test_bfloat16_is_refused_outside_openvino(bundle_dir: Path) -> None:
    with pytest.raises(ValueError, match="bf16"):
        InferenceEngine(bundle_dir, backend="onnx", precision="bf16")


def test_load_crop_with_draft_decoding_stays_close_to_a_full_decode(tmp_path: Path) -> None:
    from PIL import Image

    from tigertrap.classify.model_input import image_input, load_crop

    big = np.repeat(np.repeat(known_crops("tiger", 1, size=100)[0], 6, axis=0), 6, axis=1)
    Image.fromarray(big).save(tmp_path / "snip.jpg", quality=95)
    with Image.open(tmp_path / "snip.jpg") as full:
        reference = image_input(full.convert("RGB"), 64).astype(float)
    assert np.abs(load_crop(tmp_path / "snip.jpg", 64).astype(float) - reference).mean() < 3
