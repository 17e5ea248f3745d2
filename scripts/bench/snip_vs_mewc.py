"""Snip throughput: tigertrap against a faithful single-process re-creation of mewc-snip's loop.

Both run on the same MD file and images (the real MegaDetector fixture set, repeated to make the
run long enough to time) and must produce the same set of crops. mewc-snip's loop, as in
zaandahl/mewc-snip ``src/mewc_snip.py``: every image with any animal detection is fully decoded
with MegaDetector's ``load_image``, cropped with ``crop_image`` at ``LOWER_CONF``, resized with
MegaDetector's ``resize_image`` (LANCZOS) to ``SNIP_SIZE`` and saved with Pillow's defaults. Two
changes, so that the two sets can be compared: crops are named by detection index (mewc-snip's
counter drifts) and images are found by their relative path (mewc-snip drops sub-folders).

Prints wall time and CPU time (this process and its children) for each side: the machine may be
shared, and CPU seconds per crop show the work done whatever else runs.

    .venv/bin/python scripts/bench/snip_vs_mewc.py [--repeat 4] [--workers N] [--large-boxes]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

from PIL import Image

from tigertrap.core.config import load_settings
from tigertrap.core.md_results import ImageResult, MDResults, read_md_results, write_md_results
from tigertrap.snip.config import SnipSettings
from tigertrap.snip.snip import run_snip

FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures"
MD_SET = FIXTURES / "md_outputs" / "microsoft_CameraTraps_test_images"
LOWER_CONF, SNIP_SIZE = 0.05, 600


def has_large_boxes(entry: ImageResult) -> bool:
    """Every cropped box at least twice SNIP_SIZE wide and high: the case draft mode speeds up."""
    with Image.open(MD_SET / entry.file) as image:
        width, height = image.size
    boxes = [d.bbox for d in entry.detections or [] if d.category == "1" and d.conf >= LOWER_CONF]
    return bool(boxes) and all(w * width >= 2 * SNIP_SIZE and h * height >= 2 * SNIP_SIZE
                               for _, _, w, h in boxes)


def build_dataset(folder: Path, repeat: int, large_boxes: bool = False) -> Path:
    source = read_md_results(MD_SET / "expected_output_DRAFT.json")
    entries = []
    for copy in range(repeat):
        for entry in source.images:
            if not (MD_SET / entry.file).is_file():
                continue
            if large_boxes and not has_large_boxes(entry):
                continue
            name = f"r{copy}/{entry.file}"
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(MD_SET / entry.file, folder / name)
            entries.append(entry.model_copy(update={"file": name}))
    write_md_results(MDResults(info=source.info, images=entries), folder / "md.json")
    return folder / "md.json"


def mewc_snip_loop(md_file: Path, out: Path) -> set[str]:
    from megadetector.visualization import visualization_utils as viz

    out.mkdir(parents=True)
    made = set()
    for image in read_md_results(md_file).model_dump()["images"]:
        detections = image["detections"] or []
        if not any(d["category"] == "1" for d in detections):
            continue
        path = md_file.parent / image["file"]
        pil_image = viz.load_image(str(path))
        kept = [(i, d) for i, d in enumerate(detections) if d["conf"] >= LOWER_CONF]
        crops = viz.crop_image(detections, pil_image, confidence_threshold=LOWER_CONF)
        for (index, detection), crop in zip(kept, crops, strict=True):
            if detection["category"] != "1":
                continue
            resized = viz.resize_image(crop, SNIP_SIZE, SNIP_SIZE)
            stem, suffix = Path(image["file"]).stem, Path(image["file"]).suffix
            name = f"{Path(image['file']).parent.as_posix()}/{stem}-{index}{suffix}"
            (out / name).parent.mkdir(parents=True, exist_ok=True)
            resized.save(out / name)
            made.add(name)
    return made


def cpu_seconds() -> float:
    """User + system CPU time of this process and its reaped children."""
    own, children = (resource.getrusage(who) for who in
                     (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(run):
    wall, cpu = time.perf_counter(), cpu_seconds()
    value = run()
    return value, time.perf_counter() - wall, cpu_seconds() - cpu


def snips_on_disk(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")
            if p.suffix.lower() == ".jpg"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=4, help="copies of the fixture set")
    parser.add_argument("--workers", type=int, default=None, help="tigertrap processes")
    parser.add_argument("--large-boxes", action="store_true",
                        help="only the frames whose boxes are all >= 2x SNIP_SIZE (draft mode)")
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start")
    with tempfile.TemporaryDirectory() as tmp:
        md_file = build_dataset(Path(tmp) / "images", args.repeat, args.large_boxes)
        # Warm the page cache and imports so that neither side pays for the other's first read.
        mewc_snip_loop(md_file, Path(tmp) / "warm")
        reference, mewc_s, mewc_cpu = timed(lambda: mewc_snip_loop(md_file, Path(tmp) / "mewc"))
        runs = {}
        for label, workers in (("tigertrap snip, 1 process", 1),
                               ("tigertrap snip, all cores", args.workers or os.cpu_count())):
            out = Path(tmp) / f"tigertrap{workers}"
            settings = load_settings(SnipSettings, input_dir=md_file.parent, snip_dir=str(out),
                                     lower_conf=LOWER_CONF, snip_size=SNIP_SIZE, workers=workers)
            summary, wall, cpu = timed(lambda settings=settings: run_snip(settings))
            ours = snips_on_disk(out)
            assert ours == reference, f"different crops: {sorted(ours ^ reference)[:5]}"
            assert not summary.failures, summary.failures[:3]
            runs[label] = (wall, cpu)
    crops = len(reference)
    print(f"crops: {crops} from {summary.images_with_crops} images (same set on both sides: yes)")
    print(f"{'':28}{'wall s':>8}{'crops/s':>9}{'CPU s':>8}{'crops/CPU s':>13}{'speed-up':>10}")
    rows = {"mewc-snip loop (1 process)": (mewc_s, mewc_cpu), **runs}
    for label, (wall, cpu) in rows.items():
        print(f"{label:28}{wall:8.2f}{crops / wall:9.1f}{cpu:8.2f}{crops / cpu:13.1f}"
              f"{mewc_s / wall:9.2f}x")


if __name__ == "__main__":
    main()
