"""The loop closed: verdicts exported and merged with a training set, a previous bundle
retrained on it (a tiny real training run), both bundles compared on test, test2 and the held-out
reviewed frames, and the new bundle promoted only when asked."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.train.bundle_factory import TINY_BACKBONE, build_tiny_bundle
from tests.train.conftest import tiny_mewc_settings
from tests.train.synthetic import class_images, write_image_folders
from tigertrap.classify.review.export import export_training_set
from tigertrap.classify.review.intake import intake_job
from tigertrap.classify.review.store import ReviewStore, database_url
from tigertrap.core.bundle import load_manifest
from tigertrap.core.class_map import ClassMap
from tigertrap.core.promotion import promote_bundle

CLASSES = ["tiger", "deer", "boar"]
INPUT_SIZE = 64
FRAME = 96
#: (camera, class index, the model's wrong-ish top-k) of each reviewed frame.
REVIEWED = [("cam-a", 0, [(1, 0.5), (0, 0.4)]), ("cam-a", 1, [(1, 0.8), (2, 0.1)]),
            ("cam-b", 2, [(0, 0.5), (2, 0.4)]), ("cam-b", 0, [(0, 0.9), (1, 0.1)]),
            ("cam-c", 1, [(2, 0.6), (1, 0.3)]), ("cam-c", 2, [(2, 0.7), (1, 0.2)])]


def _reviewed_job(data: Path, store: ReviewStore) -> None:
    """Synthetic frames of the classes, classified, brought in and reviewed by one person."""
    rng = np.random.default_rng(1)
    images = []
    for number, (camera, index, top_k) in enumerate(REVIEWED):
        frame = class_images(index, len(CLASSES), 1, FRAME, rng)[0]
        path = data / "job" / camera / f"{number}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(frame).save(path, quality=95)
        images.append({"file": f"{camera}/{number}.jpg", "detections": [{
            "category": "1", "conf": 0.9, "bbox": [0.1, 0.1, 0.8, 0.8],
            "classifications": [[str(i), s] for i, s in top_k]}]})
    (data / "job" / "md_classified.json").write_text(json.dumps({
        "info": {"format_version": "1.6"}, "detection_categories": {"1": "animal"},
        "classification_categories": {str(i): n for i, n in enumerate(CLASSES)},
        "images": images}), encoding="utf-8")
    intake_job(store, data, name="survey-1", md_file="job/md_classified.json")
    for row, (_, index, _) in zip(store.detections("survey-1"), REVIEWED, strict=True):
        store.add_verdict(row["id"], CLASSES[index], "asha")


@pytest.fixture(scope="module")
def retrained(tmp_path_factory: pytest.TempPathFactory):  # a RetrainResult, data, bundle
    from tigertrap.train.retrain import retrain_and_compare

    root = tmp_path_factory.mktemp("loop")
    data = root / "data"
    write_image_folders(data / "base", CLASSES, {"train": 12, "val": 6, "test": 6, "test2": 3},
                        size=48, seed=3)
    ClassMap(CLASSES).save(data / "base" / "class_map.yaml")
    store = ReviewStore.open(database_url(data, None))
    _reviewed_job(data, store)
    # Three cameras, one per split (train, val, review) with these shares.
    export_training_set(store, data, ["survey-1"], "merged", merge_with="base", snip_size=48,
                        fractions={"train": 0.34, "val": 0.33, "review": 0.33})
    store.close()
    previous = build_tiny_bundle(data / "models" / "classifiers" / "served", CLASSES,
                                 input_size=INPUT_SIZE)
    settings = tiny_mewc_settings(None, root / "run",
                                  snips_csv=data / "merged" / "snips.csv", classes=[],
                                  model=TINY_BACKBONE, input_size=INPUT_SIZE, head="terainet",
                                  bundle_path=None, froz_epoch=1, prog_tot_epoch=1,
                                  magnitudes=[0.1], dropouts=[0.1], class_samples_default=12)
    return retrain_and_compare(settings, previous), data, previous


def test_retraining_writes_a_side_by_side_report_on_test_test2_and_review(retrained) -> None:
    result, _, previous = retrained
    report = json.loads((result.comparison_dir / "comparison.json").read_text())
    assert set(report["splits"]) == {"test", "test2", "review"}
    for entry in report["splits"].values():
        for role in ("previous", "new"):
            assert {"accuracy", "macro_f1", "macro_recall", "tiger"} <= set(entry[role])
            assert {"recall", "precision", "threshold"} <= set(entry[role]["tiger"])
        assert entry["changed"] >= entry["better"] + entry["worse"]
    table = (result.comparison_dir / "comparison.md").read_text()
    assert "| review |" in table and "tiger recall (at its threshold)" in table
    header = (result.comparison_dir / "changed_frames.csv").read_text().splitlines()[0]
    assert header.startswith("split,path,truth,previous,previous_score,new,new_score")
    assert report["previous"] == str(previous)


def test_retraining_starts_from_the_previous_weights_and_never_touches_the_served_bundle(
        retrained) -> None:
    result, data, previous = retrained
    assert result.trained.bundle_dir == result.trained.run_dir / "bundle"
    assert load_manifest(previous).name == "served"  # unchanged
    assert not list((data / "models" / "classifiers").glob("served.replaced-*"))


def test_promotion_is_explicit_and_keeps_the_replaced_bundle(retrained) -> None:
    result, data, previous = retrained
    done = promote_bundle(result.trained.bundle_dir, previous)
    assert load_manifest(previous).config_hash == load_manifest(
        result.trained.bundle_dir).config_hash
    replaced = Path(done["replaced"])
    assert load_manifest(replaced).name == "served"
    log = (data / "models" / "classifiers" / "promotions.jsonl").read_text().splitlines()
    assert json.loads(log[-1])["candidate"] == str(result.trained.bundle_dir.resolve())


def test_warm_start_copies_every_layer_and_refuses_a_model_of_another_head(retrained) -> None:
    import keras

    from tigertrap.train.backbones import build_backbone, resolve_backbone
    from tigertrap.train.model import build_classifier
    from tigertrap.train.warm_start import WarmStartError, warm_start

    _, _, served = retrained
    replaced = next(served.parent.glob("served.replaced-*"), served)  # the original bundle
    spec = resolve_backbone(TINY_BACKBONE, INPUT_SIZE)
    model = build_classifier(build_backbone(spec, "none"), len(CLASSES), head="terainet")
    warm_start(model, replaced)
    probe = np.random.default_rng(0).uniform(0, 255, (2, INPUT_SIZE, INPUT_SIZE, 3))
    original = keras.saving.load_model(replaced / "model.keras", compile=False)
    np.testing.assert_allclose(model.predict_on_batch(probe), original.predict_on_batch(probe),
                               atol=1e-5)
    other = build_classifier(build_backbone(spec, "none"), len(CLASSES), head="mewc")
    with pytest.raises(WarmStartError, match="HEAD"):
        warm_start(other, replaced)


def test_promote_command_refuses_a_candidate_outside_the_data_root(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "TIGERTRAP_DATA": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "tigertrap.core", "promote", "../elsewhere",
                           "--model", "served"], env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 2
    assert "'..' segments are refused" in done.stderr
