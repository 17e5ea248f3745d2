"""AddaxAI (v7) inference for a classifier exported by tigertrap.

Written by ``tigertrap publish addaxai``; AddaxAI loads it from the model folder and calls its
``ModelInference`` class (see AddaxAI's ``backend/templates/inference_template.py``). It runs in
AddaxAI's ``tensorflow-v2`` environment and needs nothing from tigertrap: only numpy, Pillow,
PyYAML and Keras. Next to it in the folder:

- ``model.keras``: takes raw RGB 0-255 at ``input_size`` x ``input_size`` and returns class
  probabilities (preprocessing is inside the model);
- ``class_map.yaml``: output index (0-based) -> class name, the model's output order;
- ``preprocessing.json``: ``input_size``, ``snip_size`` and ``crop_method``, the crop the model
  was trained on (tigertrap's snip stage).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import yaml
from PIL import Image, ImageOps

CLASS_MAP_FILE = "class_map.yaml"
PREPROCESSING_FILE = "preprocessing.json"
DEFAULT_SNIP_SIZE = 600


def read_class_names(path: Path) -> list[str]:
    """Class names in output order from ``class_map.yaml`` (``index: name``)."""
    mapping = yaml.safe_load(path.read_text(encoding="utf-8"))
    by_index = {int(str(key)): str(value) for key, value in mapping.items()}
    if sorted(by_index) != list(range(len(by_index))):
        raise ValueError(f"{path}: indices must be 0..{len(by_index) - 1}")
    return [by_index[index] for index in range(len(by_index))]


def crop_box(bbox, width: int, height: int, method: str) -> tuple[float, float, float, float]:
    """Pixel box (left, top, right, bottom) of a normalised MegaDetector [x, y, w, h] box,
    clamped to [0, W-1] x [0, H-1]; ``square`` grows it to a square around its centre first."""
    x, y, w, h = (float(v) for v in bbox)
    left, top, right, bottom = x * width, y * height, (x + w) * width, (y + h) * height
    if method == "square":
        side = max(right - left, bottom - top)
        centre_x, centre_y = (left + right) / 2, (top + bottom) / 2
        left, right = centre_x - side / 2, centre_x + side / 2
        top, bottom = centre_y - side / 2, centre_y + side / 2
        shift_x = max(0.0, -left) - max(0.0, right - (width - 1))
        shift_y = max(0.0, -top) - max(0.0, bottom - (height - 1))
        left, right, top, bottom = left + shift_x, right + shift_x, top + shift_y, bottom + shift_y
    left, right = min(max(left, 0.0), width - 1), min(max(right, 0.0), width - 1)
    top, bottom = min(max(top, 0.0), height - 1), min(max(bottom, 0.0), height - 1)
    return left, top, right, bottom


class ModelInference:
    """AddaxAI's classification-model contract for a tigertrap bundle."""

    def __init__(self, model_dir: Path, model_path: Path):
        self.model_dir = Path(model_dir)
        self.model_path = Path(model_path)
        self.model = None
        self.class_names = read_class_names(self.model_dir / CLASS_MAP_FILE)
        settings = json.loads((self.model_dir / PREPROCESSING_FILE).read_text(encoding="utf-8"))
        self.input_size = int(settings["input_size"])
        self.snip_size = int(settings.get("snip_size", DEFAULT_SNIP_SIZE))
        self.crop_method = str(settings.get("crop_method", "exact"))

    def check_gpu(self) -> bool:
        """True when TensorFlow sees a GPU (CUDA or Apple's Metal plug-in)."""
        import tensorflow as tf

        return len(tf.config.list_physical_devices("GPU")) > 0

    def load_model(self) -> None:
        """Load ``model.keras`` once per worker."""
        import keras

        self.model = keras.saving.load_model(self.model_path, compile=False)

    def get_crop(self, image: Image.Image, bbox: tuple[float, float, float, float]):
        """The training crop of a MegaDetector box: exact (or square) box, LANCZOS-resized to
        ``snip_size``; None for a box with no area."""
        # MegaDetector boxes refer to the EXIF-upright image, AddaxAI opens it unrotated.
        image = ImageOps.exif_transpose(image).convert("RGB")
        left, top, right, bottom = crop_box(bbox, image.width, image.height, self.crop_method)
        if round(right) - round(left) < 1 or round(bottom) - round(top) < 1:
            return None
        crop = image.crop((left, top, right, bottom))
        return crop.resize((self.snip_size, self.snip_size), Image.Resampling.LANCZOS)

    def get_tensor(self, crop: Image.Image) -> np.ndarray:
        """A crop as the model's input: ``input_size`` x ``input_size`` x 3, float32 0-255."""
        resized = crop.convert("RGB").resize((self.input_size, self.input_size),
                                             Image.Resampling.BILINEAR)
        return np.asarray(resized, dtype=np.float32)

    def classify_batch(self, batch: np.ndarray) -> list[list[list]]:
        """``[[class_name, confidence], ...]`` over every class, for each array of ``batch``."""
        if self.model is None:
            self.load_model()
        probabilities = np.asarray(self.model.predict_on_batch(np.asarray(batch, np.float32)))
        return [[[name, float(score)]
                 for name, score in zip(self.class_names, row, strict=True)]
                for row in probabilities]

    def get_classification(self, crop: Image.Image) -> list[list]:
        """``[[class_name, confidence], ...]`` for every class, for one crop."""
        return self.classify_batch(np.stack([self.get_tensor(crop)]))[0]

    def get_class_names(self) -> dict[str, str]:
        """Class id (1-indexed string, output index + 1) -> class name."""
        return {str(index + 1): name for index, name in enumerate(self.class_names)}
