"""``tigertrap classify`` (batch mode) and ``tigertrap serve`` (the HTTP API): thin adapters.

``classify`` calls :func:`tigertrap.classify.batch.classify_md`; heavy imports (ONNX Runtime,
Keras) happen inside the command so that ``tigertrap --help`` stays fast.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from tigertrap.core.cli import echo_json
from tigertrap.core.config import ConfigError, load_settings
from tigertrap.core.terminal import ProgressBar, fail

__all__ = ["classify", "serve"]


def classify(
    md_file: Annotated[Path | None, typer.Argument(
        help="MegaDetector batch output (any format version) whose animal detections to "
             "classify; image paths are taken from its folder. [MD_FILE]", show_default=False)
    ] = None,
    model: Annotated[Path | None, typer.Option(
        "--model", "-m", help="Classifier bundle folder. [MODEL]", show_default=False)] = None,
    output_dir: Annotated[Path | None, typer.Option(
        help="Where the outputs go. [OUTPUT_DIR: the MD file's folder]", show_default=False)
    ] = None,
    lower_conf: Annotated[float | None, typer.Option(
        help="Classify animal detections at or above this confidence. [LOWER_CONF: 0.05]",
        show_default=False)] = None,
    top_k: Annotated[int | None, typer.Option(
        help="Classifications kept per detection. [TOP_K: 5]", show_default=False)] = None,
    batch_size: Annotated[int | None, typer.Option(
        help="Crops per inference batch. [BATCH_SIZE: 32]", show_default=False)] = None,
    backend: Annotated[str | None, typer.Option(
        help="onnx, openvino, keras or auto. [BACKEND: auto]", show_default=False)] = None,
    precision: Annotated[str | None, typer.Option(
        help="f32, or bf16 with the openvino backend. [PRECISION: f32]", show_default=False)
    ] = None,
    threads: Annotated[int | None, typer.Option(
        help="Inference threads. [THREADS: all cores]", show_default=False)] = None,
    decode_workers: Annotated[int | None, typer.Option(
        help="Image-decoding threads. [DECODE_WORKERS: 2]", show_default=False)] = None,
    long_table: Annotated[bool | None, typer.Option(
        "--long-table/--no-long-table", help="Also write mewc-predict's long table. "
                                             "[LONG_TABLE: false]", show_default=False)] = None,
    sequence_source: Annotated[str | None, typer.Option(
        help="Smooth classes over sequences (MegaDetector's smoothing): none, manifest "
             "(SEQUENCE_FILE) or exif. "
             "[SEQUENCE_SOURCE: none]", show_default=False)] = None,
    sequence_file: Annotated[Path | None, typer.Option(
        help="CSV with path and sequence columns (a dataset manifest.csv). [SEQUENCE_FILE]",
        show_default=False)] = None,
    sequence_gap: Annotated[float | None, typer.Option(
        help="Max seconds between frames of one EXIF sequence. [SEQUENCE_GAP: 30]",
        show_default=False)] = None,
    image_smoothing: Annotated[bool | None, typer.Option(
        "--image-smoothing/--no-image-smoothing",
        help="Also smooth classes within each image (MegaDetector's smoothing; the SMOOTH_* "
             "keys tune it). [IMAGE_SMOOTHING: false]", show_default=False)] = None,
    tiger_threshold: Annotated[float | None, typer.Option(
        help="Tiger score that flags an image. [TIGER_THRESHOLD: the bundle's]",
        show_default=False)] = None,
    config: Annotated[Path | None, typer.Option(
        help="YAML file of settings (KEY: value).", show_default=False)] = None,
    env_file: Annotated[Path | None, typer.Option(
        help="Env file of settings (KEY=value), e.g. services/classify/classify.env.",
        show_default=False)] = None,
) -> None:
    """Classify the animal detections of a MegaDetector file with a classifier bundle.

    Writes md_classified.json (MD format 1.6), predictions.csv and images.csv by the MD file.

    Re-running with the same inputs does nothing. Prints a JSON summary.
    """
    from tigertrap.classify.batch import classify_md
    from tigertrap.classify.config import ClassifySettings
    from tigertrap.classify.sequences import SequenceFileError
    from tigertrap.core.bundle import BundleError
    from tigertrap.core.md_results import MDResultsError

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    bar = ProgressBar("classify")
    try:
        settings = load_settings(
            ClassifySettings, yaml_file=config, env_file=env_file, md_file=md_file,
            model=model, output_dir=output_dir, lower_conf=lower_conf, top_k=top_k,
            batch_size=batch_size, backend=backend, precision=precision, threads=threads,
            decode_workers=decode_workers, long_table=long_table,
            sequence_source=sequence_source, sequence_file=sequence_file,
            sequence_gap=sequence_gap, image_smoothing=image_smoothing,
            tiger_threshold=tiger_threshold)
        result = classify_md(settings, progress=bar)
    except (ConfigError, BundleError, MDResultsError, SequenceFileError,
            FileNotFoundError) as error:
        raise fail(str(error)) from None
    finally:
        bar.close()
    echo_json(result.as_dict())


# -- tigertrap serve: the HTTP API ---------------------------------------------------------

def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(
        help="Server processes; each loads its own copy of the model.")] = 1,
    env_file: Annotated[Path | None, typer.Option(
        help="Env file of settings (KEY=value), e.g. services/classify/api.env; exported "
             "before start.", show_default=False)] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Serve the HTTP API (jobs, /v1/classify, /v1/models, /health, /metrics, the web page).

    Settings come from the environment (TIGERTRAP_DATA, REDIS_URL, TIGERTRAP_API_KEY, MODEL,
    limits...; see services/classify/README.md). OpenAPI docs are at /docs.
    """
    import os

    from dotenv import dotenv_values

    from tigertrap.classify.api.config import ApiSettings
    from tigertrap.classify.api.server import serve_api

    if env_file is not None:
        if not env_file.is_file():
            raise fail(f"env file {env_file} not found")
        values = {k: v for k, v in dotenv_values(env_file).items() if v is not None}
        os.environ.update({k: v for k, v in values.items() if k not in os.environ})
    try:
        settings = load_settings(ApiSettings)  # a wrong value stops here, naming the key
    except ConfigError as error:
        raise fail(str(error)) from None
    serve_api(settings, host=host, port=port, workers=workers, log_level=log_level)
