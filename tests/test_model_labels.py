"""Labels from the model: the tumor found by name (first, middle, last), --tumor-label, --tracer
checked against the labels on disk; lionz's subject layout; SUV threshold; rotating MIP; mps."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from fixtures_nnunet import SMALL_RANDOM_NET

from lion_nnunet.cli import main
from lion_nnunet.errors import LionError
from lion_nnunet.inference.postprocess import apply_suv_threshold, split_label_map
from lion_nnunet.inference.predict import discover_cases, resolve_device
from lion_nnunet.labels import find_tumor_label, get_label_set, label_set_from_dataset_labels

#: lionz's PSMA model (Dataset711): 5 organs, tumor 6; the organ names here are illustrative.
LIONZ_PSMA = {"background": 0, "salivary_glands": 1, "kidneys": 2, "liver": 3, "spleen": 4,
              "urinary_bladder": 5, "tumor": 6}  # fmt: skip


@pytest.mark.parametrize(
    ("labels", "tumor"),
    [
        (get_label_set("fdg").labels(), 1),  # LION: first
        ({"background": 0, "liver": 1, "Lesion": 2, "kidney": 3}, 2),  # middle
        (LIONZ_PSMA, 6),  # lionz: last
        ({"background": 0, "brain": 1, "FDG-avid tumour": 2}, 2),
    ],
)
def test_tumor_found_by_name_first_middle_last(labels: dict, tumor: int) -> None:
    assert find_tumor_label(labels) == tumor
    ls = label_set_from_dataset_labels(labels)
    assert ls.tumor_label == tumor
    others = sorted(v for v in labels.values() if v not in (0, tumor))
    assert sorted(ls.organ_labels) == others
    lm = np.array(list(labels.values()), np.uint8).reshape(1, 1, -1)
    t, organs = split_label_map(lm, ls, (1.0, 1.0, 1.0))
    assert t.ravel().tolist() == [int(v == tumor) for v in labels.values()]
    assert organs.ravel().tolist() == [0 if v == tumor else v for v in labels.values()]


def test_tumor_rule_errors_and_override() -> None:
    with pytest.raises(LionError, match=r"no class named like a tumor.*--tumor-label"):
        find_tumor_label({"background": 0, "liver": 1, "class_2": 2})
    with pytest.raises(LionError, match="2 classes named like a tumor"):
        find_tumor_label({"background": 0, "tumor": 1, "lesion_ct": 2})
    assert find_tumor_label({"background": 0, "liver": 1, "class_2": 2}, override=2) == 2
    with pytest.raises(LionError, match="--tumor-label 0: not a foreground class"):
        find_tumor_label(LIONZ_PSMA, override=0)
    with pytest.raises(LionError, match="region-based"):
        find_tumor_label({"background": 0, "tumor": [1, 2]})
    # 'liver' or 'tumorous'-like substrings do not match: the rule splits words
    with pytest.raises(LionError, match="no class"):
        find_tumor_label({"background": 0, "tumorbed": 1, "liver": 2})
    assert find_tumor_label({"background": 0, "foreground": 1}) == 1  # binary: the one class


def _write(array: np.ndarray, path: Path, spacing=(4.0, 4.0, 4.0)) -> None:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    sitk.WriteImage(image, str(path))


def test_postprocess_lionz_psma_prediction(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """The issue's case: organ label 1 (27 ml, SUV 6) must not be reported as tumor."""
    pred, pet, out = tmp_path / "pred", tmp_path / "pet", tmp_path / "out"
    pred.mkdir()
    pet.mkdir()
    lm = np.zeros((20, 30, 30), np.uint8)
    suv = np.full(lm.shape, 0.5, np.float32)
    lm[0:5, 0:5, 0:17] = 1  # "salivary glands": 425 voxels x 0.064 ml = 27.2 ml at SUV 6
    suv[lm == 1] = 6.0
    lm[10:13, 10:13, 10:20] = 6  # tumor: 90 voxels = 5.76 ml, SUV 12
    suv[lm == 6] = 12.0
    suv[11, 11, 19] = 1.0  # one tumor voxel below an SUV threshold of 2.5
    _write(lm, pred / "p1.nii.gz")
    _write(suv, pet / "p1_0000.nii.gz")
    (pred / "dataset.json").write_text(json.dumps({"labels": LIONZ_PSMA}))
    args = ["postprocess", "-i", str(pred), "--pet", str(pet), "--no-pbar"]
    assert main([*args, "-o", str(out)]) == 0
    report = json.loads((out / "p1" / "report.json").read_text())
    assert report["tmtv_ml"] == pytest.approx(90 * 0.064) and report["suv_max"] == 12.0
    assert report["tumor_label"] == 6
    # --tracer psma disagrees with the labels on disk: error, nothing written
    assert main([*args, "-o", str(tmp_path / "o2"), "--tracer", "psma"]) == 1
    assert "not the LION psma layout" in capsys.readouterr().err
    assert not (tmp_path / "o2").exists()
    # without a dataset.json, --tracer psma and --tumor-label 6 contradict each other
    (pred / "dataset.json").unlink()
    assert main([*args, "-o", str(tmp_path / "o3"), "--tracer", "psma",
                 "--tumor-label", "6"]) == 1  # fmt: skip
    assert "contradicts --tracer psma" in capsys.readouterr().err
    assert main([*args, "-o", str(tmp_path / "o4")]) == 1
    assert "no dataset.json" in capsys.readouterr().err
    # --dataset-json and lionz's -t habit: the voxel below SUV 2.5 goes
    ds = tmp_path / "dataset.json"
    ds.write_text(json.dumps({"labels": LIONZ_PSMA}))
    assert main([*args, "-o", str(tmp_path / "o5"), "--dataset-json", str(ds),
                 "--suv-threshold", "2.5"]) == 0  # fmt: skip
    report = json.loads((tmp_path / "o5" / "p1" / "report.json").read_text())
    assert report["tmtv_ml"] == pytest.approx(89 * 0.064) and report["suv_threshold"] == 2.5


