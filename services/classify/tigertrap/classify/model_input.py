"""Turning a camera-trap frame's detections into the model's input, as the model was trained.

Training saw snips made by :func:`tigertrap.core.crops.crop_detection` with the bundle's crop
method at the bundle's snip size, then resized to the input size by the training pipeline
(``tf.image.resize``, bilinear with antialiasing). Here the same crop is resized the same way
(Pillow's bilinear filter widens its support when shrinking, i.e. antialiases).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from tigertrap.core.bundle import BundleManifest
from tigertrap.core.crops import EmptyBoxError, crop_detection
from tigertrap.core.images import ImageSource, open_image

__all__ = ["RESIZE_FILTER", "crop_inputs", "image_input", "load_crop"]

RESIZE_FILTER = Image.Resampling.BILINEAR

BBox = Sequence[float]


def image_input(image: Image.Image, input_size: int) -> np.ndarray:
    """An RGB image (a crop) as a ``(size, size, 3)`` uint8 array at the model's input size."""
    if image.mode != "RGB":
        image = image.convert("RGB")
    if image.size != (input_size, input_size):
        image = image.resize((input_size, input_size), RESIZE_FILTER)
    return np.asarray(image, dtype=np.uint8)


def load_crop(source: ImageSource, input_size: int) -> np.ndarray:
    """A crop file (e.g. a snip, an upload) as model input ``(size, size, 3)`` uint8.

    A JPEG much larger than the input is decoded at a reduced scale (1/2, 1/4, 1/8, never below
    the input size) before the resize, which costs a fraction of a full decode.

    Raises:
        ImageLoadError: the file is not a readable image.
    """
    with open_image(source, draft_size=(input_size, input_size)) as image:
        return image_input(image, input_size)


def crop_inputs(image: Image.Image, bboxes: Sequence[BBox],
                manifest: BundleManifest) -> tuple[np.ndarray, list[int]]:
    """Model inputs for the ``bboxes`` of an upright RGB frame.

    Returns:
        ``(inputs, kept)``: inputs ``(len(kept), size, size, 3)`` uint8 and the positions in
        ``bboxes`` they belong to; boxes with no area inside the image are left out.
    """
    size = manifest.input_size
    inputs, kept = [], []
    for position, bbox in enumerate(bboxes):
        try:
            snip = crop_detection(image, bbox, size=manifest.snip_size,
                                  method=manifest.crop_method)
        except EmptyBoxError:
            continue
        inputs.append(image_input(snip, size))
        kept.append(position)
    if not inputs:
        return np.zeros((0, size, size, 3), dtype=np.uint8), kept
    return np.stack(inputs), kept
