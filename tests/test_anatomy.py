"""Organ maps with organs in anatomically impossible places (inference/anatomy.py).

A hand-built body along z (4 mm slices, 0.064 ml voxels): brain at the top, heart, liver,
kidneys, bladder at the bottom, each a box; then a blob labelled "kidneys" in the head beside a
head lesion, as a model that mislabels the brain's edge gives. The direction matrix decides
which way is up: the same body stored feet-first must give the same answer.
"""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from lion_nnunet.inference.anatomy import misplaced_organs
from lion_nnunet.inference.outputs import write_case_outputs
from lion_nnunet.labels import get_label_set

FDG = get_label_set("fdg")
SHAPE = (60, 20, 20)  # z, y, x; z index 59 is the top of the head (head-first storage)


def _body(head_first: bool = True):
    organs = np.zeros(SHAPE, np.uint8)
    for name, (z0, z1) in {"brain": (52, 58), "heart": (38, 44), "liver": (30, 36),
                           "kidneys": (22, 27), "urinary_bladder": (4, 9)}.items():  # fmt: skip
        organs[z0:z1, 5:15, 5:15] = FDG.label_of(name)
    suv = np.full(SHAPE, 1.0, np.float32)
    tumor = np.zeros(SHAPE, np.uint8)
    tumor[54:56, 16:18, 16:18] = 1  # a head lesion beside the brain (x, y 5-14)
    wrong = organs.copy()
    wrong[54:56, 10:20, 18:20] = FDG.label_of("kidneys")  # touches the lesion: 40 voxels
    image = sitk.GetImageFromArray(suv)
    image.SetSpacing((4.0, 4.0, 4.0))
    if not head_first:  # the same patient stored feet-first: z index grows towards the feet
        organs, wrong, suv, tumor = (a[::-1].copy() for a in (organs, wrong, suv, tumor))
        image = sitk.GetImageFromArray(suv)
        image.SetSpacing((4.0, 4.0, 4.0))
        image.SetDirection((1, 0, 0, 0, 1, 0, 0, 0, -1))
        image.SetOrigin((0.0, 0.0, 59 * 4.0))
    return organs, wrong, suv, tumor, image


@pytest.mark.parametrize("head_first", [True, False])
def test_kidneys_in_the_head_are_found_and_left_out(head_first: bool) -> None:
    organs, wrong, _, _, image = _body(head_first)
    cleaned, found = misplaced_organs(organs, FDG, image)
    assert found == [] and cleaned is organs  # a plausible body: nothing to say
    cleaned, found = misplaced_organs(wrong, FDG, image)
    assert [(m.organ, m.where, m.anchor) for m in found] == [("kidneys", "above", "heart")]
    assert found[0].ml == pytest.approx(40 * 0.064)
    np.testing.assert_array_equal(cleaned, organs)  # only the blob left out
    assert "labelled kidneys lies above the heart" in found[0].sentence()


@pytest.mark.parametrize("head_first", [True, False])
def test_head_lesion_is_not_nearest_the_kidneys_and_the_case_is_flagged(
    tmp_path, head_first: bool
) -> None:
    _, wrong, suv, tumor, image = _body(head_first)
    report = write_case_outputs(tmp_path / "c", "c", image, suv, tumor, wrong, FDG)
    (lesion,) = report["lesions"]
    assert lesion["nearest_organ"] == "brain"  # not the misplaced kidneys it touches
    assert report["flag_terms"]["misplaced_organs"] > 1.0
    assert any("labelled kidneys lies above the heart" in r for r in report["flag_reasons"])


def test_a_wholly_misplaced_organ_does_not_make_the_others_look_misplaced() -> None:
    organs, _, _, _, image = _body()
    organs[organs == FDG.label_of("kidneys")] = 0
    organs[54:56, 10:20, 18:20] = FDG.label_of("kidneys")  # the only kidneys: in the head
    cleaned, found = misplaced_organs(organs, FDG, image)
    assert [(m.organ, m.where, m.anchor) for m in found] == [("kidneys", "above", "heart")]
    assert not (cleaned == FDG.label_of("kidneys")).any()
    assert (cleaned == FDG.label_of("brain")).sum() == (organs == FDG.label_of("brain")).sum()
