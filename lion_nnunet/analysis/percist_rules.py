"""PERCIST 1.0 rules: what they read (:class:`PercistInput`), the limits, and one function per rule.

Sources: Wahl RL, Jacene H, Kasamon Y, Lodge MA. From RECIST to PERCIST: evolving considerations
for PET response criteria in solid tumors. J Nucl Med 2009;50:122S-150S (Table 1 and Appendix);
O JH, Lodge MA, Wahl RL. Practical PERCIST: a simplified guide to PET response criteria in solid
tumors 1.0. Radiology 2016;280:576-584. docs/response.md states each rule with its source and
what LION does differently.

Each rule is a small function named after it: it returns ``(category, reason)`` when it fires and
None otherwise; :func:`percist_category` returns the first rule of :data:`RULES` that fires.
Every comparison is made on the numbers as reported: SUL rounded to :data:`SUL_DECIMALS`
decimals, changes in % to :data:`PCT_DECIMALS` (so 2.0 -> 2.8 SUL is +0.80 SUL, +40.0 %, and
4.0 -> 3.2 is -0.80 SUL, not -0.79999).

Examples:
    >>> rule_pmd_sul_peak_increase(PercistInput(3.0, 4.0, 1.0, 0.2, 1.0, 0.2))[0]
    'PMD'
    >>> sul_change(2.0, 2.8), pct_change(2.0, 2.8)
    (0.8, 40.0)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

# -- the limits, stated once (docs/response.md's table repeats them) ----------------------------

#: SUL values are compared as reported: 2 decimals (report.json's SUV precision).
SUL_DECIMALS = 2
#: Relative changes are compared as reported: % with 1 decimal.
PCT_DECIMALS = 1
#: PMD / PMR: a SULpeak change of at least 30 % ...
CHANGE_PCT = 30.0
#: ... and at least 0.8 SUL (O 2016 writes >= for both; Wahl 2009 Table 1 writes > for PMD).
CHANGE_SUL = 0.8
#: PMD by extent: TLG up by at least 75 % with no decline in SULpeak (Wahl 2009 Table 1).
TLG_INCREASE_PCT = 75.0
#: Comparability: liver SULmean change above 20 % OR above 0.3 SUL (either) makes the pair NE.
LIVER_DRIFT_PCT = 20.0
LIVER_DRIFT_SUL = 0.3
#: Comparability: uptake times more than 15 min apart make the pair NE.
UPTAKE_TIME_TOLERANCE_MIN = 15.0
#: Measurability: SULpeak >= 1.5 x liver mean + 2 SD, or 2.0 x blood-pool mean + 2 SD.
MEASURABLE_LIVER_FACTOR = 1.5
MEASURABLE_BLOOD_POOL_FACTOR = 2.0
MEASURABLE_SD = 2.0
#: A new lesion triggers PMD at >= 0.5 ml (a 1 cm sphere) and SULpeak >= liver mean + 2 SD.
NEW_LESION_MIN_ML = 0.5
NEW_LESION_SD = 2.0
#: CMR: SULpeak below the liver mean and at most blood-pool mean + 2 SD at every site; a site in
#: the liver at most liver mean + 2 SD (its surrounding background; LION's reading).
CMR_BLOOD_POOL_SD = 2.0
CMR_LIVER_SITE_SD = 2.0
#: LION's "normal liver" range of SULmean; outside it (or with tumor in the liver) the blood
#: pool is the reference when measured. Not a published limit.
LIVER_NORMAL_SUL = (1.0, 3.0)


def sul(value: float) -> float:
    """A SUL value as reported (rounded to :data:`SUL_DECIMALS`)."""
    return round(float(value), SUL_DECIMALS)


def sul_change(before: float, after: float) -> float:
    """After - before (SUL), from the reported values, rounded as reported."""
    return round(sul(after) - sul(before), SUL_DECIMALS)


def pct_change(before: float, after: float) -> float | None:
    """100 x (after / before - 1) from the reported values, rounded to :data:`PCT_DECIMALS`."""
    if not sul(before):
        return None
    return round(100.0 * (sul(after) / sul(before) - 1.0), PCT_DECIMALS)


def rose(before: float, after: float) -> bool:
    """A rise of >= 30 % and >= 0.8 SUL (PERCIST's progression limits)."""
    pct = pct_change(before, after)
    return pct is not None and pct >= CHANGE_PCT and sul_change(before, after) >= CHANGE_SUL


def fell(before: float, after: float) -> bool:
    """A fall of >= 30 % and >= 0.8 SUL (PERCIST's partial-response limits)."""
    pct = pct_change(before, after)
    return pct is not None and pct <= -CHANGE_PCT and sul_change(before, after) <= -CHANGE_SUL


# -- what the rules read ------------------------------------------------------------------------


@dataclass(frozen=True)
class Lesion:
    """A follow-up lesion no baseline lesion matched: id, SULpeak, volume (ml), centroid (mm)."""

    id: int
    sul_peak: float
    volume_ml: float
    position_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)


