"""The class spec: the packaged Nepal spec and what a spec file may say."""

from __future__ import annotations

from pathlib import Path

import pytest

from tigertrap.download.spec import SpecError, load_spec, normalise

NEPAL_CLASSES = ["tiger", "leopard", "black_bear", "other_carnivores", "deer", "wild_boar",
                 "buffalo", "rhino", "elephant", "bird"]


def test_default_spec_has_the_seeds_ten_nepal_classes_in_order() -> None:
    assert load_spec().names == NEPAL_CLASSES


def test_default_spec_holds_out_every_lila_tiger_as_test2() -> None:
    tiger = load_spec().classes[0]
    assert tiger.holdout == "test2"
    assert all(tiger.rule_holdout(rule) == "test2" for rule in tiger.rules)


def test_normalise_ignores_case_and_runs_of_spaces() -> None:
    assert normalise("  Asian   Black\tBear ") == "asian black bear"


def test_rule_values_are_normalised_and_quota_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text("classes:\n  bear:\n    target: 10\n    rules:\n"
                    "      - {name: asian, common_name: 'Asian  Black Bear', quota: 3}\n"
                    "      - {family: URSIDAE}\n", encoding="utf-8")
    bear = load_spec(path).classes[0]
    assert bear.target == 10
    assert bear.rules[0].conditions == {"common_name": frozenset({"asian black bear"})}
    assert bear.rules[0].quota == 3
    assert bear.rules[1].name == "ursidae"


@pytest.mark.parametrize(("body", "message"), [
    ("classes:\n  bear:\n    rules: []\n", "class 'bear'"),
    ("classes:\n  bear:\n    rules:\n      - {common_name: bear, quota: -1}\n", "quota"),
    ("classes:\n  bear:\n    holdout: train\n    rules:\n      - {common_name: bear}\n",
     "holdout"),
    ("classes:\n  bear:\n    rules:\n      - {quota: 3}\n", "at least one column"),
    ("species: [bear]\n", "classes"),
])
def test_malformed_spec_is_refused_naming_what_to_fix(tmp_path: Path, body: str,
                                                      message: str) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(SpecError, match=message):
        load_spec(path)
