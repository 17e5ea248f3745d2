"""Learnable synthetic images: each class has its own colour and stripe orientation.

Used by the tiny-bundle factory and by the training tests (written to ``<split>/<class>/`` JPEG
folders). Images are raw RGB 0-255 ``uint8``; noise and random stripe phase make every image
different while keeping the classes easy to tell apart.
"""

from __future__ import annotations

import colorsys
from pathlib import Path

import numpy as np
from PIL import Image

__all__ = ["class_images", "write_image_folders"]

NOISE = 20.0
STRIPE_PERIOD = 8


def _class_colour(index: int, count: int) -> np.ndarray:
    red, green, blue = colorsys.hsv_to_rgb(index / max(count, 1), 0.9, 0.9)
    return np.array([red, green, blue], dtype="float32") * 255.0


def class_images(index: int, count: int, images: int, size: int,
                 rng: np.random.Generator) -> np.ndarray:
    """``images`` pictures of class ``index`` of ``count``: shape (images, size, size, 3) uint8."""
    colour = _class_colour(index, count)
    ys, xs = np.mgrid[0:size, 0:size].astype("float32")
    angle = np.pi * index / max(count, 1)
    out = np.empty((images, size, size, 3), dtype="uint8")
    for n in range(images):
        phase = rng.uniform(0, 2 * np.pi)
        wave = np.sin((xs * np.cos(angle) + ys * np.sin(angle)) * 2 * np.pi / STRIPE_PERIOD
                      + phase)
        shade = 0.65 + 0.35 * wave[..., None]
        noisy = colour * shade + rng.normal(0.0, NOISE, (size, size, 3))
        out[n] = np.clip(noisy, 0, 255).astype("uint8")
    return out


def write_image_folders(root: Path, class_names: list[str], per_class: dict[str, int],
                        size: int = 48, seed: int = 0, *, colour_order: list[str] | None = None
                        ) -> Path:
    """Write ``root/<split>/<class>/<class>_<n>.jpg`` for each split in ``per_class``.

    ``colour_order`` decides which class gets which colour (default: ``class_names`` order), so a
    test can make folder names sort differently from the class map.
    """
    rng = np.random.default_rng(seed)
    order = colour_order or class_names
    for split, images in per_class.items():
        for name in class_names:
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            pictures = class_images(order.index(name), len(order), images, size, rng)
            for n, picture in enumerate(pictures):
                Image.fromarray(picture).save(folder / f"{name}_{n:04d}.jpg", quality=95)
    return root
