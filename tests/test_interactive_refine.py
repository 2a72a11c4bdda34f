"""``lion predict --clicks`` and the refinement session: the rule-based edit, by brute force.

Expected masks come from a plain-Python flood fill over explicit 18-neighbour offsets and a
voxel-by-voxel distance loop written here (not from cc3d or the session's boxes): a tumor click
adds exactly the voxels at or above 41 % of the peak within 10 mm, connected to the click and
within 50 mm of it; a background click removes exactly the 18-connected component holding it;
every other voxel keeps its value bit for bit.
"""

from __future__ import annotations

import itertools
import json
from collections import deque
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from lion_nnunet.cli import main
from lion_nnunet.interactive.clickfile import Clicks, write_clicks
from lion_nnunet.interactive.session import RefinementSession, apply_clicks

#: 18-connectivity: neighbours sharing a face or an edge (|dz| + |dy| + |dx| <= 2), not corners.
OFFSETS_18 = [d for d in itertools.product((-1, 0, 1), repeat=3) if 0 < sum(map(abs, d)) <= 2]
SPACING = (3.0, 2.0, 2.0)  # z, y, x mm


def flood(allowed: np.ndarray, seed: tuple[int, int, int]) -> np.ndarray:
    """Voxels of ``allowed`` 18-connected to ``seed`` (breadth-first, one voxel at a time)."""
    out = np.zeros(allowed.shape, dtype=bool)
    if not allowed[seed]:
        return out
    out[seed] = True
    queue = deque([seed])
    while queue:
        z, y, x = queue.popleft()
        for dz, dy, dx in OFFSETS_18:
            n = (z + dz, y + dy, x + dx)
            inside = all(0 <= v < s for v, s in zip(n, allowed.shape, strict=True))
            if inside and allowed[n] and not out[n]:
                out[n] = True
                queue.append(n)
    return out


def within_mm(shape, point, radius_mm, spacing=SPACING) -> np.ndarray:
    """Voxel centres within ``radius_mm`` of the point's centre (every voxel, no box)."""
    grid = np.indices(shape).astype(float)
    d2 = sum(((grid[a] - point[a]) * spacing[a]) ** 2 for a in range(3))
    return d2 <= radius_mm**2


def expected_tumor_click(suv, mask, point, spacing=SPACING) -> np.ndarray:
    """The documented rule, brute force: the mask after a tumor click at ``point``.

    Threshold: background + 41 % of (peak - background); peak: the maximum within 10 mm;
    background: the median within 50 mm; region: 18-connected to the click (or to the peak on a
    rim click), within 50 mm, plus the clicked voxel.
    """
    if mask[point]:
        return mask.copy()
    reach = within_mm(suv.shape, point, 50.0, spacing)
    peak = float(suv[within_mm(suv.shape, point, 10.0, spacing)].max())
    background = float(np.median(suv[reach]))
    above = (suv >= background + 0.41 * (peak - background)) & reach
    if above[point]:
        seed = point
    else:  # the first (C order) voxel of the peak within 10 mm
        near = np.where(within_mm(suv.shape, point, 10.0, spacing), suv, -np.inf)
        seed = np.unravel_index(int(np.argmax(near)), suv.shape)
    region = flood(above, tuple(int(v) for v in seed))
    region[point] = True
    return (mask.astype(bool) | region).astype(mask.dtype)


