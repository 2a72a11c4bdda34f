"""``lion convert reviews``: a raw dataset of the accepted and corrected cases of a review.

Cases written by ``lion predict``'s own case writer on a 24^3 PET (4 mm, SUV 1) with two hot
spheres and a liver block; the organ map is saved (``--save-organs``). Expected label maps are
built here with numpy from what was planted; nnU-Net's own ``verify_dataset_integrity`` checks
the dataset.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from lion_nnunet.cli import main
from lion_nnunet.errors import LionError

SHAPE = (24, 24, 24)  # z, y, x
LIVER = (slice(4, 12), slice(4, 20), slice(4, 20))  # 8 x 16 x 16 voxels
A = ((16, 12, 6), 2.5)  # centre (z, y, x), radius in voxels
B = ((10, 12, 17), 2.5)  # reaches into the liver block: the tumor must win there


def sphere(centre, radius) -> np.ndarray:
    z, y, x = np.indices(SHAPE)
    return (z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2 <= radius**2


def pet() -> tuple[sitk.Image, np.ndarray]:
    suv = np.random.default_rng(0).uniform(0.9, 1.1, SHAPE).astype(np.float32)  # a PET, not a map
    suv[LIVER] = 2.0
    suv[sphere(*A)] = 8.0
    suv[sphere(*B)] = 6.0
    image = sitk.GetImageFromArray(suv)
    image.SetSpacing((4.0, 4.0, 4.0))
    return image, suv


@pytest.fixture
def reviewed(tmp_path: Path) -> dict:
    """Five predicted cases (each predicts lesion A only) and a review of them:
    ACC accepted, COR corrected to A + B through the server's store, REJ rejected,
    NOROW never reviewed, LESREJ accepted with its lesion 1 rejected."""
    from lion_nnunet.inference.outputs import write_case_outputs
    from lion_nnunet.labels import get_label_set
    from lion_nnunet.review.corrections import CorrectionStore
    from lion_nnunet.review.reviews import ReviewBook

    fdg = get_label_set("fdg")
    image, suv = pet()
    organs = np.zeros(SHAPE, np.uint8)
    organs[LIVER] = fdg.label_of("liver")
    pred = tmp_path / "pred"
    for case in ("ACC", "COR", "REJ", "NOROW", "LESREJ"):
        write_case_outputs(pred / case, case, image, suv, sphere(*A), organs, fdg,
                           save_organs=True, save_suv=True, model="D501")  # fmt: skip
    book = ReviewBook(tmp_path / "gallery" / "reviews.csv")
    book.path.parent.mkdir()
    stamp = "2026-12-06T10:00:00+00:00"
    for case, decision, lesions in (("ACC", "accept", ""), ("REJ", "reject", ""),
                                    ("LESREJ", "accept", "1:reject")):  # fmt: skip
        book.record({"case_id": case, "decision": decision, "timestamp": stamp,
                     "lesions": lesions})  # fmt: skip
    store = CorrectionStore(pred, book)
    body = gzip.compress((sphere(*A) | sphere(*B)).astype(np.uint8).tobytes())
    store.save_mask("COR", body, "application/gzip", reviewer="AB")
    return {"pred": pred, "reviews": book.path, "organs": organs}


def labels_of(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def test_accepted_and_corrected_cases_make_a_dataset_nnunet_accepts(
    reviewed: dict, nnunet_dirs: dict, capsys
) -> None:
    from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity

    assert main(["convert", "reviews", "--pred", str(reviewed["pred"]), "--reviews",
                 str(reviewed["reviews"]), "--tracer", "fdg", "--dataset-id", "531", "--name",
                 "REVIEWED", "-np", "1", "--no-pbar"]) == 0  # fmt: skip
    said = capsys.readouterr().out
    folder = nnunet_dirs["nnUNet_raw"] / "Dataset531_REVIEWED"
    verify_dataset_integrity(str(folder), num_processes=1)
    # only the accepted case and the corrected one; rejected, unreviewed, lesion-rejected out
    assert sorted(p.name for p in (folder / "labelsTr").iterdir()) == ["ACC.nii.gz", "COR.nii.gz"]
    assert sorted(p.name for p in (folder / "imagesTr").iterdir()) == [
        "ACC_0000.nii.gz", "COR_0000.nii.gz"]  # fmt: skip
    meta = json.loads((folder / "dataset.json").read_text())
    assert meta["numTraining"] == 2
    tumor, liver = meta["labels"]["tumor"], meta["labels"]["liver"]
    a, b = sphere(*A), sphere(*B)
    for case, truth in (("ACC", a), ("COR", a | b)):  # COR: the corrected mask, not tumor.nii.gz
        expected = np.zeros(SHAPE, np.uint8)
        expected[LIVER] = liver
        expected[truth] = tumor  # the tumor wins over the organ (B reaches into the liver)
        np.testing.assert_array_equal(labels_of(folder / "labelsTr" / f"{case}.nii.gz"), expected)
    assert (b & (labels_of(folder / "labelsTr" / "ACC.nii.gz") == liver)).any()
    np.testing.assert_array_equal(labels_of(folder / "imagesTr" / "COR_0000.nii.gz"), pet()[1])
    cases = pd.read_csv(folder / "lion_cases.csv").set_index("case_id")
    assert cases.loc["COR", "tumor_source"].endswith("COR/tumor_corrected.nii.gz")
    assert cases.loc["ACC", "tumor_source"].endswith("ACC/tumor.nii.gz")
    assert "tumor_corrected.nii.gz for 1 corrected case(s)" in said
    assert "left out (reject): 1 case(s): REJ" in said
    assert "left out (not decided): 1 case(s): NOROW" in said
    assert "left out (accepted with rejected lesions): 1 case(s): LESREJ" in said


def test_a_review_with_nothing_accepted_or_a_lost_correction_is_refused(
    reviewed: dict, nnunet_dirs: dict
) -> None:
    from lion_nnunet.dataset_conversion.reviewed import reviewed_cohort
    from lion_nnunet.review.reviews import ReviewBook

    book = ReviewBook(reviewed["reviews"])
    (reviewed["pred"] / "COR" / "tumor_corrected.nii.gz").unlink()
    with pytest.raises(LionError, match=r"corrections\.json exists but tumor_corrected"):
        reviewed_cohort(reviewed["pred"], reviewed["reviews"])
    for case in ("ACC", "COR", "LESREJ"):
        book.record({"case_id": case, "decision": "reject"})
    with pytest.raises(LionError, match=r"no case of .* is accepted or corrected"):
        reviewed_cohort(reviewed["pred"], reviewed["reviews"])
    assert not list(nnunet_dirs["nnUNet_raw"].iterdir())
