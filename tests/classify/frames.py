"""Synthetic camera-trap frames with patches the tiny bundle knows, and their MD files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from tests.classify.conftest import INPUT_SIZE, known_crops

__all__ = ["FRAME_SIZE", "write_frame", "write_md"]

FRAME_SIZE = (320, 240)
BACKGROUND = 128


def write_frame(path: Path, patches: list[tuple[str, int, int]], *, seed: int = 0,
                exif_time: str | None = None) -> list[list[float]]:
    """Write a grey frame with one learned ``(class, left, top)`` patch each (PNG or JPEG by
    suffix); returns the patches' normalised MD boxes."""
    width, height = FRAME_SIZE
    frame = np.full((height, width, 3), BACKGROUND, dtype=np.uint8)
    boxes = []
    for number, (name, left, top) in enumerate(patches):
        frame[top:top + INPUT_SIZE, left:left + INPUT_SIZE] = known_crops(
            name, 1, seed=seed + number)[0]
        boxes.append([left / width, top / height, INPUT_SIZE / width, INPUT_SIZE / height])
    image = Image.fromarray(frame)
    path.parent.mkdir(parents=True, exist_ok=True)
    if exif_time is None:
        image.save(path)
    else:
        exif = Image.Exif()
        exif.get_ifd(0x8769)[0x9003] = exif_time
        image.save(path, exif=exif, quality=98)
    return boxes


def write_md(md_file: Path, images: dict[str, list[tuple[list[float], float]]],
             category: str = "1") -> Path:
    """A format-1.1-style MD file: ``{file: [(bbox, conf), ...]}`` in the order given."""
    document = {
        "info": {"format_version": "1.1", "detector": "md_v5a.0.0.pt"},
        "detection_categories": {"1": "animal", "2": "person", "3": "vehicle"},
        "images": [{"file": file, "detections": [
            {"category": category, "conf": conf, "bbox": bbox} for bbox, conf in detections]}
            for file, detections in images.items()],
    }
    md_file.write_text(json.dumps(document), encoding="utf-8")
    return md_file
