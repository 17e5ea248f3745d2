"""The inference engine: one loaded classifier bundle, fed crops, answering class probabilities.

Two ways in, sharing one model:

* :meth:`InferenceEngine.submit` for requests that arrive one crop at a time (the HTTP API):
  crops wait in a bounded queue; a batching thread takes up to ``max_batch_size`` of them, or
  whatever arrived within ``max_wait_ms`` of the first, and runs them as one batch. A full queue
  refuses new work with :class:`EngineOverloaded` rather than growing without limit.
* :meth:`InferenceEngine.predict` for callers that already hold a batch (batch mode, fed by a
  pool of decoding threads).

The bundle's ``model.onnx`` runs on ONNX Runtime; the bundle's ``model.keras`` is the fallback
when ONNX Runtime or the ONNX file is unavailable. ``backend="openvino"`` runs the same
``model.onnx`` on OpenVINO, whose CPU kernels were about 1.7x
faster than ONNX Runtime's on this project's 2-core AVX-512 server, and about 3x with
``precision="bf16"`` on CPUs with bfloat16 instructions (scores then agree to about 1e-2). All
take raw RGB 0-255 at the manifest's input size and output probabilities in class-map order.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path

import numpy as np

from tigertrap.core.bundle import MODEL_KERAS, MODEL_ONNX, BundleError, verify_bundle

__all__ = ["BACKENDS", "PRECISIONS", "EngineOverloaded", "InferenceEngine"]

log = logging.getLogger(__name__)

BACKENDS = ("auto", "onnx", "openvino", "keras")
PRECISIONS = ("f32", "bf16")
#: How long the batching thread blocks on an empty queue before checking for stop.
IDLE_POLL_S = 0.1
#: Batches run at start so the first real request does not pay for graph optimisation.
WARMUP_RUNS = 2

Runner = Callable[[np.ndarray], np.ndarray]
#: What a backend's loader returns: the runner and the precision it really computes in.
Loaded = tuple[Runner, str]


class EngineOverloaded(RuntimeError):
    """The engine's queue is full; the caller should retry later (HTTP 429/503)."""


def _onnx_runner(path: Path, threads: int | None, precision: str) -> Loaded:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), sess_options=options,
                                   providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name

    def run(batch: np.ndarray) -> np.ndarray:
        return session.run(None, {input_name: batch})[0]

    return run, "f32"


