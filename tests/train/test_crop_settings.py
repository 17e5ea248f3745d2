"""Train takes the crop from snip's snips.json instead of a person repeating SNIP_SIZE and
CROP_METHOD; a setting that disagrees with the snips stops the run naming the key."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import copy_fixture
from tigertrap.core.config import ConfigError, load_settings
from tigertrap.core.md_results import Detection, ImageResult, MDResults, write_md_results
from tigertrap.core.snip_spec import SNIPS_JSON, SnipSpec, SnipSpecError, write_snip_spec
from tigertrap.snip.config import SnipSettings
from tigertrap.snip.snip import run_snip
from tigertrap.train.config import TrainSettings
from tigertrap.train.training import crop_settings

FRAME = "terainet_anno_1440.jpg"


def _train_settings(**given: object) -> TrainSettings:
    return load_settings(TrainSettings, **given)


def test_snip_size_and_crop_method_left_unset_come_from_the_snips(tmp_path: Path) -> None:
    write_snip_spec(tmp_path, SnipSpec(snip_size=320, crop_method="square"))
    (tmp_path / "snips.csv").write_text("snip,class,split\n")

    settings, spec = crop_settings(_train_settings(snips_csv=tmp_path / "snips.csv"))

    assert (settings.snip_size, settings.crop_method) == (320, "square")
    assert spec == SnipSpec(snip_size=320, crop_method="square")


def test_a_snip_size_other_than_the_snips_were_cut_with_is_refused_naming_the_key(
        tmp_path: Path) -> None:
    write_snip_spec(tmp_path, SnipSpec(snip_size=320))

    with pytest.raises(ConfigError, match=r"SNIP_SIZE: is 600 but the snips were cut with 320"):
        crop_settings(_train_settings(data_dir=tmp_path, snip_size=600))


def test_a_crop_method_given_equal_to_the_snips_is_accepted(tmp_path: Path) -> None:
    write_snip_spec(tmp_path, SnipSpec(crop_method="square"))

    settings, _ = crop_settings(_train_settings(data_dir=tmp_path, crop_method="square"))

    assert settings.crop_method == "square"


def test_folders_without_a_record_train_on_trains_own_settings(tmp_path: Path) -> None:
    settings, spec = crop_settings(_train_settings(data_dir=tmp_path, snip_size=256))

    assert spec is None and settings.snip_size == 256


def test_an_unreadable_record_is_an_error_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / SNIPS_JSON).write_text('{"snip_size": "big"}')

    with pytest.raises(SnipSpecError, match=rf"{SNIPS_JSON}: field snip_size"):
        crop_settings(_train_settings(data_dir=tmp_path))


def test_snips_cut_by_snip_tell_train_their_crop_in_both_layouts(tmp_path: Path,
                                                                 fixtures_dir: Path) -> None:
    images = tmp_path / "dataset" / "images"
    copy_fixture(fixtures_dir / "images" / "tiger" / FRAME, images / "train" / "tiger")
    shutil.copytree(images / "train", images / "val")
    (tmp_path / "dataset" / "manifest.csv").write_text(
        f"class_name,split,path\ntiger,train,images/train/tiger/{FRAME}\n"
        f"tiger,val,images/val/tiger/{FRAME}\n")
    box = Detection(category="1", conf=0.9, bbox=(0.1, 0.1, 0.4, 0.4))
    write_md_results(MDResults(images=[ImageResult(file=f"{split}/tiger/{FRAME}",
                                                   detections=[box])
                                       for split in ("train", "val")]), images / "md.json")
    run_snip(SnipSettings(input_dir=images, snip_size=48, crop_method="square", by_class=True,
                          workers=1))

    by_csv, _ = crop_settings(_train_settings(snips_csv=images / "snips" / "snips.csv"))
    by_folder, spec = crop_settings(_train_settings(data_dir=images / "snips" / "by_class"))

    assert (by_csv.snip_size, by_csv.crop_method) == (48, "square")
    assert (by_folder.snip_size, by_folder.crop_method) == (48, "square")
    assert spec == SnipSpec(snip_size=48, crop_method="square", jpeg_quality=95, draft=True)


@pytest.mark.slow
def test_the_bundle_manifest_records_how_the_training_snips_were_cut(
        image_folders: Path, tmp_path: Path) -> None:
    from tests.train.conftest import tiny_mewc_settings
    from tigertrap.core.bundle import load_manifest
    from tigertrap.train.training import train

    data = shutil.copytree(image_folders / "ds", tmp_path / "by_class")
    write_snip_spec(data, SnipSpec(snip_size=48, crop_method="square"))

    result = train(tiny_mewc_settings(data, tmp_path / "run", froz_epoch=1, prog_tot_epoch=1,
                                      prog_stage_len=1, magnitudes=[0.1], dropouts=[0.1]))

    manifest = load_manifest(result.bundle_dir)
    assert (manifest.snip_size, manifest.crop_method) == (48, "square")
    assert manifest.model_extra["snips"] == SnipSpec(snip_size=48, crop_method="square"
                                                     ).model_dump(mode="json")
