"""`lion clicks simulate` gives the official autoPET IV simulator's clicks, seed for seed.

The expected click files in tests/data/interactive/official_clicks/ were written by the official
script (lab-midas/autoPETCTIV @ 80af68d, clicks/simulate_clicks.py; provenance in that folder's
README.md) on the studies tests/interactive_cases.py rebuilds.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from interactive_cases import STUDIES, affine, make_study, write_studies

from lion_nnunet.cli import main
from lion_nnunet.interactive.clickfile import read_clicks
from lion_nnunet.interactive.simulate import PERCENTILE, robot_clicks

OFFICIAL = Path(__file__).parent / "data" / "interactive" / "official_clicks"


@pytest.fixture(scope="module")
def studies(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("studies")
    write_studies(root / "labelsTs", root / "imagesTs")
    return root


def _simulate(studies: Path, out: Path, *extra: str) -> None:
    argv = ["clicks", "simulate", "--gt", str(studies / "labelsTs"), "--no-pbar", "-o", str(out)]
    assert main([*argv, "--pet", str(studies / "imagesTs"), *extra]) == 0


def _files(folder: Path) -> dict[str, object]:
    return {p.name: json.loads(p.read_text()) for p in sorted(folder.glob("*_clicks.json"))}


@pytest.mark.parametrize(
    ("official", "extra"),
    [("seed42_budget10", []), ("seed7_budget10", ["--seed", "7"]),
     ("seed42_budget3", ["--budget", "3", "--seed", "42"])],
)  # fmt: skip
def test_same_seed_same_clicks_as_the_official_simulator(
    studies: Path, tmp_path: Path, official: str, extra: list[str]
) -> None:
    _simulate(studies, tmp_path / "clicks", *extra)
    expected = _files(OFFICIAL / official)
    assert len(expected) == len(STUDIES)
    assert _files(tmp_path / "clicks") == expected


def test_grand_challenge_form_equals_the_official_one(studies: Path, tmp_path: Path) -> None:
    _simulate(studies, tmp_path / "gc", "--form", "gc")
    assert _files(tmp_path / "gc") == _files(OFFICIAL / "seed42_budget10" / "gc")


def test_another_seed_gives_other_clicks(studies: Path, tmp_path: Path) -> None:
    """The seed is used: 42 and 7 differ for the study with more lesions than the budget."""
    a = _files(OFFICIAL / "seed42_budget10")["PETCT_0af7ffe12a_2002-10-19_clicks.json"]
    b = _files(OFFICIAL / "seed7_budget10")["PETCT_0af7ffe12a_2002-10-19_clicks.json"]
    assert a["tumor"] != b["tumor"]


def test_organ_classes_are_background(studies: Path, tmp_path: Path) -> None:
    """A LION label map (organs + tumor, tumor named in dataset.json) gives the clicks of the
    binary tumor mask the official script saw."""
    labels = tmp_path / "gt"
    labels.mkdir()
    for study in STUDIES:
        pet, tumor = make_study(study)
        organs = np.where(pet > 3.0, 2, 0) + np.where(pet > 6.0, 1, 0)  # 2 liver, 3 kidney
        lion = np.where(tumor > 0, 4, organs).astype(np.uint8)
        nib.save(nib.Nifti1Image(lion, affine()), labels / f"{study.case_id}.nii.gz")
    (labels / "dataset.json").write_text(json.dumps(
        {"labels": {"background": 0, "liver": 2, "kidney": 3, "tumor": 4}}
    ))  # fmt: skip
    argv = ["clicks", "simulate", "--gt", str(labels), "--pet", str(studies / "imagesTs")]
    assert main([*argv, "-o", str(tmp_path / "clicks"), "--no-pbar"]) == 0
    assert _files(tmp_path / "clicks") == _files(OFFICIAL / "seed42_budget10")


def test_clicks_land_where_the_protocol_says_on_a_phantom() -> None:
    """On a whole phantom study (not one the official script saw): tumor clicks on tumor, and
    the background clicks on non-tumor voxels above the 99.75th percentile."""
    from lion_nnunet.synthetic.phantom_case import synthesize_case

    case = synthesize_case("fdg", 3, seed=5, size="small", disease="lymphoma")
    tumor = case.seg.transpose(2, 1, 0) > 0
    pet = case.suv.transpose(2, 1, 0).astype(np.float64)
    clicks = robot_clicks(tumor, pet, budget=10, seed=42)
    assert len(clicks.tumor) == 10 and len(clicks.background) == 10
    assert all(tumor[p] for p in clicks.tumor)
    threshold = np.percentile(pet[~tumor], PERCENTILE)
    assert all(not tumor[p] for p in clicks.background)
    hot = [p for p in clicks.background if pet[p] > threshold]
    assert len(hot) >= 1


def test_official_files_are_read_unchanged(studies: Path) -> None:
    for name in _files(OFFICIAL / "seed42_budget10"):
        case = name[: -len("_clicks.json")]
        simple = read_clicks(OFFICIAL / "seed42_budget10" / name, shape_ijk=(40, 32, 64))
        gc = read_clicks(OFFICIAL / "seed42_budget10" / "gc" / name, shape_ijk=(40, 32, 64))
        assert simple == gc
        expected = json.loads((OFFICIAL / "seed42_budget10" / name).read_text())
        assert [list(p) for p in simple.tumor] == expected["tumor"]
        pet = str(studies / "imagesTs" / f"{case}_0000.nii.gz")
        assert main(["clicks", "check", str(OFFICIAL / "seed42_budget10" / "gc" / name),
                     "--pet", pet]) == 0  # fmt: skip


def test_existing_click_files_are_kept_without_overwrite(
    studies: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "clicks"
    _simulate(studies, out)
    before = _files(out)
    argv = ["clicks", "simulate", "--gt", str(studies / "labelsTs"), "--pet"]
    assert main([*argv, str(studies / "imagesTs"), "-o", str(out), "--seed", "7"]) == 1
    assert "use --overwrite" in capsys.readouterr().err
    assert _files(out) == before


def test_missing_pet_is_one_error_and_nothing_is_written(
    studies: Path, tmp_path: Path, capsys
) -> None:
    images = tmp_path / "images"
    images.mkdir()
    first = STUDIES[0].case_id
    (images / f"{first}_0000.nii.gz").write_bytes(
        (studies / "imagesTs" / f"{first}_0000.nii.gz").read_bytes()
    )
    argv = ["clicks", "simulate", "--gt", str(studies / "labelsTs"), "--pet", str(images)]
    assert main([*argv, "-o", str(tmp_path / "clicks")]) == 1
    err = capsys.readouterr().err
    assert "3 input(s) missing" in err and STUDIES[3].case_id in err
    assert not (tmp_path / "clicks").exists()


# --- the error-driven reader (--from-prediction) -------------------------------------------


def _brute_centre(mask: np.ndarray) -> tuple[int, int, int]:
    """The voxel of ``mask`` farthest from every voxel outside it, first in C order, by brute
    force over all voxel pairs (Euclidean, in voxels)."""
    inside, outside = np.argwhere(mask), np.argwhere(~mask)
    distance = np.sqrt(((inside[:, None, :] - outside[None, :, :]) ** 2).sum(-1)).min(1)
    return tuple(int(v) for v in inside[int(np.argmax(distance))])


def _save(array: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(array.astype(np.uint8), np.diag([4.0, 4.0, 3.0, 1.0])), path)


def test_from_prediction_clicks_the_largest_error_then_the_next(tmp_path: Path) -> None:
    case = "PETCT_0af7ffe12a_2002-10-19"
    gt = np.zeros((14, 12, 10), np.uint8)
    gt[2:7, 2:7, 2:8] = 1  # a lesion the first prediction misses (150 voxels)
    gt[9:12, 8:11, 2:4] = 1  # a lesion it finds
    pred0 = np.zeros_like(gt)
    pred0[9:12, 8:11, 2:4] = 1
    pred0[9:13, 1:4, 5:8] = 1  # a false positive (36 voxels)
    pred1 = pred0.copy()
    pred1[gt > 0] = 1
    _save(gt, tmp_path / "gt" / f"{case}.nii.gz")
    _save(pred0, tmp_path / "pred0" / f"{case}.nii.gz")
    _save(pred1, tmp_path / "pred1" / f"{case}.nii.gz")
    argv = ["clicks", "simulate", "--gt", str(tmp_path / "gt"), "--no-pbar"]
    assert main([*argv, "--from-prediction", str(tmp_path / "pred0"), "-o",
                 str(tmp_path / "c1")]) == 0  # fmt: skip
    missed = np.zeros(gt.shape, bool)
    missed[2:7, 2:7, 2:8] = True
    first = json.loads((tmp_path / "c1" / f"{case}_clicks.json").read_text())
    assert first == {"tumor": [list(_brute_centre(missed))], "background": []}
    assert main([*argv, "--from-prediction", str(tmp_path / "pred1"), "--clicks",
                 str(tmp_path / "c1"), "-o", str(tmp_path / "c2")]) == 0  # fmt: skip
    second = json.loads((tmp_path / "c2" / f"{case}_clicks.json").read_text())
    assert second == {"tumor": first["tumor"], "background": [list(_brute_centre(pred0 > gt))]}


def test_the_nth_voxel_outside_a_component_is_found_without_listing_them() -> None:
    """Checked against listing every outside voxel (np.argwhere, C order)."""
    from lion_nnunet.interactive.simulate import _nth_outside

    rng = np.random.RandomState(0)
    for _ in range(100):
        component = rng.rand(5, 4, 3) < rng.rand()
        outside = np.argwhere(~component)
        if len(outside):
            n = rng.randint(len(outside))
            flat = _nth_outside(np.flatnonzero(component), n)
            assert np.unravel_index(flat, component.shape) == tuple(outside[n])


def test_robot_flags_with_from_prediction_are_refused(
    studies: Path, tmp_path: Path, capsys
) -> None:
    argv = ["clicks", "simulate", "--gt", str(studies / "labelsTs"), "--from-prediction"]
    assert main([*argv, str(studies / "labelsTs"), "--seed", "3", "-o", str(tmp_path)]) == 1
    assert "--seed: the robot user's, not used with --from-prediction" in capsys.readouterr().err


def test_a_pet_on_another_grid_stops_before_any_file(studies: Path, tmp_path: Path, capsys) -> None:
    images = tmp_path / "images"
    shutil.copytree(studies / "imagesTs", images)
    last = images / f"{STUDIES[-1].case_id}_0000.nii.gz"
    moved = nib.load(last)
    shifted = moved.affine.copy()
    shifted[0, 3] += 10.0
    nib.save(nib.Nifti1Image(np.asarray(moved.dataobj), shifted), last)
    argv = ["clicks", "simulate", "--gt", str(studies / "labelsTs"), "--pet", str(images)]
    assert main([*argv, "-o", str(tmp_path / "clicks"), "--no-pbar"]) == 1
    err = capsys.readouterr().err
    assert f"{last}: the PET is on another grid than its ground truth" in err
    assert not list((tmp_path / "clicks").glob("*.json"))