def background(shape=(40, 50, 50), seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(0.5, 1.5, shape).astype(np.float32)


def plant_lesion(suv: np.ndarray, centre, peak: float, sigma_vox: float) -> None:
    """A Gaussian hot spot (SUV ``peak`` above the background at its centre)."""
    grid = np.indices(suv.shape).astype(float)
    d2 = sum((grid[a] - centre[a]) ** 2 for a in range(3))
    suv += (peak * np.exp(-d2 / (2 * sigma_vox**2))).astype(np.float32)


def session_on(suv: np.ndarray, mask: np.ndarray) -> RefinementSession:
    session = RefinementSession()
    session.set_image(suv, SPACING)
    session.set_target_buffer(mask)
    return session


def test_tumor_click_on_a_missed_lesion_adds_exactly_the_flood_fill():
    suv = background()
    plant_lesion(suv, (20, 25, 25), peak=8.0, sigma_vox=2.0)  # missed by the "prediction"
    plant_lesion(suv, (20, 25, 40), peak=6.0, sigma_vox=1.5)  # another lesion, 30 mm away
    mask = np.zeros(suv.shape, np.uint8)
    mask[5:8, 5:9, 5:9] = 1  # a predicted lesion elsewhere
    click = (21, 24, 26)  # on the lesion, off its centre
    expected = expected_tumor_click(suv, mask, click)
    before = mask.copy()
    session = session_on(suv, mask)
    edit = session.add_point_interaction(click)
    assert session.mask is mask and mask.dtype == np.uint8  # edited in place
    added = expected.astype(bool) & ~before.astype(bool)
    assert added.sum() > 20 and not added[20, 25, 40]  # precondition: a lesion, not both
    np.testing.assert_array_equal(mask, expected)  # every other voxel bit for bit
    assert (edit.added, edit.removed) == (int(added.sum()), 0)
    outside = np.ones(mask.shape, bool)
    outside[edit.box] = False
    np.testing.assert_array_equal(mask[outside], before[outside])


def test_tumor_click_on_a_lesion_rim_takes_the_lesion_of_the_nearby_peak():
    suv = background(seed=1)
    plant_lesion(suv, (20, 25, 25), peak=10.0, sigma_vox=1.2)
    click = (20, 25, 29)  # 8 mm from the peak, below 41 % of it
    peak = suv[within_mm(suv.shape, click, 10.0)].max()
    bg = np.median(suv[within_mm(suv.shape, click, 50.0)])
    assert suv[click] < bg + 0.41 * (peak - bg)  # precondition: the rim case
    mask = np.zeros(suv.shape, np.uint8)
    expected = expected_tumor_click(suv, mask, click)
    session_on(suv, mask).add_point_interaction(click)
    np.testing.assert_array_equal(mask, expected)
    assert mask[20, 25, 25] and mask[click]


def test_tumor_click_on_a_voxel_already_tumor_changes_nothing():
    suv = background(seed=2)
    plant_lesion(suv, (20, 25, 25), peak=8.0, sigma_vox=2.0)
    mask = np.zeros(suv.shape, np.uint8)
    mask[19:22, 24:27, 24:27] = 1  # a smaller prediction of the same lesion
    before = mask.copy()
    edit = session_on(suv, mask).add_point_interaction((20, 25, 25))
    np.testing.assert_array_equal(mask, before)
    assert (edit.added, edit.removed, edit.box) == (0, 0, None)


def test_background_click_removes_exactly_the_component_that_holds_it():
    suv = background(seed=3)
    mask = np.zeros(suv.shape, np.uint8)
    mask[10:14, 10:14, 10:14] = 1  # the false positive
    mask[14, 14, 14] = 1  # touches it by a corner only: another component at 18-connectivity
    mask[12, 14, 10:14] = 1  # shares faces: part of it
    mask[2, 2, 2:48] = 1  # a long false positive: beyond the session's first search box
    mask[30:33, 30:33, 30:33] = 1  # a true lesion
    before = mask.copy()
    fp = flood(mask.astype(bool), (11, 11, 11))
    session = session_on(suv, mask)
    edit = session.add_point_interaction((11, 11, 11), include_interaction=False)
    np.testing.assert_array_equal(mask, np.where(fp, 0, before))
    assert edit.removed == int(fp.sum()) == 64 + 4 and mask[14, 14, 14] == 1
    bar = flood(before.astype(bool), (2, 2, 40))
    session.add_point_interaction((2, 2, 40), include_interaction=False)
    np.testing.assert_array_equal(mask, np.where(fp | bar, 0, before))
    assert bar.sum() == 46


def test_background_click_off_the_prediction_changes_nothing_and_reset_restores():
    suv = background(seed=4)
    plant_lesion(suv, (30, 30, 30), peak=7.0, sigma_vox=1.5)
    mask = np.zeros(suv.shape, np.uint8)
    mask[10:14, 10:14, 10:14] = 1
    before = mask.copy()
    session = session_on(suv, mask)
    assert session.add_point_interaction((20, 20, 20), False).box is None
    np.testing.assert_array_equal(mask, before)
    session.add_point_interaction((30, 30, 30))
    session.add_point_interaction((11, 11, 11), False)
    assert not np.array_equal(mask, before)
    session.reset_interactions()
    np.testing.assert_array_equal(mask, before)


def test_clicks_of_a_file_are_applied_in_pairs_with_ijk_turned_to_zyx():
    suv = background(seed=5)
    plant_lesion(suv, (20, 10, 30), peak=8.0, sigma_vox=1.5)
    mask = np.zeros(suv.shape, np.uint8)
    # (i, j, k) = (x, y, z): the tumor click is voxel z=20, y=10, x=30; the background click
    # (the second pair's) falls on what the tumor click added, so the order decides the result
    clicks = Clicks(tumor=((30, 10, 20),), background=((31, 10, 20),))
    edits = apply_clicks(session_on(suv, mask), clicks)
    assert [e.name for e in edits] == ["tumor", "background"]
    assert edits[0].point == (20, 10, 30) and edits[0].added > 0
    assert edits[1].removed == edits[0].added and not mask.any()


# --- lion predict --clicks -----------------------------------------------------------------

IMAGE_SHAPE = (20, 16, 16)  # z, y, x at 6 mm
IMAGE_SPACING = (6.0, 6.0, 6.0)


@pytest.fixture(scope="module")
def small_case(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One small PET (a hot lesion) and a random-weight model with a 16^3 patch at 6 mm."""
    from lion_nnunet.inference.model import make_random_model

    root = tmp_path_factory.mktemp("clicks_predict")
    rng = np.random.default_rng(0)
    suv = rng.uniform(0.5, 1.5, IMAGE_SHAPE).astype(np.float32)
    suv[8:11, 6:9, 6:9] = 9.0
    image = sitk.GetImageFromArray(suv)
    image.SetSpacing(IMAGE_SPACING)
    images = root / "images"
    images.mkdir()
    sitk.WriteImage(image, str(images / "case1_0000.nii.gz"))
    model = make_random_model(root / "Dataset992_RANDOM" / "nnUNetTrainer__LIONPlans__3d_fullres",
                              "fdg", patch_size=(16, 16, 16), spacing=IMAGE_SPACING,
                              folds=("0",))  # fmt: skip
    return {"root": root, "images": images, "model": model, "suv": suv}


def _predict(small_case: dict, out: Path, *more: str) -> int:
    return main(["predict", "-i", str(small_case["images"]), "-o", str(out), "-m",
                 str(small_case["model"]), "--device", "cpu", "--disable-tta", "--no-pbar",
                 *more])  # fmt: skip


def _tumor(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def test_lion_predict_clicks_end_to_end(small_case: dict, tmp_path: Path):
    clicks_dir = tmp_path / "clicks"
    # (i, j, k): tumor click on the lesion (z 9, y 7, x 7), background click on voxel z 3, y 3, x 12
    write_clicks(Clicks(tumor=((7, 7, 9),), background=((12, 3, 3),)),
                 clicks_dir / "case1_clicks.json", "gc")  # fmt: skip
    assert _predict(small_case, tmp_path / "plain") == 0
    assert _predict(small_case, tmp_path / "clicked", "--clicks", str(clicks_dir)) == 0
    plain = _tumor(tmp_path / "plain" / "case1" / "tumor.nii.gz")
    spacing = IMAGE_SPACING
    expected = expected_tumor_click(small_case["suv"], plain, (9, 7, 7), spacing)
    assert expected[8:11, 6:9, 6:9].all()  # the planted lesion is tumor after the tumor click
    if expected[3, 3, 12]:  # the background click removes its component
        expected[flood(expected.astype(bool), (3, 3, 12))] = 0
    np.testing.assert_array_equal(_tumor(tmp_path / "clicked" / "case1" / "tumor.nii.gz"),
                                  expected)  # fmt: skip
    report = json.loads((tmp_path / "clicked" / "case1" / "report.json").read_text())
    assert report["click_mode"] == "rule-based edit"
    assert report["clicks"]["tumor"] == [[7, 7, 9]]
    assert report["clicks"]["background"] == [[12, 3, 3]]
    assert report["clicks"]["rule"]["fraction_of_peak"] == 0.41
    assert [e["name"] for e in report["clicks"]["effects"]] == ["tumor", "background"]
    assert report["tmtv_ml"] == pytest.approx(expected.sum() * 0.216, abs=1e-3)
    plain_report = json.loads((tmp_path / "plain" / "case1" / "report.json").read_text())
    assert "clicks" not in plain_report and "click_mode" not in plain_report
    # changed clicks: the done case is out of date, as for a changed input
    write_clicks(Clicks(tumor=((7, 7, 9),)), clicks_dir / "case1_clicks.json")
    assert _predict(small_case, tmp_path / "clicked", "--clicks", str(clicks_dir)) == 1


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (
            {"tumor": [[7, 7, 25]]},
            "point 1 [7, 7, 25] (tumor) lies outside the image of 16 x 16 x 20",
        ),
        ({"points": [{"point": [1, 2, 3], "name": "lesion"}]}, "has the unknown name 'lesion'"),
        ("{not json", "not a valid JSON click file"),
        (None, "no click file for 1 case(s): case1 (case1_clicks.json)"),
    ],
)
def test_bad_click_files_give_one_sentence_and_write_nothing(
    small_case: dict, tmp_path: Path, capsys: pytest.CaptureFixture, content, says: str
):
    clicks_dir = tmp_path / "clicks"
    clicks_dir.mkdir()
    if content is not None:
        text = content if isinstance(content, str) else json.dumps(content)
        (clicks_dir / "case1_clicks.json").write_text(text)
    out = tmp_path / "out"
    assert _predict(small_case, out, "--clicks", str(clicks_dir)) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len([line for line in err if "error:" in line]) == 1 and says in err[-1]
    assert not out.exists() or not any(out.glob("*/report.json"))


def test_one_click_file_for_several_cases_is_refused(
    small_case: dict, tmp_path: Path, capsys: pytest.CaptureFixture
):
    images = tmp_path / "two"
    images.mkdir()
    for name in ("a_0000.nii.gz", "b_0000.nii.gz"):
        (images / name).write_bytes((small_case["images"] / "case1_0000.nii.gz").read_bytes())
    path = write_clicks(Clicks(tumor=((7, 7, 9),)), tmp_path / "one_clicks.json")
    code = main(["predict", "-i", str(images), "-o", str(tmp_path / "out"), "-m",
                 str(small_case["model"]), "--device", "cpu", "--clicks", str(path)])  # fmt: skip
    assert code == 1
    assert "one click file, but -i holds 2 cases" in capsys.readouterr().err