@dataclass(frozen=True)
class Site:
    """A baseline lesion's site measured on the follow-up PET (whatever the follow-up mask says).

    ``sul_peak``: the highest 1 ml sphere mean of follow-up SUL centred within the baseline lesion
    carried to the follow-up through the registration; None when the site lies outside the
    follow-up image. ``in_liver``: the site lies in the follow-up liver, whose uptake is its
    surrounding background (LION: it compares with liver mean + 2 SD, not below the mean).
    """

    lesion: int
    sul_peak: float | None
    in_liver: bool = False


@dataclass(frozen=True)
class NonTarget:
    """A baseline lesion other than the target: SULpeak and TLG (SUL x ml) at both time points.

    The follow-up values are those of its matched follow-up lesions (or its site when none).
    """

    lesion: int
    baseline_sul_peak: float
    followup_sul_peak: float | None
    baseline_tlg: float = 0.0
    followup_tlg: float = 0.0


@dataclass(frozen=True)
class PercistInput:
    """What the rules read. SUL in g/ml (SUV normalised to lean body mass); TLG in SUL x ml.

    ``baseline_sul_peak``: the hottest baseline lesion's SULpeak (the target; None: no lesion).
    ``followup_sul_peak``: the hottest follow-up lesion's in the follow-up mask (None: empty).
    ``sites``: every baseline lesion's site measured on the follow-up PET.
    ``unmatched``: follow-up lesions matched to no baseline lesion.
    ``blood_pool``: (mean, SD) SUL in the descending aorta, None when not measured.
    ``liver_abnormal``: why the baseline liver cannot be the reference ("" when it can).
    ``noncomparable``: why the scans are not comparable ("" each when they are).
    """

    baseline_sul_peak: float | None
    followup_sul_peak: float | None
    baseline_liver_mean: float
    baseline_liver_sd: float
    followup_liver_mean: float
    followup_liver_sd: float
    unmatched: tuple[Lesion, ...] = ()
    baseline_tlg: float = 0.0
    followup_tlg: float = 0.0
    sites: tuple[Site, ...] = ()
    non_targets: tuple[NonTarget, ...] = ()
    baseline_blood_pool: tuple[float, float] | None = None
    followup_blood_pool: tuple[float, float] | None = None
    liver_abnormal: str = ""
    noncomparable: tuple[str, ...] = ()
    accept_noncomparable: bool = False

    @property
    def followup_peak(self) -> float | None:
        """The follow-up SULpeak the rules compare: the hottest of the follow-up lesions and the
        baseline sites measured on the follow-up (a lesion the mask missed still counts)."""
        values = [s.sul_peak for s in self.sites if s.sul_peak is not None]
        if self.followup_sul_peak is not None:
            values.append(self.followup_sul_peak)
        return max(values) if values else None

    @property
    def change(self) -> float | None:
        """SULpeak change (follow-up - baseline), SUL, as reported."""
        if self.baseline_sul_peak is None:
            return None
        return sul_change(self.baseline_sul_peak, self.followup_peak or 0.0)

    @property
    def relative_change(self) -> float | None:
        """SULpeak change in %, as reported."""
        if self.baseline_sul_peak is None:
            return None
        return pct_change(self.baseline_sul_peak, self.followup_peak or 0.0)

    def measurability_threshold(self) -> tuple[float, str]:
        """(threshold SUL, what it is): liver's, or the blood pool's when the liver is abnormal."""
        if self.liver_abnormal and self.baseline_blood_pool is not None:
            mean, sd = self.baseline_blood_pool
            value = MEASURABLE_BLOOD_POOL_FACTOR * mean + MEASURABLE_SD * sd
            return sul(value), (
                f"2.0 x blood-pool mean + 2 SD = {sul(value):.2f} (the liver is abnormal: "
                f"{self.liver_abnormal})"
            )
        value = MEASURABLE_LIVER_FACTOR * self.baseline_liver_mean + MEASURABLE_SD * (
            self.baseline_liver_sd
        )
        return sul(value), f"1.5 x liver mean + 2 SD = {sul(value):.2f}"


