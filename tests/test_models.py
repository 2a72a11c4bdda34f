"""Released models by name, in LION's and lionz's label layouts: install, predict, API, verify.

Two really trained tiny models: ``trained_fdg_model`` (LION layout, tumor 1) and
``trained_lionz_model`` (lionz layout, tumor last, saved under the authors' trainer name).
Expected values come from stock ``nnUNetv2_predict`` label maps and from the ground-truth label
maps counted by hand, never from the code under test. The install checks and their refusals use
random-weight models (``make_random_model``); checksums are computed here with ``hashlib``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from lion_nnunet.cli import main
from lion_nnunet.errors import LionError
from lion_nnunet.inference.model import CHECKPOINT, make_random_model

DATASET = "Dataset991_LIONFDG"
PLAIN = "nnUNetTrainer__LIONPlans__3d_fullres"
LION = "nnUNetTrainer_LION__LIONPlans__3d_fullres"


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


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_tumor_first_model_zip_from_nnunet_export_and_api(
    trained_fdg_model: dict, model_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from fixtures_nnunet import run_stock

    import lion_nnunet

    m = trained_fdg_model
    archive = tmp_path / "lion_fdg.zip"
    run_stock("nnUNetv2_export_model_to_zip", "-d", str(m["dataset_id"]), "-o", str(archive),
              "-c", "3d_fullres", "-tr", m["trainer"], "-p", "LIONPlans", "-f", "0")  # fmt: skip
    # nnU-Net 2.8's own save_checkpoint wrote it: installed through the weights-only loader
    assert main(["models", "install", str(archive), "--name", "fdg", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["tumor_label"] == 1 and record["tracer"] == "fdg"
    assert record["trust_checkpoint"] is False
    assert record["file_sha256"] == {n: _sha256(m["model_dir"] / n)
                                     for n in ("plans.json", "dataset.json")}  # fmt: skip
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


class _WritesMarker:
    """Unpickled, it writes a file: what a malicious checkpoint could do instead."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('ran')",))


