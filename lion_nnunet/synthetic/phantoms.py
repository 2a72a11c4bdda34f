"""Synthetic whole-body PET cohorts in the autoPET layout, with TotalSegmentator-style organ masks.

``make_cohort`` writes, per case::

    OUT/studies/<patient_id>/<study>/SUV.nii.gz     PET in SUV (float32), PSF-blurred and noisy
    OUT/studies/<patient_id>/<study>/CTres.nii.gz   crude CT in HU (int16) on the PET grid
    OUT/studies/<patient_id>/<study>/SEG.nii.gz     binary tumor mask on the PET grid (uint8)
    OUT/organs/<patient_id>/<study>/                TotalSegmentator-style output on a finer,
                                                    shifted CT grid: <class>.nii.gz binary masks
                                                    ("masks") or total.nii.gz and
                                                    head_glands_cavities.nii.gz ("ml")
    OUT/cases.csv, OUT/lesions.csv                  one row per case / per lesion

Images have identity direction (LPS): x to the patient's left, y posterior, z superior, so a
higher numpy z index (arrays are (z, y, x)) is closer to the head. Everything is deterministic by
``seed``: case ``i`` is the same whatever the cohort size, and a re-run skips cases already
written completely (``OUT/.phantoms/`` holds the settings and one record per finished case).

Examples:
    >>> import shutil, tempfile
    >>> from pathlib import Path
    >>> from lion_nnunet.synthetic.phantoms import make_cohort
    >>> out = Path(tempfile.mkdtemp())
    >>> cases = make_cohort(out / "fdg_synth", "fdg", 4, progress=False)
    >>> cases.disease.tolist()
    ['lymphoma', 'lung_cancer', 'melanoma', 'negative']
    >>> sorted(p.name for p in (out / "fdg_synth" / "studies").glob("*/*/*.nii.gz"))[:3]
    ['CTres.nii.gz', 'CTres.nii.gz', 'CTres.nii.gz']
    >>> shutil.rmtree(out)
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lion_nnunet.errors import LionError
from lion_nnunet.io import write_csv, write_image, write_json
from lion_nnunet.labels import TOTALSEG_TASKS, all_totalseg_classes, get_label_set
from lion_nnunet.progress import parallel_map
from lion_nnunet.synthetic import phantom_anatomy as anat
from lion_nnunet.synthetic.phantom_case import (
    DISEASES,
    SIZES,
    PhantomCase,
    annotate_visible,
    organ_label_map,
    synthesize_case,
    to_image,
)
from lion_nnunet.synthetic.phantom_followup import move_ct_labels, synthesize_followup

log = logging.getLogger(__name__)

ORGAN_FORMATS = ("masks", "ml")
#: What the lesion masks hold: every painted lesion, or those a reader can see (Rose SNR >= 5).
ANNOTATE = ("all", "visible")
STUDY_FILES = ("SUV.nii.gz", "CTres.nii.gz", "SEG.nii.gz")
STATE_DIR = ".phantoms"

__all__ = [
    "ANNOTATE", "DISEASES", "ORGAN_FORMATS", "SIZES", "assign_diseases", "make_cohort",
    "write_case",
]  # fmt: skip


def _ts_ids() -> dict[str, tuple[str, int]]:
    """TotalSegmentator class name -> (task, id), for every class the phantom anatomy draws."""
    known = {c.name: (c.task, c.id) for c in all_totalseg_classes()}
    return {name: known[name] for name in anat.ORGANS}


def organ_files(tracer: str, organ_format: str) -> list[str]:
    """File names written to a case's organs folder."""
    if organ_format == "ml":
        return [f"{task}.nii.gz" for task in TOTALSEG_TASKS]
    return [f"{s.name}.nii.gz" for o in get_label_set(tracer).organs for s in o.sources]