Rule = Callable[[PercistInput], "tuple[str, str] | None"]


def new_lesion_triggers(p: PercistInput) -> list[Lesion]:
    """Unmatched follow-up lesions of >= 0.5 ml with SULpeak >= follow-up liver mean + 2 SD."""
    limit = sul(p.followup_liver_mean + NEW_LESION_SD * p.followup_liver_sd)
    return [
        les
        for les in p.unmatched
        if les.volume_ml >= NEW_LESION_MIN_ML and sul(les.sul_peak) >= limit
    ]


def non_target_rises(p: PercistInput) -> list[NonTarget]:
    """Non-target lesions whose SULpeak rose by >= 30 % and >= 0.8 SUL."""
    return [
        n for n in p.non_targets if n.followup_sul_peak is not None
        and rose(n.baseline_sul_peak, n.followup_sul_peak)
    ]  # fmt: skip


def _describe(n: NonTarget) -> str:
    a, b = n.baseline_sul_peak, n.followup_sul_peak
    return (
        f"non-target lesion {n.lesion} {sul(a):.2f} -> {sul(b):.2f} SUL "
        f"({pct_change(a, b):+.1f} %, {sul_change(a, b):+.2f} SUL)"
    )


# -- the rules ----------------------------------------------------------------------------------


def rule_not_comparable(p: PercistInput) -> tuple[str, str] | None:
    """NE: "the liver SUL should not differ by more than 20% (and < 0.3 SUL units) between scans"
    and the uptake times by no more than 15 min (Wahl 2009, Appendix; O 2016). LION: either limit,
    or a missing follow-up weight, makes the pair not evaluable unless --accept-noncomparable.
    """
    if p.noncomparable and not p.accept_noncomparable:
        return "NE", "the scans are not comparable: " + "; ".join(p.noncomparable) + (
            " (--accept-noncomparable assesses them anyway)"
        )
    return None


def rule_new_lesions(p: PercistInput) -> tuple[str, str] | None:
    """PMD: "New 18F-FDG-avid lesions that are typical of cancer and not related to treatment
    effect or infection" (Wahl 2009, Table 1; O 2016). LION: a follow-up lesion matched to no
    baseline lesion, of >= 0.5 ml, with SULpeak >= follow-up liver mean + 2 SD.
    """
    triggers = new_lesion_triggers(p)
    if not triggers:
        return None
    named = "; ".join(
        f"lesion {les.id} ({les.volume_ml:.2f} ml, SULpeak {sul(les.sul_peak):.2f}, at "
        f"{', '.join(f'{c:.0f}' for c in les.position_mm)} mm)"
        for les in triggers
    )
    limit = sul(p.followup_liver_mean + NEW_LESION_SD * p.followup_liver_sd)
    return "PMD", (
        f"{len(triggers)} new FDG-avid lesion(s) of >= {NEW_LESION_MIN_ML} ml with SULpeak >= "
        f"liver mean + 2 SD = {limit:.2f}: {named}"
    )


def rule_not_measurable(p: PercistInput) -> tuple[str, str] | None:
    """NE: "Measurable target lesion: the single tumor lesion with the hottest SULpeak ... at
    least 1.5-fold greater than liver mean SUL + 2 SDs", or "2.0 x the mean of the blood pool
    + 2 SDs" when the liver is abnormal (Wahl 2009, Appendix; O 2016).
    """
    if p.baseline_sul_peak is None:
        return "NE", "no lesion at baseline: nothing measurable to follow"
    threshold, text = p.measurability_threshold()
    if sul(p.baseline_sul_peak) < threshold:
        return "NE", (
            f"the hottest baseline lesion's SULpeak {sul(p.baseline_sul_peak):.2f} is below the "
            f"measurability threshold {text}"
        )
    return None


def rule_pmd_sul_peak_increase(p: PercistInput) -> tuple[str, str] | None:
    """PMD: ">30% increase in 18F-FDG SULpeak, with >0.8 SUL units increase in tumor SULpeak
    from the baseline scan" (Wahl 2009, Table 1; O 2016 writes >=30% and >=0.8; we apply >=).
    """
    if p.baseline_sul_peak is not None and rose(p.baseline_sul_peak, p.followup_peak or 0.0):
        return "PMD", (
            f"SULpeak rose from {sul(p.baseline_sul_peak):.2f} to {sul(p.followup_peak):.2f} "
            f"({p.relative_change:+.1f} %, {p.change:+.2f} SUL): >= 30 % and >= 0.8 SUL"
        )
    return None


