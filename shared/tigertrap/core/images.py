"""Safe image opening, used by every stage.

Camera-trap folders hold everything: truncated JPEGs from full SD cards, EXIF-rotated frames,
CMYK or 16-bit images from odd cameras, zero-byte files, videos and HTML error pages saved as
``.jpg``. :func:`open_image` turns any of them into either an upright RGB image or an
:class:`ImageLoadError` with a reason a person can act on; it never crashes the batch and never
skips silently.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

__all__ = [
    "IMAGE_EXTENSIONS",
    "MAX_PIXELS",
    "ImageLoadError",
    "ImageSource",
    "image_size",
    "is_image_file",
    "open_image",
]

#: File endings treated as images when a folder is scanned.
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp"})

#: Largest image accepted, in pixels: 8x a 5152x3968 frame, far below what exhausts memory.
MAX_PIXELS = 160_000_000


ImageSource = str | os.PathLike[str] | bytes | BinaryIO


class ImageLoadError(Exception):
    """An image that cannot be used; ``reason`` says why in a sentence."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


def is_image_file(path: str | os.PathLike[str]) -> bool:
    """True when the file name ends with one of :data:`IMAGE_EXTENSIONS`."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def _describe(source: ImageSource) -> str:
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    return getattr(source, "name", "<uploaded image>")


def _open(source: ImageSource, max_pixels: int) -> Image.Image:
    name = _describe(source)
    if isinstance(source, bytes):
        if not source:
            raise ImageLoadError(name, "empty file (0 bytes)")
        source = io.BytesIO(source)
    elif isinstance(source, (str, os.PathLike)) and os.path.isfile(source) \
            and os.path.getsize(source) == 0:
        raise ImageLoadError(name, "empty file (0 bytes)")
    try:
        image = Image.open(source)
    except FileNotFoundError as error:
        raise ImageLoadError(name, "file not found") from error
    except (UnidentifiedImageError, ImportError) as error:
        # ImportError: a library that patches Image.open (ultralytics) fails on non-images
        # by importing an optional HEIF plugin instead of raising Pillow's own error.
        raise ImageLoadError(name, "not an image (or an unsupported image format)") from error
    except Image.DecompressionBombError as error:
        raise ImageLoadError(name, f"image too large (limit {max_pixels} pixels)") from error
    except OSError as error:
        raise ImageLoadError(name, f"cannot be read: {error}") from error
    width, height = image.size
    if width * height > max_pixels:
        image.close()
        raise ImageLoadError(name, f"image too large: {width}x{height} pixels exceeds the "
                                   f"limit of {max_pixels}")
    if width == 0 or height == 0:
        image.close()
        raise ImageLoadError(name, "image has zero width or height")
    return image


def _orientation(image: Image.Image) -> int:
    try:
        return int(image.getexif().get(0x0112, 1))
    except Exception:  # a broken EXIF block must not lose the picture
        return 1


def _header_orientation(image: Image.Image) -> int:
    # Pillow's PNG getexif() decodes the whole image to look for an eXIf chunk after the
    # pixels (a 176 KiB PNG can be 476 MB decoded); only one before them counts here.
    if image.format == "PNG" and "exif" not in image.info:
        return 1
    return _orientation(image)


def image_size(source: ImageSource, *, max_pixels: int = MAX_PIXELS) -> tuple[int, int]:
    """Return the upright (EXIF-oriented) width and height without decoding the pixels.

    A PNG's orientation is read from an eXIf chunk before its pixel data only (the usual
    place); one after them would need the whole image decoded.
    """
    with _open(source, max_pixels) as image:
        width, height = image.size
        if _header_orientation(image) in (5, 6, 7, 8):
            width, height = height, width
    return width, height


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16-bit camera output: scale to 8 bits; convert("RGB") would clip at 255.
        values = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if image.mode.startswith("I;16") else max(float(values.max()), 1.0)
        eight_bit = np.clip(values / peak * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(eight_bit).convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    return image.convert("RGB")


def open_image(source: ImageSource, *, draft_size: tuple[int, int] | None = None,
               max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Open and fully decode an image as upright RGB.

    Args:
        source: a path, the file's bytes, or a binary file object.
        draft_size: when given, a JPEG may be decoded at a reduced scale (1/2, 1/4, 1/8) as
            long as the result stays at least this large (Pillow's draft mode). Coordinates
            normalised to 0-1 stay valid; pixel sizes do not.
        max_pixels: refuse larger images (decompression bombs).

    Returns:
        An RGB image with EXIF orientation applied (the EXIF orientation tag removed).

    Raises:
        ImageLoadError: missing file, not an image, truncated or corrupt data, too large.
    """
    name = _describe(source)
    image = _open(source, max_pixels)
    try:
        if draft_size is not None and image.format == "JPEG":
            orientation = _orientation(image)
            wanted = draft_size if orientation not in (5, 6, 7, 8) else draft_size[::-1]
            image.draft("RGB", wanted)
        # A truncated JPEG must be an error, not a grey-bottomed image. Set at each load
        # because other libraries (megadetector among them) switch it on when imported.
        ImageFile.LOAD_TRUNCATED_IMAGES = False
        image.load()
        ImageOps.exif_transpose(image, in_place=True)
        rgb = _to_rgb(image)
    except (OSError, SyntaxError, ValueError) as error:
        image.close()
        reason = str(error) or type(error).__name__
        if "truncated" in reason:
            reason = "truncated image file (incomplete download or copy?)"
        raise ImageLoadError(name, f"cannot be decoded: {reason}") from error
    if rgb is not image:
        image.close()
    return rgb