def write_organs(
    case: PhantomCase, folder: Path, organ_format: str, labels: np.ndarray | None = None
) -> None:
    """Write a case's TotalSegmentator-style organ output on its CT grid.

    "masks" writes one binary uint8 ``<class>.nii.gz`` per TotalSegmentator class of the tracer's
    label set; "ml" writes ``total.nii.gz`` and ``head_glands_cavities.nii.gz`` with
    TotalSegmentator v2 ids of every organ the phantom draws (as TotalSegmentator's ``--ml``
    output, which also holds classes a label set does not use). ``labels`` replaces the rendered
    map (0 or index in ``_ts_ids()`` + 1, on the CT grid), e.g. a follow-up's moved organs.
    """
    ids = _ts_ids()
    names = list(ids)
    if labels is None:
        labels = organ_label_map(case.ct_grid, case.anatomy, names)  # 0 or names.index + 1
    if organ_format == "ml":
        for task in TOTALSEG_TASKS:
            lut = np.zeros(len(names) + 1, dtype=np.uint8)
            for i, name in enumerate(names):
                if ids[name][0] == task:
                    lut[i + 1] = ids[name][1]
            write_image(to_image(lut[labels], case.ct_grid), folder / f"{task}.nii.gz")
        return
    for file in organ_files(case.tracer, "masks"):
        name = file.removesuffix(".nii.gz")
        mask = (labels == names.index(name) + 1).astype(np.uint8)
        write_image(to_image(mask, case.ct_grid), folder / file)


def write_case(
    case: PhantomCase, out_dir: Path, organ_format: str, organ_labels: np.ndarray | None = None
) -> None:
    """Write one case's study files and organ output under ``out_dir`` (each file atomically)."""
    study_dir = out_dir / "studies" / case.patient_id / case.study
    organ_dir = out_dir / "organs" / case.patient_id / case.study
    if organ_dir.is_dir():  # a rebuilt case must not keep files of another organ format
        shutil.rmtree(organ_dir)
    write_image(to_image(case.ct, case.pet_grid), study_dir / "CTres.nii.gz")
    write_image(to_image(case.seg, case.pet_grid), study_dir / "SEG.nii.gz")
    write_organs(case, organ_dir, organ_format, organ_labels)
    write_image(to_image(case.suv, case.pet_grid), study_dir / "SUV.nii.gz")


@dataclass(frozen=True)
class _CaseSpec:
    out: str
    tracer: str
    index: int
    seed: int
    size: str
    organ_format: str
    disease: str
    followups: int = 0
    annotate: str = "all"


def _patient_id(tracer: str, index: int) -> str:
    return f"SYN{tracer.upper()}_{index:04d}"


def _record_path(out: Path, tracer: str, index: int) -> Path:
    return out / STATE_DIR / f"{_patient_id(tracer, index)}_study_01.json"


def _make_case(spec: _CaseSpec) -> dict:
    """Build and write one case; return its cases.csv row and lesion rows (pickled to workers)."""
    case = synthesize_case(spec.tracer, spec.index, spec.seed, spec.size, spec.disease)
    if spec.annotate == "visible":
        case = annotate_visible(case)
    out = Path(spec.out)
    write_case(case, out, spec.organ_format)
    record = {"case": case.row(), "lesions": case.lesions}
    if spec.followups:
        names = list(_ts_ids())
        organs = organ_label_map(case.ct_grid, case.anatomy, names)
        record.update(followup_cases=[], followup_lesions=[], followups=[])
        for k in range(1, spec.followups + 1):
            follow, truth, motion = synthesize_followup(case, k, spec.seed)
            moved = move_ct_labels(organs, case.ct_grid, motion)
            write_case(follow, out, spec.organ_format, moved)
            record["followup_cases"].append(follow.row())
            record["followup_lesions"] += follow.lesions
            record["followups"] += truth
    write_json(record, _record_path(out, spec.tracer, spec.index))  # last: marks it complete
    return record


def _is_complete(out: Path, tracer: str, index: int, organ_format: str, followups: int = 0) -> bool:
    files = []
    for k in range(followups + 1):
        study = f"{_patient_id(tracer, index)}/study_{k + 1:02d}"
        files += [out / "studies" / study / f for f in STUDY_FILES]
        files += [out / "organs" / study / f for f in organ_files(tracer, organ_format)]
    return _record_path(out, tracer, index).is_file() and all(f.is_file() for f in files)


