"""Detect stage vs. megadetector's own batch function: same images, same model, wall time.

Runs, in one process and alternating, (a) ``megadetector``'s ``load_and_run_detector_batch``
followed by ``write_results_to_file`` (what ``run_detector_batch.py`` does) and (b)
``tigertrap.detect.batch.run_detect`` (checkpoints, EXIF-safe loading, md.json), each from
model loading to the written file, on copies of the real fixture frames. The model is a
random-weight YOLOv5 with MegaDetector's classes: yolov5n at 320 px (inference cheap, so the
service's own overhead shows most) and yolov5s at 640 px (closer to real cost per image).

Prints the best (lowest wall time) of ``--repeats`` runs of each, and the CPU time of those runs
(less sensitive than wall time to other processes sharing the cores).

    .venv/bin/python scripts/bench/detect_overhead.py [--images 30] [--repeats 3]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.detect.tiny_detector import build_tiny_md_checkpoint  # noqa: E402
from tigertrap.core.images import is_image_file  # noqa: E402

FIXTURES = Path(os.environ.get("TIGERTRAP_FIXTURES", REPO.parent / "shared" / "fixtures"))
#: (label, yolov5 architecture, inference size)
MODELS = [("yolov5n @ 320 px", "yolov5n.yaml", 320), ("yolov5s @ 640 px", "yolov5s.yaml", 640)]
THRESHOLD = 0.01
WARM_UP_IMAGES = 3


def make_folder(root: Path, count: int) -> Path:
    """``count`` frames: the fixture images (sizes 100x75 to 3264x2448) repeated."""
    frames = sorted(p for p in (FIXTURES / "images").rglob("*") if is_image_file(p))
    folder = root / "images"
    for index in range(count):
        source = frames[index % len(frames)]
        target = folder / source.parent.name / f"{index:04d}{source.suffix.lower()}"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    return folder


def run_megadetector(weights: Path, folder: Path, out: Path) -> None:
    from megadetector.detection.run_detector_batch import (
        load_and_run_detector_batch,
        write_results_to_file,
    )
    from megadetector.utils.path_utils import find_images

    images = find_images(str(folder), recursive=True)
    results = load_and_run_detector_batch(str(weights), images, quiet=True,
                                          confidence_threshold=THRESHOLD)
    write_results_to_file(results, str(out), relative_path_base=str(folder),
                          detector_file=str(weights))


def run_service(weights: Path, folder: Path, out: Path) -> None:
    from tigertrap.detect.batch import run_detect
    from tigertrap.detect.config import DetectSettings

    md_file = folder / "md.json"
    md_file.unlink(missing_ok=True)  # a fresh run, not an incremental one
    run_detect(DetectSettings(input_dir=folder, md_model=str(weights), threshold=THRESHOLD))


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed(func: Callable[[Path, Path, Path], None], *args: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of one call."""
    started, cpu = time.perf_counter(), _cpu_seconds()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        func(*args)
    return time.perf_counter() - started, _cpu_seconds() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    import torch

    print(f"torch threads {torch.get_num_threads()}, cpu count {os.cpu_count()}, "
          f"load average {os.getloadavg()[0]:.1f}, {args.images} images, best of "
          f"{args.repeats}")
    print(f"{'model':<18} {'megadetector s':>15} {'tigertrap s':>12} {'overhead':>9} "
          f"{'MD img/s':>9} {'tt img/s':>9} {'MD cpu s':>9} {'tt cpu s':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        folder = make_folder(root, args.images)
        warm_folder = make_folder(root / "warm", WARM_UP_IMAGES)
        for label, cfg, size in MODELS:
            weights = build_tiny_md_checkpoint(root / f"{cfg}.pt", cfg=cfg, image_size=size)
            timed(run_megadetector, weights, warm_folder, root / "warm.json")  # imports
            md_times, tt_times = [], []
            for _ in range(args.repeats):
                md_times.append(timed(run_megadetector, weights, folder, root / "md_direct.json"))
                tt_times.append(timed(run_service, weights, folder, root / "unused"))
            (md, md_cpu), (tt, tt_cpu) = min(md_times), min(tt_times)
            print(f"{label:<18} {md:>15.2f} {tt:>12.2f} {(tt - md) / md:>+9.1%} "
                  f"{args.images / md:>9.2f} {args.images / tt:>9.2f} {md_cpu:>9.2f} "
                  f"{tt_cpu:>9.2f}   (mean wall: MD "
                  f"{statistics.fmean(t for t, _ in md_times):.2f}, tigertrap "
                  f"{statistics.fmean(t for t, _ in tt_times):.2f})", flush=True)
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
