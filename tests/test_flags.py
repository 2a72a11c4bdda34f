"""The flag score, term by term, on a hand-built volume whose answers are counted by hand.

Grid: 40^3 voxels of 4 x 5 x 5 mm (z, y, x) = 0.1 ml each. Body: SUV 1 in [5:35]^3, air 0
outside. Liver [20:30, 8:18, 8:18] at SUV 2 (1000 voxels = 100 ml, mean 2 -> hot spots above
SUV 6); urinary bladder [6:10, 20:30, 20:30].
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lion_nnunet.inference.flags import flag_case, markdown_table
from lion_nnunet.labels import get_label_set

SPACING = (4.0, 5.0, 5.0)  # z, y, x mm: 0.1 ml per voxel
FDG = get_label_set("fdg")


def _volume() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    suv = np.zeros((40, 40, 40), np.float32)
    suv[5:35, 5:35, 5:35] = 1.0
    organs = np.zeros(suv.shape, np.uint8)
    organs[20:30, 8:18, 8:18] = FDG.label_of("liver")
    suv[20:30, 8:18, 8:18] = 2.0
    organs[6:10, 20:30, 20:30] = FDG.label_of("urinary_bladder")
    return suv, np.zeros(suv.shape, np.uint8), organs


def _report(lesions=(), tmtv_ml: float = 0.0, lesion_count: int = 0) -> dict:
    return {"tmtv_ml": tmtv_ml, "lesion_count": lesion_count, "lesions": list(lesions)}


def test_a_clean_case_scores_zero() -> None:
    suv, tumor, organs = _volume()
    flags = flag_case(_report(), suv, tumor, SPACING, organs, FDG)
    assert flags.score == 0 and flags.reasons == []
    assert flags.values["unsegmented_hot_spots"] == 0 and flags.values["hot_organ"] == 0


def test_lesion_terms_low_confidence_and_fold_disagreement() -> None:
    suv, tumor, _ = _volume()
    lesions = [
        {"volume_ml": 2.0, "confidence": 0.3, "fold_agreement": 0.5},
        {"volume_ml": 0.4, "confidence": 0.45, "fold_agreement": 1.0},
        {"volume_ml": 5.0, "confidence": 0.9, "fold_agreement": 1.0},
    ]
    flags = flag_case(_report(lesions, 7.4, 3), suv, tumor, SPACING)
    # low confidence: 2.0 + 0.4 = 2.4 ml -> 1 x (1 + log2 2.4) = 2.26 (1.2630 + 1);
    # fold disagreement: 2.0 ml -> 1 x (1 + log2 2) = 2.0
    assert flags.values["low_confidence"] == pytest.approx(2.4)
    assert flags.values["fold_disagreement"] == pytest.approx(2.0)
    assert flags.score == pytest.approx(2.26 + 2.0)
    assert flags.reasons == [  # each lesion once, with all its findings
        "lesion 1 (2.0 ml): confidence 0.30 < 0.5, missed by a fold (fold agreement 0.50)",
        "lesion 2 (0.4 ml): confidence 0.45 < 0.5",
    ]
    # one fold (fold_agreement null) or no probabilities (confidence null): the term is skipped
    single = [{**les, "fold_agreement": None, "confidence": None} for les in lesions]
    flags = flag_case(_report(single, 7.4, 3), suv, tumor, SPACING)
    assert flags.values["fold_disagreement"] is None and flags.values["low_confidence"] is None
    assert flags.score == 0


def test_tumor_touching_a_hot_organ() -> None:
    suv, tumor, organs = _volume()
    tumor[10:12, 22:26, 22:26] = 1  # 32 voxels = 3.2 ml, its z=10 face on the bladder's z=9
    tumor[13:15, 22:24, 22:24] = 1  # 0.8 ml, two voxels above the bladder: not touching
    tumor[25:27, 30:32, 30:32] = 1  # 0.8 ml in the body, away from every organ
    flags = flag_case(_report(), suv, tumor, SPACING, organs, FDG)
    assert flags.values["hot_organ"] == pytest.approx(3.2)
    assert flags.score == pytest.approx(5.36)  # weight 2 x (1 + log2 3.2) = 2 x 2.6781
    assert flags.reasons == ["lesion 1 (3.2 ml): touches the urinary bladder"]
    # without an organ map the term cannot be computed
    assert flag_case(_report(), suv, tumor, SPACING).values["hot_organ"] is None


def test_implausible_totals_and_tumor_outside_the_body() -> None:
    suv, tumor, _ = _volume()
    tumor[0:2, 0:2, 0:5] = 1  # 20 voxels = 2.0 ml in the air
    flags = flag_case(_report(tmtv_ml=3000.0, lesion_count=60), suv, tumor, SPACING)
    # TMTV 3000 / 1500 ml -> 1 x (1 + 1); 60 / 50 lesions -> 1 x (1 + log2 1.2 = 0.2630);
    # 2.0 / 0.5 ml outside -> 3 x (1 + 2)
    assert flags.values["outside_body"] == pytest.approx(2.0)
    assert flags.score == pytest.approx(2.0 + 1.26 + 9.0)
    assert flags.reasons == [
        "lesion 1 (2.0 ml): 2.0 ml of it outside the body (SUV < 0.3)",
        "TMTV 3000 ml is above 1500 ml",
        "60 lesions (at least 50)",
    ]


def test_hot_spots_left_unsegmented() -> None:
    suv, tumor, organs = _volume()
    suv[14:16, 28:32, 10:15] = 9.0  # 40 voxels = 4.0 ml, >= 20 mm from liver, bladder, tumor
    suv[30:32, 8:10, 8:10] = 9.0  # 1 voxel (4 mm) above the liver: spill-over, not counted
    suv[30, 30, 30] = 5.9  # below 3 x the liver's mean SUV 2
    flags = flag_case(_report(), suv, tumor, SPACING, organs, FDG)
    assert flags.values["unsegmented_hot_spots"] == pytest.approx(4.0)
    assert flags.score == pytest.approx(2 * (1 + 2))  # 4.0 / 1 ml: 1 + log2 4
    assert flags.reasons == [
        "4.0 ml outside organs and tumor above SUV 6.0 (3 x liver mean 2.0), SUVmax 9.0, "
        "left unsegmented"
    ]
    tumor[14:16, 28:32, 10:15] = 1  # now segmented: nothing left
    assert (
        flag_case(_report(), suv, tumor, SPACING, organs, FDG).values["unsegmented_hot_spots"] == 0
    )
    organs[organs == FDG.label_of("liver")] = 0  # no liver, no reference: skipped
    assert (
        flag_case(_report(), suv, tumor, SPACING, organs, FDG).values["unsegmented_hot_spots"]
        is None
    )


def test_reasons_name_each_lesion_once_and_never_exceed_the_tmtv() -> None:
    """A lesion with low confidence, missed by a fold and touching the bladder is one reason
    with its volume, not three (the reasons once summed 25 ml for a TMTV of 14.5 ml)."""
    import re

    import SimpleITK as sitk

    from lion_nnunet.inference.report import case_report

    suv, tumor, organs = _volume()
    tumor[10:12, 22:26, 22:26] = 1  # 3.2 ml on the bladder
    tumor[25:27, 30:32, 30:32] = 1  # 0.8 ml elsewhere
    image = sitk.GetImageFromArray(suv)
    image.SetSpacing(SPACING[::-1])
    names = {label: name for name, label in FDG.labels().items()}
    report = case_report("c", suv, tumor, image, organs, names)
    for les in report["lesions"]:
        les.update(confidence=0.2, fold_agreement=0.5)
    flags = flag_case(report, suv, tumor, SPACING, organs, FDG)
    assert flags.reasons == [
        "lesion 1 (3.2 ml): confidence 0.20 < 0.5, missed by a fold (fold agreement 0.50), "
        "touches the urinary bladder",
        "lesion 2 (0.8 ml): confidence 0.20 < 0.5, missed by a fold (fold agreement 0.50)",
    ]
    named = [float(v) for v in re.findall(r"^lesion \d+ \(([\d.]+) ml\)", "\n".join(
        flags.reasons), flags=re.M)]  # fmt: skip
    assert sum(named) <= report["tmtv_ml"] == pytest.approx(4.0)


def test_many_flagged_lesions_are_summed_after_the_largest(monkeypatch) -> None:
    import lion_nnunet.inference.flags as flags_module

    monkeypatch.setattr(flags_module, "MAX_NAMED_LESIONS", 1)
    suv, tumor, _ = _volume()
    lesions = [{"lesion_id": i, "volume_ml": v, "confidence": 0.1} for i, v in
               ((1, 1.0), (2, 3.0), (3, 0.5))]  # fmt: skip
    flags = flag_case(_report(lesions, 4.5, 3), suv, tumor, SPACING)
    assert flags.reasons == ["lesion 2 (3.0 ml): confidence 0.10 < 0.5",
                             "2 more flagged lesions (1.5 ml)"]  # fmt: skip


def test_docs_hold_the_terms_table() -> None:
    doc = (Path(__file__).parents[1] / "docs" / "inference.md").read_text()
    assert markdown_table() in doc
