"""PERCIST quantities and rules against hand computation and brute force.

Expected values come from the published equations evaluated by hand (LBM), from explicit loops
over every voxel (SULpeak, liver sphere) and from hand-made numbers on both sides of each
threshold (rules).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from lion_nnunet.analysis import percist as pc
from lion_nnunet.analysis.percist import PercistInput
from lion_nnunet.errors import LionError

# -- lean body mass: the published equations, evaluated by hand ------------------------------


def test_lbm_janmahasatian_and_james_by_hand() -> None:
    # 72 kg, 178 cm, male: BMI = 72 / 1.78^2 = 22.7244; 9270*72 / (6680 + 216*22.7244)
    # = 667440 / 11588.47 = 57.595 kg
    assert pc.lbm_janmahasatian(72, 178, "M") == pytest.approx(57.595, abs=0.01)
    # 60 kg, 165 cm, female: BMI = 22.0386; 9270*60 / (8780 + 244*22.0386) = 556200 / 14157.4
    # = 39.287 kg
    assert pc.lbm_janmahasatian(60, 165, "F") == pytest.approx(39.287, abs=0.01)
    # James, male: 1.10*72 - 128*(72/178)^2 = 79.2 - 20.943 = 58.257 kg
    assert pc.lbm_james(72, 178, "M") == pytest.approx(58.257, abs=0.01)
    # James, female: 1.07*60 - 148*(60/165)^2 = 64.2 - 19.570 = 44.630 kg
    assert pc.lbm_james(60, 165, "f") == pytest.approx(44.630, abs=0.01)
    assert pc.lean_body_mass(72, 178, "M") == pc.lbm_janmahasatian(72, 178, "M")  # the default
    # SUL factor = LBM / weight
    assert pc.sul_factor(72, 57.595) == pytest.approx(0.79993, abs=1e-4)


def test_lbm_refuses_implausible_patients() -> None:
    with pytest.raises(LionError, match="--sex"):
        pc.lean_body_mass(72, 178, "X")
    with pytest.raises(LionError, match="--height-cm"):
        pc.lean_body_mass(72, 17.8, "M")
    with pytest.raises(LionError, match="james"):  # James' known failure in obesity
        pc.lean_body_mass(300, 150, "F", "james")


# -- SULpeak: hand value and brute force -------------------------------------------------------


def _brute_sphere_mean(values, centre, spacing, radius) -> float:
    """Mean over every voxel whose centre lies within ``radius`` mm of ``centre`` (loops)."""
    total, count = 0.0, 0
    for idx in itertools.product(*(range(n) for n in values.shape)):
        d2 = sum(((a - c) * s) ** 2 for a, c, s in zip(idx, centre, spacing, strict=True))
        if d2 <= radius**2 + 1e-9:
            total += float(values[idx])
            count += 1
    return total / count


def test_sul_peak_by_hand_on_4mm_voxels() -> None:
    # At 4 mm voxels the 1 cm^3 sphere (radius 6.20 mm) holds the centre, its 6 face
    # neighbours (4 mm) and 12 edge neighbours (5.66 mm); corners (6.93 mm) are out: 19 voxels.
    sul = np.ones((9, 9, 9), np.float32)
    sul[4, 4, 4] = 10.0
    sul[4, 4, 6] = 100.0  # hotter, 8 mm from the lesion and outside it
    lesion = np.zeros(sul.shape, bool)
    lesion[4, 4, 4] = lesion[4, 4, 3] = True
    peak, centre = pc.sul_peak(sul, lesion, (4.0, 4.0, 4.0))
    assert lesion.sum() == 2
    # a sphere centred at (4, 4, 5) or (4, 4, 6), outside the lesion, would hold the 100
    assert peak == pytest.approx((10.0 + 18.0) / 19.0, rel=1e-6)
    assert lesion[centre]


def test_sul_peak_brute_force_on_anisotropic_voxels() -> None:
    rng = np.random.default_rng(3)
    sul = rng.gamma(2.0, 1.0, (7, 9, 9)).astype(np.float32)
    spacing = (3.0, 2.0, 2.0)  # (z, y, x) mm
    lesion = np.zeros(sul.shape, bool)
    lesion[2:5, 3:6, 4:7] = True
    expected = max(
        _brute_sphere_mean(sul, c, spacing, pc.PEAK_RADIUS_MM) for c in np.argwhere(lesion)
    )
    assert pytest.approx(6.2035, abs=1e-4) == pc.PEAK_RADIUS_MM  # (3 / (4 pi))^(1/3) cm
    assert pc.sul_peak(sul, lesion, spacing)[0] == pytest.approx(expected, rel=1e-6)


# -- liver reference ---------------------------------------------------------------------------


def test_liver_sphere_in_right_lobe_away_from_tumor_brute_force() -> None:
    spacing = (4.0, 4.0, 4.0)
    shape = (24, 24, 30)  # (z, y, x); x index 0 is the patient's right (origin x = 0, LPS)
    liver = np.zeros(shape, bool)
    liver[1:23, 1:23, 1:29] = True  # 88 x 88 x 112 mm
    rng = np.random.default_rng(0)
    sul = np.where(liver, 2.0 + 0.2 * rng.standard_normal(shape), 0.5).astype(np.float32)
    sul[:, :, 15:] += 1.0  # the left lobe is hotter: a right-lobe sphere must not see it
    tumor = np.zeros(shape, bool)
    tumor[9:11, 9:11, 6:8] = True  # a lesion in the middle of the right lobe
    sul[tumor] = 12.0
    x_mm = np.broadcast_to(np.arange(shape[2]) * 4.0, shape)
    ref = pc.liver_reference(sul, liver, tumor, spacing, x_mm)

    c = np.array(ref.centre_zyx)
    inside, sphere = [], []
    for idx in np.argwhere(np.ones(shape, bool)):
        if np.sqrt((((idx - c) * 4.0) ** 2).sum()) <= 15.0:
            sphere.append(tuple(idx))
    for idx in np.argwhere(tumor):
        dist = np.sqrt((((idx - c) * 4.0) ** 2).sum())
        assert dist >= 15.0 + 10.0  # sphere edge >= 10 mm from the lesion
    inside = [liver[i] for i in sphere]
    assert sphere and all(inside)  # the whole 3 cm sphere lies in the liver
    assert c[2] * 4.0 < np.median(x_mm[liver])  # in the patient's right half
    values = np.array([sul[i] for i in sphere], float)
    assert ref.voxels == len(sphere)
    assert ref.sul_mean == pytest.approx(values.mean(), rel=1e-6)
    assert ref.sul_sd == pytest.approx(values.std(ddof=1), rel=1e-6)
    assert ref.sul_mean == pytest.approx(2.0, abs=0.1)  # no left-lobe or tumor voxel in it
    assert ref.measurability_threshold == pytest.approx(1.5 * ref.sul_mean + 2 * ref.sul_sd)


def test_liver_reference_needs_liver_voxels() -> None:
    z = np.zeros((4, 4, 4))
    with pytest.raises(LionError, match="--liver-reference"):
        pc.liver_reference(z, z > 0, z > 0, (4, 4, 4), z, "PETCT_x/SUV.nii.gz")


# -- PERCIST rules: a case on each side of every threshold -------------------------------------


def P(base, follow, **kw) -> PercistInput:
    liver = {"baseline_liver_mean": 1.5, "baseline_liver_sd": 0.25,
             "followup_liver_mean": 1.5, "followup_liver_sd": 0.25}  # fmt: skip
    liver.update(kw)
    return PercistInput(base, follow, **liver)


def test_rule_new_lesions() -> None:
    assert pc.rule_new_lesions(P(4.0, 2.0, new_lesions=1))[0] == "PMD"
    assert pc.rule_new_lesions(P(4.0, 2.0, new_lesions=0)) is None
    # new lesions decide even when the baseline is not measurable
    assert pc.percist_category(P(1.0, 1.0, new_lesions=2))[:2] == ("PMD", "new_lesions")


def test_rule_not_measurable() -> None:
    # threshold 1.5 * 1.5 + 2 * 0.25 = 2.75 SUL
    assert pc.rule_not_measurable(P(2.8, 2.0)) is None
    assert pc.rule_not_measurable(P(2.7, 2.0))[0] == "NE"
    assert pc.rule_not_measurable(P(None, 2.0))[0] == "NE"
    assert pc.percist_category(P(2.7, 6.0))[0] == "NE"


def test_rule_pmd_sul_peak_increase() -> None:
    assert pc.rule_pmd_sul_peak_increase(P(3.0, 3.95))[0] == "PMD"  # +31.7%, +0.95
    assert pc.rule_pmd_sul_peak_increase(P(3.0, 3.85)) is None  # +28.3%: relative fails
    assert pc.rule_pmd_sul_peak_increase(P(2.0, 2.85))[0] == "PMD"  # +42.5%, +0.85
    assert pc.rule_pmd_sul_peak_increase(P(2.0, 2.75)) is None  # +37.5% but +0.75 SUL


def test_rule_pmd_tlg_increase() -> None:
    assert pc.rule_pmd_tlg_increase(P(3.0, 3.0, baseline_tlg=100, followup_tlg=180))[0] == "PMD"
    assert pc.rule_pmd_tlg_increase(P(3.0, 3.0, baseline_tlg=100, followup_tlg=170)) is None
    assert pc.rule_pmd_tlg_increase(P(3.0, 2.9, baseline_tlg=100, followup_tlg=180)) is None


def test_rule_cmr() -> None:
    assert pc.rule_cmr(P(4.0, None))[0] == "CMR"
    assert pc.rule_cmr(P(4.0, 1.45))[0] == "CMR"  # at or below the liver mean 1.5
    assert pc.rule_cmr(P(4.0, 1.55)) is None
    assert pc.percist_category(P(4.0, 1.45))[:2] == ("CMR", "cmr")


def test_rule_pmr() -> None:
    assert pc.rule_pmr(P(4.0, 2.7))[0] == "PMR"  # -32.5%, -1.3 SUL
    assert pc.rule_pmr(P(4.0, 2.9)) is None  # -27.5%
    assert pc.rule_pmr(P(2.8, 1.9))[0] == "PMR"  # -32%, -0.9
    assert pc.rule_pmr(P(2.8, 2.05)) is None  # -26.8%, -0.75
    assert pc.percist_category(P(4.0, 2.7))[:2] == ("PMR", "pmr")


def test_smd_is_the_rest_and_every_category_has_a_reason() -> None:
    category, rule, reason = pc.percist_category(P(4.0, 3.5))
    assert (category, rule) == ("SMD", "smd")
    assert "4.00" in reason and "3.50" in reason
    for p in (P(4.0, 6.0), P(4.0, None), P(4.0, 2.0), P(2.0, 2.0), P(4.0, 4.0, new_lesions=1)):
        assert pc.percist_category(p)[2]


def test_consistency_warnings_on_both_sides() -> None:
    assert pc.consistency_warnings(P(4, 3, baseline_liver_mean=2.0, followup_liver_mean=2.5))
    assert not pc.consistency_warnings(P(4, 3, baseline_liver_mean=2.0, followup_liver_mean=2.3))
    assert pc.consistency_warnings(P(4, 3), 60, 80)
    assert not pc.consistency_warnings(P(4, 3), 60, 70)


def test_tmtv_category() -> None:
    assert pc.tmtv_category(100, 69)[0] == "decrease"
    assert pc.tmtv_category(100, 71)[0] == "stable"
    assert pc.tmtv_category(100, 131)[0] == "increase"
    assert pc.tmtv_category(0, 5)[0] == "new disease"
