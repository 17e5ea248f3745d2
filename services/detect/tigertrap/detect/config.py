"""Settings of the detect stage, with mewc-detect's key names.

Keys (case-insensitive; env file ``services/detect/detect.env``, YAML, environment, CLI):
``INPUT_DIR``, ``IMAGE_LIST``, ``MD_FILE``, ``MD_MODEL``, ``MODELS_DIR``, ``THRESHOLD``,
``RECURSIVE``, ``EXCLUDE_DIRS``, ``CHECKPOINT_FREQ``, ``CHECKPOINT_FILE``, ``BATCH_SIZE``,
``NCORES``, ``DEVICE``, ``IMAGE_SIZE``, ``DOWNLOAD_WEIGHTS``, ``PATH_COLUMN``, ``OVERWRITE``,
``KEEP_MODEL``.
See the README for each one's meaning.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from tigertrap.core.config import StageSettings

__all__ = [
    "DEFAULT_MD_FILE",
    "DEFAULT_MODEL",
    "DEFAULT_MODELS_DIR",
    "DEFAULT_THRESHOLD",
    "DetectSettings",
]

#: mewc-detect's output threshold: keep nearly everything, let later stages choose.
DEFAULT_THRESHOLD = 0.01
DEFAULT_MODEL = "MDV5A"
DEFAULT_MD_FILE = "md.json"
DEFAULT_EXCLUDE_DIRS = ("snips",)
#: Weights folder, relative to the data root.
DEFAULT_MODELS_DIR = Path("models/detectors")


class DetectSettings(StageSettings):
    """What to detect on, with which model, and how to run it."""

    #: Folder of images (searched recursively unless ``recursive`` is off).
    input_dir: Path | None = None
    #: Instead of a folder: a .txt/.json list of image paths, or a download manifest .csv.
    image_list: Path | None = None
    #: Output file, relative to the folder (or the list's folder); image paths are written
    #: relative to the output file's folder.
    md_file: str = DEFAULT_MD_FILE
    #: MegaDetector short name (MDV5A, MDV5B, MDv1000-redwood, ...) or a .pt file.
    md_model: str = DEFAULT_MODEL
    #: Where weights are looked for (canonical file names, e.g. md_v5a.0.0.pt).
    models_dir: Path = DEFAULT_MODELS_DIR
    threshold: float = Field(DEFAULT_THRESHOLD, ge=0.0, le=1.0)
    recursive: bool = True
    #: Sub-folders never searched: later stages' outputs (snip writes crops to ``snips/``).
    exclude_dirs: list[str] = Field(default_factory=lambda: list(DEFAULT_EXCLUDE_DIRS))
    #: Results are made durable every this many images.
    checkpoint_freq: int = Field(100, ge=1)
    #: Default: ``.<md_file>.checkpoint.jsonl`` beside the output file.
    checkpoint_file: str | None = None
    #: Images per forward pass on a GPU (a CPU always runs one at a time).
    batch_size: int = Field(8, ge=1)
    #: Image-loading threads; default: the number of CPU cores.
    ncores: int | None = Field(None, ge=1)
    #: ``cpu``, ``cuda``, ``cuda:1``...; default: a GPU when present.
    device: str | None = None
    #: Inference size (long side); default: the model's own (1280 for MDv5).
    image_size: int | None = Field(None, ge=32)
    #: Let megadetector download known weights when they are not found locally.
    download_weights: bool = True
    #: Manifest column holding each image's path (relative to the manifest's folder).
    path_column: str = "path"
    #: Re-run every image instead of reusing results already in the output file.
    overwrite: bool = False
    #: Keep the loaded model in the process for later runs (a worker loads it once); ``false``
    #: loads it afresh for every run.
    keep_model: bool = True