def test_checkpoint_with_a_malicious_pickle_is_refused_and_runs_nothing(
    released: Path, model_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    import torch

    folder = _copy_model(released, tmp_path)
    marker = tmp_path / "code_ran"
    checkpoint = folder / "fold_0" / CHECKPOINT
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    state["init_args"]["payload"] = _WritesMarker(marker)
    torch.save(state, checkpoint)
    archive = _zip_model(folder, tmp_path / "evil.zip")
    assert main(["models", "install", str(archive), "--name", "evil"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    entry = f"{archive}: {DATASET}/{PLAIN}/fold_0/{CHECKPOINT}"  # ZIP: ENTRY, no temporary path
    assert err == [f"lion models: error: {entry}: the checkpoint refers to exec, which "
                   "is not part of an nnU-Net checkpoint's weights or training record; loading "
                   "it could run code from the file, so it is refused; if you trust its source, "
                   "install it with --trust-checkpoint"]  # fmt: skip
    assert "could run code from the file, so it is refused" in err[0]
    assert "--trust-checkpoint" in err[0]
    assert not marker.exists()
    _assert_not_installed(model_home, "evil")
    # --trust-checkpoint loads it as nnU-Net does (weights_only=False): the pickle runs
    assert main(["models", "install", str(archive), "--name", "evil", "--trust-checkpoint"]) == 0
    assert marker.read_text() == "ran"


class _RunsShell:
    """Unpickled, it runs ``touch MARKER`` through os.system (posix.system on Linux)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_checkpoint_calling_a_blocked_module_is_refused_as_code_not_as_damaged(
    tmp_path: Path,
) -> None:
    # torch words a global from a module it blocks outright (os, posix, sys) differently from
    # one outside its allow-list ("Trying to load unsupported GLOBAL posix.system whose module
    # posix is blocked"); that file is not damaged: it asks to run a shell command
    import torch

    from lion_nnunet.inference.checkpoint_load import load_checkpoint

    marker = tmp_path / "shell_ran"
    path = tmp_path / "checkpoint_final.pth"
    torch.save({"network_weights": {"w": torch.ones(2)}, "payload": _RunsShell(marker)}, path)
    with pytest.raises(LionError) as err:
        load_checkpoint(path)
    message = str(err.value)
    assert f"the checkpoint refers to {os.system.__module__}.system" in message, message
    assert "could run code from the file" in message and "--trust-checkpoint" in message
    assert "damaged" not in message
    assert not marker.exists()


def test_numpy_scalars_of_nnunet_training_record_load_weights_only(tmp_path: Path) -> None:
    """nnU-Net's logger and _best_ema hold numpy float32 (2.8) or float64 (earlier) scalars."""
    import torch

    from lion_nnunet.inference.checkpoint_load import load_checkpoint

    path = tmp_path / "checkpoint_final.pth"
    record = {"mean_fg_dice": [np.float32(0.25), np.float64(0.5)], "lrs": [0.01]}
    torch.save({"network_weights": {"w": torch.ones(2)}, "logging": record,
                "_best_ema": np.float64(0.5), "trainer_name": "nnUNetTrainer",
                "init_args": {"device": torch.device("cpu")}}, path)  # fmt: skip
    loaded = load_checkpoint(path)
    assert loaded["logging"] == record and loaded["_best_ema"] == np.float64(0.5)
    assert type(loaded["logging"]["mean_fg_dice"][0]) is np.float32


def test_changed_plans_or_dataset_json_refused_by_predict_and_verify(
    released: Path, model_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    archive = _zip_model(released / PLAIN, tmp_path / "lion_fdg.zip")
    assert main(["models", "install", str(archive), "--name", "fdg", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    folder = model_home / "fdg" / DATASET / PLAIN
    assert record["file_sha256"] == {n: _sha256(released / PLAIN / n)
                                     for n in ("plans.json", "dataset.json")}  # fmt: skip
    dataset_json = folder / "dataset.json"
    original = _sha256(dataset_json)
    content = json.loads(dataset_json.read_text())
    content["labels"] = dict(reversed(list(content["labels"].items())))  # same labels, edited
    dataset_json.write_text(json.dumps(content))
    changed = _sha256(dataset_json)
    inputs = _autopet_study(tmp_path / "autopet")
    assert main(["predict", "-i", str(inputs), "-o", str(tmp_path / "out"), "-m", "fdg",
                 "--device", "cpu", "--no-pbar"]) == 1  # fmt: skip
    err = capsys.readouterr().err
    assert f"{dataset_json}: SHA-256 {changed} differs from {original} recorded at install" in err
    assert not (tmp_path / "out").exists()
    assert main(["models", "verify", "fdg", "--json"]) == 1
    result = json.loads(capsys.readouterr().out)
    assert [(r["file"], r["ok"]) for r in result["files"]] == [("plans.json", True),
                                                               ("dataset.json", False)]  # fmt: skip


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


# --- install checks, checksums on load, verify (random-weight models) -------------------------


@pytest.fixture(scope="module")
def released(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ``$nnUNet_results/Dataset991_LIONFDG`` with two trainers' model folders (random weights).

    ``nnUNetTrainer__...`` has folds 0 and 1, ``nnUNetTrainer_LION__...`` fold 0.
    """
    dataset = tmp_path_factory.mktemp("nnUNet_results") / DATASET
    make_random_model(dataset / PLAIN, "fdg", patch_size=(16, 16, 16), folds=("0", "1"))
    make_random_model(dataset / LION, "fdg", patch_size=(16, 16, 16), seed=7,
                      trainer="nnUNetTrainer_LION")  # fmt: skip
    return dataset


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _copy_model(released: Path, tmp_path: Path, folder: str = PLAIN) -> Path:
    """A private copy of one model folder (``<tmp>/Dataset991_LIONFDG/<folder>``) to damage."""
    dest = tmp_path / "results" / DATASET / folder
    shutil.copytree(released / folder, dest)
    return dest


def _autopet_study(root: Path) -> Path:
    """One autoPET-style study (``PETCT_<id>/<date>-NA-PET-CT.../SUV.nii.gz``) with a hot spot."""
    suv = np.full((16, 16, 16), 0.8, np.float32)
    suv[6:10, 6:10, 6:10] = 9.0
    image = sitk.GetImageFromArray(suv)
    image.SetSpacing((2.0364, 2.0364, 3.0))
    study = root / "PETCT_0af7ffe12a" / "08-12-2005-NA-PET-CT Ganzkoerper  primaer mit KM-10445"
    study.mkdir(parents=True)
    sitk.WriteImage(image, str(study / "SUV.nii.gz"))
    return root


def _assert_not_installed(home: Path, name: str) -> None:
    assert not (home / name).exists()
    assert not home.exists() or not list(home.iterdir())  # no staging folder left behind


def test_changed_checkpoint_refused_by_predict_api_and_verify(
    released: Path, model_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture, umask_022
) -> None:
    import lion_nnunet

    archive = _zip_model(released / PLAIN, tmp_path / "lion_fdg.zip")
    assert main(["models", "install", str(archive), "--name", "fdg", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    folder = model_home / "fdg" / DATASET / PLAIN
    fold1 = folder / "fold_1" / CHECKPOINT
    original = _sha256(released / PLAIN / "fold_1" / CHECKPOINT)
    assert record["folds"] == ["0", "1"]
    assert record["checkpoint_sha256"] == {
        f: _sha256(released / PLAIN / f"fold_{f}" / CHECKPOINT) for f in ("0", "1")
    }
    # the installed model is readable by colleagues under umask 022 (mkdtemp would give 0700)
    assert (model_home / "fdg").stat().st_mode & 0o777 == 0o755
    assert (model_home / "fdg" / "lion_model.json").stat().st_mode & 0o777 == 0o644
    assert fold1.stat().st_mode & 0o777 == 0o644

    inputs = _autopet_study(tmp_path / "autopet")
    out = tmp_path / "out"
    common = ["--device", "cpu", "--disable-tta", "--no-pbar"]
    assert main(["predict", "-i", str(inputs), "-o", str(out), "-m", "fdg", *common]) == 0
    reports = sorted(out.glob("*/report.json"))
    assert len(reports) == 1
    for name in ("tumor.nii.gz", "report.json", "mip.png"):  # atomic writes honour the umask
        assert (reports[0].parent / name).stat().st_mode & 0o777 == 0o644, name
    assert main(["models", "verify", "fdg"]) == 0
    assert capsys.readouterr().out.count(" ok ") == 4  # folds 0, 1, plans.json, dataset.json

    # fold 1 overwritten after install (fold 0's weights copied over it by mistake)
    shutil.copyfile(folder / "fold_0" / CHECKPOINT, fold1)
    changed = _sha256(fold1)
    assert changed != original
    capsys.readouterr()
    assert main(["predict", "-i", str(inputs), "-o", str(tmp_path / "out2"), "-m", "fdg",
                 *common]) == 1  # fmt: skip
    err = capsys.readouterr().err
    assert str(fold1) in err and original in err and changed in err
    assert not (tmp_path / "out2").exists()
    with pytest.raises(LionError) as info:
        lion_nnunet.load_model("fdg", device="cpu")
    assert str(fold1) in str(info.value) and original in str(info.value)
    assert changed in str(info.value)
    # -f 0 uses only the unchanged checkpoint
    assert main(["predict", "-i", str(inputs), "-o", str(tmp_path / "out3"), "-m", "fdg", "-f",
                 "0", *common]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["models", "verify", "fdg"]) == 1
    err = capsys.readouterr().err
    assert str(fold1) in err and original in err and changed in err
    assert main(["models", "verify", "fdg", "--json"]) == 1
    result = json.loads(capsys.readouterr().out)
    assert not result["ok"] and [r["ok"] for r in result["checkpoints"]] == [True, False]
    assert result["checkpoints"][1]["recorded"] == original
    assert result["checkpoints"][1]["actual"] == changed
    fold1.unlink()  # a deleted checkpoint, and a name nobody installed
    assert main(["models", "verify", "fdg"]) == 1
    assert f"{fold1}: checkpoint of installed model 'fdg' is missing" in capsys.readouterr().err
    assert main(["models", "verify", "fdg-typo"]) == 1
    assert "lion models list" in capsys.readouterr().err


def test_install_refuses_fold_without_checkpoint(
    released: Path, model_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    folder = _copy_model(released, tmp_path)
    (folder / "fold_2").mkdir()  # a fold still training: only checkpoint_best.pth so far
    shutil.copyfile(folder / "fold_0" / CHECKPOINT, folder / "fold_2" / "checkpoint_best.pth")
    assert main(["models", "install", str(folder), "--name", "fdg"]) == 1
    err = capsys.readouterr().err
    assert "fold(s) 2" in err and f"fold_2/{CHECKPOINT}" in err and "--folds" in err
    _assert_not_installed(model_home, "fdg")
    # --folds naming a fold that has no checkpoint (no fold_3 at all)
    assert main(["models", "install", str(folder), "--name", "fdg", "--folds", "0", "3"]) == 1
    err = capsys.readouterr().err
    assert "fold(s) 3" in err and f"fold_3/{CHECKPOINT}" in err
    _assert_not_installed(model_home, "fdg")
    # the folds that are complete install, and only those
    assert main(["models", "install", str(folder), "--name", "fdg", "-f", "1", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    installed = model_home / "fdg" / DATASET / PLAIN
    assert record["folds"] == ["1"] and (installed / "fold_1" / CHECKPOINT).is_file()
    assert not (installed / "fold_0").exists() and not (installed / "fold_2").exists()


def test_install_refuses_zip_slip_entry(
    released: Path, model_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    archive = _zip_model(released / PLAIN, tmp_path / "lion_fdg.zip")
    with zipfile.ZipFile(archive, "a") as zf:
        zf.writestr("../../../evil.pth", b"overwrites something outside the model home")
    assert main(["models", "install", str(archive), "--name", "fdg"]) == 1
    err = capsys.readouterr().err
    assert "'../../../evil.pth' points outside the archive" in err
    assert not list(tmp_path.rglob("evil.pth"))
    _assert_not_installed(model_home, "fdg")


def test_install_refuses_bad_zip(
    released: Path, model_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    archive = _zip_model(released / PLAIN, tmp_path / "lion_fdg.zip")
    data = archive.read_bytes()
    assert len(data) > 1000
    archive.write_bytes(data[: len(data) // 2])  # an interrupted download
    assert main(["models", "install", str(archive), "--name", "fdg"]) == 1
    assert f"{archive}: not a valid zip file" in capsys.readouterr().err
    _assert_not_installed(model_home, "fdg")


def test_install_refuses_unreadable_checkpoint(
    released: Path, model_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    folder = _copy_model(released, tmp_path)
    (folder / "fold_1" / CHECKPOINT).write_bytes(b"<html><body>403 Forbidden</body></html>\n")
    assert main(["models", "install", str(folder), "--name", "fdg"]) == 1
    err = capsys.readouterr().err
    assert "cannot read the checkpoint" in err and "fold_1" in err
    _assert_not_installed(model_home, "fdg")


def test_errors_about_a_zip_name_the_zip_and_its_entry(
    released: Path, model_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Not the temporary folder the zip was unpacked in (<model home>/.<name>.<hex>.part)."""
    folder = _copy_model(released, tmp_path)
    (folder / "fold_1" / CHECKPOINT).write_bytes(b"<html><body>403 Forbidden</body></html>\n")
    archive = _zip_model(folder, tmp_path / "damaged.zip")
    assert main(["models", "install", str(archive), "--name", "fdg"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"lion models: error: {archive}: {DATASET}/{PLAIN}/fold_1/"
                          f"{CHECKPOINT}: cannot read the checkpoint"), err  # fmt: skip
    assert ".part" not in err and str(model_home) not in err
    assert main(["models", "install", str(archive), "--name", "fdg", "--folds", "0", "4"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"lion models: error: {archive}: {DATASET}/{PLAIN}: fold(s) 4 "
                          f"have no {CHECKPOINT}"), err  # fmt: skip
    _assert_not_installed(model_home, "fdg")


def test_install_refuses_folds_of_different_trainers(
    released: Path, model_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    folder = _copy_model(released, tmp_path)
    shutil.copyfile(released / LION / "fold_0" / CHECKPOINT, folder / "fold_1" / CHECKPOINT)
    assert main(["models", "install", str(folder), "--name", "fdg"]) == 1
    err = capsys.readouterr().err
    assert "fold 0: nnUNetTrainer, fold 1: nnUNetTrainer_LION" in err
    _assert_not_installed(model_home, "fdg")


def test_install_refuses_tracer_mismatch(
    released: Path, model_home: Path, capsys: pytest.CaptureFixture
) -> None:
    assert json.loads((released / PLAIN / "dataset.json").read_text())["lion"]["tracer"] == "fdg"
    assert main(["models", "install", str(released / PLAIN), "--name", "psma", "--tracer",
                 "psma"]) == 1  # fmt: skip
    assert "--tracer psma, but its dataset.json says it is a fdg model" in capsys.readouterr().err
    _assert_not_installed(model_home, "psma")


def test_install_one_model_of_a_dataset_folder_with_two_trainers(
    released: Path, model_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main(["models", "install", str(released), "--name", "fdg"]) == 1
    err = capsys.readouterr().err
    assert f"{DATASET}/{PLAIN}" in err and f"{DATASET}/{LION}" in err and "--model-folder" in err
    _assert_not_installed(model_home, "fdg")
    archive = tmp_path / "both.zip"
    with zipfile.ZipFile(archive, "w") as zf:  # an export holding both trainers
        for path in sorted(released.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(released.parent))
    for name, source, extra, chosen, other in [
        ("by-path", released / LION, [], LION, PLAIN),
        ("by-flag", released, ["--model-folder", PLAIN], PLAIN, LION),
        ("from-zip", archive, ["--model-folder", LION], LION, PLAIN),
    ]:
        assert main(["models", "install", str(source), "--name", name, "--json", *extra]) == 0
        record = json.loads(capsys.readouterr().out)
        assert record["model_folder"] == f"{DATASET}/{chosen}"
        files = [p.relative_to(model_home / name) for p in (model_home / name).rglob("*")]
        assert Path(DATASET, chosen, "fold_0", CHECKPOINT) in files
        assert not [p for p in files if other in p.parts], (name, files)
        assert sorted(p.name for p in (model_home / name / DATASET).iterdir()) == [chosen]
