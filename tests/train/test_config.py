"""Train settings: MEWC key names, recipe presets, overrides from YAML and environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from tigertrap.core.config import ConfigError, load_settings
from tigertrap.train.backbones import BackboneError, resolve_backbone
from tigertrap.train.config import TrainSettings, apply_recipe
from tigertrap.train.recipe import plan_epochs


def test_mewc_recipe_fills_mewc_train_defaults() -> None:
    settings = apply_recipe(load_settings(TrainSettings))
    assert (settings.froz_epoch, settings.buf, settings.prog_stage_len) == (10, 1, 7)
    assert settings.magnitudes == [0.2, 0.4, 0.6, 0.8]
    assert settings.dropouts == [0.1, 0.2, 0.3, 0.4]
    assert (settings.loss, settings.optimizer, settings.lr_scheduler) == ("focal", "adamw",
                                                                          "expon")


def test_terainet_recipe_is_a_frozen_224_px_backbone_with_label_smoothing() -> None:
    settings = apply_recipe(load_settings(TrainSettings, recipe="terainet"))
    assert settings.input_size == 224 and settings.buf == 0 and settings.prog_tot_epoch == 0
    assert settings.label_smoothing == 0.1 and settings.dropouts == [0.2]
    assert settings.lr_scheduler == "plateau" and settings.early_stop_patience == 5


def test_yaml_and_environment_override_recipe_keys(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "train.yaml"
    config.write_text("RECIPE: terainet\nBUF: 2\nDROPOUTS: [0.3]\n")
    monkeypatch.setenv("MAGNITUDES", "0.5")
    monkeypatch.setenv("LABEL_SMOOTHING", "0")
    settings = apply_recipe(load_settings(TrainSettings, yaml_file=config))
    assert (settings.buf, settings.dropouts, settings.magnitudes) == (2, [0.3], [0.5])
    assert settings.label_smoothing == 0.0


def test_mewc_class_samples_specific_list_is_read_as_a_mapping() -> None:
    settings = load_settings(TrainSettings, class_samples_specific=[
        {"SAMPLES": 3000, "CLASS": "tiger"}, {"SAMPLES": 500, "CLASS": "deer"}])
    assert settings.class_samples_specific == {"tiger": 3000, "deer": 500}


def test_stage_lists_of_different_lengths_are_refused() -> None:
    with pytest.raises(ConfigError, match="MAGNITUDES|DROPOUTS"):
        load_settings(TrainSettings, magnitudes="0.1,0.2", dropouts="0.1")


def test_progressive_plan_follows_mewc_stage_lengths() -> None:
    settings = apply_recipe(load_settings(TrainSettings, froz_epoch=1, prog_stage_len=2,
                                          prog_tot_epoch=7, magnitudes=[0.2, 0.4, 0.6],
                                          dropouts=[0.1, 0.2, 0.3]))
    plans = plan_epochs(settings)
    assert [p.phase for p in plans] == ["frozen"] + ["progressive"] * 7
    assert [p.magnitude for p in plans[1:]] == [0.2, 0.2, 0.4, 0.4, 0.6, 0.6, 0.6]
    assert [p.dropout for p in plans[1:]] == [0.1, 0.1, 0.2, 0.2, 0.3, 0.3, 0.3]


@pytest.mark.parametrize(("code", "kimm_name", "size"), [
    ("EN0", "EfficientNetV2B0", 224), ("ens", "EfficientNetV2S", 384),
    ("ENX", "EfficientNetV2XL", 512), ("CNP", "ConvNeXtPico", 288),
    ("CNB", "ConvNeXtBase", 384), ("VTT", "VisionTransformerTiny16", 384),
])
def test_mewc_codes_name_kimm_models_with_mewc_input_sizes(code: str, kimm_name: str,
                                                           size: int) -> None:
    spec = resolve_backbone(code)
    assert (spec.kimm_name, spec.input_size) == (kimm_name, size)


def test_kimm_class_names_and_input_size_override_are_accepted() -> None:
    spec = resolve_backbone("mobilenetv3w050small", 96)
    assert (spec.kimm_name, spec.code, spec.input_size) == ("MobileNetV3W050Small", None, 96)


def test_unknown_backbone_names_the_choices() -> None:
    with pytest.raises(BackboneError, match="EN0"):
        resolve_backbone("EfficientNetV9")
