"""lion predict: same masks as stock nnUNetv2_predict + lion postprocess; resume; errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from fixtures_nnunet import SMALL_RANDOM_NET

from lion_nnunet.cli import main
from lion_nnunet.inference.model import check_model_folder, make_random_model
from lion_nnunet.inference.predict import discover_cases

REPORT_KEYS = {"case_id", "tmtv_ml", "tlg", "suv_max", "suv_mean", "suv_peak", "lesion_count",
               "lesions", "model", "folds", "lion_version", "nnunetv2_version"}  # fmt: skip


def _array(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


@pytest.fixture(scope="module")
def random_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """LION FDG architecture with random weights, patch covering a small phantom (fast on CPU)."""
    root = tmp_path_factory.mktemp("random_model") / "Dataset990_RANDOM"
    return make_random_model(
        root / "nnUNetTrainer__LIONPlans__3d_fullres", "fdg", patch_size=(96, 48, 48),
        spacing=(6.0, 6.0, 6.0), folds=("0", "1"), **SMALL_RANDOM_NET,
    )  # fmt: skip


@pytest.fixture(scope="module")
def two_cases(fdg_cohort: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """CSV (case_id, pet) with two phantom studies."""
    cases = pd.read_csv(fdg_cohort / "cases.csv").head(2)
    table = pd.DataFrame(
        {
            "case_id": cases["patient_id"],
            "pet": [str(fdg_cohort / "studies" / d / "SUV.nii.gz") for d in cases["study_dir"]],
        }
    )
    path = tmp_path_factory.mktemp("csv") / "cases.csv"
    table.to_csv(path, index=False)
    return path


def _model_predicting_tumor(m: dict, probe: Path, where: Path, share: float = 0.01) -> Path:
    """A copy of the short model whose tumor logit is raised so that ``share`` of voxels are tumor.

    Ten training iterations may or may not teach the tumor class; the stock-vs-lion comparison
    means something only when both have tumor to keep. Adding a constant to the bias of the
    last segmentation layer's tumor channel adds it to every tumor logit (sliding-window
    averaging, mirroring and linear resampling keep a constant), so the margin
    log(max other probability) - log(tumor probability) from a stock run (``probe``: the
    probabilities nnUNetv2_predict wrote for the unchanged model) says which constant turns the
    lowest ``share`` of voxels into tumor.
    """
    import torch

    model = where / "model" / m["model_dir"].name
    shutil.copytree(m["model_dir"], model)
    margins = []
    for npz in sorted(probe.glob("*.npz")):
        p = np.clip(np.load(npz)["probabilities"].astype(np.float64), 1e-300, None)
        margins.append((np.log(np.delete(p, 1, axis=0).max(axis=0)) - np.log(p[1])).ravel())
    assert margins, f"no probabilities written into {probe}"
    delta = float(np.quantile(np.concatenate(margins), share))
    checkpoint = model / f"fold_{m['fold']}" / "checkpoint_final.pth"
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    weights = state["network_weights"]
    biases = [k for k in weights if ".seg_layers." in k and k.endswith(".bias")]
    last = max(biases, key=lambda k: int(k.split(".seg_layers.")[1].split(".")[0]))
    weights[last][1] += delta
    torch.save(state, checkpoint)
    return model


def test_predict_matches_stock_nnunet_predict(
    trained_fdg_model: dict, stock_predicted, tmp_path: Path
) -> None:
    """Done-when: lion predict == stock nnUNetv2_predict + lion postprocess, mask for mask."""
    from fixtures_nnunet import run_stock

    m = trained_fdg_model
    model = _model_predicting_tumor(m, stock_predicted(m), tmp_path)
    ours, stock, post = tmp_path / "lion", tmp_path / "stock", tmp_path / "post"
    args = ["-m", str(model), "-f", m["fold"], "--device", "cpu", "--no-pbar"]
    assert main(["predict", "-i", str(m["images_ts"]), "-o", str(ours), *args,
                 "--save-organs"]) == 0  # fmt: skip
    run_stock("nnUNetv2_predict_from_modelfolder", "-i", str(m["images_ts"]), "-o", str(stock),
              "-m", str(model), "-f", m["fold"], "-device", "cpu", "-npp", "1",
              "-nps", "1")  # fmt: skip
    assert main(["postprocess", "-i", str(stock), "--pet", str(m["images_ts"]), "-o", str(post),
                 "--no-pbar", "--save-organs"]) == 0  # fmt: skip
    cases = sorted(p.name[: -len("_0000.nii.gz")] for p in m["images_ts"].glob("*_0000.nii.gz"))
    assert cases
    seen: set[int] = set()
    for case in cases:
        label_map = _array(stock / f"{case}.nii.gz")
        seen |= set(np.unique(label_map).tolist())
        ours_tumor = _array(ours / case / "tumor.nii.gz")
        np.testing.assert_array_equal(ours_tumor, _array(post / case / "tumor.nii.gz"))
        np.testing.assert_array_equal(ours_tumor, (label_map == 1).astype(np.uint8))
        np.testing.assert_array_equal(
            _array(ours / case / "organs.nii.gz"), np.where(label_map >= 2, label_map, 0)
        )
        pet = sitk.ReadImage(str(m["images_ts"] / f"{case}_0000.nii.gz"))
        tumor = sitk.ReadImage(str(ours / case / "tumor.nii.gz"))
        assert tumor.GetSize() == pet.GetSize() and tumor.GetOrigin() == pet.GetOrigin()
        report = json.loads((ours / case / "report.json").read_text())
        assert set(report) >= REPORT_KEYS and report["folds"] == [int(m["fold"])]
        assert (ours / case / "mip.png").stat().st_size > 1000
    # the comparison means something only if the model predicts tumor and organs somewhere
    assert 1 in seen and max(seen) >= 2, seen
    summary = pd.read_csv(ours / "summary.csv")
    assert sorted(summary["case_id"]) == cases
    # the second run, with the same settings, finds every case done and predicts nothing
    assert main(["predict", "-i", str(m["images_ts"]), "-o", str(ours), *args, "--save-organs",
                 "--json"]) == 0  # fmt: skip


def test_predict_csv_ensemble_resume_and_shards(
    random_model: Path, two_cases: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "out"
    base = ["predict", "-i", str(two_cases), "-m", str(random_model), "-f", "0", "1",
            "--device", "cpu", "--no-pbar", "--disable-tta", "--json"]  # fmt: skip
    assert main([*base, "-o", str(out), "--num-parts", "2", "--part-id", "0"]) == 0
    first = json.loads(capsys.readouterr().out)
    ids = list(pd.read_csv(two_cases)["case_id"])
    assert first["predicted"] == [ids[0]]
    # an interrupted case (files but no report.json) is not done and is redone
    (out / ids[1]).mkdir()
    (out / ids[1] / "tumor.nii.gz").write_bytes(b"partial")
    assert main([*base, "-o", str(out)]) == 0
    second = json.loads(capsys.readouterr().out)
    assert second["predicted"] == [ids[1]] and second["skipped"] == [ids[0]]
    report = json.loads((out / ids[1] / "report.json").read_text())
    assert report["folds"] == [0, 1] and report["model"].endswith("__3d_fullres")
    assert _array(out / ids[1] / "tumor.nii.gz").dtype == np.uint8
    assert len(pd.read_csv(out / "summary.csv")) == 2


def test_discover_cases_layouts(fdg_cohort: Path, tmp_path: Path) -> None:
    studies = fdg_cohort / "studies"
    auto = discover_cases(studies)
    # the ids lion convert gives: one study per patient -> the patient folder's name
    assert len(auto) == 10 and auto[0].case_id == "SYNFDG_0000"
    nn = tmp_path / "imagesTs"
    nn.mkdir()
    first = next(studies.rglob("SUV.nii.gz"))
    shutil.copy(first, nn / "caseA_0000.nii.gz")
    assert [c.case_id for c in discover_cases(nn)] == ["caseA"]
    assert [c.case_id for c in discover_cases(nn / "caseA_0000.nii.gz")] == ["caseA"]
    shutil.copy(first, nn / "caseA_0001.nii.gz")
    with pytest.raises(Exception, match="model takes 1 channel"):
        discover_cases(nn, num_channels=1)


def test_predict_bad_inputs(
    random_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    common = ["-o", str(tmp_path / "o"), "--device", "cpu", "--no-pbar"]
    assert main(["predict", "-i", str(empty), "-m", str(random_model), *common]) == 1
    assert "no PET found" in capsys.readouterr().err
    # model folder without checkpoints
    broken = tmp_path / "Dataset990_RANDOM" / "nnUNetTrainer__LIONPlans__3d_fullres"
    broken.mkdir(parents=True)
    for name in ("plans.json", "dataset.json"):
        shutil.copy(random_model / name, broken / name)
    assert main(["predict", "-i", str(empty), "-m", str(broken), *common]) == 1
    assert "no fold_*/checkpoint_final.pth" in capsys.readouterr().err
    assert main(["predict", "-i", str(empty), "-m", str(random_model), "-f", "3", *common]) == 1
    assert "folds available: 0 1" in capsys.readouterr().err
    # dataset.json with two channels but plans for one: they do not belong together
    ds = json.loads((random_model / "dataset.json").read_text())
    ds["channel_names"] = {"0": "PET", "1": "CT"}
    shutil.copytree(random_model / "fold_0", broken / "fold_0")
    (broken / "dataset.json").write_text(json.dumps(ds))
    with pytest.raises(Exception, match="do not belong together"):
        check_model_folder(broken)
    assert not (tmp_path / "o").exists()


def test_predict_refuses_nifti_that_is_not_suv(
    random_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """A NIfTI is taken as SUV only when its values look like SUV (not Bq/ml)."""
    bqml = sitk.GetImageFromArray(np.full((20, 16, 16), 5200.0, np.float32))  # ~5 kBq/ml
    bqml.SetSpacing((6.0, 6.0, 6.0))
    path = tmp_path / "pet_bqml.nii.gz"
    sitk.WriteImage(bqml, str(path))
    args = ["-o", str(tmp_path / "o"), "--device", "cpu", "--no-pbar", "-f", "0"]
    assert main(["predict", "-i", str(path), "-m", str(random_model), *args]) == 1
    err = capsys.readouterr().err
    assert f"{path}: PET maximum is 5200, implausible for SUV" in err
    assert "looks like Bq/ml" in err and "lion convert dicom" in err


@pytest.mark.gpu
def test_cuda_prediction_equals_cpu_prediction(fdg_cohort: Path, tmp_path: Path) -> None:
    """The same random-weight model (ResEnc-M's full width) on CUDA (nnU-Net's
    everything-on-device path) and on CPU: the same tumor mask and organ map up to a few voxels
    at logit ties, the same TMTV."""
    import lion_nnunet

    random_model = make_random_model(
        tmp_path / "Dataset990_RANDOM" / "nnUNetTrainer__LIONPlans__3d_fullres", "fdg",
        patch_size=(96, 48, 48), spacing=(6.0, 6.0, 6.0), folds=("0",),
    )  # fmt: skip
    first = sorted((fdg_cohort / "studies").rglob("SUV.nii.gz"))[0]
    pet = sitk.ReadImage(str(first))
    cpu = lion_nnunet.load_model(random_model, device="cpu", use_mirroring=False).segment(pet)
    gpu = lion_nnunet.load_model(random_model, device="cuda", use_mirroring=False).segment(pet)
    cpu_organs = sitk.GetArrayFromImage(cpu.organs)
    gpu_organs = sitk.GetArrayFromImage(gpu.organs)
    cpu_tumor = sitk.GetArrayFromImage(cpu.tumor)
    assert (cpu_organs > 0).any() or cpu_tumor.any()  # random weights predict something
    assert np.mean(cpu_organs != gpu_organs) < 1e-3
    assert np.mean(cpu_tumor != sitk.GetArrayFromImage(gpu.tumor)) < 1e-3
    assert gpu.report["tmtv_ml"] == pytest.approx(cpu.report["tmtv_ml"], rel=0.01, abs=0.1)


def test_messages_name_the_models_labels(
    random_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """--remove-in-organ on a tumor-only model, --tumor-label on an organ: said in model terms."""
    suv = sitk.GetImageFromArray(np.full((20, 16, 16), 1.5, np.float32))
    suv.SetSpacing((6.0, 6.0, 6.0))
    study = tmp_path / "PETCT_0af7ffe12a" / "08-12-2005-NA-PET-CT Ganzkoerper  primaer mit KM-10445"
    study.mkdir(parents=True)
    sitk.WriteImage(suv, str(study / "SUV.nii.gz"))
    tumor_only = make_random_model(
        tmp_path / "Dataset991_TUMORONLY" / "nnUNetTrainer__LIONPlans__3d_fullres", "fdg",
        patch_size=(16, 16, 16), labels={"background": 0, "tumor": 1},
    )  # fmt: skip
    out = tmp_path / "o"
    common = ["-i", str(study / "SUV.nii.gz"), "-o", str(out), "--device", "cpu", "--no-pbar"]
    assert main(["predict", *common, "-m", str(tumor_only), "--remove-in-organ", "liver"]) == 1
    err = capsys.readouterr().err
    assert f"--remove-in-organ liver: the model {tumor_only} has no organ classes" in err
    assert "needs a model trained with organ classes" in err and "choose from" not in err
    assert main(["predict", *common, "-m", str(random_model), "--remove-in-organ", "lung"]) == 1
    assert "its organ classes are brain, heart, kidneys" in capsys.readouterr().err
    # FDG layout: 5 is urinary_bladder, the tumor is 1
    assert main(["predict", *common, "-m", str(random_model), "--tumor-label", "5"]) == 1
    err = capsys.readouterr().err
    assert "names class 5 'urinary_bladder' and its tumor 'tumor' = 1" in err
    assert "pass --tumor-label 1" in err and "reserved" not in err
    assert not out.exists()


def _nnunet_prediction(model: Path, folds: tuple[int, ...], image: Path) -> tuple:
    """nnU-Net's own predictor (no lion code): (label map, class probabilities), numpy (z, y, x)."""
    import torch
    from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    predictor = nnUNetPredictor(use_mirroring=False, perform_everything_on_device=False,
                                device=torch.device("cpu"), allow_tqdm=False)  # fmt: skip
    predictor.initialize_from_trained_model_folder(str(model), folds, "checkpoint_final.pth")
    data, props = SimpleITKIO().read_images([str(image)])
    return predictor.predict_single_npy_array(data, props, None, None, True)


