"""report.json numbers against independent numpy computations on hand-built volumes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from lion_nnunet.inference.report import case_report, sphere_kernel, summary_frame, suv_peak


def _image(shape_zyx, spacing_xyz=(2.0, 3.0, 4.0), origin=(-10.0, 20.0, 5.0)) -> sitk.Image:
    image = sitk.Image([int(s) for s in shape_zyx[::-1]], sitk.sitkFloat32)
    image.SetSpacing(spacing_xyz)
    image.SetOrigin(origin)
    return image


def test_tmtv_tlg_suvmax_match_numpy() -> None:
    rng = np.random.default_rng(0)
    suv = rng.gamma(2.0, 1.0, size=(20, 16, 12)).astype(np.float32)
    tumor = np.zeros(suv.shape, np.uint8)
    tumor[2:6, 3:7, 2:5] = 1  # lesion 1
    tumor[12:15, 10:13, 7:10] = 1  # lesion 2
    image = _image(suv.shape)
    voxel_ml = 2.0 * 3.0 * 4.0 / 1000.0
    r = case_report("c1", suv, tumor, image)
    inside = suv[tumor > 0].astype(np.float64)
    assert r["lesion_count"] == 2
    # rounded to their precision: 0.001 ml, 0.01 SUV and SUV x ml
    np.testing.assert_allclose(r["tmtv_ml"], tumor.sum() * voxel_ml, atol=0.0005)
    np.testing.assert_allclose(r["tlg"], inside.mean() * tumor.sum() * voxel_ml, atol=0.005)
    np.testing.assert_allclose(r["suv_max"], inside.max(), atol=0.005)
    np.testing.assert_allclose(r["suv_mean"], inside.mean(), atol=0.005)
    first = r["lesions"][0]
    les = suv[2:6, 3:7, 2:5].astype(np.float64)
    np.testing.assert_allclose(first["volume_ml"], les.size * voxel_ml, atol=0.0005)
    np.testing.assert_allclose(first["suv_mean"], les.mean(), atol=0.005)
    np.testing.assert_allclose(first["suv_max"], les.max(), atol=0.005)
    np.testing.assert_allclose(first["tlg"], les.sum() * voxel_ml, atol=0.005)
    # centroid in mm: voxel centre (x, y, z) = origin + index * spacing (identity direction)
    centre_xyz = np.array([3.0, 4.5, 3.5])  # mean of x 2..4, y 3..6, z 2..5
    expected = np.array([-10.0, 20.0, 5.0]) + centre_xyz * np.array([2.0, 3.0, 4.0])
    np.testing.assert_allclose(first["centroid_mm"], expected, atol=0.05)
    np.testing.assert_allclose(sum(x["volume_ml"] for x in r["lesions"]), r["tmtv_ml"])
    # numbers carry their precision only; counts and ids are ints
    assert r["tmtv_ml"] == round(r["tmtv_ml"], 3) and r["suv_mean"] == round(r["suv_mean"], 2)
    assert isinstance(r["lesion_count"], int) and isinstance(first["lesion_id"], int)


def test_empty_mask_and_18_connectivity() -> None:
    suv = np.ones((6, 6, 6), np.float32)
    empty = case_report("e", suv, np.zeros_like(suv, np.uint8), _image(suv.shape))
    assert empty["tmtv_ml"] == 0 and empty["lesion_count"] == 0 and empty["suv_max"] is None
    corners = np.zeros((6, 6, 6), np.uint8)
    corners[1, 1, 1] = corners[2, 2, 2] = 1  # share only a corner: two lesions at 18
    edges = np.zeros((6, 6, 6), np.uint8)
    edges[1, 1, 1] = edges[1, 2, 2] = 1  # share an edge: one lesion at 18
    assert case_report("c", suv, corners, _image(suv.shape))["lesion_count"] == 2
    assert case_report("e", suv, edges, _image(suv.shape))["lesion_count"] == 1


def test_suv_peak_is_mean_of_a_1ml_sphere() -> None:
    spacing = (2.0, 2.0, 2.0)
    kernel = sphere_kernel(spacing)
    # 1 ml ball -> radius 6.2 mm; on a 2 mm grid 3 voxels each way, 123 voxels inside
    assert kernel.shape == (7, 7, 7)
    np.testing.assert_allclose(kernel.sum() * 8 / 1000, 1.0, atol=0.05)
    suv = np.ones((30, 30, 30), np.float32)
    suv[15, 15, 15] = 1 + kernel.sum()  # one hot voxel: its sphere mean is exactly 2
    mask = np.zeros(suv.shape, bool)
    mask[14:17, 14:17, 14:17] = True
    np.testing.assert_allclose(suv_peak(suv, mask, spacing), 2.0, rtol=1e-6)
    # a uniform region: SUVpeak equals the uptake
    np.testing.assert_allclose(suv_peak(np.full((20, 20, 20), 3.0), mask[:20, :20, :20],
                                        spacing), 3.0)  # fmt: skip
    assert suv_peak(suv, np.zeros_like(mask), spacing) is None


def test_nearest_organ_and_summary() -> None:
    suv = np.ones((20, 20, 20), np.float32)
    tumor = np.zeros(suv.shape, np.uint8)
    tumor[5:7, 5:7, 5:7] = 1
    organs = np.zeros(suv.shape, np.uint8)
    organs[5:7, 5:7, 10:14] = 4  # kidneys, 3 voxels (x) from the lesion edge
    organs[15:19, 15:19, 15:19] = 2  # brain, further away
    image = _image(suv.shape, spacing_xyz=(2.0, 2.0, 2.0))
    r = case_report("n", suv, tumor, image, organs, {2: "brain", 4: "kidneys"}, "m", ["0"])
    lesion = r["lesions"][0]
    assert lesion["nearest_organ"] == "kidneys"
    # the gap between the voxels: x 7, 8, 9 lie between lesion (x <= 6) and kidney (x >= 10)
    np.testing.assert_allclose(lesion["distance_to_organ_mm"], 6.0)  # 3 voxels of 2 mm
    assert r["folds"] == [0]  # as nnU-Net's -f takes them
    frame = summary_frame([r])
    assert list(frame.columns)[:7] == ["case_id", "tmtv_ml", "tlg", "suv_max", "suv_mean",
                                       "suv_peak", "lesion_count"]  # fmt: skip
    assert frame.loc[0, "folds"] == "0" and isinstance(frame, pd.DataFrame)


def test_summary_csv_without_float_noise_or_float_counts(tmp_path) -> None:
    """18.791999999999998 and lesion counts as 2.0 never reach summary.csv; old reports read."""
    from lion_nnunet.io import write_csv

    noisy = {"case_id": "a", "tmtv_ml": 18.791999999999998, "tlg_ml": 40.123456,
             "suv_max": 7.123456, "lesion_count": 2, "folds": [0, 1]}  # fmt: skip
    empty = {"case_id": "b", "tmtv_ml": 0.0, "tlg": 0.0, "suv_max": None, "lesion_count": None,
             "folds": ["all"]}  # fmt: skip
    path = write_csv(summary_frame([noisy, empty]), tmp_path / "summary.csv")
    text = path.read_text()
    rows = text.splitlines()
    assert len(rows) == 3
    assert "18.792," in rows[1] and ",40.12," in rows[1] and ",7.12," in rows[1]
    assert "18.79199" not in text and ",2.0," not in text and ",2," in rows[1]
    assert ",0 1," in rows[1] and ",all," in rows[2]


@pytest.mark.parametrize("many", [False, True])
def test_touching_lesion_is_0_mm_from_its_organ(monkeypatch: pytest.MonkeyPatch, many) -> None:
    """A lesion sharing a face with an organ is 0 mm from it (docs: "0 when touching"), by the
    per-lesion crops and by the one whole-image distance transform alike."""
    import lion_nnunet.inference.report as report

    monkeypatch.setattr(report, "MAX_LESIONS_PER_CROP", 0 if many else 10**6)
    suv = np.ones((20, 20, 20), np.float32)
    tumor = np.zeros(suv.shape, np.uint8)
    tumor[8:10, 8:10, 4:6] = 1  # x 4-5: its x=5 face on the kidney's x=6
    tumor[8:10, 8:10, 14:16] = 1  # x 14-15: one empty voxel (x 13) from the kidney's x=12
    organs = np.zeros(suv.shape, np.uint8)
    organs[6:12, 6:12, 6:13] = 4
    image = _image(suv.shape, spacing_xyz=(6.0, 4.0, 3.0))  # x 6 mm: one voxel centre to centre
    got = case_report("t", suv, tumor, image, organs, {4: "kidneys"})
    by_x = sorted(got["lesions"], key=lambda les: les["centroid_mm"][0])
    assert [les["nearest_organ"] for les in by_x] == ["kidneys", "kidneys"]
    assert [les["distance_to_organ_mm"] for les in by_x] == [0.0, 6.0]  # touching; one voxel


def test_many_lesions_use_one_distance_transform(monkeypatch: pytest.MonkeyPatch) -> None:
    import lion_nnunet.inference.report as report

    rng = np.random.default_rng(3)
    suv = rng.uniform(0, 5, (24, 24, 24)).astype(np.float32)
    tumor = np.zeros(suv.shape, np.uint8)
    tumor[::3, ::3, ::3] = 1  # 512 isolated voxels
    tumor[:, :, 20:] = 0
    organs = np.zeros(suv.shape, np.uint8)
    organs[:, :, 21:] = 2
    organs[10:14, 10:14, 0:2] = 3
    image = _image(suv.shape)
    names = {2: "brain", 3: "heart"}
    fast = case_report("m", suv, tumor, image, organs, names)
    assert fast["lesion_count"] > report.MAX_LESIONS_PER_CROP
    monkeypatch.setattr(report, "MAX_LESIONS_PER_CROP", 10**6)
    slow = case_report("m", suv, tumor, image, organs, names)
    # brute force: the smallest gap between the (single-voxel) lesion's box and each organ's
    spacing = np.array(image.GetSpacing()[::-1])
    for got in (fast, slow):
        for les in got["lesions"]:
            point = (np.array(les["centroid_mm"]) - np.array(image.GetOrigin())) / np.array(
                image.GetSpacing()
            )
            voxel = np.round(point[::-1]).astype(int)
            gaps = {k: _box_gaps_mm(voxel[None], np.argwhere(organs == k), spacing).min()
                    for k in names}  # fmt: skip
            low = min(gaps.values())
            np.testing.assert_allclose(les["distance_to_organ_mm"], low, atol=0.05)
            assert names_of(les["nearest_organ"], names) in [
                k for k, v in gaps.items() if abs(v - low) < 1e-6
            ]
    assert fast["suv_peak"] == max(les["suv_peak"] for les in fast["lesions"])


def names_of(name: str, names: dict[int, str]) -> int:
    return {v: k for k, v in names.items()}[name]


def _box_gaps_mm(a_zyx: np.ndarray, b_zyx: np.ndarray, spacing_zyx) -> np.ndarray:
    """Brute force: gap (mm) between every voxel of ``a`` and every voxel of ``b`` (index arrays
    (n, 3), z y x), voxels taken as boxes: per axis the empty voxels between them,
    max(0, |index difference| - 1), times the spacing; Euclidean over the axes."""
    steps = np.clip(np.abs(a_zyx[:, None, :] - b_zyx[None, :, :]) - 1, 0, None)
    return np.sqrt(((steps * np.asarray(spacing_zyx)) ** 2).sum(axis=2))


def _organ_case(spacing_zyx, lesion_voxels, organ_voxels, many, monkeypatch):
    """The one lesion's (nearest_organ, distance_to_organ_mm) by either code path."""
    import lion_nnunet.inference.report as report

    monkeypatch.setattr(report, "MAX_LESIONS_PER_CROP", 0 if many else 10**6)
    tumor = np.zeros((12, 12, 12), np.uint8)
    organs = np.zeros(tumor.shape, np.uint8)
    for zyx in lesion_voxels:
        tumor[zyx] = 1
    for label, voxels in organ_voxels.items():
        for zyx in voxels:
            organs[zyx] = label
    image = _image(tumor.shape, spacing_xyz=spacing_zyx[::-1])
    got = case_report("o", np.ones(tumor.shape, np.float32), tumor, image, organs,
                      {2: "liver", 3: "spleen", 4: "kidneys"})  # fmt: skip
    (les,) = got["lesions"]
    return les["nearest_organ"], les["distance_to_organ_mm"]


