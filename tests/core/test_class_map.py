"""The class map keeps the model's output order, whatever order keys are written in."""

from __future__ import annotations

import pytest

from tigertrap.core.class_map import ClassMap, ClassMapError


def test_save_and_load_keep_output_order_for_many_classes(tmp_path):
    names = [f"class_{i}" for i in range(12)][::-1]
    ClassMap(names).save(tmp_path / "class_map.yaml")
    loaded = ClassMap.load(tmp_path / "class_map.yaml")
    assert loaded.names == tuple(names)
    assert loaded.name(10) == names[10] and loaded.index(names[2]) == 2


def test_keys_in_any_order_or_as_strings_map_by_index(tmp_path):
    (tmp_path / "m.yaml").write_text("'10': k\n'2': c\n0: a\n1: b\n3: d\n4: e\n5: f\n6: g\n"
                                     "7: h\n8: i\n9: j\n11: l\n")
    assert "".join(ClassMap.load(tmp_path / "m.yaml")) == "abcdefghijkl"


@pytest.mark.parametrize("content, message", [
    ("0: a\n2: b\n", "without gaps"),
    ("0: a\n1: a\n", "repeat"),
    ("x: a\n", "integers"),
    ("- a\n- b\n", "mapping"),
])
def test_malformed_class_maps_are_refused(tmp_path, content, message):
    (tmp_path / "m.yaml").write_text(content)
    with pytest.raises(ClassMapError, match=message):
        ClassMap.load(tmp_path / "m.yaml")


def test_unknown_class_names_the_known_ones():
    with pytest.raises(KeyError, match="tiger, leopard"):
        ClassMap(["tiger", "leopard"]).index("lion")
