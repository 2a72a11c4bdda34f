"""Case ids and patient ids: the one rule that convert, predict, evaluate and reports share.

nnU-Net uses a case id in file names (``<case>_0000.nii.gz``, ``<case>.nii.gz``) and in
``splits_final.json``. Public data has names nnU-Net cannot use safely: autoPET's study folders
and autoPET III file names carry spaces and long study descriptions
(``fdg_0168f65af8_04-04-2003-NA-PET-CT Ganzkoerper  primaer mit KM-82224``). The rule:

* **Sanitising** (:func:`sanitize_case_id`): the name is put in Unicode NFC form (so ``ü`` typed
  on macOS, which stores it decomposed, and on Linux give one id); every run of characters other
  than letters, digits (any script: ``müller``, ``Øster``, ``李``), ``_``, ``-`` and ``.`` becomes
  one ``-``; leading/trailing ``-``/``.`` are dropped. Path separators, spaces, control and
  other characters never survive, so an id is always a safe folder and file name. The original
  name is kept in ``lion_cases.csv`` (column ``source_id``); two names that sanitise to the same
  id are refused by the converter (a true collision).
* **autoPET study folders** ``<root>/<patient>/<study>/SUV.nii.gz`` (:func:`study_case_ids`): the
  case id is ``<patient>`` when the patient has one study under ``root`` and
  ``<patient>_<study>`` (all folder parts below ``root`` joined by ``_``) when it has several,
  then sanitised. The patient id is the first folder (``PETCT_0117d7f11f``).
* **autoPET III / IV names** ``<tracer>_<patient>_<date>...`` (:func:`autopet_patient_id`): the
  patient id is the part before the study date (``fdg_0168f65af8``; PSMA dates are
  ``YYYY-MM-DD``, FDG dates ``MM-DD-YYYY``).

Examples:
    >>> sanitize_case_id("fdg_0168f65af8_04-04-2003-NA-PET-CT Ganzkoerper  primaer mit KM-82224")
    'fdg_0168f65af8_04-04-2003-NA-PET-CT-Ganzkoerper-primaer-mit-KM-82224'
    >>> autopet_patient_id("psma_95b833d46f153cd2_2018-04-16")
    'psma_95b833d46f153cd2'
    >>> sanitize_case_id("PT_mu\u0308ller / scan 1")
    'PT_müller-scan-1'
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

#: A case id nnU-Net can use in file names: a letter or digit (any script), then letters, digits,
#: ``_``, ``.``, ``-`` (``\w`` is Unicode letters, digits and ``_``).
SAFE_CASE_ID = re.compile(r"^[^\W_][\w.\-]*$")
_UNSAFE = re.compile(r"[^\w.\-]+")
#: The study date in autoPET III/IV names: MM-DD-YYYY (FDG) or YYYY-MM-DD (PSMA).
_DATE = re.compile(r"_(\d{2}-\d{2}-\d{4}|\d{4}-\d{2}-\d{2})(?=[_\-\s]|$)")


def sanitize_case_id(text: str) -> str:
    """A file-name-safe case id (NFC): letters, digits, '_', '-', '.'; other runs become '-'."""
    return _UNSAFE.sub("-", unicodedata.normalize("NFC", str(text)).strip()).strip("-.")


def autopet_patient_id(case_name: str) -> str:
    """The patient of an autoPET III/IV case name: the part before the study date.

    Names without a date are their own patient.
    """
    match = _DATE.search(case_name)
    return sanitize_case_id(case_name[: match.start()] if match else case_name)


def _study_root(root: Path, studies: Iterable[Path]) -> Path:
    """``root`` raised until every study lies at least two folders (patient/study) below it."""
    studies = list(studies)
    while any(len(s.relative_to(root).parts) < 2 for s in studies) and root.parent != root:
        root = root.parent
    return root


def study_case_ids(root: Path, studies: Iterable[Path]) -> dict[Path, tuple[str, str]]:
    """``{study folder: (case id, patient id)}`` for autoPET study folders under ``root``.

    ``root`` may also be a patient or study folder; it is raised so that every study has a
    patient folder above it.
    """
    studies = sorted({Path(s) for s in studies})
    root = _study_root(Path(root), studies)
    rels = {s: s.relative_to(root).parts for s in studies}
    per_patient = Counter(parts[0] for parts in rels.values())
    out = {}
    for study, parts in rels.items():
        patient = parts[0]
        name = patient if per_patient[patient] == 1 else "_".join(parts)
        out[study] = (sanitize_case_id(name), sanitize_case_id(patient))
    return out


def study_case_id(study: Path) -> tuple[str, str]:
    """(case id, patient id) of one study folder, judged from its patient folder's studies.

    The same answer as :func:`study_case_ids` over the whole cohort, for one ``SUV.nii.gz``.
    """
    study = Path(study).resolve()
    patient_dir = study.parent
    siblings = {p.parent for p in patient_dir.rglob("SUV.nii.gz")} | {study}
    return study_case_ids(patient_dir.parent, siblings)[study]


def case_id_of_name(name: str) -> str:
    """The case id of a file-name case (nnU-Net layout, ground truth, CSV): sanitised."""
    return sanitize_case_id(name)