@pytest.mark.parametrize("many", [False, True])
def test_organ_gap_on_anisotropic_grids_is_between_boxes(monkeypatch, many) -> None:
    """The gap is the smallest between any lesion and organ voxel boxes, not the gap between the
    pair of closest voxel centres (which differs when slices are thicker than pixels)."""
    # 6 mm slices, 2 mm pixels: the liver shares a face (z) with the lesion, its centre 6 mm away;
    # a kidney voxel 2 columns away in x: centres 4 mm apart, one empty 2 mm voxel between.
    got = _organ_case((6.0, 2.0, 2.0), [(5, 5, 5)], {2: [(6, 5, 5)], 4: [(5, 5, 7)]}, many,
                      monkeypatch)  # fmt: skip
    assert got == ("liver", 0.0)
    # autoPET's 3 x 2.04 x 2.04 mm: the liver touches by a corner only (centres
    # sqrt(3^2 + 2 x 2.04^2) = 4.16 mm apart), the kidney voxel 2 columns away (4.08 mm).
    got = _organ_case((3.0, 2.04, 2.04), [(5, 5, 5)], {2: [(6, 6, 6)], 4: [(5, 5, 7)]}, many,
                      monkeypatch)  # fmt: skip
    assert got == ("liver", 0.0)
    # nothing touches: the liver 2 slices away (centres 12 mm, one empty 6 mm slice: gap 6),
    # the kidney 5 columns away (centres 10 mm, four empty 2 mm voxels: gap 8).
    got = _organ_case((6.0, 2.0, 2.0), [(4, 5, 5)], {2: [(6, 5, 5)], 4: [(4, 5, 10)]}, many,
                      monkeypatch)  # fmt: skip
    assert got == ("liver", 6.0)
    # one empty voxel diagonally in z and x: gap sqrt(6^2 + 2^2) = 6.32 -> 6.3
    got = _organ_case((6.0, 2.0, 2.0), [(4, 5, 5)], {3: [(6, 5, 7)]}, many, monkeypatch)
    assert got == ("spleen", 6.3)
    # far apart: ten empty 6 mm slices between them, 60 mm, past the first search boxes
    got = _organ_case((6.0, 2.0, 2.0), [(0, 5, 5)], {4: [(11, 5, 5)]}, many, monkeypatch)
    assert got == ("kidneys", 60.0)