def test_suv_threshold_keeps_voxels_at_or_above() -> None:
    tumor = np.array([1, 1, 1, 0], np.uint8)
    suv = np.array([2.4, 2.5, 9.0, 9.0], np.float32)
    assert apply_suv_threshold(tumor, suv, 2.5).tolist() == [0, 1, 1, 0]
    assert apply_suv_threshold(tumor, suv, None).tolist() == [1, 1, 1, 0]
    with pytest.raises(LionError, match=">= 0"):
        apply_suv_threshold(tumor, suv, -1.0)


def test_lionz_subject_layout(fdg_cohort: Path, tmp_path: Path) -> None:
    from lion_nnunet.synthetic.dicom_writer import write_pet_series

    first, second = sorted((fdg_cohort / "studies").rglob("SUV.nii.gz"))[:2]
    root = tmp_path / "subjects"
    (root / "sub01").mkdir(parents=True)
    shutil.copy(first, root / "sub01" / "PT_sub01.nii.gz")
    shutil.copy(first, root / "sub01" / "CT_sub01.nii.gz")  # lionz subjects often hold the CT
    (root / "sub02").mkdir()
    image = sitk.ReadImage(str(second))
    write_pet_series(image[:, :, :8], root / "sub02" / "PET_dicom", patient_id="ANON7")
    cases = discover_cases(root)
    assert [c.case_id for c in cases] == ["sub01", "sub02"]
    assert cases[0].files == [root / "sub01" / "PT_sub01.nii.gz"]
    loaded = cases[1].loader()
    assert loaded.GetSize()[2] == 8
    # two PT_ files in one subject: ambiguous, refused
    shutil.copy(first, root / "sub01" / "PT_second.nii.gz")
    with pytest.raises(LionError, match="2 PET files"):
        discover_cases(root)


