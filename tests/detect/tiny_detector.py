"""A tiny MegaDetector-shaped checkpoint for tests and benchmarks.

Real MegaDetector weights cannot be downloaded here, so tests build a YOLOv5 model with random
weights and MegaDetector's three classes (animal, person, vehicle) and save it the way
YOLOv5's ``train.py`` saved MDv5a/MDv5b: a ``torch.save`` dict whose ``model`` entry is the
half-precision model, pickled under the YOLOv5 repository's top-level module names
(``models.yolo.Model``, ``models.common.Conv``, ...). Loading it therefore takes exactly the
path real MegaDetector weights take: ``megadetector.detection.run_detector.load_detector`` ->
``pytorch_detector.PTDetector`` -> ``torch.load``, which resolves ``models.*`` through the
folder the ``yolov5`` package puts on ``sys.path``.

An optional ``megadetector_info.json`` inside the archive (MegaDetector's metadata convention)
sets a small inference size so the random model runs quickly on a CPU.

Other test packages import :func:`build_tiny_md_checkpoint`; keep its signature stable.
"""

from __future__ import annotations

import json
import pickle
import zipfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

__all__ = [
    "MD_CLASS_NAMES",
    "TINY_IMAGE_SIZE",
    "build_tiny_md_checkpoint",
]

#: MegaDetector's classes in the model's output order (written as categories "1", "2", "3").
MD_CLASS_NAMES = ("animal", "person", "vehicle")

#: Long side, in pixels, the tiny model is run at (MDv5 runs at 1280).
TINY_IMAGE_SIZE = 320

#: Package prefix of the yolov5 pip package, and the module names real checkpoints use.
_CALIBRATION_BATCH = 2
_OBJECTNESS = 4  # index of the objectness logit in each anchor's outputs (x, y, w, h, obj, ...)
_OBJECTNESS_WEIGHT_SCALE = 0.05
_OBJECTNESS_BIAS = -10.0

_PIP_PREFIX = "yolov5.models."
_REPO_PREFIX = "models."


class _YoloRepoPickler(pickle._Pickler):  # type: ignore[name-defined,misc]
    """Pickles yolov5-package classes under the YOLOv5 repository names MD weights carry."""

    def save_global(self, obj: Any, name: str | None = None) -> None:
        module = getattr(obj, "__module__", "") or ""
        if not module.startswith((_PIP_PREFIX, _REPO_PREFIX)) or self.proto >= 4:
            super().save_global(obj, name)
            return
        if module.startswith(_PIP_PREFIX):
            module = _REPO_PREFIX + module[len(_PIP_PREFIX):]
        qualname = name or obj.__qualname__
        if module == "models.yolo" and qualname == "DetectionModel":
            qualname = "Model"  # the class name in the YOLOv5 release MDv5 was trained with
        self.write(pickle.GLOBAL + f"{module}\n{qualname}\n".encode())
        self.memoize(obj)


_PICKLE_MODULE = SimpleNamespace(Pickler=_YoloRepoPickler, Unpickler=pickle.Unpickler,
                                 __name__="pickle")


def _calibrate_batch_norm(model: Any, seed: int) -> None:
    # With PyTorch's default initialisation the activations of a random YOLOv5 shrink to ~1e-9
    # by the head, so every image gives the same (empty) output. Setting each BatchNorm's
    # statistics from one batch of noise keeps activations at unit scale, so outputs depend
    # on the image like a trained detector's do.
    import torch

    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    momenta = [norm.momentum for norm in norms]
    for norm in norms:
        norm.momentum = 1.0
    generator = torch.Generator().manual_seed(seed)
    noise = torch.rand(_CALIBRATION_BATCH, 3, TINY_IMAGE_SIZE, TINY_IMAGE_SIZE,
                       generator=generator)
    model.train()
    with torch.no_grad():
        model(noise)
    model.eval()
    for norm, momentum in zip(norms, momenta, strict=True):
        norm.momentum = momentum


def _tune_objectness(model: Any) -> None:
    # Scale the objectness logits so a handful of boxes per image pass a 0.01 threshold,
    # with confidences spread over 0.01-1 and some images empty, as with real weights.
    import torch

    head = model.model[-1]
    with torch.no_grad():
        for conv in head.m:
            weight = conv.weight.view(head.na, head.no, *conv.weight.shape[1:])
            bias = conv.bias.view(head.na, head.no)
            weight[:, _OBJECTNESS] *= _OBJECTNESS_WEIGHT_SCALE
            bias[:, _OBJECTNESS] = _OBJECTNESS_BIAS


def _random_yolov5(cfg: str, seed: int) -> Any:
    import torch
    import yolov5.models.yolo as yolo

    torch.manual_seed(seed)
    cfg_path = Path(yolo.__file__).with_name(cfg)
    model = yolo.Model(cfg=str(cfg_path), ch=3, nc=len(MD_CLASS_NAMES))
    model.names = list(MD_CLASS_NAMES)
    model.nc = len(MD_CLASS_NAMES)
    _calibrate_batch_norm(model, seed)
    _tune_objectness(model)
    return model.eval()


def _add_md_metadata(path: Path, metadata: dict[str, Any]) -> None:
    with zipfile.ZipFile(path, "a") as archive:
        root = archive.namelist()[0].split("/")[0]
        archive.writestr(f"{root}/megadetector_info.json", json.dumps(metadata))


def build_tiny_md_checkpoint(path: Path, *, cfg: str = "yolov5n.yaml",
                             image_size: int | None = TINY_IMAGE_SIZE,
                             seed: int = 0) -> Path:
    """Write a random-weight YOLOv5 checkpoint with MegaDetector's 3 classes to ``path``.

    Args:
        path: the ``.pt`` file to write (parent folders are created).
        cfg: the yolov5 package's architecture file (``yolov5n.yaml``; ``yolov5s.yaml`` for a
            model of realistic cost).
        image_size: inference size recorded in the archive's ``megadetector_info.json``;
            None writes no metadata, as in MDv5a/MDv5b (MegaDetector then runs at 1280).
        seed: torch seed for the random weights (same seed, same model).

    Returns:
        ``path``.
    """
    import torch

    model = _random_yolov5(cfg, seed)
    checkpoint = {
        "epoch": -1,
        "best_fitness": None,
        "model": model.half(),
        "ema": None,
        "updates": None,
        "optimizer": None,
        "wandb_id": None,
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, path, pickle_module=_PICKLE_MODULE, pickle_protocol=2)
    if image_size is not None:
        _add_md_metadata(path, {"image_size": image_size, "model_type": "yolov5"})
    return path
