"""Label sets: ids, schema round trip, and agreement with TotalSegmentator's own class map."""

from __future__ import annotations

import json

import pytest

from lion_nnunet.errors import LionError
from lion_nnunet.labels import (
    LABEL_SETS,
    TUMOR_LABEL,
    LabelSet,
    all_totalseg_classes,
    get_label_set,
    label_set_from_dataset_labels,
    load_label_set,
)


@pytest.mark.parametrize("tracer", sorted(LABEL_SETS))
def test_labels_are_consecutive_with_tumor_one(tracer: str) -> None:
    labels = get_label_set(tracer).labels()
    assert labels["background"] == 0
    assert labels["tumor"] == TUMOR_LABEL == 1
    assert sorted(labels.values()) == list(range(len(labels)))


def test_fdg_and_psma_organ_order() -> None:
    assert get_label_set("fdg").organ_names == (
        "brain", "heart", "kidneys", "urinary_bladder", "liver",
        "spleen", "stomach", "small_bowel", "colon",
    )  # fmt: skip
    assert get_label_set("PSMA").organ_names == (
        "salivary_glands", "kidneys", "liver", "spleen", "small_bowel", "urinary_bladder",
    )  # fmt: skip


def test_ids_match_totalsegmentator_class_map() -> None:
    map_to_binary = pytest.importorskip("totalsegmentator.map_to_binary")
    for cls in all_totalseg_classes():
        assert map_to_binary.class_map[cls.task][cls.id] == cls.name, cls


def test_no_lacrimal_gland_in_totalsegmentator() -> None:
    map_to_binary = pytest.importorskip("totalsegmentator.map_to_binary")
    names = {n for task in map_to_binary.class_map.values() for n in task.values()}
    assert not any("lacrimal" in n for n in names)
    assert "lacrimal" in get_label_set("psma").notes.lower()


@pytest.mark.parametrize("tracer", sorted(LABEL_SETS))
def test_json_round_trip(tracer: str, tmp_path) -> None:
    ls = get_label_set(tracer)
    path = tmp_path / "set.json"
    path.write_text(json.dumps(ls.to_dict()))
    assert load_label_set(path) == ls


def test_lookup_merges_left_and_right() -> None:
    fdg = get_label_set("fdg")
    ids = fdg.totalseg_id_lookup("total")
    assert ids[2] == ids[3] == fdg.label_of("kidneys")
    assert ids[18] == ids[19] == fdg.label_of("small_bowel")
    psma = get_label_set("psma")
    assert set(psma.totalseg_id_lookup("head_glands_cavities").values()) == {2}
    assert psma.tasks() == ("total", "head_glands_cavities")


def test_bad_label_sets_are_refused(tmp_path) -> None:
    with pytest.raises(LionError, match="unknown tracer 'fdgg'"):
        get_label_set("fdgg")
    bad = tmp_path / "bad.json"
    bad.write_text('{"tracer": "x", "organs": [{"name": "liver"}]}')
    with pytest.raises(LionError, match=r"bad\.json: not a valid label set"):
        load_label_set(bad)
    bad.write_text("{nope")
    with pytest.raises(LionError, match="not valid JSON"):
        load_label_set(bad)
    twice = get_label_set("fdg").to_dict()
    twice["organs"].append(twice["organs"][0])
    with pytest.raises(LionError, match="repeat"):
        LabelSet.from_dict(twice)


def test_label_set_from_dataset_labels() -> None:
    fdg = get_label_set("fdg")
    assert label_set_from_dataset_labels(fdg.labels(), "fdg") is fdg
    custom = label_set_from_dataset_labels({"background": 0, "tumor": 1, "liver": 2})
    assert custom.organ_names == ("liver",)
    with pytest.raises(LionError, match="consecutive"):
        label_set_from_dataset_labels({"background": 0, "tumor": 1, "liver": 3})


def test_docs_label_tables_match_the_code() -> None:
    from pathlib import Path

    from lion_nnunet.labels import labels_document

    doc = Path(__file__).parents[1] / "docs" / "labels.md"
    assert doc.read_text() == labels_document(), (
        "docs/labels.md is stale: run python -m lion_nnunet.labels > docs/labels.md"
    )