def rule_pmd_tlg_increase(p: PercistInput) -> tuple[str, str] | None:
    """PMD: "Visible increase in extent of 18F-FDG tumor uptake (75% in TLG volume with no
    decline in SUL)" (Wahl 2009, Table 1).
    """
    if p.baseline_tlg <= 0:
        return None
    rise = round(100.0 * (p.followup_tlg / p.baseline_tlg - 1.0), PCT_DECIMALS)
    if rise >= TLG_INCREASE_PCT and (p.change or 0.0) >= 0:
        return "PMD", f"TLG rose by {rise:.1f} % (>= 75 %) with no decline in SULpeak"
    return None


def rule_pmd_non_target(p: PercistInput) -> tuple[str, str] | None:
    """PMD: "Unequivocal progression of 18F-FDG-avid nontarget lesions" (Wahl 2009, Table 1).
    LION's rule for "unequivocal": a non-target lesion whose SULpeak rose by >= 30 % and
    >= 0.8 SUL and whose TLG rose by >= 75 %.
    """
    for n in non_target_rises(p):
        if n.baseline_tlg > 0 and n.followup_tlg >= (1 + TLG_INCREASE_PCT / 100) * n.baseline_tlg:
            return "PMD", f"unequivocal progression of {_describe(n)}, TLG +75 % or more"
    return None


def _cmr_blockers(p: PercistInput) -> list[str]:
    """Why the follow-up is not a complete response (empty list: it is)."""
    liver = sul(p.followup_liver_mean)
    bp = None
    if p.followup_blood_pool is not None:
        bp = sul(p.followup_blood_pool[0] + CMR_BLOOD_POOL_SD * p.followup_blood_pool[1])
    in_liver = sul(p.followup_liver_mean + CMR_LIVER_SITE_SD * p.followup_liver_sd)
    values = [(f"baseline lesion {s.lesion}'s site", s.sul_peak, s.in_liver) for s in p.sites]
    values.append(("the hottest follow-up lesion", p.followup_sul_peak, False))
    out = []
    for name, value, liver_site in values:
        if value is None:
            if name.endswith("site"):
                out.append(f"{name} lies outside the follow-up image")
            continue
        if liver_site:
            if sul(value) > in_liver:
                out.append(
                    f"{name} (in the liver) has SULpeak {sul(value):.2f}, above the surrounding "
                    f"liver (mean + 2 SD {in_liver:.2f})"
                )
            continue
        if sul(value) >= liver:
            out.append(f"{name} has SULpeak {sul(value):.2f}, not below the liver mean {liver:.2f}")
        elif bp is not None and sul(value) > bp:
            out.append(
                f"{name} has SULpeak {sul(value):.2f}, above the blood pool (mean + 2 SD {bp:.2f})"
            )
    return out


def rule_cmr(p: PercistInput) -> tuple[str, str] | None:
    """CMR: "Complete resolution of 18F-FDG uptake within measurable target lesion so that it is
    less than mean liver activity and indistinguishable from surrounding background blood-pool
    levels ... Disappearance of all other lesions" (Wahl 2009, Table 1). LION: every baseline
    site and every follow-up lesion has SULpeak < liver mean and <= blood-pool mean + 2 SD; a
    site in the liver, whose background is the liver, <= liver mean + 2 SD.
    """
    if _cmr_blockers(p):
        return None
    where = f"all {len(p.sites)} baseline site(s) and every follow-up lesion"
    text = f"{where} below the liver mean {sul(p.followup_liver_mean):.2f}"
    liver_sites = [s.lesion for s in p.sites if s.in_liver]
    if liver_sites:  # they met their own limit, not the one above
        limit = sul(p.followup_liver_mean + CMR_LIVER_SITE_SD * p.followup_liver_sd)
        text += (
            f" (a site in the liver at most liver mean + 2 SD = {limit:.2f}: baseline "
            f"lesion(s) {', '.join(map(str, liver_sites))})"
        )
    if p.followup_blood_pool is None:
        return "CMR", text + " (blood pool not measured: give the aorta to check it)"
    bp = sul(p.followup_blood_pool[0] + CMR_BLOOD_POOL_SD * p.followup_blood_pool[1])
    return "CMR", text + f" and at the blood pool (<= mean + 2 SD = {bp:.2f})"