@pytest.mark.parametrize("many", [False, True])
def test_touching_several_organs_the_most_contact_wins(monkeypatch, many) -> None:
    """Touching two organs, the lesion is 0 mm from the one with more voxels in its
    26-neighbourhood: the spleen's 3 x 3 z face (9 voxels, centres 3 mm away) beats the liver's
    one voxel on an x face (centre 2.04 mm away, the closest), and the liver's lower label id
    does not matter."""
    lesion = [(5, y, x) for y in (4, 5, 6) for x in (4, 5, 6)]
    spleen = [(6, y, x) for y in (4, 5, 6) for x in (4, 5, 6)]
    got = _organ_case((3.0, 2.04, 2.04), lesion, {2: [(5, 5, 7)], 3: spleen}, many, monkeypatch)
    assert got == ("spleen", 0.0)


@pytest.mark.parametrize("many", [False, True])
def test_nearest_organ_matches_brute_force_on_random_anisotropic_maps(monkeypatch, many) -> None:
    import cc3d

    import lion_nnunet.inference.report as report

    monkeypatch.setattr(report, "MAX_LESIONS_PER_CROP", 0 if many else 10**6)
    rng = np.random.default_rng(11)
    spacing_zyx = (5.0, 2.04, 1.3)
    names = {2: "liver", 3: "spleen", 4: "kidneys"}
    shape = (14, 16, 18)
    tumor = (rng.uniform(size=shape) < 0.03).astype(np.uint8)
    organs = rng.choice([0, 2, 3, 4], size=shape, p=[0.97, 0.01, 0.01, 0.01]).astype(np.uint8)
    organs[tumor > 0] = 0
    got = case_report("r", np.ones(shape, np.float32), tumor, _image(shape, spacing_zyx[::-1]),
                      organs, names)  # fmt: skip
    labels = cc3d.connected_components(tumor, connectivity=18)
    organ_at = {k: np.argwhere(organs == k) for k in names}
    touched_any = apart_any = False
    for les in got["lesions"]:
        voxels = np.argwhere(labels == les["lesion_id"])
        gaps = {k: _box_gaps_mm(voxels, v, spacing_zyx).min() for k, v in organ_at.items()}
        low = min(gaps.values())
        np.testing.assert_allclose(les["distance_to_organ_mm"], low, atol=0.05)
        if low == 0:  # touching: the organ with most voxels within one voxel (26-neighbourhood)
            touched_any = True
            contact = {
                k: int((np.abs(v[:, None, :] - voxels[None]).max(axis=2) <= 1).any(axis=1).sum())
                for k, v in organ_at.items()
            }
            most = max(contact.values())
            assert les["nearest_organ"] == names[min(k for k, c in contact.items() if c == most)]
        else:
            apart_any = True
            assert names_of(les["nearest_organ"], names) in [
                k for k, v in gaps.items() if abs(v - low) < 1e-9
            ]
    assert touched_any and apart_any and len(got["lesions"]) > 10
