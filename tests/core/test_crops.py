"""The crop shared by snip and classify."""

from __future__ import annotations

import pytest
from PIL import Image

from tigertrap.core.crops import EmptyBoxError, crop_box, crop_detection, draft_size


def test_exact_box_is_clamped_to_the_last_pixel():
    assert crop_box([0.5, 0.5, 0.7, 0.7], 100, 50) == (50.0, 25.0, 99.0, 49.0)


def test_square_box_keeps_aspect_and_shifts_inside_the_image():
    left, top, right, bottom = crop_box([0.0, 0.4, 0.1, 0.2], 1000, 500, "square")
    assert right - left == pytest.approx(bottom - top)
    assert left == 0.0 and right == pytest.approx(100.0)


@pytest.mark.parametrize("bbox", [[0.2, 0.2, 0.0, 0.3], [1.2, 1.2, 0.1, 0.1]])
def test_empty_or_outside_boxes_raise(bbox):
    with pytest.raises(EmptyBoxError):
        crop_box(bbox, 100, 100)


def test_unknown_method_is_refused():
    with pytest.raises(ValueError, match="exact, square"):
        crop_box([0, 0, 1, 1], 10, 10, "round")


def test_crop_detection_returns_the_requested_square_size():
    image = Image.new("RGB", (320, 240), (10, 200, 30))
    crop = crop_detection(image, [0.25, 0.25, 0.5, 0.25], size=96)
    assert crop.size == (96, 96) and crop.getpixel((5, 5)) == (10, 200, 30)


def test_draft_size_keeps_the_smallest_box_at_snip_size():
    assert draft_size([[0, 0, 0.5, 0.5]], 4000, 3000, size=600) == (1601, 1201)
    assert draft_size([[0, 0, 0.05, 0.05]], 4000, 3000, size=600) is None
