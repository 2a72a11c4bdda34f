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
from lion_nnunet.analysis import percist_rules as pr
from lion_nnunet.analysis.percist_rules import PercistInput
from lion_nnunet.errors import LionError
from lion_nnunet.inference.peak_sphere import sphere_weights

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


def _brute_sphere_mean(values, centre, spacing) -> float:
    """Weighted mean over the exact 1 ml sphere around ``centre``, by a loop over every voxel of
    the image (voxels outside the image are left out)."""
    w = sphere_weights(spacing)
    half = np.array(w.shape) // 2
    total, weight = 0.0, 0.0
    for idx in itertools.product(*(range(n) for n in values.shape)):
        off = np.array(idx) - np.array(centre) + half
        if (off >= 0).all() and (off < w.shape).all():
            total += float(values[idx]) * w[tuple(off)]
            weight += w[tuple(off)]
    return total / weight


def test_sul_peak_sphere_is_centred_in_the_lesion() -> None:
    sul = np.ones((9, 9, 9), np.float32)
    sul[4, 4, 4] = 10.0
    sul[4, 4, 6] = 100.0  # hotter, 8 mm from the lesion and outside it
    lesion = np.zeros(sul.shape, bool)
    lesion[4, 4, 4] = lesion[4, 4, 3] = True
    peak, centre = pc.sul_peak(sul, lesion, (4.0, 4.0, 4.0))
    w = sphere_weights((4.0, 4.0, 4.0))  # 5 x 5 x 5 around (2, 2, 2)
    # centred on (4, 4, 4): 1 everywhere, + 9 x the centre's weight (1: its farthest corner is
    # 3.46 mm away) + 99 x the weight of the voxel 8 mm away (its nearest face is at 6 mm < 6.20)
    assert w[2, 2, 2] == 1.0 and 0 < w[2, 2, 4] < 1
    assert peak == pytest.approx(1 + (9 * w[2, 2, 2] + 99 * w[2, 2, 4]) / w.sum(), rel=1e-9)
    assert centre == (4, 4, 4)


def test_sul_peak_brute_force_on_anisotropic_voxels() -> None:
    rng = np.random.default_rng(3)
    sul = rng.gamma(2.0, 1.0, (7, 9, 9)).astype(np.float32)
    spacing = (3.0, 2.0, 2.0)  # (z, y, x) mm
    lesion = np.zeros(sul.shape, bool)
    lesion[2:5, 3:6, 4:7] = True
    expected = max(_brute_sphere_mean(sul, c, spacing) for c in np.argwhere(lesion))
    assert pytest.approx(6.2035, abs=1e-4) == pc.PEAK_RADIUS_MM  # (3 / (4 pi))^(1/3) cm
    assert pc.sul_peak(sul, lesion, spacing)[0] == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("spacing", [(2.0, 2.0, 2.0), (4.0, 4.0, 4.0), (3.0, 2.0, 2.0),
                                     (5.0, 3.5, 3.5), (2.0, 4.07, 4.07)])  # fmt: skip
def test_peak_sphere_holds_exactly_1_ml_on_any_grid(spacing) -> None:
    w = sphere_weights(spacing)
    assert float(w.sum()) * np.prod(spacing) / 1000.0 == pytest.approx(1.0, abs=1e-12)
    # a voxel wholly inside weighs 1, one wholly outside 0: check every voxel's corners by hand
    half = np.array(w.shape) // 2
    for idx in np.argwhere(np.ones(w.shape, bool)):
        corners = [np.abs((idx - half) * spacing) + s * np.array(spacing) / 2 for s in (1, -1)]
        far, near = np.linalg.norm(corners[0]), np.linalg.norm(np.maximum(corners[1], 0))
        if far <= pc.PEAK_RADIUS_MM:
            assert w[tuple(idx)] == 1.0
        elif near >= pc.PEAK_RADIUS_MM:
            assert w[tuple(idx)] == 0.0
    # the old voxel-centre sphere held 0.88-1.51 ml depending on the grid
    old = len(pc.sphere_offsets(pc.PEAK_RADIUS_MM, spacing)) * np.prod(spacing) / 1000.0
    assert 0.87 < old < 1.52