def test_rotating_mip_and_device_mps(tmp_path: Path) -> None:
    from PIL import Image

    from lion_nnunet.inference.pictures import banner_height
    from lion_nnunet.inference.rotating_mip import rotating_mip_frames, save_rotating_mip

    suv = np.zeros((20, 16, 16), np.float32)
    tumor = np.zeros_like(suv, np.uint8)
    suv[8:12, 2:5, 2:5] = tumor[8:12, 2:5, 2:5] = 1
    suv[8:12, 2:5, 2:5] = 10.0
    path = save_rotating_mip(suv, tumor, (4.0, 4.0, 4.0), tmp_path / "m.gif", step_deg=90)
    assert len(rotating_mip_frames(suv, tumor, (4.0, 4.0, 4.0), step_deg=90)) == 4
    with Image.open(path) as gif:
        assert gif.n_frames >= 2 and gif.info.get("loop") == 0  # PIL merges equal frames
        frame = np.asarray(gif.convert("RGB"))
    red = (frame[..., 0] > 150) & (frame[..., 1] < 100)
    rows = np.nonzero(red.any(axis=1))[0]
    # 20 rows of 4 mm enlarged to 512 under a two-line caption: 25.6 px per row
    top = banner_height(2)
    assert frame.shape[0] == top + 512
    # tumor at z 8..11 of 20 (feet -> head): drawn head up, rows 20-12 .. 20-9 (+- half a row)
    assert (
        abs(rows.min() - (top + 8 * 25.6)) <= 13 and abs(rows.max() + 1 - (top + 12 * 25.6)) <= 13
    )
    import torch

    mps = getattr(torch.backends, "mps", None)
    if mps is None or not mps.is_available():
        with pytest.raises(LionError, match="--device mps"):
            resolve_device("mps")


def test_evaluate_reads_tumor_label_from_dataset_json(tmp_path: Path) -> None:
    from lion_nnunet.analysis.evaluate import evaluate

    lm = np.zeros((10, 12, 12), np.uint8)
    lm[0:4, 0:4, 0:4] = 1  # an organ in lionz's PSMA layout
    lm[6:8, 6:9, 6:9] = 6  # the tumor: 18 voxels
    raw = tmp_path / "Dataset711_PSMA"
    (raw / "labelsTs").mkdir(parents=True)
    _write(lm, raw / "labelsTs" / "c1.nii.gz")
    (raw / "dataset.json").write_text(json.dumps({"labels": LIONZ_PSMA}))
    lion_out = tmp_path / "lion_out" / "c1"  # lion predict layout: 0/1 tumor.nii.gz
    lion_out.mkdir(parents=True)
    _write((lm == 6).astype(np.uint8), lion_out / "tumor.nii.gz")
    stock = tmp_path / "stock"  # nnUNetv2_predict layout: label map + the model's dataset.json
    stock.mkdir()
    _write(lm, stock / "c1.nii.gz")
    (stock / "dataset.json").write_text(json.dumps({"labels": LIONZ_PSMA}))
    for pred in (lion_out.parent, stock):
        result = evaluate(pred, raw / "labelsTs", tmp_path / f"eval_{pred.name}", progress=False)
        row = result["summary"][0]
        assert row["dice_median"] == 1.0
        assert row["gt_volume_ml_median"] == pytest.approx(18 * 0.064)


def test_authors_trainer_found_by_nnunet_lookup() -> None:
    from nnunetv2.training.nnUNetTrainer.variants.data_augmentation.nnUNetTrainerDA5 import (
        nnUNetTrainerDA5,
    )

    from lion_nnunet.trainers.discovery import find_trainer, register_ext_trainer_folder

    register_ext_trainer_folder()
    cls = find_trainer("nnUNetTrainerDA5_2000epochs")
    assert cls is not None and cls.__module__ == "lion_nnunet.trainers.authors"
    assert issubclass(cls, nnUNetTrainerDA5)  # lionz's class: DA5 augmentation, 2000 epochs
    assert find_trainer("nnUNetTrainerDA5").__module__.startswith("nnunetv2.")  # stock stays stock


