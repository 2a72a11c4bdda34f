"""Synthetic cohorts: layout, grids, SUV sanity, bookkeeping, determinism, disease placement."""

from __future__ import annotations

import json
from pathlib import Path

import cc3d
import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from scipy.ndimage import binary_dilation

from lion_nnunet.cli import main
from lion_nnunet.errors import LionError
from lion_nnunet.labels import all_totalseg_classes, get_label_set
from lion_nnunet.synthetic.phantom_case import SIZES, synthesize_case
from lion_nnunet.synthetic.phantoms import assign_diseases, make_cohort

CONTRACT_COLUMNS = {
    "patient_id", "study", "study_dir", "organs_dir", "tracer", "disease", "center", "scanner",
    "n_lesions", "tumor_volume_ml", "n_lesions_near_organs",
}  # fmt: skip


def _img(path: Path) -> sitk.Image:
    return sitk.ReadImage(str(path))


def _arr(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(_img(path))


def _on_pet(mask: sitk.Image, pet: sitk.Image) -> np.ndarray:
    return sitk.GetArrayFromImage(
        sitk.Resample(mask, pet, sitk.Transform(), sitk.sitkNearestNeighbor, 0)
    )


def test_layout_grids_and_suv(fdg_cohort: Path) -> None:
    cases = pd.read_csv(fdg_cohort / "cases.csv")
    assert len(cases) == 10 and set(cases.columns) >= CONTRACT_COLUMNS
    assert (cases.tracer == "fdg").all() and set(cases.scanner) == {
        "scanner_A", "scanner_B", "scanner_C"
    }  # fmt: skip
    for row in cases.itertuples():
        study = fdg_cohort / "studies" / row.study_dir
        pet, seg, ct = (_img(study / f) for f in ("SUV.nii.gz", "SEG.nii.gz", "CTres.nii.gz"))
        for img in (seg, ct):  # SEG and CTres on the PET grid
            assert img.GetSize() == pet.GetSize() and img.GetSpacing() == pet.GetSpacing()
            assert img.GetOrigin() == pet.GetOrigin() and img.GetDirection() == pet.GetDirection()
        assert pet.GetDirection() == (1, 0, 0, 0, 1, 0, 0, 0, 1)
        assert pet.GetPixelID() == sitk.sitkFloat32 and seg.GetPixelID() == sitk.sitkUInt8
        suv = sitk.GetArrayFromImage(pet)
        assert np.isfinite(suv).all() and suv.min() >= 0
        assert set(np.unique(sitk.GetArrayFromImage(seg))) <= {0, 1}
        nz, ny, nx = suv.shape
        assert 32 <= nx <= 48 and 32 <= ny <= 48 and 80 <= nz <= 112
        # organs: a finer, shifted grid that overlaps the PET in physical space
        liver = _img(fdg_cohort / "organs" / row.organs_dir / "liver.nii.gz")
        assert max(liver.GetSpacing()) < min(pet.GetSpacing())
        assert liver.GetOrigin() != pet.GetOrigin()
        liver_on_pet = _on_pet(liver, pet) > 0
        assert liver_on_pet.sum() > 50
        # physiology: liver ~2-2.6, hot brain, very hot bladder, background ~0.5-1
        brain = _on_pet(_img(fdg_cohort / "organs" / row.organs_dir / "brain.nii.gz"), pet) > 0
        bladder = _on_pet(
            _img(fdg_cohort / "organs" / row.organs_dir / "urinary_bladder.nii.gz"), pet
        )
        assert 1.6 < np.median(suv[liver_on_pet]) < 3.0
        assert np.median(suv[brain]) > 5 and suv[bladder > 0].max() > 8
        # head is up: brain above bladder along numpy z
        assert np.argwhere(brain)[:, 0].mean() > np.argwhere(bladder)[:, 0].mean()
        ct_arr = sitk.GetArrayFromImage(ct)
        assert ct_arr.min() <= -900 and ct_arr.max() >= 300  # air and bone in HU


def test_organ_files_follow_the_label_set(fdg_cohort: Path, psma_cohort: Path) -> None:
    folder = fdg_cohort / "organs" / "SYNFDG_0000" / "study_01"
    expected = {s.name for o in get_label_set("fdg").organs for s in o.sources}
    assert {p.name.removesuffix(".nii.gz") for p in folder.iterdir()} == expected
    for path in folder.iterdir():
        assert set(np.unique(_arr(path))) == {0, 1}, path.name
    # --ml: both TotalSegmentator tasks, v2 ids of every organ drawn (as TotalSegmentator does)
    folder = psma_cohort / "organs" / "SYNPSMA_0000" / "study_01"
    assert {p.name for p in folder.iterdir()} == {"total.nii.gz", "head_glands_cavities.nii.gz"}
    for task in ("total", "head_glands_cavities"):
        ids = {c.id for c in all_totalseg_classes() if c.task == task}
        assert set(np.unique(_arr(folder / f"{task}.nii.gz"))) == {0} | ids
    psma = get_label_set("psma")
    assert set(psma.totalseg_id_lookup("total")) <= set(np.unique(_arr(folder / "total.nii.gz")))


def test_lesion_bookkeeping(fdg_cohort: Path) -> None:
    cases = pd.read_csv(fdg_cohort / "cases.csv")
    lesions = pd.read_csv(fdg_cohort / "lesions.csv")
    for row in cases.itertuples():
        study = fdg_cohort / "studies" / row.study_dir
        seg_img = _img(study / "SEG.nii.gz")
        seg = sitk.GetArrayFromImage(seg_img)
        ml = seg.sum() * np.prod(seg_img.GetSpacing()) / 1000
        assert ml == pytest.approx(row.tumor_volume_ml, abs=1e-3)
        mine = lesions[lesions.patient_id == row.patient_id]
        assert len(mine) == row.n_lesions == cc3d.connected_components(seg, connectivity=26).max()
        assert mine.volume_ml.sum() == pytest.approx(row.tumor_volume_ml, abs=1e-3)
        assert (row.n_lesions == 0) == (row.disease == "negative")
        assert (mine.near_organ.notna()).sum() == row.n_lesions_near_organs
    assert set(cases.disease) == {"lymphoma", "lung_cancer", "melanoma", "negative"}
    assert cases.n_lesions_near_organs.sum() > 0
    assert (
        lesions.volume_ml.min() > 0 and lesions.volume_ml.max() <= 2 * SIZES["small"].lesion_ml[1]
    )


def test_lesions_near_organs_really_touch_them(psma_cohort: Path) -> None:
    """near_organ is measured, not assumed: check against the CT-grid organ output."""
    lesions = pd.read_csv(psma_cohort / "lesions.csv").dropna(subset=["near_organ"])
    assert len(lesions) > 0
    ids = {c.name: c.id for c in all_totalseg_classes()}
    for les in lesions.itertuples():
        study = psma_cohort / "studies" / les.patient_id / les.study
        pet = _img(study / "SUV.nii.gz")
        seg = cc3d.connected_components(sitk.GetArrayFromImage(_img(study / "SEG.nii.gz")))
        organs = psma_cohort / "organs" / les.patient_id / les.study
        task = "head_glands_cavities" if "gland" in les.near_organ else "total"
        organ = _on_pet(_img(organs / f"{task}.nii.gz"), pet) == ids[les.near_organ]
        index = np.round(
            (np.array([les.center_x_mm, les.center_y_mm, les.center_z_mm]) - pet.GetOrigin())
            / pet.GetSpacing()
        ).astype(int)[::-1]
        component = seg == seg[tuple(index)] if seg[tuple(index)] else seg > 0
        near = binary_dilation(component, np.ones((3, 3, 3), bool), iterations=2)
        assert (near & organ).any(), les


def test_deterministic_resumable_and_prefix_stable(tmp_path: Path) -> None:
    a = make_cohort(tmp_path / "a", "psma", 3, seed=5, progress=False)
    b = make_cohort(tmp_path / "b", "psma", 3, seed=5, progress=False)
    pd.testing.assert_frame_equal(a, b)
    pet = "studies/SYNPSMA_0002/study_01/SUV.nii.gz"
    np.testing.assert_array_equal(_arr(tmp_path / "a" / pet), _arr(tmp_path / "b" / pet))
    make_cohort(tmp_path / "c", "psma", 3, seed=6, progress=False)
    assert not np.array_equal(_arr(tmp_path / "a" / pet), _arr(tmp_path / "c" / pet))
    # a re-run skips finished cases (files untouched) and rebuilds an incomplete one
    target = tmp_path / "a" / pet
    mtime = target.stat().st_mtime_ns
    (tmp_path / "a/organs/SYNPSMA_0000/study_01/liver.nii.gz").unlink()
    again = make_cohort(tmp_path / "a", "psma", 3, seed=5, progress=False)
    pd.testing.assert_frame_equal(a, again)
    assert target.stat().st_mtime_ns == mtime
    assert (tmp_path / "a/organs/SYNPSMA_0000/study_01/liver.nii.gz").is_file()
    # growing a cohort keeps its cases: case i does not depend on the cohort size
    grown = make_cohort(tmp_path / "b", "psma", 5, seed=5, progress=False)
    pd.testing.assert_frame_equal(grown.iloc[:3], a)
    assert assign_diseases({"x": 0.5, "y": 0.3, "z": 0.2}, 7)[:4] == assign_diseases(
        {"x": 0.5, "y": 0.3, "z": 0.2}, 4
    )


def test_settings_clash_and_overwrite(tmp_path: Path) -> None:
    make_cohort(tmp_path, "fdg", 2, seed=1, organ_format="masks", progress=False)
    with pytest.raises(LionError, match="holds a cohort made with"):
        make_cohort(tmp_path, "fdg", 2, seed=1, organ_format="ml", progress=False)
    make_cohort(tmp_path, "fdg", 1, seed=1, organ_format="ml", overwrite=True, progress=False)
    assert {p.name for p in (tmp_path / "organs/SYNFDG_0000/study_01").iterdir()} == {
        "total.nii.gz", "head_glands_cavities.nii.gz"
    }  # fmt: skip
    assert not (tmp_path / "studies/SYNFDG_0001").exists()  # overwrite removed the old cohort
    foreign = tmp_path / "foreign"
    (foreign / "studies").mkdir(parents=True)
    with pytest.raises(LionError, match="did not write"):
        make_cohort(foreign, "fdg", 1, overwrite=True, progress=False)


def test_masks_and_ml_formats_describe_the_same_organs(tmp_path: Path) -> None:
    make_cohort(tmp_path / "m", "psma", 1, seed=2, organ_format="masks", progress=False)
    make_cohort(tmp_path / "l", "psma", 1, seed=2, organ_format="ml", progress=False)
    case = "organs/SYNPSMA_0000/study_01"
    for organ in get_label_set("psma").organs:
        for src in organ.sources:
            mask = _arr(tmp_path / "m" / case / f"{src.name}.nii.gz")
            ml = _arr(tmp_path / "l" / case / f"{src.task}.nii.gz")
            assert mask.any()
            np.testing.assert_array_equal(mask.astype(bool), ml == src.id)


def _bins(out: Path) -> np.ndarray:
    """Lesion centroids binned into 50 x 50 x 60 mm blocks of the physical frame."""
    les = pd.read_csv(out / "lesions.csv")
    xyz = np.stack([les.center_x_mm + 150, les.center_y_mm + 150, les.center_z_mm], axis=1)
    return (xyz // np.array([50, 50, 60])).astype(int)


def test_diseases_place_lesions_differently(tmp_path: Path) -> None:
    mixed = ["lymphoma", "lung_cancer", "melanoma"]
    make_cohort(tmp_path / "mixed", "fdg", 20, seed=0, diseases=mixed, progress=False)
    make_cohort(tmp_path / "lymph", "fdg", 20, seed=0, diseases=["lymphoma"], progress=False)
    lesions = pd.read_csv(tmp_path / "mixed/lesions.csv").merge(
        pd.read_csv(tmp_path / "mixed/cases.csv")[["patient_id", "disease"]], on="patient_id"
    )
    regions = lesions.groupby("disease").region.agg(set)
    assert "subcutaneous" in regions["melanoma"] and "subcutaneous" not in regions["lymphoma"]
    assert "lung" in regions["lung_cancer"] and "lung" not in regions["lymphoma"]
    # lymphoma lesions sit nearer the body axis than melanoma's subcutaneous ones
    radial = np.hypot(lesions.center_x_mm, lesions.center_y_mm)
    by_disease = radial.groupby(lesions.disease).median()
    assert by_disease["melanoma"] > by_disease["lymphoma"]
    # with as many lesions, a mixed-disease cohort covers more body blocks than lymphoma alone
    a, b = _bins(tmp_path / "mixed"), _bins(tmp_path / "lymph")
    n = min(len(a), len(b))
    assert n > 40
    assert len({tuple(k) for k in a[:n]}) > len({tuple(k) for k in b[:n]})


def test_wholebody_case_in_memory() -> None:
    case = synthesize_case("psma", 0, 0, "wholebody", "prostate_cancer")
    assert case.suv.shape == (400, 200, 200) and case.pet_grid.spacing_xyz == (4.0, 4.0, 4.0)
    assert case.ct_grid.spacing_xyz == (1.5, 1.5, 1.5)
    assert case.suv.dtype == np.float32 and case.seg.dtype == np.uint8
    ct_extent = np.array(case.ct_grid.shape_zyx[::-1]) * case.ct_grid.spacing_xyz
    assert (ct_extent[:2] < np.array(case.suv.shape[::-1][:2]) * 4.0).all()  # cropped to body
    assert case.seg.sum() * case.voxel_ml == pytest.approx(case.row()["tumor_volume_ml"], 1e-3)


def test_autopet_grid() -> None:
    """The autoPET FDG PET grid (Biograph mCT): 400 x 400 voxels of 2.0364 mm, 3 mm slices."""
    from lion_nnunet.synthetic.phantom_case import pet_grid

    grid = pet_grid(SIZES["autopet"])
    assert grid.shape_zyx == (300, 400, 400)
    assert grid.spacing_xyz == (2.0364, 2.0364, 3.0)
    # centred in x and y: the first and last voxel centres are symmetric about 0
    assert grid.origin_xyz[0] == pytest.approx(-399 * 2.0364 / 2)


def test_cli_and_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "x"
    argv = ["phantoms", "--tracer", "fdg", "--cases", "3", "--out", str(out), "--no-pbar"]
    assert main([*argv, "-np", "2", "--diseases", "lymphoma:2,negative", "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["cases"] == 3 and answer["diseases"] == {"lymphoma": 2, "negative": 1}
    assert main([*argv, "-np", "1", "--diseases", "lymphoma:2,negative"]) == 0  # resumes
    said = capsys.readouterr().out
    assert f"wrote 3 fdg studies to {out} (2 lymphoma, 1 negative);" in said  # as asked, no dict

    def fails(args: list[str], message: str) -> None:
        assert main(["phantoms", *args, "--no-pbar"]) == 1
        assert message in capsys.readouterr().err

    y = str(tmp_path / "y")
    fails(["--tracer", "fdg", "--cases", "0", "--out", y], "--cases must be a whole number")
    fails(["--tracer", "psma", "--cases", "2", "--out", y, "--diseases", "lymphoma"],
          "unknown psma disease(s) ['lymphoma']")  # fmt: skip
    fails(["--tracer", "fdg", "--cases", "2", "--out", y, "--diseases", "lymphoma:x"],
          "is not a number")  # fmt: skip
    fails(["--tracer", "fdg", "--cases", "2", "--out", y, "--diseases", "lymphoma:0"],
          "must be positive")  # fmt: skip
    (tmp_path / "file").write_text("x")
    fails(["--tracer", "fdg", "--cases", "1", "--out", str(tmp_path / "file")], "not a folder")
    assert not (tmp_path / "y").exists()  # nothing half-written
    with pytest.raises(SystemExit) as exc:
        main(["phantoms", "--tracer", "ct", "--cases", "1", "--out", str(tmp_path)])
    assert exc.value.code == 2


def test_followups_truth_agrees_with_the_written_studies(tmp_path: Path) -> None:
    plain = make_cohort(tmp_path / "plain", "fdg", 1, diseases=["melanoma"], progress=False)
    args = ["phantoms", "--tracer", "fdg", "--cases", "1", "--diseases", "melanoma"]
    assert main([*args, "--followups", "-1", "--out", str(tmp_path / "bad")]) == 1
    assert not (tmp_path / "bad").exists()
    assert main([*args, "--followups", "2", "--out", str(tmp_path / "fu"), "--no-pbar"]) == 0
    out = tmp_path / "fu"
    truth = pd.read_csv(out / "followups.csv", dtype={"followup_lesion": "Int64"})
    cases = pd.read_csv(out / "cases.csv")
    assert list(cases["study"]) == ["study_01", "study_02", "study_03"]
    assert len(plain) == 1 and not truth.empty
    # the baseline is the study a cohort without follow-ups has: follow-ups only add studies
    pet = "studies/SYNFDG_0000/study_01/SUV.nii.gz"
    np.testing.assert_array_equal(_arr(out / pet), _arr(tmp_path / "plain" / pet))
    for study, rows in truth.groupby("study"):
        seg = _arr(out / "studies/SYNFDG_0000" / study / "SEG.nii.gz")
        voxel_ml = (
            float(np.prod(_img(out / "studies/SYNFDG_0000" / study / "SEG.nii.gz").GetSpacing()))
            / 1000
        )
        n = cc3d.connected_components(seg, connectivity=26, return_N=True)[1]
        assert n == rows["followup_lesion"].notna().sum()
        assert seg.sum() * voxel_ml == pytest.approx(rows["followup_volume_ml"].sum(), abs=1e-3)
        shift = rows[["shift_x_mm", "shift_y_mm", "shift_z_mm"]].iloc[0].to_numpy(float)
        assert np.abs(shift).min() >= 25.0  # the patient moved by centimetres on every axis
        assert set(rows["expected_percist"]) <= {"PMR", "PMD", "CMR"}
        assert (out / "organs/SYNFDG_0000" / study / "liver.nii.gz").is_file()
    assert {"vanish", "appear"} <= set(truth["change"])
    assert (truth.query("change == 'appear'")["baseline_lesion"].isna()).all()


def _snr_scene(contrast: float, noise_sd: float, side: int = 4, air_from_z: int = 20) -> float:
    """Rose SNR of a cube lesion ``contrast`` SUV above a uniform body of 1 SUV (air from slice
    ``air_from_z`` on), with independent per-voxel noise of SD ``noise_sd`` (a fixed draw) put
    through the scanner's 0.5-voxel reconstruction filter, as :func:`scan` does."""
    from scipy.ndimage import gaussian_filter

    from lion_nnunet.synthetic import phantom_anatomy as anat
    from lion_nnunet.synthetic.phantom_case import lesion_snr

    grid = anat.Grid((20, 20, 20), (6.0, 6.0, 6.0), (0.0, 0.0, 0.0))
    activity = np.ones(grid.shape_zyx, dtype=np.float64)
    activity[air_from_z:] = 0.0
    lesion = np.zeros(grid.shape_zyx, dtype=np.uint16)
    z0 = min(8, air_from_z - side)
    lesion[z0 : z0 + side, 8 : 8 + side, 8 : 8 + side] = 1
    activity[lesion > 0] += contrast
    fwhm = 7.5
    sigma = fwhm / 2.3548 / 6.0
    expected = gaussian_filter(gaussian_filter(activity, sigma=sigma), sigma=0.5)
    white = np.random.default_rng(0).normal(0.0, 1.0, activity.shape)
    noisy = expected + noise_sd * gaussian_filter(white, sigma=0.5)
    return lesion_snr(lesion, activity, noisy, grid, fwhm)[0]


def test_rose_snr_is_contrast_over_independent_noise_times_root_size() -> None:
    """Rose's SNR: checked by its physics and by a hand estimate, not by a copy of the code."""
    base = _snr_scene(2.0, 0.3)
    assert base > 5  # a 2-SUV-hot 13.8 ml cube in 0.3 SUV of noise is plainly seen
    # the scanner's filters are linear: twice the contrast, twice the SNR; twice the noise, half
    assert _snr_scene(4.0, 0.3) == pytest.approx(2 * base, rel=1e-9)
    assert _snr_scene(2.0, 0.6) == pytest.approx(base / 2, rel=1e-9)
    assert abs(_snr_scene(0.0, 0.3)) < 1e-9  # no contrast: nothing to see, whatever its size
    assert _snr_scene(-0.5, 0.3) < 0  # colder than its surroundings
    # by hand: an 8-voxel cube 1 SUV above the body, noise SD 1 before the filter: its blurred
    # edges and the spill into the shell leave 0.6-0.95 SUV of contrast, times sqrt(512) = 22.6.
    # Taking the filtered noise's SD (about half) as the noise would double it.
    assert 0.6 * 512**0.5 < _snr_scene(1.0, 1.0, side=8) < 0.95 * 512**0.5
    # a lesion as bright as the body it lies in, at the body's edge: the air beyond the skin
    # is not its background (counting the air, its SNR would be about 4); the PSF's spill into
    # the air leaves it a little darker than the tissue beside it
    assert -1.0 < _snr_scene(0.0, 0.3, air_from_z=12) <= 0.0


def test_visible_annotation_keeps_the_images_and_drops_only_unseen_lesions(
    tmp_path: Path,
) -> None:
    every, seen = tmp_path / "all", tmp_path / "seen"
    make_cohort(every, "fdg", 12, seed=1, progress=False)
    make_cohort(seen, "fdg", 12, seed=1, progress=False, annotate="visible")
    all_rows, seen_rows = pd.read_csv(every / "lesions.csv"), pd.read_csv(seen / "lesions.csv")
    keys = ["patient_id", "lesion"]
    dropped = all_rows.merge(seen_rows[keys], on=keys, how="left", indicator=True)
    dropped = dropped[dropped._merge == "left_only"]
    # some lesions of these phantoms are too faint to see, most are not; every one left out is
    # under Rose's 5 and every one kept is at least 5
    assert 0 < len(dropped) < len(all_rows)
    assert (dropped.rose_snr < 5).all() and (seen_rows.rose_snr >= 5).all()
    cases = pd.read_csv(seen / "cases.csv")
    for row in cases.itertuples():
        study = f"studies/{row.study_dir}"
        suv_all = sitk.GetArrayFromImage(_img(every / study / "SUV.nii.gz"))
        suv_seen = sitk.GetArrayFromImage(_img(seen / study / "SUV.nii.gz"))
        assert np.array_equal(suv_all, suv_seen)  # the same scan, only the mask differs
        ct_all = sitk.GetArrayFromImage(_img(every / study / "CTres.nii.gz"))
        assert np.array_equal(ct_all, sitk.GetArrayFromImage(_img(seen / study / "CTres.nii.gz")))
        seg_all = sitk.GetArrayFromImage(_img(every / study / "SEG.nii.gz")) > 0
        seg = sitk.GetArrayFromImage(_img(seen / study / "SEG.nii.gz")) > 0
        assert not (seg & ~seg_all).any()
        mine = seen_rows[seen_rows.patient_id == row.patient_id]
        assert len(mine) == row.n_lesions == cc3d.connected_components(seg, connectivity=26).max()
        assert mine.volume_ml.sum() == pytest.approx(row.tumor_volume_ml, abs=1e-3)
        # the voxels that left the mask are the dropped lesions' voxels, no more, no fewer
        gone_ml = (seg_all & ~seg).sum() * 0.216  # 6 mm voxels
        mine_dropped = dropped[dropped.patient_id == row.patient_id]
        assert mine_dropped.volume_ml.sum() == pytest.approx(gone_ml, abs=1e-3)
    assert json.loads((seen / ".phantoms" / "settings.json").read_text())["annotate"] == "visible"
    with pytest.raises(LionError, match="--annotate visible is for baseline studies only"):
        make_cohort(tmp_path / "f", "fdg", 2, followups=1, annotate="visible", progress=False)
    with pytest.raises(LionError, match="unknown --annotate 'seen'"):
        make_cohort(tmp_path / "g", "fdg", 2, annotate="seen", progress=False)