def test_sul_peak_is_the_same_on_two_grids_of_one_analytic_phantom() -> None:
    # SUL 10 below the plane z = 3 mm, 2 above: exact on any grid whose voxel faces lie on the
    # plane. A 1 ml sphere (R = 6.2035 mm) centred at z = 0 loses the cap above z = 3 mm:
    # h = R - 3 = 3.2035 mm, V_cap = pi h^2 (3R - h) / 3 = 165.58 mm^3, so the sphere mean is
    # 10 - 8 x 165.58 / 1000 = 8.6754. Grids: 2 mm (faces at odd z) and 6 mm (faces at 3 + 6k).
    r = pc.PEAK_RADIUS_MM
    h = r - 3.0
    expected = 10.0 - 8.0 * np.pi * h * h * (3 * r - h) / 3.0 / 1000.0
    assert expected == pytest.approx(8.6754, abs=1e-4)
    old = []
    for spacing in [(2.0, 2.0, 2.0), (6.0, 3.0, 3.0), (2.0, 4.0, 4.0), (6.0, 2.5, 2.5)]:
        n = [int(20 // s) for s in spacing]
        z = np.arange(-n[0], n[0] + 1) * spacing[0]
        sul = np.broadcast_to(np.where(z < 3, 10.0, 2.0)[:, None, None],
                              (len(z), 2 * n[1] + 1, 2 * n[2] + 1))  # fmt: skip
        centre = np.zeros(sul.shape, bool)
        centre[n[0], n[1], n[2]] = True  # the voxel at (0, 0, 0) mm
        # the sub-sampled shares (16^3 points) leave an error below 0.005 SUL
        assert pc.sul_peak(sul, centre, spacing)[0] == pytest.approx(expected, abs=0.005)
        offsets = pc.sphere_offsets(r, spacing)  # the old voxel-centre sphere, for contrast
        old.append(float(np.mean([sul[tuple(o + n)] for o in offsets])))
    assert max(old) - min(old) > 0.5  # the old sphere: 8.57 on 2 mm, 9.47 on 6 x 3 x 3 mm


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


def new(*lesions) -> tuple[pr.Lesion, ...]:
    """Unmatched follow-up lesions from (SULpeak, ml) pairs, ids 1.., at made-up positions."""
    return tuple(pr.Lesion(i, p, ml, (10.0 * i, 0.0, 0.0)) for i, (p, ml) in enumerate(lesions, 1))


def test_rule_new_lesions() -> None:
    # trigger: >= 0.5 ml and SULpeak >= liver mean + 2 SD = 1.5 + 2 x 0.25 = 2.00
    assert pr.rule_new_lesions(P(4.0, 2.0, unmatched=new((3.0, 3.0))))[0] == "PMD"
    assert pr.rule_new_lesions(P(4.0, 2.0, unmatched=new((2.0, 0.5))))[0] == "PMD"  # both at limit
    assert pr.rule_new_lesions(P(4.0, 2.0)) is None
    # new lesions decide even when the baseline is not measurable
    assert pr.percist_category(P(1.0, 1.0, unmatched=new((3.0, 3.0))))[:2] == ("PMD", "new_lesions")


def test_a_small_new_lesion_just_above_the_liver_does_not_trigger_pmd() -> None:
    # the case: 0.43 ml (2 voxels) just above the liver: 0.43 < 0.5 ml
    assert pr.rule_new_lesions(P(4.0, 3.5, unmatched=new((3.0, 0.43)))) is None
    # 1.99 < 2.00 = liver mean + 2 SD: not FDG-avid enough to trigger
    assert pr.rule_new_lesions(P(4.0, 3.5, unmatched=new((1.99, 3.0)))) is None
    # a trigger is named: id, SULpeak and position
    reason = pr.rule_new_lesions(P(4.0, 3.5, unmatched=new((1.0, 3.0), (3.0, 1.2))))[1]
    assert (
        "lesion 2 (1.20 ml, SULpeak 3.00, at 20, 0, 0 mm)" in reason and "lesion 1 " not in reason
    )


def test_rule_not_measurable() -> None:
    # threshold 1.5 * 1.5 + 2 * 0.25 = 2.75 SUL
    assert pr.rule_not_measurable(P(2.75, 2.0)) is None  # at the threshold: measurable
    assert pr.rule_not_measurable(P(2.74, 2.0))[0] == "NE"
    assert pr.rule_not_measurable(P(None, 2.0))[0] == "NE"
    assert pr.percist_category(P(2.7, 6.0))[0] == "NE"


def test_rule_pmd_sul_peak_increase() -> None:
    assert pr.rule_pmd_sul_peak_increase(P(3.0, 3.95))[0] == "PMD"  # +31.7%, +0.95
    assert pr.rule_pmd_sul_peak_increase(P(3.0, 3.85)) is None  # +28.3%: relative fails
    assert pr.rule_pmd_sul_peak_increase(P(2.0, 2.85))[0] == "PMD"  # +42.5%, +0.85
    assert pr.rule_pmd_sul_peak_increase(P(2.0, 2.75)) is None  # +37.5% but +0.75 SUL


def test_limits_are_compared_as_reported_not_in_floating_point() -> None:
    # 2.0 -> 2.8: +0.80 SUL and +40.0 %: the documented rule (>= 0.8) says PMD; in floating
    # point 2.8 - 2.0 = 0.7999999999999998 < 0.8
    assert 2.8 - 2.0 < 0.8
    assert pr.sul_change(2.0, 2.8) == 0.8 and pr.pct_change(2.0, 2.8) == 40.0
    assert pr.percist_category(P(2.0, 2.8, baseline_liver_mean=1.0, followup_liver_mean=1.0))[
        :2
    ] == ("PMD", "pmd_sul_peak_increase")
    # 4.0 -> 3.2: -0.80 SUL (not -0.79999), -20.0 %: relative fails, so SMD
    assert pr.sul_change(4.0, 3.2) == -0.8 and pr.pct_change(4.0, 3.2) == -20.0
    # 2.64 -> 1.84: -0.80 SUL and -30.3 %: PMR at both limits (floating point: -0.8000000000000003)
    assert pr.sul_change(2.64, 1.84) == -0.8 and pr.pct_change(2.64, 1.84) == -30.3
    low = {"baseline_liver_mean": 1.0, "baseline_liver_sd": 0.1, "followup_liver_mean": 1.0}
    assert pr.percist_category(P(2.64, 1.84, **low))[:2] == ("PMR", "pmr")
    # values are read as reported (2 decimals): 2.004 -> 2.804 is 2.00 -> 2.80
    assert pr.sul_change(2.004, 2.804) == 0.8


def test_rule_pmd_tlg_increase() -> None:
    # TLG 100 -> 175: +75.0 % with SULpeak unchanged: PMD; 100 -> 174.9: +74.9 %: not
    assert pr.rule_pmd_tlg_increase(P(3.0, 3.0, baseline_tlg=100, followup_tlg=175))[0] == "PMD"
    assert pr.rule_pmd_tlg_increase(P(3.0, 3.0, baseline_tlg=100, followup_tlg=174.9)) is None
    assert pr.rule_pmd_tlg_increase(P(3.0, 2.9, baseline_tlg=100, followup_tlg=180)) is None


def test_rule_cmr() -> None:
    site = (pr.Site(1, 1.2),)
    assert pr.rule_cmr(P(4.0, None, sites=site))[0] == "CMR"  # site 1.2 < liver 1.5
    assert pr.rule_cmr(P(4.0, 1.45, sites=site))[0] == "CMR"  # below the liver mean 1.5
    assert pr.rule_cmr(P(4.0, 1.55, sites=site)) is None
    assert pr.percist_category(P(4.0, 1.45, sites=site))[:2] == ("CMR", "cmr")


def test_cmr_needs_uptake_strictly_below_the_liver_mean() -> None:
    # the case: a residual lesion with SULpeak equal to the liver mean (1.50) is not CMR;
    # 4.0 -> 1.5 is -62.5 %, -2.50 SUL: PMR
    assert pr.rule_cmr(P(4.0, 1.5, sites=(pr.Site(1, 1.2),))) is None
    assert pr.percist_category(P(4.0, 1.5, sites=(pr.Site(1, 1.2),)))[0] == "PMR"
    assert pr.rule_cmr(P(4.0, 1.49, sites=(pr.Site(1, 1.2),)))[0] == "CMR"


def test_cmr_needs_the_blood_pool_level_when_it_is_measured() -> None:
    # blood pool mean 1.0, SD 0.1: CMR needs every SULpeak <= 1.0 + 2 x 0.1 = 1.20 (and < 1.5)
    bp = {"followup_blood_pool": (1.0, 0.1)}
    assert pr.rule_cmr(P(4.0, 1.2, sites=(pr.Site(1, 1.1),), **bp))[0] == "CMR"
    assert pr.rule_cmr(P(4.0, 1.21, sites=(pr.Site(1, 1.1),), **bp)) is None
    assert pr.rule_cmr(P(4.0, None, sites=(pr.Site(1, 1.3),), **bp)) is None  # the site: 1.30
    # 4.0 -> 1.3: -67.5 %, -2.70 SUL: PMR, not CMR
    assert pr.percist_category(P(4.0, None, sites=(pr.Site(1, 1.3),), **bp))[0] == "PMR"


def test_an_empty_mask_over_unchanged_uptake_is_never_cmr() -> None:
    # the case: the follow-up mask is empty (no follow-up lesion) but the baseline
    # lesion's site still reads SULpeak 10.0 on the follow-up PET (unchanged): 10.0 -> 10.0 is
    # 0 %, 0.00 SUL, so SMD with the site named in the blockers
    p = P(10.0, None, sites=(pr.Site(1, 10.0),))
    assert pr.rule_cmr(p) is None
    assert pr.percist_category(p)[:2] == ("SMD", "smd")
    assert "baseline lesion 1's site has SULpeak 10.00" in pr.cmr_blockers(p)[0]
    # a site outside the follow-up image cannot confirm a complete response
    assert pr.rule_cmr(P(10.0, None, sites=(pr.Site(1, None),))) is None


def test_a_site_in_the_liver_compares_with_the_surrounding_liver() -> None:
    # liver mean 1.5, SD 0.25: a site in the liver is background up to 1.5 + 2 x 0.25 = 2.00
    assert pr.rule_cmr(P(4.0, None, sites=(pr.Site(1, 1.9, in_liver=True),)))[0] == "CMR"
    assert pr.rule_cmr(P(4.0, None, sites=(pr.Site(1, 2.0, in_liver=True),)))[0] == "CMR"
    assert pr.rule_cmr(P(4.0, None, sites=(pr.Site(1, 2.01, in_liver=True),))) is None
    assert pr.rule_cmr(P(4.0, None, sites=(pr.Site(1, 1.9),))) is None  # elsewhere: >= 1.5
    # the reason says which limit the liver site met: 1.9 is not "below the liver mean 1.50"
    reason = pr.rule_cmr(P(4.0, None, sites=(pr.Site(1, 1.9, in_liver=True),)))[1]
    assert "site in the liver at most liver mean + 2 SD = 2.00" in reason, reason


def test_rule_pmr() -> None:
    assert pr.rule_pmr(P(4.0, 2.7))[0] == "PMR"  # -32.5%, -1.3 SUL
    assert pr.rule_pmr(P(4.0, 2.9)) is None  # -27.5%
    assert pr.rule_pmr(P(2.8, 1.9))[0] == "PMR"  # -32.1%, -0.9
    assert pr.rule_pmr(P(2.8, 2.05)) is None  # -26.8%, -0.75
    assert pr.percist_category(P(4.0, 2.7))[:2] == ("PMR", "pmr")


def test_a_site_the_mask_missed_counts_as_the_follow_up_peak() -> None:
    # the mask keeps only a cool lesion (2.5) but the target's site still reads 3.9: the
    # follow-up SULpeak is 3.9; 4.0 -> 3.9 is -2.5 %: SMD, not PMR (4.0 -> 2.5 would be -37.5 %)
    p = P(4.0, 2.5, sites=(pr.Site(1, 3.9),))
    assert p.followup_peak == 3.9 and pr.percist_category(p)[0] == "SMD"


def test_non_target_rise_blocks_pmr_and_unequivocal_progression_is_pmd() -> None:
    # the case: target 4.0 -> 2.0 (-50 %, -2.00 SUL) while non-target lesion 2 rises
    # 2.4 -> 3.6 (+50.0 %, +1.20 SUL): no PMR; its TLG 10 -> 15 (+50 %) is not unequivocal: SMD
    rise = pr.NonTarget(2, 2.4, 3.6, 10.0, 15.0)
    category, rule, reason = pr.percist_category(P(4.0, 2.0, non_targets=(rise,)))
    assert (category, rule) == ("SMD", "smd_non_target_rise") and "lesion 2" in reason
    # its TLG 10 -> 17.5 (+75 %): unequivocal progression, PMD
    grow = pr.NonTarget(2, 2.4, 3.6, 10.0, 17.5)
    assert pr.percist_category(P(4.0, 2.0, non_targets=(grow,)))[:2] == ("PMD", "pmd_non_target")
    # 2.4 -> 3.1: +29.2 %, +0.70 SUL: no rise, PMR stands
    small = pr.NonTarget(2, 2.4, 3.1, 10.0, 17.5)
    assert pr.percist_category(P(4.0, 2.0, non_targets=(small,)))[0] == "PMR"


def test_smd_is_the_rest_and_every_category_has_a_reason() -> None:
    category, rule, reason = pr.percist_category(P(4.0, 3.5))
    assert (category, rule) == ("SMD", "smd")
    assert "4.00" in reason and "3.50" in reason
    for p in (
        P(4.0, 6.0),
        P(4.0, None),
        P(4.0, 2.0),
        P(2.0, 2.0),
        P(4.0, 4.0, unmatched=new((3, 3))),
    ):
        assert pr.percist_category(p)[2]


def test_comparability_either_liver_limit_or_uptake_time_gives_ne() -> None:
    # the cases: 1.0 -> 1.25 is +25.0 % (> 20 %) with +0.25 SUL; 2.0 -> 2.35 is +17.5 %
    # with +0.35 SUL (> 0.3): each alone is not comparable
    assert pr.comparability_problems(1.0, 1.25)
    assert pr.comparability_problems(2.0, 2.35)
    # 2.0 -> 2.3: +15.0 %, +0.30 SUL (not > 0.3, in floating point 0.2999999999999998): comparable
    assert not pr.comparability_problems(2.0, 2.3)
    assert not pr.comparability_problems(1.5, 1.8)  # +20.0 %, +0.30: both at the limit
    assert pr.comparability_problems(1.5, 1.5, 60, 76)  # 16 min apart
    assert not pr.comparability_problems(1.5, 1.5, 60, 75)  # 15 min: within
    assert pr.comparability_problems(1.5, 1.5, missing=("the follow-up weight",))
    problems = pr.comparability_problems(1.0, 1.25)
    # a PMR pair (4.0 -> 2.0) on scans that are not comparable is NE with the reason ...
    category, rule, reason = pr.percist_category(P(4.0, 2.0, noncomparable=problems))
    assert (category, rule) == ("NE", "not_comparable") and "+25.0 %" in reason
    # ... unless the user accepts them
    assert (
        pr.percist_category(P(4.0, 2.0, noncomparable=problems, accept_noncomparable=True))[0]
        == "PMR"
    )


def test_measurability_uses_the_blood_pool_when_the_liver_is_abnormal() -> None:
    # blood pool 1.2, SD 0.1: 2.0 x 1.2 + 2 x 0.1 = 2.60; liver's would be 2.75
    bp = {"baseline_blood_pool": (1.2, 0.1), "liver_abnormal": "a tumor in the liver"}
    assert pr.rule_not_measurable(P(2.6, 1.0, **bp)) is None
    assert pr.rule_not_measurable(P(2.59, 1.0, **bp))[0] == "NE"
    assert pr.rule_not_measurable(P(2.7, 1.0))[0] == "NE"  # liver reference: 2.70 < 2.75


def test_tmtv_category() -> None:
    assert pc.tmtv_category(100, 69)[0] == "decrease"
    assert pc.tmtv_category(100, 71)[0] == "stable"
    assert pc.tmtv_category(100, 131)[0] == "increase"
    assert pc.tmtv_category(0, 5)[0] == "new disease"


def test_liver_sphere_keeps_whole_on_3mm_voxels() -> None:
    # a 13^3 liver at 3 mm: a voxel 5 voxels from the edge lies exactly 15 mm from the first
    # voxel outside, which the 3 cm sphere (centres within <= 15 mm) would then hold; the sphere
    # must sit where every voxel it holds is liver (all 4 x pi x 5^3 / 3 ~ 515 of them)
    shape = (13, 13, 13)
    liver = np.ones(shape, bool)
    pad = np.zeros((15, 15, 15), bool)
    pad[1:14, 1:14, 1:14] = liver
    sul = np.where(pad, 2.0, 0.5).astype(np.float32)
    x_mm = np.broadcast_to(np.arange(15) * 3.0, pad.shape)
    ref = pc.liver_reference(sul, pad, np.zeros_like(pad), (3.0, 3.0, 3.0), x_mm)
    assert ref.voxels == len(pc.sphere_offsets(15.0, (3.0, 3.0, 3.0)))
    assert ref.sul_mean == pytest.approx(2.0)