def assign_diseases(weights: Mapping[str, float], cases: int) -> list[str]:
    """Diseases of cases 0..cases-1 in the given proportions, independent of the cohort size.

    Case ``k`` takes the disease furthest below its share of the first ``k + 1`` cases, so every
    prefix of the list is balanced: a cohort of at least ``len(weights)`` cases has every disease,
    and growing a cohort never changes the disease of an existing case.
    """
    total = float(sum(weights.values()))
    counts = dict.fromkeys(weights, 0)
    out = []
    for k in range(1, cases + 1):
        best = max(weights, key=lambda d: weights[d] / total * k - counts[d])
        counts[best] += 1
        out.append(best)
    return out


def _disease_weights(
    tracer: str, diseases: Sequence[str] | Mapping[str, float] | None
) -> dict[str, float]:
    known = DISEASES[tracer]
    if diseases is None:
        return dict(known)
    weights = (
        {str(k): float(v) for k, v in diseases.items()}
        if isinstance(diseases, Mapping)
        else dict.fromkeys(map(str, diseases), 1.0)
    )
    unknown = sorted(set(weights) - set(known))
    if unknown or not weights:
        raise LionError(
            f"unknown {tracer} disease(s) {unknown or '(none given)'}; "
            f"choose from {', '.join(known)}"
        )
    if any(not w > 0 for w in weights.values()):
        raise LionError(f"disease weights must be positive, got {weights}")
    return weights


def _prepare_output(out: Path, settings: dict, overwrite: bool) -> None:
    """Check ``out`` is empty or an earlier cohort with the same settings; clear on overwrite."""
    settings_file = out / STATE_DIR / "settings.json"
    ours = [
        out / "studies",
        out / "organs",
        out / STATE_DIR,
        out / "cases.csv",
        out / "lesions.csv",
        out / "followups.csv",
    ]
    if not settings_file.is_file():
        if any(p.exists() for p in ours):
            raise LionError(
                f"{out}: holds studies/, organs/ or cases.csv that lion phantoms did not write "
                f"(no {STATE_DIR}/settings.json); choose another --out"
            )
        return
    before = json.loads(settings_file.read_text())
    if overwrite:
        for p in ours:
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
    elif before != settings:
        raise LionError(
            f"{out}: holds a cohort made with {before}, not {settings}; "
            "use another --out or --overwrite"
        )


