"""AddaxAI v6's ``mewc-keras`` model type, restated for tests.

Each step follows ``classification_utils/model_types/mewc-keras/classify_detections.py`` and
``classification_utils/inference_lib.py`` on AddaxAI's ``v6`` branch (PetervanLunteren/AddaxAI,
commit ff06729a): read ``variables.json``, load ``model_fname`` with
``keras.saving.load_model(compile=False)``, read ``class_list.yaml`` and name the outputs by its
sorted keys, crop the exact MegaDetector box clamped to the image, resize the crop to 384 x 384
with ``cv2.resize`` and ``predict``. It is deliberately written the way the adapter is, not the way
tigertrap would write it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml
from PIL import Image

__all__ = ["MewcKerasAdapter", "adapter_class_ids"]

IMG_SIZE = 384  # ``img_size = 384`` in the adapter


def adapter_class_ids(class_map: dict[Any, Any]) -> list[Any]:
    """The adapter's ``class_ids``: the name of output ``i`` is ``class_ids[i]``."""
    inv_class = {v: k for k, v in class_map.items()}
    class_ids = sorted(inv_class.values())

    def can_all_keys_be_converted_to_int(d: dict[Any, Any]) -> bool:
        for key in d:
            try:
                int(key)
            except ValueError:
                return False
        return True

    if can_all_keys_be_converted_to_int(class_map):
        class_ids = [class_map[i] for i in sorted(inv_class.values())]
    return class_ids


class MewcKerasAdapter:
    """A v6 model folder loaded and run as AddaxAI's mewc-keras adapter runs it."""

    def __init__(self, folder: Path) -> None:
        import keras

        self.variables = json.loads((folder / "variables.json").read_text(encoding="utf-8"))
        model_path = folder / self.variables["model_fname"]
        self.model = keras.saving.load_model(model_path, compile=False)
        with open(folder / "class_list.yaml") as f:
            self.class_map = yaml.safe_load(f)
        self.class_ids = adapter_class_ids(self.class_map)

    def get_classification(self, pil_crop: Image.Image) -> list[list[Any]]:
        img = np.array(pil_crop)
        img = cv2.resize(img, (IMG_SIZE, IMG_SIZE))
        img = np.expand_dims(img, axis=0)
        pred = self.model.predict(img, verbose=0)[0]
        return [[self.class_ids[i], float(pred[i])] for i in range(len(pred))]

    @staticmethod
    def get_crop(image: Image.Image, bbox: list[float]) -> Image.Image:
        x1, y1, w_box, h_box = bbox
        ymin, xmin, ymax, xmax = y1, x1, y1 + h_box, x1 + w_box
        im_width, im_height = image.size
        (left, right, top, bottom) = (xmin * im_width, xmax * im_width,
                                      ymin * im_height, ymax * im_height)
        left = max(left, 0)
        right = max(right, 0)
        top = max(top, 0)
        bottom = max(bottom, 0)
        left = min(left, im_width - 1)
        right = min(right, im_width - 1)
        top = min(top, im_height - 1)
        bottom = min(bottom, im_height - 1)
        return image.crop((left, top, right, bottom))

    def forbidden_classes(self) -> list[str]:
        """``inference_lib.fetch_forbidden_classes``: all_classes not in selected_classes."""
        return [c for c in self.variables["all_classes"]
                if c not in self.variables["selected_classes"]]
