"""Loading MegaDetector (the ``megadetector`` package) the way tigertrap needs it.

Used by the detect stage and by the API's in-process detection; the package is imported only
when a model is loaded, so nothing else needs PyTorch. Three side effects of the package are
undone or contained here, once:

- yolov5 imports ultralytics, which pip-installs packages at run time unless told not to
  (``YOLO_AUTOINSTALL``/``YOLO_OFFLINE``);
- ultralytics replaces ``PIL.Image.open`` with a wrapper that turns an unidentified file into an
  ``ImportError`` (it tries to load a HEIF plugin); Pillow's own function is put back so that
  :func:`tigertrap.core.images.open_image` reports "not an image";
- megadetector prints progress to stdout, which commands keep for their own output.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any

__all__ = ["load_megadetector", "megadetector_output_to_stderr"]


@contextlib.contextmanager
def megadetector_output_to_stderr() -> Iterator[None]:
    """Send what megadetector prints to stderr."""
    with contextlib.redirect_stdout(sys.stderr):
        yield


def _restore_pillow_open() -> None:
    from PIL import Image

    patches = sys.modules.get("ultralytics.utils.patches")
    original = getattr(patches, "_image_open", None)
    if original is not None and Image.open is getattr(patches, "image_open", None):
        Image.open = original


def load_megadetector(model: str, detector_options: dict[str, Any] | None = None) -> Any:
    """``megadetector.detection.run_detector.load_detector(model, ...)`` without its side effects.

    ``model`` is a MegaDetector short name (``MDV5A``) or a weights file path.
    """
    os.environ.setdefault("YOLO_AUTOINSTALL", "false")
    os.environ.setdefault("YOLO_OFFLINE", "true")
    from megadetector.detection.run_detector import load_detector

    with megadetector_output_to_stderr():
        detector = load_detector(model, detector_options=detector_options or {})
    _restore_pillow_open()
    return detector
