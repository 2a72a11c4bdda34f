"""Cases from a manifest CSV: any institution's data, one row per case.

Columns: ``case_id, pet, tumor, organs`` (required; ``tumor`` may be empty for unlabelled test
cases; ``organs`` is one TotalSegmentator output — a folder of masks or a multi-label file — or
several joined by ``;``), and optional ``patient_id`` (groups a patient's studies in every split;
default: the case id), ``disease, center, scanner, split`` (train/test). Relative paths resolve
against the CSV's folder. Case ids are sanitised by :func:`lion_nnunet.case_ids.sanitize_case_id`
(the original is kept as ``source_id``).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from lion_nnunet.case_ids import sanitize_case_id
from lion_nnunet.dataset_conversion.raw_dataset import CaseSource
from lion_nnunet.errors import LionError

REQUIRED = ("case_id", "pet", "tumor", "organs")


def read_manifest(path: str | Path, with_organs: bool = True) -> list[CaseSource]:
    """Read a manifest CSV into case sources (paths resolved against the CSV's folder)."""
    path = Path(path)
    if not path.is_file():
        raise LionError(f"{path}: manifest CSV not found")
    try:
        frame = pd.read_csv(path, dtype=str).fillna("")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise LionError(f"{path}: cannot read the manifest as CSV ({e})") from None
    required = REQUIRED if with_organs else REQUIRED[:3]
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise LionError(
            f"{path}: manifest lacks column(s) {', '.join(missing)}; expected "
            f"{', '.join(REQUIRED)} (+ optional patient_id, disease, center, scanner, split)"
        )
    base = path.parent

    def resolve(value: str) -> Path:
        p = Path(value.strip()).expanduser()
        return p if p.is_absolute() else base / p

    cases = []
    for _, row in frame.iterrows():
        tumor = row["tumor"].strip()
        organs = row.get("organs", "")
        name = row["case_id"].strip()
        cases.append(
            CaseSource(
                case_id=sanitize_case_id(name),
                source_id=name,
                patient_id=sanitize_case_id(row.get("patient_id", "")),
                pet=resolve(row["pet"]),
                tumor=resolve(tumor) if tumor else None,
                organs=[resolve(o) for o in organs.split(";") if o.strip()],
                split=(row.get("split", "") or ("train" if tumor else "test")).strip().lower(),
                disease=row.get("disease", "").strip().lower(),
                center=row.get("center", "").strip(),
                scanner=row.get("scanner", "").strip(),
            )
        )
    if not cases:
        raise LionError(f"{path}: manifest has no rows")
    return cases
