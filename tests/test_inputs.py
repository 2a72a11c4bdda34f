"""Every image input is read whole and checked for plausibility, by one reader and one value check.

Broken files (an interrupted copy: the first 20 kB; an empty file; a header with no voxels) go
through every command that reads images (predict, convert autopet, convert manifest, evaluate,
postprocess) and the API; wrong images (a CT in HU, a PET in kBq/ml or Bq/ml, a label map,
negatives, NaN, a dynamic 4-D PET) through the value checks. Expected outcomes are the
refusals/warnings themselves, and the good cases beside them still produce outputs.
"""

from __future__ import annotations

import gzip
import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from fixtures_nnunet import SMALL_RANDOM_NET

from lion_nnunet.cli import main
from lion_nnunet.errors import LionError
from lion_nnunet.inference.model import make_random_model
from lion_nnunet.inference.options import PredictOptions
from lion_nnunet.inference.plausibility import check_pet_values
from lion_nnunet.inference.predict import discover_cases
from lion_nnunet.io import check_image_file, read_float_image, read_image
from lion_nnunet.labels import get_label_set
from lion_nnunet.synthetic.phantoms import make_cohort

BROKEN = ("truncated", "empty", "header-only")
#: What the message says for each kind of broken file.
SAYS = {
    "truncated": "is truncated: its compressed data stops after",
    "empty": "is empty (0 bytes)",
    "header-only": "is truncated: it holds only its 348-byte header and no voxels",
}
#: autoPET study folders: patient 0af7ffe12a has two studies, 1b1a6c5e8f one.
STUDIES = (
    "PETCT_0af7ffe12a/08-12-2005-NA-PET-CT Ganzkoerper  primaer mit KM-10445",
    "PETCT_0af7ffe12a/03-07-2006-NA-PET-CT Ganzkoerper  primaer mit KM-31246",
    "PETCT_1b1a6c5e8f/11-23-2004-NA-PET-CT Ganzkoerper  primaer mit KM-44917",
)
#: kBq/ml per SUV of 350 MBq F-18 in 70 kg one hour after injection: dose/weight x 2^(-60/109.77).
KBQ_PER_SUV = 350e6 / 70e3 / 1000 * 2 ** (-60 / 109.77)
NIFTI_HEADER_BYTES = 348