def _predict_everywhere(model_dir: Path, label: int) -> None:
    """Make a random-weight model predict ``label`` at every voxel (zero weights, one-hot bias in
    every segmentation head), so a test knows the raw mask: all of nnU-Net's crop box."""
    import torch

    from lion_nnunet.inference.model import CHECKPOINT

    for path in model_dir.glob(f"fold_*/{CHECKPOINT}"):
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        for key, value in ckpt["network_weights"].items():
            if ".seg_layers." in key:
                value.zero_()
                if key.endswith(".bias"):
                    value[label] = 10.0
        torch.save(ckpt, path)


@pytest.mark.slow
def test_predict_lionz_subjects_threshold_gif_and_bqml(
    fdg_cohort: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """lionz habits end to end on a random-weight model that predicts tumor everywhere, so the
    thresholded mask must be exactly the voxels with SUV >= 2.5 (by numpy, not by our code)."""
    from lion_nnunet.inference.model import make_random_model

    model = make_random_model(
        tmp_path / "Dataset993_R" / "nnUNetTrainer__LIONPlans__3d_fullres", "fdg",
        patch_size=(96, 48, 48), spacing=(6.0, 6.0, 6.0),  # one window covers the phantom
        **SMALL_RANDOM_NET,
    )  # fmt: skip
    _predict_everywhere(model, get_label_set("fdg").tumor_label)
    first = sorted((fdg_cohort / "studies").rglob("SUV.nii.gz"))[0]
    root = tmp_path / "subjects"
    (root / "sub01").mkdir(parents=True)
    shutil.copy(first, root / "sub01" / "PT_sub01.nii.gz")
    out = tmp_path / "out"
    args = ["predict", "-i", str(root), "-m", str(model), "--device", "cpu", "--no-pbar",
            "--disable-tta"]  # fmt: skip
    assert main([*args, "-o", str(out), "--suv-threshold", "2.5", "--rotating-mip"]) == 0
    report = json.loads((out / "sub01" / "report.json").read_text())
    assert report["suv_threshold"] == 2.5 and report["mip_rotating"] == "mip_rotating.gif"
    tumor = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "sub01" / "tumor.nii.gz")))
    suv = sitk.GetArrayFromImage(sitk.ReadImage(str(first)))
    expected = (suv >= 2.5).astype(np.uint8)  # the threshold by hand
    assert 0 < expected.sum() < (suv > 0).sum()  # the threshold keeps some voxels, drops others
    np.testing.assert_array_equal(tumor, expected)
    assert (out / "sub01" / "mip_rotating.gif").stat().st_size > 1000
    # a PT_ file in Bq/ml (lionz's dcm2niix output) is refused, not segmented as if SUV
    bq = sitk.ReadImage(str(first)) * 5000.0
    sitk.WriteImage(bq, str(root / "sub01" / "PT_sub01.nii.gz"))
    assert main([*args, "-o", str(tmp_path / "out2")]) == 1
    assert "implausible for SUV" in capsys.readouterr().err


def test_tumor_label_that_names_another_class_is_refused_with_the_labels() -> None:
    with pytest.raises(LionError, match=r"names class 3 'spleen' and its tumor 'lesion' = 1"):
        find_tumor_label({"background": 0, "lesion": 1, "liver": 2, "spleen": 3}, override=3)
    # two tumor-named classes: the user picks one; the other may not be called "tumor"
    labels = {"background": 0, "tumor": 1, "lesion": 2}
    assert find_tumor_label(labels, override=2) == 2
    with pytest.raises(LionError, match=r"class 'tumor' = 1 would be an organ"):
        label_set_from_dataset_labels(labels, tumor_label=2)
