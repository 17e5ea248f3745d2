"""The snip stage: MegaDetector detections to square crops, mewc-snip style, numbering fixed.

Every detection of a chosen category (animal by default) with ``conf >= LOWER_CONF`` becomes one
crop, made by :func:`tigertrap.core.crops.crop_detection` (the crop classify uses too) and saved
as ``<stem>-<i><ext>`` where ``i`` is the detection's index in the image's ``detections`` list *as
written in the MD file*. mewc-snip numbers crops with a counter that drifts when low-confidence
or non-animal detections come first; here the name is the index, so a snip always points back at
its detection. The images' sub-folders are kept under ``snips/``.

Images run in a pool of processes, one per core (Pillow's JPEG decoder holds the GIL for much
of its work, so threads barely scale). A large JPEG is decoded at 1/2, 1/4 or 1/8 scale when
every box stays at least ``SNIP_SIZE`` pixels; an image without a qualifying detection is never
opened. Complete snips are skipped on a re-run; every file is written atomically. How the
snips were cut (``SNIP_SIZE``, ``CROP_METHOD``, ...) is recorded beside ``snips.csv`` in
``snips.json`` (:mod:`tigertrap.core.snip_spec`), which train reads.
"""

from __future__ import annotations

import csv
import io
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath

from PIL import Image

from tigertrap.core.crops import EmptyBoxError, crop_detection, draft_size
from tigertrap.core.detections import category_ids, qualifying
from tigertrap.core.images import ImageLoadError, image_size, open_image
from tigertrap.core.md_results import MDResults, locate_image, read_md_results
from tigertrap.core.paths import atomic_write, atomic_write_bytes, remove_partials, within
from tigertrap.core.snip_spec import SnipSpec, write_snip_spec
from tigertrap.snip.config import SnipSettings
from tigertrap.snip.labels import ImageLabel, find_manifest, read_labels

__all__ = ["FAILURES_CSV", "SNIPS_CSV", "Crop", "CropOptions", "SnipPlan", "SnipSummary",
           "plan_snips", "run_snip"]

SNIPS_CSV = "snips.csv"
FAILURES_CSV = "snip_failures.csv"
CSV_COLUMNS = ("snip", "image", "detection_index", "category", "conf", "bbox_x", "bbox_y",
               "bbox_w", "bbox_h", "class", "split")
_SAVE_FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".tif": "TIFF",
                 ".tiff": "TIFF", ".bmp": "BMP", ".webp": "WEBP"}

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Crop:
    """One detection to crop: its index in the MD file's list, and where the snip goes."""

    index: int
    category: str
    conf: float
    bbox: tuple[float, float, float, float]
    snip: str  # relative to the snips folder, forward slashes


@dataclass(frozen=True)
class SnipPlan:
    """All crops of one image."""

    file: str
    image: Path | None
    crops: tuple[Crop, ...]
    label: ImageLabel | None = None
    #: Why ``image`` is None.
    problem: str = "image not found"


@dataclass
class SnipSummary:
    """What a run did; ``failures`` holds ``(image or snip, reason)`` pairs."""

    images: int = 0
    images_with_crops: int = 0
    crops: int = 0
    written: int = 0
    skipped: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    snips_dir: Path = Path()
    snips_csv: Path = Path()

    def as_dict(self) -> dict[str, object]:
        return {"images": self.images, "images_with_crops": self.images_with_crops,
                "crops": self.crops, "written": self.written, "skipped": self.skipped,
                "failures": len(self.failures), "snips_dir": str(self.snips_dir),
                "snips_csv": str(self.snips_csv)}


def _relative_name(file: str, image: Path | None, md_dir: Path) -> PurePosixPath:
    """The image's path below the MD file's folder, used to place its snips."""
    if image is not None:
        try:
            return PurePosixPath(image.resolve().relative_to(md_dir.resolve()).as_posix())
        except ValueError:
            pass
    windows = "\\" in file
    path = PureWindowsPath(file) if windows else PurePosixPath(file)
    if path.is_absolute() or path.drive or ".." in path.parts:  # keep snips inside SNIP_DIR
        return PurePosixPath(path.name)
    return PurePosixPath(*path.parts)


