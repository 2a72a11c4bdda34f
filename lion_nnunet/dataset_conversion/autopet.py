"""Find the cases of an autoPET cohort: the study-folder layout and the autoPET III nnU-Net layout.

* **Study folders** (autoPET FDG, FDG-PET-CT-Lesions on TCIA as NIfTI): ``<patient>/<study>/``
  holding ``SUV.nii.gz`` and ``SEG.nii.gz`` (``CTres.nii.gz``, ``CT.nii.gz``, ``PET.nii.gz`` may
  be there too; the PET used is ``SUV.nii.gz``). Any nesting depth works.
* **autoPET III** (FDG + PSMA in nnU-Net format): ``imagesTr/<tracer>_<patient>_<study>_0000``
  (CT on the PET grid) and ``_0001`` (PET in SUV), ``labelsTr/<case>.nii.gz``. Only cases whose
  prefix matches ``--tracer`` are taken.

Case and patient ids follow :mod:`lion_nnunet.case_ids` (study folders: ``<patient>`` or
``<patient>_<study>``; autoPET III names sanitised, patient = the part before the date); the
original name is kept as ``source_id``.

Organ labels for a case are looked up in ``--organs`` as ``<organs>/<patient>/<study>/`` (the
study's relative path) or ``<organs>/<case_id>`` (a folder or ``<case_id>.nii.gz``). Disease,
center and scanner come from a metadata CSV when given: the official autoPET metadata
(``Subject ID``, ``diagnosis``, ``File Location``, ``Manufacturer`` ...) or our phantoms'
``cases.csv`` (``study_dir``, ``disease``, ``center``, ``scanner``).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from lion_nnunet import wording
from lion_nnunet.case_ids import autopet_patient_id, sanitize_case_id, study_case_ids
from lion_nnunet.dataset_conversion.raw_dataset import CaseSource
from lion_nnunet.errors import LionError

PET_FILE, SEG_FILE = "SUV.nii.gz", "SEG.nii.gz"


def _organ_source(organs_dir: Path | None, rel: Path | None, names: list[str]) -> list[Path]:
    if organs_dir is None:
        return []
    candidates = [organs_dir / rel] if rel is not None else []
    for name in dict.fromkeys(names):
        candidates += [organs_dir / name, organs_dir / f"{name}.nii.gz"]
    for c in candidates:
        if c.exists():
            return [c]
    return [candidates[0]]  # reported as missing by validation


def _study_folder_cases(input_dir: Path, organs_dir: Path | None) -> list[tuple[CaseSource, Path]]:
    studies = {p.parent for p in input_dir.rglob(PET_FILE)}
    studies |= {p.parent for p in input_dir.rglob(SEG_FILE)}
    ids = study_case_ids(input_dir, studies)
    out = []
    for study in sorted(studies):
        case_id, patient = ids[study]
        rel = study.relative_to(input_dir) if study != input_dir else Path(study.name)
        case = CaseSource(
            case_id=case_id,
            pet=study / PET_FILE,
            tumor=study / SEG_FILE,
            organs=_organ_source(organs_dir, rel, [case_id]),
            patient_id=patient,
            source_id=rel.as_posix(),
        )
        out.append((case, rel))
    return out


def _nnunet_layout_cases(input_dir: Path, organs_dir: Path | None, tracer: str) -> list[CaseSource]:
    out = []
    for pet in sorted((input_dir / "imagesTr").glob("*_0001.nii.gz")):
        name = pet.name[: -len("_0001.nii.gz")]
        prefix = name.split("_", 1)[0].lower()
        if prefix in ("fdg", "psma") and prefix != tracer:
            continue
        case_id = sanitize_case_id(name)
        out.append(
            CaseSource(
                case_id=case_id,
                pet=pet,
                tumor=input_dir / "labelsTr" / f"{name}.nii.gz",
                organs=_organ_source(organs_dir, None, [case_id, name]),
                patient_id=autopet_patient_id(name),
                source_id=name,
            )
        )
    return out


def _metadata_lookup(metadata: Path) -> tuple[dict[str, dict], dict[str, dict]]:
    """Metadata rows keyed by study path ('patient/study') and by patient id."""
    if not metadata.is_file():
        raise LionError(f"{metadata}: metadata CSV not found")
    frame = pd.read_csv(metadata, dtype=str).fillna("")
    cols = {c.lower().strip(): c for c in frame.columns}

    def pick(row: pd.Series, *names: str) -> str:
        for n in names:
            if n in cols and row[cols[n]]:
                return str(row[cols[n]]).strip()
        return ""

    by_study: dict[str, dict] = {}
    by_patient: dict[str, dict] = {}
    if not ({"disease", "diagnosis", "center", "scanner"} & set(cols)):
        raise LionError(
            f"{metadata}: no disease/diagnosis, center or scanner column (columns: "
            f"{wording.names(frame.columns)})"
        )
    for _, row in frame.iterrows():
        info = {
            "disease": pick(row, "disease", "diagnosis").lower(),
            "center": pick(row, "center", "site", "institution name"),
            "scanner": pick(row, "scanner", "manufacturer model name", "manufacturer"),
        }
        patient = pick(row, "patient_id", "subject id")
        study = pick(row, "study_dir")
        location = pick(row, "file location").replace("\\", "/")
        if not study and location:
            parts = [p for p in location.split("/") if p not in (".", "")]
            if patient in parts:
                i = parts.index(patient)
                study = "/".join(parts[i : i + 2])
        if study:
            by_study[study] = info
        if patient:
            by_patient[patient] = info
    return by_study, by_patient


def _refuse_studies_without_seg(input_dir: Path, cases: list[tuple[CaseSource, Path]]) -> None:
    """Name the studies that hold SUV.nii.gz but no SEG.nii.gz (a training case needs one)."""
    missing = [rel.as_posix() for case, rel in cases if not case.tumor.is_file()]
    if not missing:
        return
    shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
    raise LionError(
        f"{input_dir}: {len(missing)} of {len(cases)} studies have {PET_FILE} but no "
        f"{SEG_FILE} ({shown}); every study needs a tumor mask (an empty one for a negative "
        "scan): `lion convert dicom` writes none where no RTSTRUCT/SEG ROI matches --roi (see "
        "the note column of its dicom_conversion.csv), so re-run it with --roi naming the tumor "
        "ROIs, or move those studies out of --input"
    )


def discover_autopet(
    input_dir: str | Path,
    organs_dir: str | Path | None,
    tracer: str,
    metadata: str | Path | None = None,
) -> list[CaseSource]:
    """The cases of an autoPET-style cohort folder (either layout), with metadata attached."""
    input_dir = Path(input_dir)
    organs = Path(organs_dir) if organs_dir is not None else None
    if not input_dir.is_dir():
        raise LionError(f"{input_dir}: input folder not found")
    if (input_dir / "imagesTr").is_dir():
        cases = [(c, None) for c in _nnunet_layout_cases(input_dir, organs, tracer)]
    else:
        cases = _study_folder_cases(input_dir, organs)
        _refuse_studies_without_seg(input_dir, cases)
    if not cases:
        raise LionError(
            f"{input_dir}: no autoPET studies found (expected <patient>/<study>/{PET_FILE} + "
            f"{SEG_FILE}, or imagesTr/<case>_0001.nii.gz of autoPET III)"
        )
    if metadata is not None:
        by_study, by_patient = _metadata_lookup(Path(metadata))
        for case, rel in cases:
            key = rel.as_posix() if rel is not None else ""
            info = by_study.get(key) or by_patient.get(rel.parts[0] if rel else case.patient_id)
            if info:
                case.disease, case.center, case.scanner = (
                    info["disease"],
                    info["center"],
                    info["scanner"],
                )
    return [c for c, _ in cases]