def test_confidence_and_fold_agreement_match_nnunets_own_predictions(
    fdg_cohort: Path, tmp_path: Path
) -> None:
    """Two random folds (a tumor-only model on a coarser grid than the PET, so nnU-Net resamples
    back): the label map equals nnU-Net's 2-fold ensemble, tumor_probability.nii.gz its softmax,
    each lesion's confidence the mean of that map inside it, and fold_agreement the share of the
    single-fold nnU-Net predictions (-f 0, -f 1) that overlap it, all counted here with scipy."""
    from scipy import ndimage

    model = make_random_model(
        tmp_path / "Dataset992_TWOFOLDS" / "nnUNetTrainer__LIONPlans__3d_fullres", "fdg",
        patch_size=(48, 32, 32), spacing=(12.0, 12.0, 12.0), folds=("0", "1"),
        labels={"background": 0, "tumor": 1}, **SMALL_RANDOM_NET,
    )  # fmt: skip
    study = next((fdg_cohort / "studies").rglob("SUV.nii.gz"))
    images = tmp_path / "imagesTs"
    images.mkdir()
    shutil.copy(study, images / "PETCT_0af7ffe12a_0000.nii.gz")
    out = tmp_path / "out"
    assert main(["predict", "-i", str(images), "-o", str(out), "-m", str(model), "-f", "0", "1",
                 "--device", "cpu", "--no-pbar", "--disable-tta",
                 "--save-probabilities"]) == 0  # fmt: skip
    case = out / "PETCT_0af7ffe12a"
    report = json.loads((case / "report.json").read_text())
    tumor = _array(case / "tumor.nii.gz").astype(bool)
    probability_image = sitk.ReadImage(str(case / "tumor_probability.nii.gz"))
    probability = sitk.GetArrayFromImage(probability_image)
    pet = sitk.ReadImage(str(study))
    assert probability.dtype == np.float32 and probability_image.GetSize() == pet.GetSize()
    assert probability_image.GetOrigin() == pet.GetOrigin()

    image = images / "PETCT_0af7ffe12a_0000.nii.gz"
    ensemble, probabilities = _nnunet_prediction(model, (0, 1), image)
    np.testing.assert_array_equal(tumor, ensemble == 1)
    np.testing.assert_allclose(probability, probabilities[1], atol=1e-6)
    folds = [_nnunet_prediction(model, (f,), image)[0] == 1 for f in (0, 1)]
    assert not np.array_equal(folds[0], folds[1])  # the folds disagree somewhere

    # lesions as 18-connected components (faces + edges), counted by scipy, matched by centroid
    components, n = ndimage.label(tumor, structure=ndimage.generate_binary_structure(3, 2))
    assert n == report["lesion_count"] and n > 0
    by_centroid = {}
    for i in range(1, n + 1):
        lesion = components == i
        centre = [float(c) for c in np.argwhere(lesion).mean(axis=0)[::-1]]
        key = tuple(round(v, 1) for v in pet.TransformContinuousIndexToPhysicalPoint(centre))
        agreement = np.mean([bool((fold & lesion).any()) for fold in folds])
        by_centroid[key] = (float(probability[lesion].astype(np.float64).mean()), agreement)
    partial = 0
    for lesion in report["lesions"]:
        confidence, agreement = by_centroid[tuple(lesion["centroid_mm"])]
        assert lesion["confidence"] == pytest.approx(confidence, abs=5e-4)
        assert lesion["fold_agreement"] == pytest.approx(agreement, abs=5e-4)
        partial += agreement < 1
    assert 0 < partial < n  # some lesions are found by one fold only, some by both
    for name in ("mip.png", "mip_coronal.png", "mip_sagittal.png"):  # lion review's pictures
        assert name in report["outputs"] and (case / name).stat().st_size > 1000
    summary = pd.read_csv(out / "summary.csv")
    assert summary.loc[0, "flag_score"] == report["flag_score"] > 0
    assert summary.loc[0, "flag_reasons"] == "; ".join(report["flag_reasons"])