def plan_snips(results: MDResults, md_dir: Path, settings: SnipSettings,
               labels: dict[Path, ImageLabel] | None = None,
               image_root: Path | None = None) -> list[SnipPlan]:
    """The crops each image needs; images without qualifying detections are left out.

    With ``image_root`` (a job's data root), an image outside it is a failure, not read.
    """
    plans = []
    ids = category_ids(results.detection_categories, settings.categories)
    for entry in results.images:
        if entry.failure is not None or not entry.detections:
            continue
        chosen = [(i, entry.detections[i])
                  for i in qualifying(entry.detections, ids, settings.lower_conf)]
        if not chosen:
            continue
        image = locate_image(entry.file, md_dir)
        problem = "image not found"
        if image is not None and image_root is not None and not within(image, image_root):
            image, problem = None, "image outside the data root"
        label = (labels or {}).get(image.resolve()) if image is not None else None
        limit = settings.max_crops
        if label is not None:
            limit = settings.max_crops_by_class.get(label.class_name, limit)
        if limit is not None:
            chosen = sorted(chosen, key=lambda pair: pair[1].conf, reverse=True)[:limit]
            chosen.sort(key=lambda pair: pair[0])
        relative = _relative_name(entry.file, image, md_dir)
        crops = tuple(
            Crop(index=i, category=d.category, conf=d.conf, bbox=tuple(d.bbox),  # type: ignore[arg-type]
                 snip=str(relative.parent / f"{relative.stem}-{i}{relative.suffix}"))
            for i, d in chosen)
        plans.append(SnipPlan(file=entry.file, image=image, crops=crops, label=label,
                              problem=problem))
    return plans


@dataclass(frozen=True)
class CropOptions:
    """How each snip is made and saved (what a pool process needs, nothing more)."""

    snip_size: int
    crop_method: str
    jpeg_quality: int
    draft: bool

    @classmethod
    def from_settings(cls, settings: SnipSettings) -> CropOptions:
        return cls(snip_size=settings.snip_size, crop_method=settings.crop_method,
                   jpeg_quality=settings.jpeg_quality, draft=settings.draft)


@dataclass
class _Outcome:
    written: list[Crop] = field(default_factory=list)
    skipped: list[Crop] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)


def _encode(crop: Image.Image, suffix: str, quality: int) -> bytes:
    buffer = io.BytesIO()
    fmt = _SAVE_FORMATS.get(suffix.lower(), "JPEG")
    options = {"quality": quality} if fmt in ("JPEG", "WEBP") else {}
    crop.save(buffer, fmt, **options)
    return buffer.getvalue()


def _decode(plan: SnipPlan, crops: list[Crop], options: CropOptions) -> Image.Image:
    """The upright RGB image, at the smallest JPEG scale that keeps every box >= SNIP_SIZE."""
    assert plan.image is not None
    wanted = None
    if options.draft:
        width, height = image_size(plan.image)
        wanted = draft_size([c.bbox for c in crops], width, height, options.snip_size)
    return open_image(plan.image, draft_size=wanted)


def _snip_image(plan: SnipPlan, snips_dir: Path, options: CropOptions) -> _Outcome:
    """Write the missing snips of one image (runs in a pool process)."""
    outcome = _Outcome()
    todo = [c for c in plan.crops if not (snips_dir / c.snip).is_file()]
    outcome.skipped = [c for c in plan.crops if c not in todo]
    if not todo:
        return outcome
    if plan.image is None:
        outcome.failures.append((plan.file, plan.problem))
        return outcome
    try:
        image = _decode(plan, todo, options)
    except ImageLoadError as error:
        outcome.failures.append((plan.file, error.reason))
        return outcome
    with image:
        for crop in todo:
            try:
                snip = crop_detection(image, crop.bbox, options.snip_size, options.crop_method)
            except EmptyBoxError as error:
                outcome.failures.append((crop.snip, str(error)))
                continue
            data = _encode(snip, Path(crop.snip).suffix, options.jpeg_quality)
            atomic_write_bytes(snips_dir / crop.snip, data)
            outcome.written.append(crop)
    return outcome


def _pool(workers: int) -> Executor:
    """Processes, one per worker; threads where processes cannot be started.

    A single worker runs in a thread (no start-up cost, easy to debug). A daemonic process (a
    Celery prefork pool child) may not start children, so there the images run in threads:
    correct, but Pillow's decoder scales poorly over threads; a worker with ``--pool solo``
    or ``--pool threads`` gets the process pool.
    """
    if workers <= 1 or multiprocessing.current_process().daemon:
        return ThreadPoolExecutor(max_workers=workers)
    return ProcessPoolExecutor(max_workers=workers)


def _link(source: Path, target: Path) -> None:
    """Hard-link ``source`` as ``target``; copy (atomically) where links are not possible."""
    if target.exists():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except FileExistsError:  # made meanwhile by an earlier, killed run
        return
    except OSError:  # another file system, or links not allowed
        atomic_write_bytes(target, source.read_bytes())


