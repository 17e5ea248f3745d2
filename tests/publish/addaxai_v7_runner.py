"""Run a v7 model folder the way AddaxAI 7's classification worker does, in a fresh process
that cannot import tigertrap.

Usage: ``python addaxai_v7_runner.py MODEL_DIR IMAGE X Y W H`` prints a JSON report.

The steps follow ``backend/app/ml/inference/classification_worker.py`` (PetervanLunteren/AddaxAI,
main): import ``inference.py`` with ``importlib.util.spec_from_file_location``, instantiate
``ModelInference(model_dir, model_path)``, require the five contract methods, ``check_gpu()``,
``load_model()``, open the image with ``Image.open(path).convert("RGB")``, ``get_crop(image,
tuple(bbox))`` then ``get_classification(crop)``, and the batch pair ``get_tensor`` /
``classify_batch`` when present; ``get_class_names()`` for the output JSON.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import json
import sys
from pathlib import Path

REQUIRED = ("check_gpu", "load_model", "get_crop", "get_classification", "get_class_names")


class _NoTigertrap(importlib.abc.MetaPathFinder):
    """AddaxAI's environment has no tigertrap: make any import of it fail."""

    def find_spec(self, name, path=None, target=None):
        if name == "tigertrap" or name.startswith("tigertrap."):
            raise ImportError(f"{name} is not available inside AddaxAI")
        return None


def main(model_dir: Path, image_path: Path, bbox: list[float]) -> dict:
    sys.meta_path.insert(0, _NoTigertrap())
    from PIL import Image

    manifest = json.loads((model_dir / "manifest.json").read_text(encoding="utf-8"))
    spec = importlib.util.spec_from_file_location(f"custom_inference_{model_dir.name}",
                                                  model_dir / "inference.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    model = module.ModelInference(model_dir, model_dir / manifest["model_fname"])
    missing = [name for name in REQUIRED if not callable(getattr(model, name, None))]
    gpu = model.check_gpu()
    model.load_model()
    image = Image.open(image_path).convert("RGB")
    crop = model.get_crop(image, tuple(bbox))
    single = model.get_classification(crop)
    batch = model.classify_batch(__import__("numpy").stack([model.get_tensor(crop)] * 2))
    return {"missing": missing, "gpu": gpu, "crop_size": list(crop.size),
            "classification": single, "batch": batch,
            "class_names": model.get_class_names(),
            "tigertrap_loaded": any(name.startswith("tigertrap") for name in sys.modules)}


if __name__ == "__main__":
    folder, image, *box = sys.argv[1:]
    print(json.dumps(main(Path(folder), Path(image), [float(v) for v in box])))
