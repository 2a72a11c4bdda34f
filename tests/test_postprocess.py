"""lion postprocess: organ classes from dataset.json, optional filters, folder runs, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from lion_nnunet.cli import main
from lion_nnunet.errors import LionError
from lion_nnunet.inference.postprocess import split_label_map
from lion_nnunet.labels import get_label_set, label_set_from_dataset_labels

SPACING = (4.0, 4.0, 4.0)  # z, y, x mm: one voxel = 0.064 ml


def _label_map() -> np.ndarray:
    lm = np.zeros((20, 20, 20), np.uint8)
    lm[2:5, 2:5, 2:5] = 1  # 27 voxels = 1.728 ml, free
    lm[10, 10, 10] = 1  # 1 voxel = 0.064 ml, free
    lm[14:18, 14:18, 14:18] = 5  # bladder (fdg: urinary_bladder = 5)
    lm[15:17, 15:17, 13] = 1  # touches the bladder
    lm[2:6, 12:18, 12:18] = 6  # liver
    return lm


def test_split_drops_organs_keeps_tumor() -> None:
    fdg = get_label_set("fdg")
    tumor, organs = split_label_map(_label_map(), fdg, SPACING)
    np.testing.assert_array_equal(tumor, (_label_map() == 1).astype(np.uint8))
    assert set(np.unique(organs)) == {0, 5, 6} and not (organs[tumor > 0]).any()


def test_optional_filters_off_by_default() -> None:
    fdg = get_label_set("fdg")
    lm = _label_map()
    tumor, _ = split_label_map(lm, fdg, SPACING, min_volume_ml=0.1)
    assert tumor[10, 10, 10] == 0 and tumor[3, 3, 3] == 1 and tumor[15, 15, 13] == 1
    tumor, _ = split_label_map(lm, fdg, SPACING, remove_in_organs=["urinary_bladder"])
    assert tumor[15, 15, 13] == 0 and tumor[10, 10, 10] == 1 and tumor[3, 3, 3] == 1
    with pytest.raises(LionError, match="not in the fdg label set"):
        split_label_map(lm, fdg, SPACING, remove_in_organs=["lacrimal_gland"])


def test_labels_come_from_dataset_json_not_hard_coded() -> None:
    # a custom model whose organ 2 is "bowel": the reader must follow dataset.json
    custom = label_set_from_dataset_labels({"background": 0, "tumor": 1, "bowel": 2})
    lm = np.zeros((4, 4, 4), np.uint8)
    lm[0, 0, 0], lm[1, 1, 1] = 1, 2
    tumor, organs = split_label_map(lm, custom, SPACING, remove_in_organs=["bowel"])
    assert tumor.sum() == 1 and organs[1, 1, 1] == 2
    lm[2, 2, 2] = 3  # a label the dataset does not declare
    with pytest.raises(LionError, match="does not declare"):
        split_label_map(lm, custom, SPACING)


def _write(array: np.ndarray, path: Path, spacing=SPACING[::-1]) -> None:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    sitk.WriteImage(image, str(path))


def test_postprocess_folder_cli(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    pred, pet, out = tmp_path / "pred", tmp_path / "imagesTs", tmp_path / "out"
    pred.mkdir()
    pet.mkdir()
    lm = _label_map()
    suv = np.random.default_rng(0).uniform(0, 10, lm.shape).astype(np.float32)
    for case in ("a", "b"):
        _write(lm, pred / f"{case}.nii.gz")
        _write(suv, pet / f"{case}_0000.nii.gz")
    labels = get_label_set("fdg").labels()
    (pred / "dataset.json").write_text(json.dumps({"labels": labels, "lion": {"tracer": "fdg"}}))
    args = ["postprocess", "-i", str(pred), "--pet", str(pet), "-o", str(out), "--no-pbar",
            "--min-volume-ml", "0.1"]  # fmt: skip
    assert main([*args, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["processed"] == ["a", "b"]
    tumor = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "a" / "tumor.nii.gz")))
    assert tumor[10, 10, 10] == 0 and tumor.sum() == 27 + 4
    report = json.loads((out / "a" / "report.json").read_text())
    np.testing.assert_allclose(report["suv_max"], suv[tumor > 0].max(), atol=0.005)
    assert report["model"] is None and (out / "a" / "mip.png").is_file()
    assert report["settings"]["min_volume_ml"] == 0.1
    assert list(pd.read_csv(out / "summary.csv")["case_id"]) == ["a", "b"]
    assert main(args) == 0  # done cases with the same settings are skipped
    assert "postprocessed 0 case(s)" in capsys.readouterr().out
    assert main(args[:-2]) == 1  # other filters: refused, naming the setting
    assert "min_volume_ml 0.1 -> 0.0" in capsys.readouterr().err
    # a prediction on another grid is refused, naming the file
    _write(lm, pred / "a.nii.gz", spacing=(2.0, 2.0, 2.0))
    assert main([*args, "--overwrite"]) == 1
    err = capsys.readouterr().err
    assert "a.nii.gz" in err and "spacing" in err
    (pet / "b_0000.nii.gz").unlink()
    (pred / "a.nii.gz").unlink()
    assert main([*args, "--overwrite", "--tracer", "fdg"]) == 1
    assert "no PET for case 'b'" in capsys.readouterr().err


def test_postprocess_records_nnunet_args_and_the_model(tmp_path: Path) -> None:
    """nnU-Net's args file and plans.json are read; -m/-f name the model nnU-Net does not record."""
    from lion_nnunet.inference.installed import sha256_file
    from lion_nnunet.inference.model import make_random_model

    model = make_random_model(
        tmp_path / "Dataset990_RANDOM" / "nnUNetTrainer__LIONPlans__3d_fullres", "fdg",
        patch_size=(16, 16, 16), folds=("0", "1"),
    )  # fmt: skip
    pred, pet, out = tmp_path / "pred", tmp_path / "imagesTs", tmp_path / "out"
    pred.mkdir()
    pet.mkdir()
    _write(_label_map(), pred / "PETCT_0af7ffe12a.nii.gz")
    _write(np.full((20, 20, 20), 2.0, np.float32), pet / "PETCT_0af7ffe12a_0000.nii.gz")
    for name in ("dataset.json", "plans.json"):
        (pred / name).write_text((model / name).read_text())
    nnunet_args = {"list_of_lists_or_source_folder": str(pet), "num_processes_preprocessing": 3,
                   "num_processes_segmentation_export": 3, "part_id": 0}  # fmt: skip
    (pred / "predict_from_raw_data_args.json").write_text(json.dumps(nnunet_args))
    args = ["postprocess", "-i", str(pred), "--pet", str(pet), "-o", str(out), "--no-pbar"]
    assert main([*args, "-m", str(model), "-f", "1"]) == 0
    report = json.loads((out / "PETCT_0af7ffe12a" / "report.json").read_text())
    assert report["prediction"]["predict_args"] == nnunet_args
    assert report["prediction"]["dataset_name"] == "Dataset990_RANDOM"
    assert report["prediction"]["plans_name"] == "LIONPlans"
    assert report["model"] == "Dataset990_RANDOM/nnUNetTrainer__LIONPlans__3d_fullres"
    assert report["folds"] == [1]
    assert report["checkpoint_sha256"] == {
        "1": sha256_file(model / "fold_1" / "checkpoint_final.pth")
    }
    row = pd.read_csv(out / "summary.csv").iloc[0]
    assert row["model"] == report["model"] and str(row["folds"]) == "1"
