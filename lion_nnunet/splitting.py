"""Patient-grouped, stratified splits: test sets, cross-validation folds, nested subsets.

autoPET has several studies per patient (FDG: 1,014 studies of 900 patients; PSMA: 597 of 378).
A split by study puts one patient's scans on both sides and inflates validation scores, so every
split here moves whole patients. A patient's stratum (e.g. disease) is the most common value of
its studies (ties: the alphabetically first).

Inputs are plain mappings ``case id -> patient id`` and ``case id -> stratum``; outputs are case
ids, so the functions serve the converter (``--test-fraction``), ``lion splits`` and the default
5-fold ``splits_final.json``.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence

import numpy as np

from lion_nnunet.errors import LionError


def group_by_patient(
    patient_of: Mapping[str, str], stratum_of: Mapping[str, str] | None = None
) -> tuple[dict[str, list[str]], dict[str, str]]:
    """(patient -> sorted case ids, patient -> stratum: its studies' most common value)."""
    cases: dict[str, list[str]] = defaultdict(list)
    for cid in sorted(patient_of):
        cases[patient_of[cid]].append(cid)
    strata = {}
    for patient, members in cases.items():
        values = Counter((stratum_of or {}).get(c, "") or "unknown" for c in members)
        top = max(values.values())
        strata[patient] = min(v for v, n in values.items() if n == top)
    return dict(cases), strata


def stratified_patient_order(
    patient_of: Mapping[str, str], stratum_of: Mapping[str, str] | None, rng: np.random.Generator
) -> list[str]:
    """Patients ordered so that every prefix keeps the strata's proportions (of patients)."""
    cases, strata = group_by_patient(patient_of, stratum_of)
    keys = []
    for stratum in sorted(set(strata.values())):
        members = sorted(p for p in cases if strata[p] == stratum)
        rng.shuffle(members)
        n = len(members)
        keys += [((i + rng.uniform(0.0, 1.0)) / n, p) for i, p in enumerate(members)]
    return [p for _, p in sorted(keys)]


def take_patients(order: Sequence[str], cases: Mapping[str, list[str]], n_cases: int) -> list[str]:
    """Case ids of the first patients of ``order`` until at least ``n_cases`` cases are taken."""
    taken: list[str] = []
    for patient in order:
        if len(taken) >= n_cases:
            break
        taken += cases[patient]
    return taken


def choose_test_cases(
    patient_of: Mapping[str, str],
    fraction: float,
    seed: int,
    stratum_of: Mapping[str, str] | None = None,
) -> set[str]:
    """About ``round(fraction * cases)`` case ids of whole patients, deterministic per seed.

    Patients are taken in a random order (stratified when ``stratum_of`` is given) until the
    share is reached, so the test set may exceed it by part of one patient's studies.
    """
    if not 0.0 <= fraction < 1.0:
        raise LionError(f"--test-fraction must be in [0, 1), got {fraction}")
    n = round(fraction * len(patient_of))
    if n == 0:
        return set()
    rng = np.random.default_rng(seed)
    cases, _ = group_by_patient(patient_of, stratum_of)
    if stratum_of is None:
        patients = sorted(cases)
        order = [patients[i] for i in rng.permutation(len(patients))]
    else:
        order = stratified_patient_order(patient_of, stratum_of, rng)
    return set(take_patients(order, cases, n))


def grouped_kfold(
    patient_of: Mapping[str, str],
    stratum_of: Mapping[str, str] | None = None,
    folds: int = 5,
    seed: int = 0,
) -> list[dict[str, list[str]]]:
    """nnU-Net ``splits_final.json`` folds: every patient in exactly one validation fold.

    Within each stratum, patients (largest first, ties in random order) go to the fold with the
    fewest cases of that stratum, then the fewest cases overall: folds stay balanced in size and
    stratum mix.
    """
    cases, strata = group_by_patient(patient_of, stratum_of)
    if folds < 2:
        raise LionError(f"--folds must be at least 2, got {folds}")
    if len(cases) < folds:
        raise LionError(f"{len(cases)} patient(s) cannot fill {folds} folds; use fewer --folds")
    rng = np.random.default_rng(seed)
    val: list[list[str]] = [[] for _ in range(folds)]
    for stratum in sorted(set(strata.values())):
        members = sorted(p for p in cases if strata[p] == stratum)
        rng.shuffle(members)
        members.sort(key=lambda p: -len(cases[p]))  # stable: random order within equal sizes
        in_stratum = [0] * folds
        for patient in members:
            k = min(range(folds), key=lambda i: (in_stratum[i], len(val[i]), i))
            val[k] += cases[patient]
            in_stratum[k] += len(cases[patient])
    everyone = sorted(patient_of)
    return [{"train": sorted(set(everyone) - set(v)), "val": sorted(v)} for v in val]


def patients_on_both_sides(
    splits: Sequence[Mapping[str, Sequence[str]]], patient_of: Mapping[str, str]
) -> list[str]:
    """Patients with studies in both ``train`` and ``val`` of any fold (sorted; [] = no leak)."""
    leaks = set()
    for split in splits:
        train = {patient_of.get(c, c) for c in split["train"]}
        leaks |= train & {patient_of.get(c, c) for c in split["val"]}
    return sorted(leaks)
