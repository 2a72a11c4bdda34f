"""Released models by name, in LION's and lionz's label layouts: install, predict, API.

Two really trained tiny models: ``trained_fdg_model`` (LION layout, tumor 1) and
``trained_lionz_model`` (lionz layout, tumor last, saved under the authors' trainer name).
Expected values come from stock ``nnUNetv2_predict`` label maps and from the ground-truth label
maps counted by hand, never from the code under test.
"""

from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from lion_nnunet.cli import main
from lion_nnunet.inference.model import CHECKPOINT, make_random_model

pytestmark = pytest.mark.slow


def _array(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def _zip_model(model_dir: Path, out: Path) -> Path:
    """A release zip in nnUNetv2_install_pretrained_model_from_zip's layout (DatasetXXX/...)."""
    root = model_dir.parent.parent
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(model_dir.rglob("*")):
            if path.is_file() and "validation" not in path.parts:
                zf.write(path, path.relative_to(root))
    return out


@pytest.fixture
def model_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "models"
    monkeypatch.setenv("LION_MODELS", str(home))
    return home


def test_tumor_last_model_authors_trainer_zip_install_predict_api(
    trained_lionz_model: dict, model_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    import lion_nnunet

    m = trained_lionz_model
    print(f"tumor-last model (plan, preprocess, train): {m['seconds']} s", file=sys.stderr)
    tumor_id, n_organs = m["tumor_label"], m["n_organs"]
    archive = _zip_model(m["model_dir"], tmp_path / "lionz_fdg.zip")
    assert main(["models", "install", str(archive), "--name", "fdg-last", "--tracer", "fdg",
                 "--json"]) == 0  # fmt: skip
    record = json.loads(capsys.readouterr().out)
    assert record["tumor_label"] == tumor_id and record["trainer"] == m["trainer"]
    assert record["folds"] == ["0"] and len(record["sha256"]) == 64
    assert set(record["organs"].values()) == set(range(1, n_organs + 1))
    assert main(["models", "list", "--json"]) == 0
    assert [r["name"] for r in json.loads(capsys.readouterr().out)] == ["fdg-last"]
    # the same model again under that name: refused without --overwrite
    assert main(["models", "install", str(archive), "--name", "fdg-last"]) == 1
    assert "--overwrite" in capsys.readouterr().err

    ours, stock, images = tmp_path / "ours", tmp_path / "stock", tmp_path / "imagesTs"
    images.mkdir()  # one test case keeps the three predictions below short on a CPU
    first = sorted(m["images_ts"].glob("*_0000.nii.gz"))[0]
    (images / first.name).write_bytes(first.read_bytes())
    assert main(["predict", "-i", str(images), "-o", str(ours), "-m", "fdg-last",
                 "--device", "cpu", "--disable-tta", "--no-pbar",
                 "--save-organs"]) == 0  # fmt: skip
    # stock nnU-Net's predictor (the class behind nnUNetv2_predict, in-process to save a
    # start-up): it finds the authors' trainer by the name in the checkpoint and copies the
    # model's dataset.json into its output folder, as nnUNetv2_predict does
    import torch
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    stock.mkdir()
    predictor = nnUNetPredictor(use_mirroring=False, perform_everything_on_device=False,
                                device=torch.device("cpu"), allow_tqdm=False)  # fmt: skip
    predictor.initialize_from_trained_model_folder(str(m["model_dir"]), (0,), CHECKPOINT)
    assert predictor.trainer_name == m["trainer"]
    predictor.predict_from_files_sequential(str(images), str(stock))
    cases = [first.name[: -len("_0000.nii.gz")]]
    seen: set[int] = set()
    for case in cases:
        label_map = _array(stock / f"{case}.nii.gz")
        seen |= set(np.unique(label_map).tolist())
        tumor = _array(ours / case / "tumor.nii.gz")
        np.testing.assert_array_equal(tumor, (label_map == tumor_id).astype(np.uint8))
        organs = np.where((label_map >= 1) & (label_map <= n_organs), label_map, 0)
        np.testing.assert_array_equal(_array(ours / case / "organs.nii.gz"), organs)
        report = json.loads((ours / case / "report.json").read_text())
        pet = sitk.ReadImage(str(m["images_ts"] / f"{case}_0000.nii.gz"))
        voxel_ml = float(np.prod(pet.GetSpacing())) / 1000
        assert report["tmtv_ml"] == pytest.approx(
            (label_map == tumor_id).sum() * voxel_ml, abs=1e-3
        )
        assert report["tumor_label"] == tumor_id
    assert max(seen) >= 1, seen  # the short model predicts something, so the comparison bites
    # the short model need not predict the tumor (label 10): a stock label map with a tumor
    # block painted in gives the tumor-last split an expected mask that cannot be empty
    painted_dir, painted_out = tmp_path / "painted", tmp_path / "painted_out"
    painted_dir.mkdir()
    case = cases[0]
    stock_image = sitk.ReadImage(str(stock / f"{case}.nii.gz"))
    painted = sitk.GetArrayFromImage(stock_image).copy()
    painted[1:4, 2:6, 2:6] = tumor_id
    image = sitk.GetImageFromArray(painted)
    image.CopyInformation(stock_image)
    sitk.WriteImage(image, str(painted_dir / f"{case}.nii.gz"))
    (painted_dir / "dataset.json").write_bytes((stock / "dataset.json").read_bytes())
    assert main(["postprocess", "-i", str(painted_dir), "--pet", str(images), "-o",
                 str(painted_out), "--save-organs", "--no-pbar"]) == 0  # fmt: skip
    expected_tumor = (painted == tumor_id).astype(np.uint8)
    assert expected_tumor.sum() >= 48
    np.testing.assert_array_equal(_array(painted_out / case / "tumor.nii.gz"), expected_tumor)
    expected_organs = np.where((painted >= 1) & (painted <= n_organs), painted, 0)
    np.testing.assert_array_equal(_array(painted_out / case / "organs.nii.gz"), expected_organs)

    # the Python API: a numpy array with spacing, same masks as the CLI
    case = cases[0]
    pet = sitk.ReadImage(str(m["images_ts"] / f"{case}_0000.nii.gz"))
    model = lion_nnunet.load_model("fdg-last", device="cpu", use_mirroring=False)
    result = model.segment(sitk.GetArrayFromImage(pet), spacing=pet.GetSpacing(),
                           origin=pet.GetOrigin(), direction=pet.GetDirection())  # fmt: skip
    np.testing.assert_array_equal(sitk.GetArrayFromImage(result.tumor),
                                  _array(ours / case / "tumor.nii.gz"))  # fmt: skip
    np.testing.assert_array_equal(sitk.GetArrayFromImage(result.organs),
                                  _array(ours / case / "organs.nii.gz"))  # fmt: skip
    assert result.tumor.GetSize() == pet.GetSize() and result.tumor.GetOrigin() == pet.GetOrigin()
    assert result.report["tmtv_ml"] == pytest.approx(
        json.loads((ours / case / "report.json").read_text())["tmtv_ml"]
    )

    # the stock prediction folder (dataset.json copied in by nnU-Net): labels from disk
    post = tmp_path / "post"
    assert main(["postprocess", "-i", str(stock), "--pet", str(images), "-o", str(post),
                 "--no-pbar"]) == 0  # fmt: skip
    for case in cases:
        np.testing.assert_array_equal(_array(post / case / "tumor.nii.gz"),
                                      _array(ours / case / "tumor.nii.gz"))  # fmt: skip
    # --tracer fdg contradicts the lionz labels on disk: an error, not a guess
    assert main(["postprocess", "-i", str(stock), "--pet", str(images), "-o",
                 str(tmp_path / "post2"), "--tracer", "fdg", "--no-pbar"]) == 1  # fmt: skip
    assert "not the LION fdg layout" in capsys.readouterr().err


def test_tumor_last_ground_truth_volume_through_postprocess(
    trained_lionz_model: dict, tmp_path: Path
) -> None:
    """The right tumor volume: lionz-layout label maps read through the model's labels."""
    m = trained_lionz_model
    pred = tmp_path / "gt_as_pred"
    pred.mkdir()
    for p in m["labels_ts"].glob("*.nii.gz"):
        (pred / p.name).write_bytes(p.read_bytes())
    (pred / "dataset.json").write_bytes((m["model_dir"] / "dataset.json").read_bytes())
    out = tmp_path / "out"
    assert main(["postprocess", "-i", str(pred), "--pet", str(m["images_ts"]), "-o", str(out),
                 "--no-pbar"]) == 0  # fmt: skip
    for p in m["lion_labels_ts"].glob("*.nii.gz"):  # LION layout: tumor is 1
        gt = sitk.ReadImage(str(p))
        expected = (sitk.GetArrayFromImage(gt) == 1).sum() * np.prod(gt.GetSpacing()) / 1000
        report = json.loads((out / p.name[: -len(".nii.gz")] / "report.json").read_text())
        assert report["tmtv_ml"] == pytest.approx(expected, rel=1e-6)
        assert expected > 0


def test_tumor_first_model_zip_from_nnunet_export_and_api(
    trained_fdg_model: dict, model_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from fixtures_nnunet import run_stock

    import lion_nnunet

    m = trained_fdg_model
    archive = tmp_path / "lion_fdg.zip"
    run_stock("nnUNetv2_export_model_to_zip", "-d", str(m["dataset_id"]), "-o", str(archive),
              "-c", "3d_fullres", "-tr", m["trainer"], "-p", "LIONPlans", "-f", "0")  # fmt: skip
    assert main(["models", "install", str(archive), "--name", "fdg", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["tumor_label"] == 1 and record["tracer"] == "fdg"
    out = tmp_path / "out"
    case_file = sorted(m["images_ts"].glob("*_0000.nii.gz"))[0]
    assert main(["predict", "-i", str(case_file), "-o", str(out), "-m", "fdg", "--device", "cpu",
                 "--no-pbar", "--suv-threshold", "1.0"]) == 0  # fmt: skip
    case = case_file.name[: -len("_0000.nii.gz")]
    pet = sitk.ReadImage(str(case_file))
    result = lion_nnunet.load_model("fdg", device="cpu").segment(pet, suv_threshold=1.0)
    tumor = _array(out / case / "tumor.nii.gz")
    np.testing.assert_array_equal(sitk.GetArrayFromImage(result.tumor), tumor)
    # the threshold by hand: the unthresholded prediction where SUV >= 1.0
    raw = sitk.GetArrayFromImage(lion_nnunet.load_model("fdg", device="cpu").segment(pet).tumor)
    expected = (raw > 0) & (sitk.GetArrayFromImage(pet) >= 1.0)
    np.testing.assert_array_equal(tumor, expected.astype(np.uint8))


def test_unknown_trainer_is_named(tmp_path: Path, model_home: Path, capsys) -> None:
    folder = make_random_model(
        tmp_path / "Dataset992_X" / "nnUNetTrainerDA5_3000epochs_mine__LIONPlans__3d_fullres",
        "fdg", patch_size=(16, 16, 16), trainer="nnUNetTrainerDA5_3000epochs_mine",
    )  # fmt: skip
    image = sitk.GetImageFromArray(np.ones((16, 16, 16), np.float32))
    sitk.WriteImage(image, str(tmp_path / "a_0000.nii.gz"))
    assert main(["predict", "-i", str(tmp_path / "a_0000.nii.gz"), "-o", str(tmp_path / "o"),
                 "-m", str(folder), "--device", "cpu", "--no-pbar"]) == 1  # fmt: skip
    err = capsys.readouterr().err
    assert "trainer nnUNetTrainerDA5_3000epochs_mine not found" in err and "install" in err
    # -m DatasetXXX_NAME (lionz's model folder layout) resolves to its one model folder
    assert main(["predict", "-i", str(tmp_path / "a_0000.nii.gz"), "-o", str(tmp_path / "o"),
                 "-m", str(folder.parent), "--device", "cpu", "--no-pbar"]) == 1  # fmt: skip
    assert "trainer nnUNetTrainerDA5_3000epochs_mine not found" in capsys.readouterr().err
    assert main(["predict", "-i", str(tmp_path / "a_0000.nii.gz"), "-o", str(tmp_path / "o"),
                 "-m", "no-such-model", "--no-pbar"]) == 1  # fmt: skip
    assert "lion models list" in capsys.readouterr().err
    assert main(["models", "install", str(folder.parent), "--name", "x"]) == 1
    assert "trainer nnUNetTrainerDA5_3000epochs_mine not found" in capsys.readouterr().err
    assert not (model_home / "x").exists()