def break_file(path: Path, kind: str) -> None:
    """Turn a whole .nii.gz into an interrupted copy, an empty file or a header without voxels."""
    data = path.read_bytes()
    assert len(data) > 20_000  # precondition: the first 20 kB are not the whole file
    if kind == "truncated":
        path.write_bytes(data[:20_000])
    elif kind == "empty":
        path.write_bytes(b"")
    else:
        path.write_bytes(gzip.compress(gzip.decompress(data)[:NIFTI_HEADER_BYTES]))


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three FDG phantom studies (``studies/<patient>/study_01/{SUV,SEG,CTres}.nii.gz``)."""
    out = tmp_path_factory.mktemp("inputs_cohort")
    make_cohort(out, "fdg", 3, seed=0, progress=False)
    return out


@pytest.fixture(scope="module")
def random_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """LION FDG architecture, random weights, one patch covers a small phantom (fast on CPU)."""
    root = tmp_path_factory.mktemp("inputs_model") / "Dataset991_RANDOM"
    return make_random_model(
        root / "nnUNetTrainer__LIONPlans__3d_fullres", "fdg", patch_size=(96, 48, 48),
        spacing=(6.0, 6.0, 6.0), folds=("0",), **SMALL_RANDOM_NET,
    )  # fmt: skip


@pytest.fixture(scope="module")
def api_model(random_model: Path):
    import lion_nnunet

    return lion_nnunet.load_model(random_model, device="cpu", folds=["0"], use_mirroring=False)


def _studies(cohort: Path) -> list[Path]:
    found = sorted((cohort / "studies").glob("*/study_01"))
    assert len(found) == 3
    return found


def autopet_tree(cohort: Path, root: Path, n: int = 3) -> list[Path]:
    """``root/<PETCT_id>/<date-study>/{SUV,SEG,CTres}.nii.gz`` for the first ``n`` studies."""
    folders = []
    for study, src in zip(STUDIES[:n], _studies(cohort), strict=False):
        shutil.copytree(src, root / study)
        folders.append(root / study)
    return folders


def _with_lesions(cohort: Path) -> int:
    """Index of the first study whose SEG holds a lesion."""
    for k, study in enumerate(_studies(cohort)):
        if sitk.GetArrayFromImage(sitk.ReadImage(str(study / "SEG.nii.gz"))).any():
            return k
    raise AssertionError("no phantom study with a lesion")


def _phantom(cohort: Path, k: int = 0, name: str = "SUV") -> tuple[sitk.Image, np.ndarray]:
    image = sitk.ReadImage(str(_studies(cohort)[k] / f"{name}.nii.gz"))
    return image, sitk.GetArrayFromImage(image).astype(np.float32)


def _like(array: np.ndarray, reference: sitk.Image) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(reference)
    return image


def wrong_images(cohort: Path) -> dict[str, sitk.Image]:
    """PET-shaped images that are not PET in SUV, built from a phantom study."""
    pet, suv = _phantom(cohort)
    ct = np.clip(_phantom(cohort, name="CTres")[1], -1024, 400)
    negatives = suv.copy()
    negatives[suv < 0.05] = -0.3  # undershoot in the air around the body
    nan = suv.copy()
    nan[10, 10:12, 10:12] = np.nan
    return {
        "ct_clipped": _like(ct, pet),
        "pet_kbqml": _like(suv * KBQ_PER_SUV, pet),
        "seg_as_pet": _like(_phantom(cohort, _with_lesions(cohort), "SEG")[1], pet),
        "pet_negatives": _like(negatives, pet),
        "pet_nan": _like(nan, pet),
        "pet_dynamic": sitk.JoinSeries([pet, pet]),
    }


# --- the reader -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", BROKEN)
def test_reader_refuses_broken_files(cohort: Path, tmp_path: Path, kind: str) -> None:
    path = tmp_path / "SUV.nii.gz"
    shutil.copy(_studies(cohort)[0] / "SUV.nii.gz", path)
    whole = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
    np.testing.assert_array_equal(read_float_image(path, "PET")[1], whole)  # good file: as sitk
    break_file(path, kind)
    for read in (read_image, read_float_image, check_image_file):
        with pytest.raises(LionError, match=re.escape(f"{path}: the PET file {SAYS[kind]}")):
            read(path, "PET")
    if kind != "empty":  # SimpleITK reads these without complaint: the bug being fixed
        assert (
            sitk.ReadImage(str(path)).GetSize()
            == sitk.ReadImage(str(_studies(cohort)[0] / "SUV.nii.gz")).GetSize()
        )


def test_reader_refuses_a_stream_cut_in_its_trailer(cohort: Path, tmp_path: Path) -> None:
    """Every voxel present but the gzip end-of-stream trailer missing: still an incomplete copy."""
    path = tmp_path / "SUV.nii.gz"
    path.write_bytes((_studies(cohort)[0] / "SUV.nii.gz").read_bytes()[:-8])
    with pytest.raises(LionError, match="end-of-stream marker"):
        read_image(path, "PET")


def _huge_header_nifti(path: Path, compress: bool) -> Path:
    """A NIfTI-1 whose header claims 30000^3 float32 voxels (108 TB), followed by 64 kB of zeros."""
    import nibabel as nib

    header = nib.Nifti1Header()
    header.set_data_shape((30000, 30000, 30000))
    header.set_data_dtype(np.float32)
    header.set_zooms((2.0, 2.0, 3.0))
    header.set_data_offset(352)
    raw = header.binaryblock + b"\0" * 4 + b"\0" * 65536
    assert len(header.binaryblock) == 348
    path.write_bytes(gzip.compress(raw) if compress else raw)
    return path


@pytest.mark.parametrize("name", ["SUV.nii.gz", "SUV.nii"])
def test_damaged_header_claiming_108_tb_is_one_sentence(tmp_path: Path, name: str) -> None:
    path = _huge_header_nifti(tmp_path / name, compress=name.endswith(".gz"))
    need = 352 + 30000**3 * 4  # vox_offset + every float32 voxel the header claims
    got = 352 + 65536
    for read in (read_image, read_float_image, check_image_file):
        with pytest.raises(LionError) as info:
            read(path, "PET")
        assert str(info.value) == (
            f"{path}: the PET file is truncated: it holds {got:,} of the {need:,} bytes its header "
            "describes (30000x30000x30000 float32); copy or export the file again (an "
            "interrupted copy or download?)"
        )


def test_image_larger_than_free_memory_is_one_sentence(
    cohort: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import lion_nnunet.nifti as nifti

    path = tmp_path / "SUV.nii.gz"
    shutil.copy(_studies(cohort)[0] / "SUV.nii.gz", path)
    voxels = int(np.prod(sitk.ReadImage(str(path)).GetSize())) * 4  # float32 phantom
    monkeypatch.setattr(nifti, "available_memory", lambda: voxels)  # room for one copy, not two
    with pytest.raises(LionError, match=re.escape(f"{path}: reading the PET (")) as info:
        read_image(path, "PET")
    assert "needs about" in str(info.value) and "\n" not in str(info.value)
    check_image_file(path, "PET")  # checking keeps nothing: constant memory, no refusal
    monkeypatch.setattr(nifti, "available_memory", lambda: 2 * voxels + 4096)
    assert read_image(path, "PET").GetSize() == sitk.ReadImage(str(path)).GetSize()


def test_reader_refuses_4d_nan_and_accepts_one_frame(cohort: Path, tmp_path: Path) -> None:
    images = wrong_images(cohort)
    for name, says in (("pet_dynamic", "4-D with 2 frames"), ("pet_nan", "4 NaN/inf voxels")):
        path = tmp_path / f"{name}.nii.gz"
        sitk.WriteImage(images[name], str(path))
        with pytest.raises(LionError, match=f"{re.escape(str(path))}: the PET .*{says}"):
            read_float_image(path, "PET")
    pet, suv = _phantom(cohort)
    one = tmp_path / "one_frame.nii.gz"
    sitk.WriteImage(sitk.JoinSeries([pet]), str(one))  # 4-D with a single frame: a volume
    image, array = read_float_image(one, "PET")
    assert image.GetSize() == pet.GetSize()
    np.testing.assert_array_equal(array, suv)


# --- predict ----------------------------------------------------------------------------------


def _predict(inp: Path, model: Path, out: Path, *extra: str) -> int:
    return main(["predict", "-i", str(inp), "-m", str(model), "-o", str(out), "-f", "0",
                 "--device", "cpu", "--disable-tta", "--no-pbar", *extra])  # fmt: skip


def test_predict_folder_with_one_corrupt_case_among_three(
    cohort: Path, random_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    folders = autopet_tree(cohort, tmp_path / "autopet")
    corrupt = folders[1] / "SUV.nii.gz"
    break_file(corrupt, "truncated")
    out = tmp_path / "out"
    assert _predict(tmp_path / "autopet", random_model, out, "--json") == 1
    captured = capsys.readouterr()
    assert f"{corrupt}: the PET file is truncated" in captured.err
    assert "1 case(s) not predicted" in captured.err
    result = json.loads(captured.out)
    assert len(result["predicted"]) == 2 and len(result["failed"]) == 1
    cases = sorted(p for p in out.iterdir() if p.is_dir())
    assert len(cases) == 2  # the failed case has no output folder
    inputs = {json.loads((c / "report.json").read_text())["input"] for c in cases}
    assert inputs == {str(folders[0] / "SUV.nii.gz"), str(folders[2] / "SUV.nii.gz")}
    assert all((c / "tumor.nii.gz").stat().st_size > 0 for c in cases)
    summary = pd.read_csv(out / "summary.csv")
    assert sorted(summary["case_id"]) == sorted(c.name for c in cases)


def test_overwrite_then_broken_input_leaves_no_stale_case(
    cohort: Path, random_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """A case predicted once, its PET then broken, re-run with --overwrite: the earlier outputs
    go (summary.csv must not list them as this run's), the other cases are predicted again."""
    folders = autopet_tree(cohort, tmp_path / "autopet")
    out = tmp_path / "out"
    assert _predict(tmp_path / "autopet", random_model, out, "--json") == 0
    first = json.loads(capsys.readouterr().out)["predicted"]
    assert len(first) == 3 and len(pd.read_csv(out / "summary.csv")) == 3
    break_file(folders[1] / "SUV.nii.gz", "truncated")
    assert _predict(tmp_path / "autopet", random_model, out, "--json", "--overwrite") == 1
    result = json.loads(capsys.readouterr().out)
    (failed,) = result["failed"]
    assert not (out / failed).exists()
    assert sorted(result["predicted"]) == sorted(c for c in first if c != failed)
    assert sorted(pd.read_csv(out / "summary.csv")["case_id"]) == sorted(result["predicted"])


@pytest.mark.parametrize("kind", BROKEN)
def test_predict_refuses_a_broken_file(
    cohort: Path, random_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture, kind: str
) -> None:
    (folder,) = autopet_tree(cohort, tmp_path / "autopet", n=1)
    path = folder / "SUV.nii.gz"
    break_file(path, kind)
    out = tmp_path / "out"
    assert _predict(path, random_model, out) == 1
    assert f"{path}: the PET file {SAYS[kind]}" in capsys.readouterr().err
    assert not out.exists() or not any(out.iterdir())  # no output for it, no summary.csv


def test_predict_checks_values_per_case(
    cohort: Path,
    random_model: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    caplog: pytest.LogCaptureFixture,
) -> None:
    folder = tmp_path / "pets"
    folder.mkdir()
    for name, image in wrong_images(cohort).items():
        sitk.WriteImage(image, str(folder / f"{name}.nii.gz"))
    out = tmp_path / "out"
    assert _predict(folder, random_model, out, "--json") == 1
    captured = capsys.readouterr()
    refused = {"ct_clipped": "looks like a CT in HU", "pet_nan": "4 NaN/inf voxels",
               "pet_dynamic": "4-D with 2 frames"}  # fmt: skip
    warned = {"pet_kbqml": "looks like kBq/ml", "seg_as_pet": "looks like a label map",
              "pet_negatives": "negative SUV voxels"}  # fmt: skip
    for name, says in {**refused, **warned}.items():  # one logged line each, naming its file
        assert re.search(f"{re.escape(str(folder / name))}.nii.gz: [^\n]*{says}", caplog.text)
    assert f"{len(refused)} case(s) not predicted" in captured.err
    assert all(f"{folder / name}.nii.gz" in captured.err for name in refused)
    assert "channel" not in captured.err  # a 4-D PET is a dynamic PET, not channels
    result = json.loads(captured.out)
    assert sorted(result["failed"]) == sorted(refused)
    assert sorted(result["predicted"]) == sorted(warned)
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == sorted(warned)
    assert sorted(pd.read_csv(out / "summary.csv")["case_id"]) == sorted(warned)


def test_repeated_case_ids_name_the_inputs(cohort: Path, tmp_path: Path) -> None:
    folder = tmp_path / "pets"
    folder.mkdir()
    for name in ("patient 7.nii.gz", "patient-7.nii.gz"):  # both sanitise to patient-7
        shutil.copy(_studies(cohort)[0] / "SUV.nii.gz", folder / name)
    with pytest.raises(LionError, match="case ids repeat") as e:
        discover_cases(folder)
    assert str(folder / "patient 7.nii.gz") in str(e.value)
    assert str(folder / "patient-7.nii.gz") in str(e.value)


# --- converters -------------------------------------------------------------------------------


def _raw(nnunet_dirs: dict, dataset: str) -> Path:
    return Path(nnunet_dirs["nnUNet_raw"]) / dataset


@pytest.mark.parametrize("kind", BROKEN)
def test_convert_autopet_refuses_a_broken_file(
    cohort: Path, tmp_path: Path, nnunet_dirs: dict, capsys: pytest.CaptureFixture, kind: str
) -> None:
    folders = autopet_tree(cohort, tmp_path / "autopet")
    path = folders[2] / "SUV.nii.gz"
    break_file(path, kind)
    argv = ["convert", "autopet", "--input", str(tmp_path / "autopet"), "--tracer", "fdg",
            "--no-organs", "--dataset-id", "731", "--name", "In", "-np", "1",
            "--no-pbar"]  # fmt: skip
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert f"{path}: the PET file {SAYS[kind]}" in err and "nothing was written" in err
    assert not _raw(nnunet_dirs, "Dataset731_In").exists()
    shutil.copy(_studies(cohort)[2] / "SUV.nii.gz", path)  # the good cohort converts
    assert main(argv) == 0
    assert len(list((_raw(nnunet_dirs, "Dataset731_In") / "imagesTr").glob("*.nii.gz"))) == 3


def _manifest(cohort: Path, tmp_path: Path, pets: dict[str, Path]) -> Path:
    rows = [f"{cid},{pet},{_studies(cohort)[0] / 'SEG.nii.gz'}" for cid, pet in pets.items()]
    path = tmp_path / "manifest.csv"
    path.write_text("case_id,pet,tumor\n" + "\n".join(rows) + "\n")
    return path


def _convert_manifest(manifest: Path) -> int:
    return main(["convert", "manifest", "--input", str(manifest), "--tracer", "fdg", "--no-organs",
                 "--dataset-id", "732", "--name", "Man", "-np", "1", "--no-pbar"])  # fmt: skip


@pytest.mark.parametrize("kind", BROKEN)
def test_convert_manifest_refuses_a_broken_file(
    cohort: Path, tmp_path: Path, nnunet_dirs: dict, capsys: pytest.CaptureFixture, kind: str
) -> None:
    good, bad = tmp_path / "good_SUV.nii.gz", tmp_path / "bad_SUV.nii.gz"
    for path in (good, bad):
        shutil.copy(_studies(cohort)[0] / "SUV.nii.gz", path)
    break_file(bad, kind)
    assert _convert_manifest(_manifest(cohort, tmp_path, {"good": good, "bad": bad})) == 1
    err = capsys.readouterr().err
    assert f"{bad}: the PET file {SAYS[kind]}" in err and "nothing was written" in err
    assert not _raw(nnunet_dirs, "Dataset732_Man").exists()


def test_convert_manifest_checks_values_per_case(
    cohort: Path,
    tmp_path: Path,
    nnunet_dirs: dict,
    capsys: pytest.CaptureFixture,
    caplog: pytest.LogCaptureFixture,
) -> None:
    pets = {}
    for name, image in wrong_images(cohort).items():
        if name != "pet_dynamic":  # refused from its header, before anything is written
            pets[name] = tmp_path / f"{name}.nii.gz"
            sitk.WriteImage(image, str(pets[name]))
    assert _convert_manifest(_manifest(cohort, tmp_path, pets)) == 1
    err = capsys.readouterr().err
    assert "2 of 5 case(s) failed" in err
    assert "ct_clipped.nii.gz: PET minimum is -1024" in err and "looks like a CT in HU" in err
    assert "pet_nan.nii.gz: the PET has 4 NaN/inf voxels" in err
    assert "pet_kbqml.nii.gz: the body's median value" in caplog.text
    assert "seg_as_pet.nii.gz: only 2 distinct integer values" in caplog.text
    assert "pet_negatives.nii.gz: " in caplog.text and "negative SUV voxels" in caplog.text
    images = _raw(nnunet_dirs, "Dataset732_Man") / "imagesTr"
    assert sorted(p.name for p in images.glob("*.nii.gz")) == [
        "pet_kbqml_0000.nii.gz", "pet_negatives_0000.nii.gz", "seg_as_pet_0000.nii.gz"
    ]  # fmt: skip
    clipped = sitk.GetArrayFromImage(sitk.ReadImage(str(images / "pet_negatives_0000.nii.gz")))
    assert clipped.min() == 0.0  # negatives warned about, then clipped to 0 for training


# --- evaluate, postprocess --------------------------------------------------------------------


@pytest.mark.parametrize("kind", BROKEN)
def test_evaluate_refuses_a_broken_file(
    cohort: Path, tmp_path: Path, capsys: pytest.CaptureFixture, kind: str
) -> None:
    gt, pred, pets = tmp_path / "labelsTs", tmp_path / "pred", tmp_path / "imagesTs"
    for folder in (gt, pred, pets):
        folder.mkdir()
    for k, case in enumerate(("PETCT_0af7ffe12a", "PETCT_1b1a6c5e8f")):
        shutil.copy(_studies(cohort)[k] / "SEG.nii.gz", gt / f"{case}.nii.gz")
        shutil.copy(_studies(cohort)[k] / "SEG.nii.gz", pred / f"{case}.nii.gz")
        shutil.copy(_studies(cohort)[k] / "SUV.nii.gz", pets / f"{case}_0000.nii.gz")
    argv = ["evaluate", "--pred", str(pred), "--gt", str(gt), "--pet", str(pets), "-o",
            str(tmp_path / "eval"), "-np", "1", "--no-pbar"]  # fmt: skip
    assert main(argv) == 0  # the good cases evaluate
    assert len(pd.read_csv(tmp_path / "eval" / "per_case.csv")) == 2
    capsys.readouterr()
    broken = pets / "PETCT_1b1a6c5e8f_0000.nii.gz"
    break_file(broken, kind)
    assert main([*argv, "--overwrite"]) == 1
    assert f"{broken}: the PET file {SAYS[kind]}" in capsys.readouterr().err


def _postprocess_inputs(cohort: Path, tmp_path: Path) -> tuple[Path, Path]:
    pred, pets = tmp_path / "pred", tmp_path / "imagesTs"
    pred.mkdir()
    pets.mkdir()
    for k, case in enumerate(("PETCT_0af7ffe12a", "PETCT_1b1a6c5e8f")):
        shutil.copy(_studies(cohort)[k] / "SEG.nii.gz", pred / f"{case}.nii.gz")
        shutil.copy(_studies(cohort)[k] / "SUV.nii.gz", pets / f"{case}_0000.nii.gz")
    labels = get_label_set("fdg").labels()
    (pred / "dataset.json").write_text(json.dumps({"labels": labels, "lion": {"tracer": "fdg"}}))
    return pred, pets


@pytest.mark.parametrize("kind", BROKEN)
def test_postprocess_names_a_broken_pet_and_writes_the_others(
    cohort: Path, tmp_path: Path, capsys: pytest.CaptureFixture, kind: str
) -> None:
    pred, pets = _postprocess_inputs(cohort, tmp_path)
    broken = pets / "PETCT_1b1a6c5e8f_0000.nii.gz"
    break_file(broken, kind)
    out = tmp_path / "out"
    assert main(["postprocess", "-i", str(pred), "--pet", str(pets), "-o", str(out),
                 "--no-pbar"]) == 1  # fmt: skip
    err = capsys.readouterr().err
    assert f"{broken}: the PET file {SAYS[kind]}" in err and "PETCT_1b1a6c5e8f" in err
    assert (out / "PETCT_0af7ffe12a" / "report.json").is_file()
    assert not (out / "PETCT_1b1a6c5e8f").exists()
    assert list(pd.read_csv(out / "summary.csv")["case_id"]) == ["PETCT_0af7ffe12a"]


# --- the API ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", BROKEN)
def test_api_refuses_a_broken_file(cohort: Path, tmp_path: Path, api_model, kind: str) -> None:
    path = tmp_path / "SUV.nii.gz"
    shutil.copy(_studies(cohort)[0] / "SUV.nii.gz", path)
    break_file(path, kind)
    with pytest.raises(LionError, match=re.escape(f"{path}: the PET file {SAYS[kind]}")):
        api_model.segment(path)


def test_api_applies_the_cli_checks(cohort: Path, tmp_path: Path, api_model) -> None:
    pet, suv = _phantom(cohort)
    good = api_model.segment(pet, case_id="PETCT_0af7ffe12a")
    assert good.warnings == [] and good.tumor.GetSize() == pet.GetSize()
    assert good.report["case_id"] == "PETCT_0af7ffe12a" and "tmtv_ml" in good.report
    path = tmp_path / "SUV.nii.gz"
    sitk.WriteImage(pet, str(path))
    from_file = api_model.segment(path, case_id="PETCT_0af7ffe12a")
    assert from_file.report["tmtv_ml"] == good.report["tmtv_ml"]
    bqml = _like(suv * KBQ_PER_SUV * 1000, pet)  # Bq/ml: refused, as lion predict refuses it
    with pytest.raises(LionError, match=r"bqml: PET maximum is \d+.*looks like Bq/ml"):
        api_model.segment(bqml, case_id="bqml")
    images = wrong_images(cohort)
    for name, says in (("ct_clipped", "looks like a CT in HU"), ("pet_nan", "NaN/inf"),
                       ("pet_dynamic", "dynamic PET")):  # fmt: skip
        with pytest.raises(LionError, match=f"{name}: .*{says}"):
            api_model.segment(images[name], case_id=name)
    for name, says in (("pet_kbqml", "looks like kBq/ml"), ("seg_as_pet", "label map"),
                       ("pet_negatives", "negative SUV voxels")):  # fmt: skip
        result = api_model.segment(images[name], case_id=name)
        assert len(result.warnings) == 1 and says in result.warnings[0]
        assert result.tumor.GetSize() == pet.GetSize()


def test_api_takes_predict_options(random_model: Path) -> None:
    import lion_nnunet

    options = PredictOptions(folds=("0",), device="cpu", use_mirroring=False, min_volume_ml=2.0)
    model = lion_nnunet.load_model(random_model, options=options)
    assert model.options.min_volume_ml == 2.0 and tuple(model.info.folds) == ("0",)
    with pytest.raises(LionError, match="both as options= and as arguments"):
        lion_nnunet.load_model(random_model, device="cpu", options=options)
    with pytest.raises(LionError, match="--device 'tpu'"):
        lion_nnunet.load_model(random_model, device="tpu")


# --- the value checks themselves --------------------------------------------------------------


def test_value_checks_on_phantoms(cohort: Path, tmp_path: Path) -> None:
    """Phantom SUVs pass silently; each wrong image gets its own refusal or warning."""
    for k in range(3):
        assert check_pet_values(_phantom(cohort, k)[1], f"study {k}") == []
    make_cohort(tmp_path / "psma", "psma", 2, seed=1, progress=False)
    psma = sorted((tmp_path / "psma" / "studies").rglob("SUV.nii.gz"))
    assert len(psma) == 2
    for path in psma:
        assert check_pet_values(sitk.GetArrayFromImage(sitk.ReadImage(str(path))), path) == []
    _, ct = _phantom(cohort, name="CTres")  # unclipped CT: a CT, not "Bq/ml"
    with pytest.raises(LionError, match="looks like a CT in HU"):
        check_pet_values(ct, "CTres.nii.gz")
    _, suv = _phantom(cohort)
    body = suv[suv > suv.mean()]
    # the phantom's body median in SUV, and the same body in kBq/ml (hand computation)
    assert np.median(body) < 2.0 < np.median(body) * KBQ_PER_SUV
    assert math.isclose(KBQ_PER_SUV, 3.42, abs_tol=0.01)
