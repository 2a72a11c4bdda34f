"""Response assessment of a cohort: pairs.csv, or pairs from ``lion convert``'s lion_cases.csv.

``pairs.csv`` has one row per baseline/follow-up pair: ``patient_id, baseline, followup,
weight_kg, height_cm, sex`` with baseline and followup ``lion predict`` case folders (relative to
the CSV's folder or absolute). :func:`pairs_from_cases` builds that table for every patient with
at least two studies in lion_cases.csv: the earliest study (by the date in its name when every
study has one, else by name) is the baseline of each later one.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pandas as pd

from lion_nnunet.errors import LionError

log = logging.getLogger(__name__)

PAIR_COLUMNS = ("patient_id", "baseline", "followup", "weight_kg", "height_cm", "sex")
PATIENT_COLUMNS = ("patient_id", "weight_kg", "height_cm", "sex")
_DATE = re.compile(r"(\d{2})-(\d{2})-(\d{4})|(\d{4})-(\d{2})-(\d{2})")


def study_date(name: str) -> date | None:
    """The study date in an autoPET name (MM-DD-YYYY for FDG, YYYY-MM-DD for PSMA), or None."""
    m = _DATE.search(str(name))
    if not m:
        return None
    try:
        if m.group(1):
            return date(int(m.group(3)), int(m.group(1)), int(m.group(2)))
        return date(int(m.group(4)), int(m.group(5)), int(m.group(6)))
    except ValueError:
        return None


def read_table(path: str | Path, columns: tuple[str, ...], what: str) -> pd.DataFrame:
    """A CSV with the given columns (patient_id as text); refuses missing columns or no rows."""
    path = Path(path)
    if not path.is_file():
        raise LionError(f"{path}: {what} not found")
    table = pd.read_csv(path, dtype={"patient_id": str, "case_id": str})
    lacking = [c for c in columns if c not in table.columns]
    if lacking:
        raise LionError(f"{path}: columns {lacking} missing; expected {','.join(columns)}")
    if table.empty:
        raise LionError(f"{path}: no rows")
    return table


def pairs_from_cases(
    cases_csv: str | Path, predictions: str | Path, patients: pd.DataFrame
) -> pd.DataFrame:
    """pairs.csv rows for every patient with >= 2 studies in lion_cases.csv.

    Args:
        cases_csv: ``lion convert``'s lion_cases.csv (case_id, patient_id, source_id).
        predictions: the ``lion predict`` output folder holding ``<case_id>/``.
        patients: weight_kg, height_cm and sex per patient_id.

    Raises:
        LionError: no patient has two studies, a patient lacks weight/height/sex, or a
            prediction folder is missing (all missing ones listed).
    """
    cases = read_table(cases_csv, ("case_id", "patient_id", "source_id"), "lion_cases.csv")
    predictions = Path(predictions)
    known = patients.set_index("patient_id")
    rows, missing, unknown = [], [], []
    for patient, group in cases.groupby("patient_id", sort=True):
        if len(group) < 2:
            continue
        dates = [study_date(s) for s in group["source_id"]]
        key = dates if all(dates) else list(group["source_id"])
        ordered = [case for _, case in sorted(zip(key, group["case_id"], strict=True))]
        if patient not in known.index:
            unknown.append(patient)
            continue
        missing += [c for c in ordered if not (predictions / c / "tumor.nii.gz").is_file()]
        info = known.loc[patient]
        for follow in ordered[1:]:
            rows.append({
                "patient_id": patient, "baseline": str((predictions / ordered[0]).resolve()),
                "followup": str((predictions / follow).resolve()),
                "weight_kg": info["weight_kg"], "height_cm": info["height_cm"], "sex": info["sex"],
                # one weight per patient in patients.csv: it holds for every study
                "followup_weight_kg": info.get("followup_weight_kg", info["weight_kg"]),
            })  # fmt: skip
    if unknown:
        raise LionError(
            f"no weight, height and sex for patient(s) {', '.join(unknown)}; give --patients "
            "patients.csv with patient_id,weight_kg,height_cm,sex"
        )
    if missing:
        raise LionError(
            f"{predictions}: no lion predict output for case(s) {', '.join(missing)}; run lion "
            f"predict --save-organs on them into {predictions}"
        )
    if not rows:
        raise LionError(f"{cases_csv}: no patient has two or more studies; nothing to compare")
    return pd.DataFrame(rows, columns=[*PAIR_COLUMNS, "followup_weight_kg"])


def run_pairs(
    table: pd.DataFrame,
    root: Path,
    out: Path,
    options_for: Callable[[object], object],
    overwrite: bool = False,
    progress: bool = True,
    use_corrected: bool = True,
) -> pd.DataFrame:
    """Assess every pair; write ``out/<patient_id>/<followup>/response.*`` and out/response.csv.

    Every row is checked (folders exist, patient data valid) before any work. A pair whose
    assessment fails, whatever the error (an implausible PET, no liver reference, a bug), is
    recorded in response.csv with ``status`` ``failed`` and the ``error``; the others go on.

    Args:
        table: pairs (PAIR_COLUMNS).
        root: folder that relative baseline/followup paths start from.
        out: output folder.
        options_for: row -> :class:`~lion_nnunet.analysis.response.ResponseOptions`.
        overwrite: replace existing outputs.
        progress: show a progress bar.
        use_corrected: a case folder's tumor_corrected.nii.gz (``lion review --serve``) where
            one exists.
    """
    from lion_nnunet.analysis.response import (
        RESPONSE_CSV,
        assess_response,
        check_output,
        csv_row,
        prediction_study,
        write_response,
    )
    from lion_nnunet.io import write_csv
    from lion_nnunet.progress import track

    if (out / RESPONSE_CSV).exists() and not overwrite:
        raise LionError(f"{out / RESPONSE_CSV}: exists; use --overwrite or another -o")
    jobs = []
    for row in table.itertuples():
        options = options_for(row)
        pair = (row.baseline, row.followup)
        folders = [Path(v) if Path(v).is_absolute() else root / v for v in pair]
        for folder in folders:
            if not (folder / "tumor.nii.gz").is_file():
                raise LionError(
                    f"patient {row.patient_id}: {folder} has no tumor.nii.gz; baseline and "
                    "followup must be lion predict case folders"
                )
        target = check_output(out / str(row.patient_id) / folders[1].name, overwrite)
        jobs.append((folders, options, target))
    rows = []
    for (b, f), options, target in track(jobs, "response", enabled=progress):
        patient = getattr(options, "patient_id", None) or target.parent.name
        try:
            result = assess_response(prediction_study(b, "baseline", use_corrected=use_corrected),
                                     prediction_study(f, "followup", use_corrected=use_corrected),
                                     options)  # fmt: skip
            rows.append({**csv_row(write_response(result, target)), "status": "ok", "error": ""})
        except Exception as e:  # one failed pair, whatever the error, never stops the others
            error = str(e) if isinstance(e, LionError) else f"unexpected {type(e).__name__}: {e}"
            if isinstance(e, LionError):
                log.error("patient %s, follow-up %s not assessed: %s", patient, f.name, e)
            else:
                log.exception("patient %s, follow-up %s not assessed", patient, f.name)
            rows.append({"patient_id": patient, "baseline": str(b), "followup": str(f),
                         "status": "failed", "error": error})  # fmt: skip
    frame = pd.DataFrame(rows)
    write_csv(frame, out / RESPONSE_CSV)
    return frame