def _by_class_path(snips_dir: Path, settings: SnipSettings, plan: SnipPlan,
                   crop: Crop) -> Path:
    """``<snips>/<BY_CLASS_DIR>/<split>/<class>/<name>``.

    ``name`` is the snip's file name when its image sits in a ``<split>/<class>`` folder (the
    download stage's layout, where names are unique); otherwise the snip's sub-folders joined
    by ``__``, so that images of one class from different folders cannot clash.
    """
    assert plan.label is not None
    split, class_name = plan.label.split or "unsplit", plan.label.class_name
    parts = PurePosixPath(crop.snip).parts
    name = parts[-1] if parts[-3:-1] == (split, class_name) else "__".join(parts)
    return snips_dir / settings.by_class_dir / split / class_name / name


def _write_csv(path: Path, columns: tuple[str, ...], rows: list[dict[str, object]]) -> None:
    with atomic_write(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def _csv_row(plan: SnipPlan, crop: Crop) -> dict[str, object]:
    label = plan.label
    return {"snip": crop.snip, "image": plan.file, "detection_index": crop.index,
            "category": crop.category, "conf": round(crop.conf, 3),
            "bbox_x": crop.bbox[0], "bbox_y": crop.bbox[1], "bbox_w": crop.bbox[2],
            "bbox_h": crop.bbox[3], "class": label.class_name if label else "",
            "split": label.split if label else ""}


def run_snip(settings: SnipSettings, progress: Progress | None = None,
             image_root: Path | None = None, *, md_path: Path | None = None,
             tables: tuple[str, str] = (SNIPS_CSV, FAILURES_CSV),
             clean_partials: bool = True) -> SnipSummary:
    """Crop every qualifying detection of ``settings.md_path`` into ``settings.snips_path``.

    Writes the snips, ``snips.csv`` (one row per snip on disk) and ``snip_failures.csv``;
    with ``by_class``, hard links under ``<snips>/<by_class_dir>/<split>/<class>/``. With
    ``image_root``, images the MD file names outside that folder are failures, never read.

    A shard of a sharded job snips a subset MD file (``md_path``, beside the full one) into
    the same folder, writes its own ``tables`` (snips CSV, failures CSV) and leaves other
    shards' in-progress files alone (``clean_partials`` off: the split step cleaned once).

    Raises:
        MDResultsError: the MD file is missing or unreadable (nothing is written).
    """
    md_path = md_path or settings.md_path
    results = read_md_results(md_path)
    manifest = settings.manifest or find_manifest(md_path.parent)
    labels = read_labels(manifest) if manifest else {}
    plans = plan_snips(results, md_path.parent, settings, labels, image_root)
    snips_dir = settings.snips_path
    if clean_partials:
        remove_partials(snips_dir)  # left by a worker that was killed mid-write
    summary = SnipSummary(images=len(results.images), images_with_crops=len(plans),
                          crops=sum(len(p.crops) for p in plans), snips_dir=snips_dir,
                          snips_csv=snips_dir / tables[0])
    rows: list[dict[str, object]] = []
    if progress:
        progress(0, len(plans))
    options = CropOptions.from_settings(settings)
    pool = _pool(settings.workers or os.cpu_count() or 1)
    try:
        futures = {pool.submit(_snip_image, plan, snips_dir, options): plan for plan in plans}
        for done, future in enumerate(as_completed(futures), start=1):
            plan, outcome = futures[future], future.result()
            summary.written += len(outcome.written)
            summary.skipped += len(outcome.skipped)
            summary.failures.extend(outcome.failures)
            rows.extend(_csv_row(plan, crop) for crop in outcome.written + outcome.skipped)
            if settings.by_class and plan.label is not None:
                for crop in outcome.written + outcome.skipped:
                    _link(snips_dir / crop.snip, _by_class_path(snips_dir, settings, plan, crop))
            if progress:
                progress(done, len(plans))
    except BaseException:
        # Cancelled or failed: drop queued images instead of finishing them.
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    rows.sort(key=lambda row: str(row["snip"]))
    _write_csv(summary.snips_csv, CSV_COLUMNS, rows)
    _write_csv(snips_dir / tables[1], ("item", "reason"),
               [{"item": item, "reason": reason} for item, reason in sorted(summary.failures)])
    _record_crop(settings)
    return summary


def _record_crop(settings: SnipSettings) -> None:
    """``snips.json`` beside ``snips.csv`` and in the by-class folder: how the snips were cut,
    for train (:mod:`tigertrap.core.snip_spec`)."""
    spec = SnipSpec(snip_size=settings.snip_size, crop_method=settings.crop_method,
                    jpeg_quality=settings.jpeg_quality, draft=settings.draft)
    write_snip_spec(settings.snips_path, spec)
    by_class = settings.snips_path / settings.by_class_dir
    if settings.by_class and by_class.is_dir():
        write_snip_spec(by_class, spec)
