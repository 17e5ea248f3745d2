"""Safe image opening: every odd camera-trap file becomes RGB or a clear ImageLoadError."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from tigertrap.core.images import ImageLoadError, image_size, open_image

EDGE = "edge_cases"
ROTATED = "cameratrapai_african_elephants_with_exif_orientation.jpg"
TRUNCATED = "cameratrapai_african_elephants_truncated_file.jpg"
ELEPHANTS = "images/elephant/cameratrapai_african_elephants.jpg"


def test_exif_orientation_is_applied(fixtures_dir):
    path = fixtures_dir / EDGE / ROTATED
    with Image.open(path) as raw:
        orientation = raw.getexif().get(0x0112)
        raw_size = raw.size
    assert orientation not in (None, 1)
    image = open_image(path)
    expected = raw_size[::-1] if orientation in (5, 6, 7, 8) else raw_size
    assert image.size == expected == image_size(path)
    assert image.mode == "RGB"


def test_truncated_jpeg_raises_even_after_megadetector_is_imported(fixtures_dir):
    import megadetector.visualization.visualization_utils  # noqa: F401  sets the flag on

    with pytest.raises(ImageLoadError, match="truncated"):
        open_image(fixtures_dir / EDGE / TRUNCATED)


@pytest.mark.parametrize("data, reason", [
    (b"", "empty file"),
    (b"<html><body>403 Forbidden</body></html>", "not an image"),
])
def test_non_images_raise(data, reason):
    with pytest.raises(ImageLoadError, match=reason):
        open_image(data)


def test_missing_file_raises(tmp_path):
    with pytest.raises(ImageLoadError, match="not found"):
        open_image(tmp_path / "nope.jpg")


def test_decompression_bomb_is_refused_before_decoding():
    buffer = io.BytesIO()
    Image.new("L", (4000, 4000)).save(buffer, "PNG")
    with pytest.raises(ImageLoadError, match="too large"):
        open_image(buffer.getvalue(), max_pixels=1_000_000)


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGBA", "CMYK"])
def test_modes_convert_to_rgb(fixtures_dir, mode):
    source = open_image(fixtures_dir / ELEPHANTS).resize((64, 48))
    buffer = io.BytesIO()
    converted = source.convert(mode)
    converted.save(buffer, "TIFF" if mode == "CMYK" else "PNG")
    image = open_image(buffer.getvalue())
    assert image.mode == "RGB" and image.size == (64, 48)


def test_sixteen_bit_images_scale_instead_of_clipping():
    values = np.full((8, 8), 40000, dtype=np.uint16)
    buffer = io.BytesIO()
    Image.fromarray(values).save(buffer, "PNG")
    image = open_image(buffer.getvalue())
    assert image.mode == "RGB"
    assert np.asarray(image)[0, 0, 0] == round(40000 / 65535 * 255)


def test_draft_mode_decodes_a_large_jpeg_at_reduced_scale(fixtures_dir):
    path = fixtures_dir / ELEPHANTS
    full = open_image(path)
    small = open_image(path, draft_size=(full.width // 4, full.height // 4))
    assert small.width < full.width and small.width >= full.width // 4


def test_the_size_of_a_png_is_read_from_its_header_without_decoding_its_pixels():
    # Pillow's PNG getexif() decodes the whole image; image_size must not (a 176 KiB PNG can
    # be 476 MB decoded). Pixel data that does not decode proves nothing was decoded.
    buffer = io.BytesIO()
    Image.new("RGB", (300, 200), (10, 200, 30)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    idat = data.index(b"IDAT") + 4
    data[idat:idat + 8] = b"\xff" * 8  # the compressed pixels are now garbage
    assert image_size(bytes(data)) == (300, 200)
    with pytest.raises(ImageLoadError):
        open_image(bytes(data))
