"""Snip throughput: tigertrap against a faithful single-process re-creation of mewc-snip's loop.

Both run on the same MD file and images (the real MegaDetector fixture set, repeated to make the
run long enough to time) and must produce the same set of crops. mewc-snip's loop, as in
zaandahl/mewc-snip ``src/mewc_snip.py``: full decode with MegaDetector's ``load_image``,
``crop_image`` at ``LOWER_CONF``, LANCZOS resize to ``SNIP_SIZE``, ``save``; its crop numbering
is replaced by the detection index so that the two sets can be compared.

    .venv/bin/python scripts/bench/snip_vs_mewc.py [--repeat 4]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from PIL import Image

from tigertrap.core.config import load_settings
from tigertrap.core.md_results import MDResults, read_md_results, write_md_results
from tigertrap.snip.config import SnipSettings
from tigertrap.snip.snip import run_snip

FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures"
MD_SET = FIXTURES / "md_outputs" / "microsoft_CameraTraps_test_images"
LOWER_CONF, SNIP_SIZE = 0.05, 600


def build_dataset(folder: Path, repeat: int) -> Path:
    source = read_md_results(MD_SET / "expected_output_DRAFT.json")
    entries = []
    for copy in range(repeat):
        for entry in source.images:
            if not (MD_SET / entry.file).is_file():
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
            resized = crop.resize((SNIP_SIZE, SNIP_SIZE), Image.Resampling.LANCZOS)
            stem, suffix = Path(image["file"]).stem, Path(image["file"]).suffix
            name = f"{Path(image['file']).parent.as_posix()}/{stem}-{index}{suffix}"
            (out / name).parent.mkdir(parents=True, exist_ok=True)
            resized.save(out / name)
            made.add(name)
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        md_file = build_dataset(Path(tmp) / "images", args.repeat)
        start = time.perf_counter()
        reference = mewc_snip_loop(md_file, Path(tmp) / "mewc")
        mewc_s = time.perf_counter() - start

        settings = load_settings(SnipSettings, input_dir=md_file.parent,
                                 snip_dir=str(Path(tmp) / "tigertrap"),
                                 lower_conf=LOWER_CONF, snip_size=SNIP_SIZE)
        start = time.perf_counter()
        summary = run_snip(settings)
        ours_s = time.perf_counter() - start
        ours = {p.relative_to(Path(tmp) / "tigertrap").as_posix()
                for p in (Path(tmp) / "tigertrap").rglob("*") if p.suffix.lower() == ".jpg"}
    assert ours == reference, f"different crops: {sorted(ours ^ reference)[:5]}"
    crops = len(reference)
    print(f"crops: {crops} from {summary.images_with_crops} images (same set: yes)")
    print(f"mewc-snip loop : {mewc_s:7.2f} s  {crops / mewc_s:7.1f} crops/s")
    print(f"tigertrap snip : {ours_s:7.2f} s  {crops / ours_s:7.1f} crops/s")
    print(f"speed-up       : {mewc_s / ours_s:.2f}x")


if __name__ == "__main__":
    main()