def rule_smd_non_target_rise(p: PercistInput) -> tuple[str, str] | None:
    """PMR needs "No increase >30% in SUL or size of target or nontarget lesions" (Wahl 2009,
    Table 1): a target fall that would be PMR while a non-target lesion rose is SMD.
    """
    risen = non_target_rises(p)
    if risen and p.baseline_sul_peak is not None and fell(p.baseline_sul_peak, p.followup_peak):
        return "SMD", (
            f"the target fell ({p.relative_change:+.1f} %, {p.change:+.2f} SUL) but "
            + "; ".join(_describe(n) for n in risen)
            + " rose by >= 30 % and >= 0.8 SUL, which rules out PMR"
        )
    return None


def rule_pmr(p: PercistInput) -> tuple[str, str] | None:
    """PMR: "Reduction of a minimum of 30% in target measurable tumor 18F-FDG SULpeak. Absolute
    drop in SUL must be at least 0.8 SUL units" (Wahl 2009, Table 1; O 2016).
    """
    if p.baseline_sul_peak is not None and fell(p.baseline_sul_peak, p.followup_peak or 0.0):
        return "PMR", (
            f"SULpeak fell from {sul(p.baseline_sul_peak):.2f} to {sul(p.followup_peak):.2f} "
            f"({p.relative_change:+.1f} %, {p.change:+.2f} SUL): >= 30 % and >= 0.8 SUL"
        )
    return None


def rule_smd(p: PercistInput) -> tuple[str, str] | None:
    """SMD: "Not CMR, PMR, or PMD" (Wahl 2009, Table 1)."""
    return "SMD", (
        f"SULpeak {sul(p.baseline_sul_peak):.2f} -> {sul(p.followup_peak or 0.0):.2f} "
        f"({p.relative_change:+.1f} %, {p.change:+.2f} SUL): neither >= 30 % with >= 0.8 SUL, "
        "nor complete"
    )


#: The rules in the order they are tried: the category is the first one that fires.
RULES: tuple[Rule, ...] = (
    rule_not_comparable,
    rule_new_lesions,
    rule_not_measurable,
    rule_pmd_sul_peak_increase,
    rule_pmd_tlg_increase,
    rule_pmd_non_target,
    rule_cmr,
    rule_smd_non_target_rise,
    rule_pmr,
    rule_smd,
)


def percist_category(p: PercistInput) -> tuple[str, str, str]:
    """(category, rule name, reason): the first rule of :data:`RULES` that fires."""
    for rule in RULES:
        fired = rule(p)
        if fired is not None:
            return fired[0], rule.__name__.removeprefix("rule_"), fired[1]
    raise AssertionError("rule_smd always fires")  # pragma: no cover


def cmr_blockers(p: PercistInput) -> list[str]:
    """Why the follow-up is not a complete response, one sentence each (empty: it is)."""
    return _cmr_blockers(p)


def comparability_problems(
    baseline_liver_mean: float,
    followup_liver_mean: float,
    baseline_uptake_min: float | None = None,
    followup_uptake_min: float | None = None,
    missing: tuple[str, ...] = (),
) -> tuple[str, ...]:
    """Why two scans are not comparable (PERCIST's checks; empty when they are).

    Liver: "the liver SUL should not differ by more than 20% (and < 0.3 SUL units) between
    scans" (Wahl 2009, Appendix): either limit counts. Uptake time: within 15 min (Wahl 2009;
    O 2016). ``missing``: patient data that SUL at a time point needs and that was not given.
    """
    out = []
    a, b = baseline_liver_mean, followup_liver_mean
    pct, change = pct_change(a, b), sul_change(a, b)
    if (pct is not None and abs(pct) > LIVER_DRIFT_PCT) or abs(change) > LIVER_DRIFT_SUL:
        out.append(
            f"liver SULmean changed from {sul(a):.2f} to {sul(b):.2f} ({pct:+.1f} %, "
            f"{change:+.2f} SUL): more than 20 % or 0.3 SUL (check dose, uptake time, glucose "
            "and the reconstruction)"
        )
    if baseline_uptake_min is not None and followup_uptake_min is not None:
        gap = abs(followup_uptake_min - baseline_uptake_min)
        if gap > UPTAKE_TIME_TOLERANCE_MIN:
            out.append(
                f"uptake times differ by {gap:g} min ({baseline_uptake_min:g} vs "
                f"{followup_uptake_min:g}): more than 15 min"
            )
    out += [f"{what} is missing" for what in missing]
    return tuple(out)