def make_cohort(
    out_dir: str | Path,
    tracer: str,
    cases: int,
    seed: int = 0,
    size: str = "small",
    organ_format: str = "masks",
    diseases: Sequence[str] | Mapping[str, float] | None = None,
    num_processes: int = 1,
    overwrite: bool = False,
    progress: bool = True,
    followups: int = 0,
    annotate: str = "all",
) -> pd.DataFrame:
    """Write a synthetic PET cohort (autoPET layout + organ masks + cases.csv); return cases.

    Args:
        out_dir: output folder (created).
        tracer: "fdg" or "psma": organ uptake pattern, diseases and organ classes written.
        cases: number of studies (one study per patient).
        seed: everything is a deterministic function of (seed, case index).
        size: "small" (PET 48x40x96 voxels x,y,z at 6 mm; CT grid 4 mm) for tests and the demo,
            "wholebody" (PET 200x200x400 at 4 mm; CT grid 1.5 mm cropped to the body), or
            "autopet" (PET 400x400x300 at 2.04 x 2.04 x 3 mm, the autoPET grid; CT grid 2 mm).
        organ_format: "masks" (one binary <class>.nii.gz per TotalSegmentator class of the label
            set) or "ml" (multi-label total.nii.gz and head_glands_cavities.nii.gz).
        diseases: restrict the cohort to these diseases (equal shares) or give weights
            ({"lymphoma": 3, "negative": 1}); default: every disease of the tracer, see DISEASES.
        num_processes: worker processes.
        overwrite: delete an earlier cohort in ``out_dir`` and write it anew (else finished cases
            are kept and skipped).
        progress: show a progress bar.
        followups: later studies per patient (study_02, ...) with known lesion changes and a
            patient shift/rotation (:mod:`phantom_followup`); the truth goes to followups.csv.
        annotate: which lesions SEG.nii.gz, lesions.csv and cases.csv hold: "all" (every painted
            lesion) or "visible" (those a reader can see: Rose SNR >= 5 in the scanned image,
            :func:`~lion_nnunet.synthetic.phantom_case.annotate_visible`; the images are the
            same). Not with ``followups``.

    Returns:
        The cases table (also written to ``out_dir/cases.csv``); lesions go to lesions.csv with
        region, adjacent hot organ, volume (ml), SUV and centroid (mm) of each lesion.

    Raises:
        LionError: bad arguments, or ``out_dir`` holds other data or another cohort.
    """
    tracer = get_label_set(tracer).tracer
    if tracer not in DISEASES:
        raise LionError(
            f"no phantom model for tracer {tracer!r}; choose from {', '.join(DISEASES)}"
        )
    if isinstance(cases, bool) or int(cases) != cases or cases < 1:
        raise LionError(f"--cases must be a whole number of at least 1, got {cases!r}")
    if size not in SIZES:
        raise LionError(f"unknown phantom size {size!r}; choose from {', '.join(SIZES)}")
    if organ_format not in ORGAN_FORMATS:
        raise LionError(
            f"unknown organ format {organ_format!r}; choose from {', '.join(ORGAN_FORMATS)}"
        )
    if isinstance(followups, bool) or int(followups) != followups or followups < 0:
        raise LionError(f"--followups must be a whole number >= 0, got {followups!r}")
    followups = int(followups)
    if annotate not in ANNOTATE:
        raise LionError(f"unknown --annotate {annotate!r}; choose from {', '.join(ANNOTATE)}")
    if annotate != "all" and followups:
        raise LionError(
            f"--annotate {annotate} is for baseline studies only; drop --followups or use "
            "--annotate all"
        )
    weights = _disease_weights(tracer, diseases)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise LionError(f"{out}: exists and is not a folder; choose another --out")
    settings = {
        "tracer": tracer, "seed": int(seed), "size": size, "organ_format": organ_format,
        "diseases": weights,
    }  # fmt: skip
    if followups:  # absent when 0, so cohorts written before --followups existed still match
        settings["followups"] = followups
    if annotate != "all":  # likewise for --annotate
        settings["annotate"] = annotate
    _prepare_output(out, settings, overwrite)
    write_json(settings, out / STATE_DIR / "settings.json")

    todo, records = [], {}
    for i, disease in enumerate(assign_diseases(weights, int(cases))):
        if _is_complete(out, tracer, i, organ_format, followups):
            records[i] = json.loads(_record_path(out, tracer, i).read_text())
        else:
            spec = (str(out), tracer, i, int(seed), size, organ_format, disease, followups)
            todo.append(_CaseSpec(*spec, annotate))
    if records:
        log.info("%d of %d cases already written; skipping them", len(records), cases)
    extra = len(list((out / STATE_DIR).glob("SYN*_study_01.json"))) - len(records)
    if extra > 0:
        log.warning(
            "%s: %d cases beyond --cases %d are left from an earlier run and are not in "
            "cases.csv; use --overwrite to remove them",
            out, extra, cases,
        )  # fmt: skip
    done = parallel_map(_make_case, todo, num_processes, f"phantoms {tracer}", progress)
    for spec, record in zip(todo, done, strict=True):
        records[spec.index] = record
    ordered = [records[i] for i in range(int(cases))]
    table = pd.DataFrame([c for r in ordered for c in [r["case"], *r.get("followup_cases", [])]])
    lesion_columns = ["patient_id", "study", "lesion", "region", "near_organ", "volume_ml", "suv"]
    lesion_columns += ["center_x_mm", "center_y_mm", "center_z_mm", "rose_snr"]
    lesions = pd.DataFrame(
        [les for r in ordered for les in [*r["lesions"], *r.get("followup_lesions", [])]],
        columns=lesion_columns,
    )
    write_csv(table, out / "cases.csv")
    write_csv(lesions, out / "lesions.csv")
    if followups:
        truth = pd.DataFrame([row for r in ordered for row in r["followups"]])
        write_csv(truth, out / "followups.csv")
    return table