def _openvino_runner(path: Path, threads: int | None, precision: str) -> Loaded:
    import openvino

    # Throughput mode: several streams, each with a share of the cores; a batch is split
    # across them, which kept both cores busier than one stream did.
    config: dict[str, object] = {"INFERENCE_PRECISION_HINT": precision,
                                 "PERFORMANCE_HINT": "THROUGHPUT"}
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    compiled = openvino.Core().compile_model(str(path), "CPU", config)
    # A CPU without bfloat16 instructions silently computes in f32: say so.
    bf16 = compiled.get_property("INFERENCE_PRECISION_HINT") == openvino.Type.bf16
    effective = "bf16" if bf16 else "f32"
    if effective != precision:
        log.warning("precision %s requested, but this CPU has no bfloat16 instructions: "
                    "OpenVINO runs in f32", precision)
    streams = max(1, int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")))
    requests = openvino.AsyncInferQueue(compiled, streams)
    outputs: dict[int, np.ndarray] = {}
    requests.set_callback(
        lambda request, part: outputs.__setitem__(part, request.get_output_tensor(0).data.copy()))
    lock = threading.Lock()  # one batch at a time through the request queue

    def run(batch: np.ndarray) -> np.ndarray:
        with lock:
            outputs.clear()
            parts = np.array_split(batch, min(streams, len(batch)))
            for number, part in enumerate(parts):
                requests.start_async({0: np.ascontiguousarray(part)}, number)
            requests.wait_all()
            return np.concatenate([outputs[n] for n in range(len(parts))])

    return run, effective


def _keras_runner(path: Path, threads: int | None, precision: str) -> Loaded:
    if threads:
        import tensorflow as tf

        with contextlib.suppress(RuntimeError):  # already initialised in this process
            tf.config.threading.set_intra_op_parallelism_threads(threads)
    import keras

    model = keras.saving.load_model(path, compile=False)
    lock = threading.Lock()  # Keras models are not safe to call from several threads at once

    def run(batch: np.ndarray) -> np.ndarray:
        with lock:
            return np.asarray(model(batch, training=False))

    return run, "f32"


class _Request:
    __slots__ = ("crop", "future")

    def __init__(self, crop: np.ndarray, future: Future) -> None:
        self.crop = crop
        self.future = future


class InferenceEngine:
    """A classifier bundle loaded for inference, with dynamic batching.

    Args:
        bundle_dir: the bundle folder (checked with :func:`tigertrap.core.bundle.verify_bundle`).
        backend: ``"onnx"``, ``"openvino"``, ``"keras"`` or ``"auto"`` (ONNX Runtime when the
            bundle has ``model.onnx`` and onnxruntime imports, else Keras).
        max_batch_size: largest batch the batching thread runs.
        max_wait_ms: how long the first crop of a batch waits for company.
        max_queue: crops waiting at most; beyond that :meth:`submit` raises
            :class:`EngineOverloaded`.
        threads: intra-op threads of the runtime (None: the runtime's default, all cores).
        precision: ``"f32"``, or ``"bf16"`` for the openvino backend on CPUs that have it.

    Raises:
        BundleError: the bundle is incomplete or altered, or has no model for ``backend``.
        ValueError: an unknown backend or a non-positive size.
    """

    def __init__(self, bundle_dir: Path, *, backend: str = "auto", max_batch_size: int = 32,
                 max_wait_ms: float = 5.0, max_queue: int = 1024,
                 threads: int | None = None, precision: str = "f32") -> None:
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; use one of {', '.join(BACKENDS)}")
        if precision not in PRECISIONS or (precision != "f32" and backend != "openvino"):
            raise ValueError(f"precision {precision!r}: use f32, or bf16 with backend openvino")
        if max_batch_size < 1 or max_queue < 1 or max_wait_ms < 0:
            raise ValueError("max_batch_size and max_queue must be >= 1, max_wait_ms >= 0")
        self.bundle_dir = Path(bundle_dir)
        self.manifest, self.class_map = verify_bundle(self.bundle_dir)
        self.input_size: int = self.manifest.input_size
        self.requested_backend = backend
        self.backend: str | None = None  # the one actually loaded, set by start()
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_ms / 1000.0
        self.threads = threads
        self.requested_precision = precision
        #: What the loaded backend really computes in, set by load(): bf16 becomes f32 on a
        #: CPU without bfloat16 instructions.
        self.precision: str | None = None
        self._queue: queue.Queue[_Request] = queue.Queue(maxsize=max_queue)
        self._runner: Runner | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._stats_lock = threading.Lock()
        self._batches = 0
        self._crops = 0
        self._batch_sizes: dict[int, int] = {}

    # -- life cycle ---------------------------------------------------------------------------

    def _choose_backend(self) -> tuple[str, Path]:
        onnx_path, keras_path = self.bundle_dir / MODEL_ONNX, self.bundle_dir / MODEL_KERAS
        if self.requested_backend == "openvino":
            if not onnx_path.is_file():
                raise BundleError(f"{self.bundle_dir}: no {MODEL_ONNX} for the openvino backend")
            return "openvino", onnx_path
        if self.requested_backend in ("auto", "onnx") and onnx_path.is_file():
            if self.requested_backend == "onnx":
                return "onnx", onnx_path
            try:
                import onnxruntime  # noqa: F401

                return "onnx", onnx_path
            except ImportError:
                log.warning("onnxruntime is not installed; falling back to Keras")
        if self.requested_backend == "onnx":
            raise BundleError(f"{self.bundle_dir}: no {MODEL_ONNX} for the onnx backend")
        if keras_path.is_file():
            return "keras", keras_path
        raise BundleError(f"{self.bundle_dir}: neither {MODEL_ONNX} nor {MODEL_KERAS} found")

    def load(self) -> None:
        """Load the model and run warm-up batches (done by :meth:`start` if not yet)."""
        if self._runner is not None:
            return
        backend, path = self._choose_backend()
        loaders = {"onnx": _onnx_runner, "openvino": _openvino_runner, "keras": _keras_runner}
        runner, precision = loaders[backend](path, self.threads, self.requested_precision)
        warmup = np.zeros((1, self.input_size, self.input_size, 3), dtype=np.float32)
        for size in (1, self.max_batch_size)[:WARMUP_RUNS]:
            probabilities = runner(np.repeat(warmup, size, axis=0))
        if probabilities.shape[-1] != len(self.class_map):
            raise BundleError(f"{self.bundle_dir}: the model has {probabilities.shape[-1]} outputs "
                              f"but the class map lists {len(self.class_map)} classes")
        self.backend, self._runner, self.precision = backend, runner, precision
        log.info("loaded %s (%s backend, %s, %d classes, input %d)", self.bundle_dir, backend,
                 precision, len(self.class_map), self.input_size)

    def start(self) -> None:
        """Load the model, warm it up and start the batching thread."""
        self.load()
        if self._thread is not None and self._thread.is_alive():
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._batch_loop, name="inference-batching",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the batching thread; crops still queued fail with :class:`EngineOverloaded`."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        while True:
            try:
                request = self._queue.get_nowait()
            except queue.Empty:
                break
            request.future.set_exception(EngineOverloaded("the inference engine stopped"))

    def __enter__(self) -> InferenceEngine:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- inference ----------------------------------------------------------------------------

    def _check_crops(self, crops: np.ndarray) -> np.ndarray:
        expected = (self.input_size, self.input_size, 3)
        if crops.ndim != 4 or crops.shape[1:] != expected:
            raise ValueError(f"crops must have shape (N, {expected[0]}, {expected[1]}, 3); "
                             f"got {crops.shape}")
        return crops.astype(np.float32, copy=False)

    def predict(self, crops: np.ndarray) -> np.ndarray:
        """Class probabilities ``(N, classes)`` for crops ``(N, size, size, 3)`` (RGB 0-255),
        run directly in chunks of at most ``max_batch_size``."""
        if self._runner is None:
            self.load()
        assert self._runner is not None
        batch = self._check_crops(np.asarray(crops))
        if len(batch) == 0:
            return np.zeros((0, len(self.class_map)), dtype=np.float32)
        parts = [self._runner(batch[start:start + self.max_batch_size])
                 for start in range(0, len(batch), self.max_batch_size)]
        probabilities = np.concatenate(parts).astype(np.float32, copy=False)
        self._record(len(batch), len(parts))
        return probabilities

    def submit(self, crop: np.ndarray) -> Future:
        """Queue one crop ``(size, size, 3)``; the future resolves to its probabilities.

        Raises:
            EngineOverloaded: the queue is full (or the engine is not running).
            ValueError: the crop has the wrong shape.
        """
        if self._thread is None or self._stopping.is_set():
            raise EngineOverloaded("the inference engine is not running")
        array = self._check_crops(np.asarray(crop)[np.newaxis])[0]
        future: Future = Future()
        try:
            self._queue.put_nowait(_Request(array, future))
        except queue.Full:
            raise EngineOverloaded(f"inference queue full ({self._queue.maxsize} crops waiting)"
                                   ) from None
        return future

    def _collect_batch(self) -> list[_Request]:
        try:
            first = self._queue.get(timeout=IDLE_POLL_S)
        except queue.Empty:
            return []
        batch = [first]
        deadline = time.monotonic() + self.max_wait_s
        while len(batch) < self.max_batch_size:
            remaining = deadline - time.monotonic()
            try:
                batch.append(self._queue.get(timeout=remaining) if remaining > 0
                             else self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _batch_loop(self) -> None:
        assert self._runner is not None
        while not self._stopping.is_set():
            batch = self._collect_batch()
            live = [request for request in batch if request.future.set_running_or_notify_cancel()]
            if not live:
                continue
            try:
                probabilities = self._runner(np.stack([request.crop for request in live]))
            except Exception as error:  # a failed batch fails its requests, not the engine
                log.exception("inference batch of %d failed", len(live))
                for request in live:
                    request.future.set_exception(error)
                continue
            self._record(len(live), 1)
            for request, row in zip(live, probabilities, strict=True):
                request.future.set_result(np.asarray(row, dtype=np.float32))

    # -- statistics ---------------------------------------------------------------------------

    def _record(self, crops: int, batches: int) -> None:
        with self._stats_lock:
            self._batches += batches
            self._crops += crops
            size = -(-crops // batches)
            self._batch_sizes[size] = self._batch_sizes.get(size, 0) + batches

    def stats(self) -> dict:
        """Counters for ``/metrics``: batches run, crops classified, mean batch size, current
        queue depth, and how many batches had each size."""
        with self._stats_lock:
            return {
                "backend": self.backend,
                "precision": self.precision,
                "batches": self._batches,
                "crops": self._crops,
                "mean_batch_size": self._crops / self._batches if self._batches else 0.0,
                "queue_depth": self._queue.qsize(),
                "queue_capacity": self._queue.maxsize,
                "batch_sizes": dict(sorted(self._batch_sizes.items())),
            }
