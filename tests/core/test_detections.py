"""One definition of a qualifying detection: the file's category names, the stage's LOWER_CONF."""

from __future__ import annotations

import pytest

from tigertrap.core.detections import ANIMALS, category_ids, category_names, qualifying
from tigertrap.core.md_results import DEFAULT_DETECTION_CATEGORIES, Detection


def _detection(category: str, conf: float) -> Detection:
    return Detection(category=category, conf=conf, bbox=(0.1, 0.1, 0.2, 0.2))


def test_megadetectors_animal_is_its_category_1():
    assert category_ids(DEFAULT_DETECTION_CATEGORIES, ANIMALS) == {"1"}


def test_names_are_matched_in_the_files_own_numbering_without_regard_to_case():
    categories = {"1": "vehicle", "2": "Animal", "7": "person"}

    assert category_ids(categories, ["animal", "PERSON"]) == {"2", "7"}


def test_a_file_naming_none_of_the_stages_categories_has_no_qualifying_detection():
    ids = category_ids({"1": "mammal", "2": "bird"}, ANIMALS)

    assert ids == frozenset()
    assert qualifying([_detection("1", 0.9)], ids, 0.0) == []


def test_lower_conf_is_inclusive_and_indices_keep_file_order():
    detections = [_detection("1", 0.04), _detection("2", 0.9), _detection("1", 0.05),
                  _detection("1", 0.8)]

    assert qualifying(detections, {"1"}, 0.05) == [2, 3]


def test_setting_values_may_be_names_or_megadetector_ids():
    assert category_names(["1", "Vehicle", " person ", "animal"]) == [
        "animal", "vehicle", "person"]


def test_an_unknown_category_is_refused_listing_the_accepted_values():
    with pytest.raises(ValueError, match="unknown category 'lion'; use animal, person, vehicle"):
        category_names(["lion"])
