"""lion predict: provenance in report.json, honest resume, --overwrite, nnU-Net's flag names.

A tiny random-weights model (patch 16^3 at 6 mm) and small SUV volumes keep each run to seconds.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from fixtures_nnunet import SMALL_RANDOM_NET

from lion_nnunet.cli import main
from lion_nnunet.inference.model import make_random_model
from lion_nnunet.labels import get_label_set

SHAPE = (40, 16, 16)  # z, y, x voxels at 6 mm: longer than the patch in z, so the window slides
SPACING = (6.0, 6.0, 6.0)


def _suv(seed: int, hot: float) -> sitk.Image:
    """Whole-body-like SUV: background 0.5-1.5 everywhere (no crop), a hot lesion."""
    rng = np.random.default_rng(seed)
    array = rng.uniform(0.5, 1.5, SHAPE).astype(np.float32)
    array[20:24, 10:14, 10:14] = hot
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(SPACING)
    return image


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("results")
    make = {"patch_size": (16, 16, 16), "spacing": SPACING, **SMALL_RANDOM_NET}
    return {
        "a": make_random_model(root / "Dataset990_RANDOM" / "nnUNetTrainer__LIONPlans__3d_fullres",
                               "fdg", folds=("0", "1"), **make),
        "b": make_random_model(root / "Dataset991_OTHER" / "nnUNetTrainer__LIONPlans__3d_fullres",
                               "fdg", folds=("0",), seed=7, **make),
    }  # fmt: skip


@pytest.fixture(scope="module")
def subjects(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """lionz subject folders: two PT_*.nii.gz (one non-ASCII name, stored decomposed) + DICOM."""
    from lion_nnunet.synthetic.dicom_writer import write_pet_series

    root = tmp_path_factory.mktemp("subjects")
    nfd = unicodedata.normalize("NFD", "Müller_Jörg")  # as macOS stores it
    for k, name in enumerate(("sub01", nfd)):
        (root / name).mkdir()
        sitk.WriteImage(_suv(k, 6.0 + 10 * k), str(root / name / f"PT_{name}.nii.gz"))
    write_pet_series(_suv(5, 12.0), root / "sub03" / "PET_WB_AC", patient_id="sub03")
    return root


def _run(subjects: Path, out: Path, model: Path, *extra: str) -> int:
    return main(["predict", "-i", str(subjects), "-o", str(out), "-m", str(model),
                 "--device", "cpu", "--no-pbar", "--disable_tta", *extra])  # fmt: skip


def _mtimes(out: Path) -> dict[str, int]:
    """mtimes of the files in the case folders (summary.csv and lion.log change every run)."""
    return {str(p.relative_to(out)): p.stat().st_mtime_ns for p in out.glob("*/*") if p.is_file()}


def test_provenance_resume_refusal_and_overwrite(
    models: dict[str, Path], subjects: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "out"
    assert _run(subjects, out, models["a"], "-f", "0", "1", "--save-organs", "--save-suv",
                "-npp", "2", "-nps", "2", "--json") == 0  # fmt: skip
    first = json.loads(capsys.readouterr().out)
    nfc = unicodedata.normalize("NFC", "Müller_Jörg")
    assert sorted(first["predicted"]) == sorted(["sub01", nfc, "sub03"])
    assert (out / nfc / "tumor.nii.gz").is_file()  # the name kept (NFC), not "M-ller_J-rg"

    report = json.loads((out / "sub01" / "report.json").read_text())
    sums = {f: hashlib.sha256((models["a"] / f"fold_{f}" / "checkpoint_final.pth").read_bytes())
            .hexdigest() for f in ("0", "1")}  # fmt: skip
    assert report["checkpoint_sha256"] == sums and report["checkpoint"] == "checkpoint_final.pth"
    assert report["model_path"] == str(models["a"].resolve()) and report["folds"] == [0, 1]
    assert report["nnunetv2_version"] == version("nnunetv2") and report["device"] == "cpu"
    settings = report["settings"]
    assert settings["use_mirroring"] is False and settings["tile_step_size"] == 0.5
    assert settings["min_volume_ml"] == 0.0 and settings["mip_window"] == [0.0, 10.0]
    assert settings["remove_in_organs"] == [] and settings["suv_threshold"] is None
    # organs.json names the ids of organs.nii.gz as the model's dataset.json does
    organ_ids = json.loads((out / "sub01" / "organs.json").read_text())["labels"]
    fdg = get_label_set("fdg")
    expected = dict(zip(fdg.organ_names, fdg.organ_labels, strict=True))
    assert organ_ids == {"background": 0, **expected}
    organs = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "sub01" / "organs.nii.gz")))
    assert set(np.unique(organs).tolist()) <= set(organ_ids.values())
    # --save-suv: only the DICOM case, the SUV it was converted to (DICOM stores it quantised)
    assert not (out / "sub01" / "suv.nii.gz").exists()
    suv = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "sub03" / "suv.nii.gz")))
    np.testing.assert_allclose(suv, sitk.GetArrayFromImage(_suv(5, 12.0)), rtol=1e-3, atol=1e-3)
    summary = pd.read_csv(out / "summary.csv")
    assert len(summary) == 3 and set(summary["checkpoint_sha256"]) == {
        f"0:{sums['0']} 1:{sums['1']}"
    }
    assert set(summary["tta"]) == {False} and set(summary["step_size"]) == {0.5}

    # an identical re-run skips every case and rewrites nothing of theirs
    before = _mtimes(out)
    assert _run(subjects, out, models["a"], "-f", "0", "1", "--save-organs", "--save-suv") == 0
    assert "predicted 0 case(s), skipped 3" in capsys.readouterr().out
    after = _mtimes(out)
    assert len(after) >= 3 * 4 and after == before
    # another filter or another model: refused, naming what differs, nothing written
    assert _run(subjects, out, models["a"], "-f", "0", "1", "--save-organs", "--save-suv",
                "--min-volume-ml", "5") == 1  # fmt: skip
    err = capsys.readouterr().err
    assert "min_volume_ml 0.0 -> 5.0" in err and "--overwrite" in err
    assert _run(subjects, out, models["b"], "--save-organs", "--save-suv") == 1
    err = capsys.readouterr().err
    assert "model " in err and "Dataset991_OTHER" in err and "folds [0, 1] -> [0]" in err
    assert _mtimes(out) == after
    # --overwrite: every file of the earlier run goes, then the new run's are written
    assert _run(subjects, out, models["a"], "-f", "0", "1", "--min-volume-ml", "5",
                "--overwrite") == 0  # fmt: skip
    capsys.readouterr()
    for case in ("sub01", nfc, "sub03"):
        assert (out / case / "tumor.nii.gz").is_file()
        assert not (out / case / "organs.nii.gz").exists()
        assert (
            not (out / case / "organs.json").exists() and not (out / case / "suv.nii.gz").exists()
        )
        redone = json.loads((out / case / "report.json").read_text())
        assert redone["settings"]["min_volume_ml"] == 5.0
        assert sorted(redone["outputs"]) == sorted(p.name for p in (out / case).iterdir())
    # a PET replaced under the same name (a re-export): the same settings no longer resume it
    pet = subjects / "sub01" / "PT_sub01.nii.gz"
    original = pet.read_bytes()
    try:
        sitk.WriteImage(_suv(7, 9.0), str(pet))
        assert pet.read_bytes() != original
        before = _mtimes(out)
        assert _run(subjects, out, models["a"], "-f", "0", "1", "--min-volume-ml", "5") == 1
        err = capsys.readouterr().err
        assert "sub01" in err and "input changed since" in err
        assert _mtimes(out) == before  # refused before anything was written
    finally:
        pet.write_bytes(original)


def test_d_c_tr_p_address_the_folder_nnunet_finds(
    models: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import nnunetv2.utilities.file_path_utilities as file_paths

    from lion_nnunet.inference.model import nnunet_model_folder

    results = models["a"].parent.parent
    monkeypatch.setenv("nnUNet_results", str(results))  # nnU-Net reads it when called
    monkeypatch.delenv("nnUNet_raw", raising=False)
    monkeypatch.delenv("nnUNet_preprocessed", raising=False)
    for dataset in ("990", "Dataset990_RANDOM"):
        theirs = file_paths.get_output_folder(dataset, "nnUNetTrainer", "LIONPlans", "3d_fullres")
        ours = nnunet_model_folder(dataset, "nnUNetTrainer", "LIONPlans", "3d_fullres")
        assert ours == Path(theirs) == models["a"]
    with pytest.raises(Exception, match="models of Dataset990_RANDOM: nnUNetTrainer__LIONPlans"):
        nnunet_model_folder("990", "nnUNetTrainer_LION", "LIONPlans", "3d_fullres")


def test_step_size_changes_the_sliding_window(
    models: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """-step_size reaches nnU-Net: the network runs once per window nnU-Net's tiling gives."""
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    from nnunetv2.inference.sliding_window_prediction import compute_steps_for_sliding_window

    pet = tmp_path / "PETCT_0af7ffe12a_0000.nii.gz"
    sitk.WriteImage(_suv(0, 8.0), str(pet))
    calls = []
    original = nnUNetPredictor._internal_maybe_mirror_and_predict

    def counting(self, x):
        calls.append(x.shape)
        return original(self, x)

    monkeypatch.setattr(nnUNetPredictor, "_internal_maybe_mirror_and_predict", counting)
    counts = {}
    for step in (0.5, 1.0):
        calls.clear()
        out = tmp_path / f"step{step}"
        assert main(["predict", "-i", str(pet), "-o", str(out), "-m", str(models["a"]), "-f", "0",
                     "--device", "cpu", "--no-pbar", "--disable-tta",
                     "-step_size", str(step)]) == 0  # fmt: skip
        counts[step] = len(calls)
        # no resampling (6 mm in and out) and no crop (SUV > 0 everywhere): nnU-Net's tiling
        steps = compute_steps_for_sliding_window(SHAPE, (16, 16, 16), step)
        assert counts[step] == np.prod([len(s) for s in steps])
        report = json.loads((out / "PETCT_0af7ffe12a" / "report.json").read_text())
        assert report["settings"]["tile_step_size"] == step
    assert counts[0.5] > counts[1.0] > 0


def test_predict_help_and_argument_checks(
    models: dict[str, Path], subjects: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "-step_size" in text and "-npp" in text and "--disable_tta" in text and "-tr" in text
    assert "(default: None)" not in text and "(default: False)" not in text
    assert text.count("(default: all folds with a checkpoint)") == 1
    assert "output folder (default" not in text  # required: no default shown
    assert "0 keeps all (default: 0.0)" in text  # a 0 default is still shown
    out = str(tmp_path / "o")
    for bad, message in (
        (["--min-volume-ml", "-1"], "--min-volume-ml -1: expected a volume >= 0 ml"),
        (["-f", "0", "0"], "-f 0 0: a fold is named twice"),
        (["--mip-window", "5", "1"], "--mip-window 5 1: expected 0 <= LOW < HIGH"),
        (["-npp", "0"], "-npp 0: expected at least 1"),
    ):
        assert _run(subjects, Path(out), models["a"], *bad) == 1
        assert message in capsys.readouterr().err
    assert not Path(out).exists()
