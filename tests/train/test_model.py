"""The classifier's freezing rules and per-stage dropout."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest

from tigertrap.train.backbones import block_starts, build_backbone, resolve_backbone
from tigertrap.train.model import build_classifier, set_dropout, unfreeze_last_blocks

if TYPE_CHECKING:
    import keras


@pytest.fixture(scope="module")
def classifier() -> keras.Model:
    backbone = build_backbone(resolve_backbone("ResNet18", 32), weights=None)
    return build_classifier(backbone, 3, head="mewc", dropout=0.1)


def test_backbone_starts_frozen_under_a_trainable_head(classifier: keras.Model) -> None:
    assert not classifier.get_layer("backbone").trainable
    assert classifier.get_layer("classification").trainable


def test_unfreezing_last_block_keeps_batchnorm_and_earlier_blocks_frozen(
        classifier: keras.Model) -> None:
    import keras

    backbone = classifier.get_layer("backbone")
    last = block_starts(backbone)[-1]
    unfreeze_last_blocks(classifier, 1)
    names = [layer.name for layer in backbone.layers]
    after = backbone.layers[names.index(last):]
    assert all(not layer.trainable for layer in backbone.layers[:names.index(last)])
    assert all(layer.trainable != isinstance(layer, keras.layers.BatchNormalization)
               for layer in after if layer.weights)


def test_set_dropout_changes_the_rate_the_model_trains_with(classifier: keras.Model) -> None:
    images = np.full((8, 32, 32, 3), 128.0, dtype="float32")
    set_dropout(classifier, 0.0)
    calm = np.asarray(classifier(images, training=True))
    set_dropout(classifier, 0.9)
    noisy = np.asarray(classifier(images, training=True))
    assert np.allclose(calm, calm[0], atol=1e-6)
    assert not np.allclose(noisy, noisy[0], atol=1e-6)
