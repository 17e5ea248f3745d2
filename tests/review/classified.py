"""A small classified job on real frames: what the classify stage writes, for review tests.

Real camera-trap images from the shared fixtures are copied under ``<data>/review-job/<camera>/``
and a classified MegaDetector file (format 1.6, ``classification_categories``, per-detection
top-k, the per-image ``tiger`` flag) is written beside them with chosen scores, so that each
queue section has known members.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

CLASSES = ["tiger", "leopard", "deer"]
JOB_FOLDER = "review-job"
MD_FILE = f"{JOB_FOLDER}/md_classified.json"
#: (camera, fixture species, top-k as (class index, score), image tiger flag)
FRAMES = [
    ("cam-a", "tiger", [(0, 0.91), (1, 0.06), (2, 0.03)], True),
    ("cam-a", "leopard", [(1, 0.48), (0, 0.44), (2, 0.08)], True),   # tiger in top-k: flagged
    ("cam-b", "leopard", [(1, 0.52), (2, 0.40), (0, 0.08)], False),  # uncertain, margin 0.12
    ("cam-b", "bear", [(2, 0.45), (1, 0.35), (0, 0.20)], False),     # uncertain, margin 0.10
    ("cam-c", "elephant", [(2, 0.97), (1, 0.02), (0, 0.01)], False),  # confident
    ("cam-c", "macaque", [(2, 0.95), (1, 0.04), (0, 0.01)], False),   # confident
]


def write_classified_job(data_root: Path, fixtures_dir: Path) -> str:
    """Write the job under ``data_root``; return the MD file's path relative to it."""
    images = []
    for number, (camera, species, top_k, tiger) in enumerate(FRAMES):
        source = sorted((fixtures_dir / "images" / species).iterdir())[0]
        target = data_root / JOB_FOLDER / camera / f"{number:02d}_{source.name}"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        detection = {"category": "1", "conf": 0.9, "bbox": [0.2, 0.25, 0.4, 0.5],
                     "classifications": [[str(i), s] for i, s in top_k]}
        images.append({"file": target.relative_to(data_root / JOB_FOLDER).as_posix(),
                       "detections": [detection], "tiger": tiger,
                       "tiger_score": dict(top_k).get(0)})
    results = {"info": {"format_version": "1.6", "classifier": "tiny 1"},
               "detection_categories": {"1": "animal", "2": "person", "3": "vehicle"},
               "classification_categories": {str(i): n for i, n in enumerate(CLASSES)},
               "images": images}
    (data_root / MD_FILE).write_text(json.dumps(results), encoding="utf-8")
    return MD_FILE
