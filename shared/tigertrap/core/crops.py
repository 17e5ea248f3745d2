"""Cropping detections: the one crop used by snip (training data) and classify (inference).

A model must see at inference exactly the crops it was trained on, so both stages call
:func:`crop_detection` with the method and size recorded in the model's manifest.

``exact`` is mewc-snip's crop (MegaDetector's ``visualization_utils.crop_image`` without
expansion): the box in pixels, clamped to ``[0, W-1] x [0, H-1]``, resized to a square with
LANCZOS, so the animal may be stretched. ``square`` grows the box to a square around its centre
(taking surrounding context instead of stretching), shifted to stay inside the image where it
fits, then clamped.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from PIL import Image

__all__ = [
    "CROP_METHODS",
    "DEFAULT_SNIP_SIZE",
    "EmptyBoxError",
    "crop_box",
    "crop_detection",
    "draft_size",
]

CROP_METHODS = ("exact", "square")
#: mewc-snip's ``SNIP_SIZE``.
DEFAULT_SNIP_SIZE = 600

BBox = Sequence[float]


class EmptyBoxError(ValueError):
    """A box with no area inside the image (zero width or height, or wholly outside)."""


def _clamp(value: float, upper: float) -> float:
    return min(max(value, 0.0), upper)


def crop_box(bbox: BBox, width: int, height: int,
             method: str = "exact") -> tuple[float, float, float, float]:
    """Pixel box ``(left, top, right, bottom)`` for a normalised ``[x, y, w, h]`` bbox.

    Raises:
        ValueError: unknown ``method``.
        EmptyBoxError: the clamped box has no area.
    """
    if method not in CROP_METHODS:
        raise ValueError(f"unknown crop method {method!r}; use one of {', '.join(CROP_METHODS)}")
    x, y, w, h = (float(v) for v in bbox)
    left, top, right, bottom = x * width, y * height, (x + w) * width, (y + h) * height
    if method == "square":
        side = max(right - left, bottom - top)
        centre_x, centre_y = (left + right) / 2, (top + bottom) / 2
        left, right = centre_x - side / 2, centre_x + side / 2
        top, bottom = centre_y - side / 2, centre_y + side / 2
        # Shift the square back inside the image before clamping, so it keeps its context.
        shift_x = max(0.0, -left) - max(0.0, right - (width - 1))
        shift_y = max(0.0, -top) - max(0.0, bottom - (height - 1))
        left, right, top, bottom = left + shift_x, right + shift_x, top + shift_y, bottom + shift_y
    left, right = _clamp(left, width - 1), _clamp(right, width - 1)
    top, bottom = _clamp(top, height - 1), _clamp(bottom, height - 1)
    if round(right) - round(left) < 1 or round(bottom) - round(top) < 1:
        raise EmptyBoxError(f"box {list(bbox)} has no area inside a {width}x{height} image")
    return left, top, right, bottom


def crop_detection(image: Image.Image, bbox: BBox, size: int = DEFAULT_SNIP_SIZE,
                   method: str = "exact") -> Image.Image:
    """The ``size`` x ``size`` crop of ``bbox`` from an upright RGB ``image`` (LANCZOS)."""
    box = crop_box(bbox, image.width, image.height, method)
    return image.crop(box).resize((size, size), Image.Resampling.LANCZOS)


def draft_size(bboxes: Iterable[BBox], width: int, height: int,
               size: int = DEFAULT_SNIP_SIZE) -> tuple[int, int] | None:
    """The smallest decode size that keeps every box at least ``size`` pixels on each side.

    Pass it to :func:`tigertrap.core.images.open_image` (``draft_size=``) so that a JPEG much
    larger than the crops is decoded at 1/2, 1/4 or 1/8 scale. None means full size is needed.
    """
    scale = 0.0
    for bbox in bboxes:
        _, _, w, h = (float(v) for v in bbox)
        box_w, box_h = max(w * width, 1.0), max(h * height, 1.0)
        scale = max(scale, size / box_w, size / box_h)
    if scale == 0.0 or scale >= 1.0:
        return None
    return max(1, int(width * scale + 1)), max(1, int(height * scale + 1))
