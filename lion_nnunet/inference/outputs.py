"""The per-case output folder of ``lion predict`` / ``lion postprocess`` and ``summary.csv``.

``out/<case_id>/``: ``tumor.nii.gz`` (uint8 0/1 on the PET grid), ``lesions.nii.gz`` (voxel value =
report.json's ``lesion_id``) with ``lesions.ctbl`` (its 3D Slicer colour table,
:mod:`.lesion_files`), optionally ``organs.nii.gz``
(the model's organ label ids; LION: 2..K) with ``organs.json`` (their names), ``suv.nii.gz`` (the
SUV computed from DICOM), ``tumor_probability.nii.gz`` (float32 0..1, the ensemble's tumor
probability), ``seg.dcm`` and ``mip_rotating.gif``, then ``mip.png`` (coronal and sagittal side
by side), ``mip_coronal.png`` and ``mip_sagittal.png`` (one each, for ``lion review``), and
``report.json`` (with the flag score, :mod:`.flags`) written LAST: a case is done exactly when
its report.json exists, so an interrupted run leaves no
case that looks complete. The report lists the files written (``outputs``); before a case is
written again, every file of the earlier run is removed (:func:`clear_case_outputs`), so no file
of an earlier run with other options (an ``organs.nii.gz`` of a ``--save-organs`` run) is left.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from lion_nnunet.io import array_to_image, write_csv, write_image, write_json
from lion_nnunet.labels import LabelSet

from .anatomy import misplaced_organs
from .flags import flag_case
from .lesion_files import COLOR_TABLE, LESIONS, LESIONS_CSV, lesion_frame, write_lesion_files
from .pictures import (
    CORONAL_AXIS,
    DEFAULT_WINDOW,
    SAGITTAL_AXIS,
    lps_arrays,
    save_mip_png,
    save_single_mip_png,
)
from .report import case_report, summary_frame

log = logging.getLogger(__name__)

REPORT = "report.json"
SUMMARY = "summary.csv"
#: Every file a case folder can hold: removed before a case is written again when the earlier
#: report.json does not list its own (an interrupted run, or a report of an earlier version).
CASE_FILES = ("tumor.nii.gz", LESIONS, COLOR_TABLE, "organs.nii.gz", "organs.json", "suv.nii.gz",
              "tumor_probability.nii.gz", "seg.dcm", "mip.png", "mip_coronal.png",
              "mip_sagittal.png", "mip_rotating.gif", REPORT)  # fmt: skip


def case_done(case_dir: Path) -> bool:
    """True when the case's report.json (written last) exists."""
    return (Path(case_dir) / REPORT).is_file()


def clear_case_outputs(case_dir: Path) -> list[str]:
    """Remove what an earlier run wrote into ``case_dir``; return the names removed.

    The files listed in the earlier report.json (``outputs``), else every name in
    :data:`CASE_FILES`, plus temporary files an interrupted write left; report.json goes first,
    so the case is never done while it is half removed. Other files are left alone.
    """
    case_dir = Path(case_dir)
    names = list(CASE_FILES)
    try:
        listed = json.loads((case_dir / REPORT).read_text()).get("outputs")
    except (OSError, json.JSONDecodeError, AttributeError):
        listed = None
    if isinstance(listed, list):  # names only: a report never points outside its folder
        names += [n for n in listed if isinstance(n, str) and Path(n).name == n]
    names = [REPORT] + [n for n in dict.fromkeys(names) if n != REPORT]
    removed = []
    for name in names:
        path = case_dir / name
        if path.is_file():
            path.unlink()
            removed.append(name)
    for part in case_dir.glob(".*.part*") if case_dir.is_dir() else []:
        part.unlink(missing_ok=True)
    return removed


def drop_failed_case(case_dir: Path) -> None:
    """A case whose input failed: remove an earlier run's outputs (so summary.csv cannot list
    them as this run's) and the folder when nothing else is in it."""
    case_dir = Path(case_dir)
    if not case_dir.is_dir():
        return
    clear_case_outputs(case_dir)
    with contextlib.suppress(OSError):  # other files of the user's stay, and so does the folder
        case_dir.rmdir()


def organ_names_json(label_set: LabelSet) -> dict:
    """organs.json: organs.nii.gz's label ids by organ name (as dataset.json's ``labels``)."""
    labels = {"background": 0}
    labels.update(zip(label_set.organ_names, label_set.organ_labels, strict=True))
    return {"labels": labels, "tracer": label_set.tracer}


def measure_case(
    case_id: str,
    pet_image: sitk.Image,
    suv: np.ndarray,
    tumor: np.ndarray,
    organs: np.ndarray | None,
    label_set: LabelSet,
    model: str | None = None,
    folds: list[str] | None = None,
    extra: Mapping | None = None,
    tumor_probability: np.ndarray | None = None,
    fold_tumors: list[np.ndarray] | None = None,
) -> dict:
    """The report of a tumor mask with its flag score (report.json's content, no ``outputs``).

    Arrays (z, y, x) on the grid of ``pet_image``; ``suv`` in SUV. The organ map is first
    cleared of parts in anatomically impossible places (:func:`.anatomy.misplaced_organs`);
    the arguments are those of :func:`write_case_outputs`.
    """
    tumor = np.asarray(tumor) > 0
    has_organs = organs is not None and bool(np.any(organs))
    names = {label: name for name, label in label_set.labels().items()}
    # the organ map the report and flags use: without parts in anatomically impossible places
    checked, misplaced = (
        misplaced_organs(organs, label_set, pet_image) if has_organs else (None, None)
    )
    report = case_report(
        case_id, suv, tumor, pet_image, checked, names, model, folds,
        extra, tumor_probability=tumor_probability, fold_tumors=fold_tumors,
    )  # fmt: skip
    spacing_zyx = tuple(float(v) for v in pet_image.GetSpacing()[::-1])
    flags = flag_case(report, suv, tumor, spacing_zyx, checked, label_set, misplaced)
    report.update(flag_score=flags.score, flag_reasons=flags.reasons, flag_terms=flags.values)
    return report


def write_case_outputs(
    case_dir: Path,
    case_id: str,
    pet_image: sitk.Image,
    suv: np.ndarray,
    tumor: np.ndarray,
    organs: np.ndarray | None,
    label_set: LabelSet,
    save_organs: bool = False,
    model: str | None = None,
    folds: list[str] | None = None,
    extra: Mapping | None = None,
    more_outputs: Callable[[Path], Mapping] | None = None,
    mip_window: tuple[float, float] = DEFAULT_WINDOW,
    save_suv: bool = False,
    tumor_probability: np.ndarray | None = None,
    fold_tumors: list[np.ndarray] | None = None,
    save_probabilities: bool = False,
) -> dict:
    """Write one case's outputs atomically, report.json last; return the report.

    Args:
        case_dir: ``out/<case_id>``.
        case_id: case name.
        pet_image: the PET (SimpleITK), defines the output grid.
        suv: PET voxels in SUV, numpy (z, y, x).
        tumor: binary tumor mask (z, y, x).
        organs: organ label map (z, y, x) or None (tumor-only model).
        label_set: names of the organ labels.
        save_organs: write organs.nii.gz.
        model, folds: stored in the report.
        extra: more report keys.
        more_outputs: called with case_dir before report.json is written (e.g. DICOM-SEG); the
            mapping it returns is added to the report, and its string values are file names
            written into case_dir.
        mip_window: SUV (low, high) of mip.png.
        save_suv: also write ``suv.nii.gz`` (the SUV voxels on the PET grid, float32).
        tumor_probability: the ensemble's tumor probability (z, y, x, 0..1) or None: each
            lesion's ``confidence``.
        fold_tumors: each fold's tumor mask (z, y, x): each lesion's ``fold_agreement``.
        save_probabilities: write ``tumor_probability.nii.gz`` (float32 on the PET grid).
    """
    case_dir = Path(case_dir)
    case_dir.mkdir(parents=True, exist_ok=True)
    clear_case_outputs(case_dir)  # report.json first: the case is not done while rewritten
    written = ["tumor.nii.gz"]
    tumor = (np.asarray(tumor) > 0).astype(np.uint8)
    write_image(array_to_image(tumor, pet_image), case_dir / "tumor.nii.gz")
    written += write_lesion_files(case_dir, tumor, pet_image)
    has_organs = organs is not None and bool(np.any(organs))
    if save_organs and organs is not None:
        write_image(array_to_image(organs.astype(np.uint8), pet_image), case_dir / "organs.nii.gz")
        write_json(organ_names_json(label_set), case_dir / "organs.json")
        written += ["organs.nii.gz", "organs.json"]
    if save_suv:
        suv_image = array_to_image(np.asarray(suv, dtype=np.float32), pet_image)
        write_image(suv_image, case_dir / "suv.nii.gz")
        written.append("suv.nii.gz")
    if save_probabilities and tumor_probability is not None:
        probability = array_to_image(np.asarray(tumor_probability, np.float32), pet_image)
        write_image(probability, case_dir / "tumor_probability.nii.gz")
        written.append("tumor_probability.nii.gz")
    report = measure_case(case_id, pet_image, suv, tumor, organs, label_set, model, folds, extra,
                          tumor_probability, fold_tumors)  # fmt: skip
    title = f"{case_id}: TMTV {report['tmtv_ml']:.1f} ml, {report['lesion_count']} lesion(s)"
    save_mip_pngs(pet_image, suv, tumor, organs if has_organs else None, case_dir, title,
                  mip_window)  # fmt: skip
    written += ["mip.png", "mip_coronal.png", "mip_sagittal.png"]
    if more_outputs is not None:
        more = dict(more_outputs(case_dir) or {})
        report.update(more)
        written += [v for v in more.values() if isinstance(v, str)]
    report["mip_window_suv"] = list(mip_window)
    report["outputs"] = [*written, REPORT]
    write_json(report, case_dir / REPORT)
    return report


#: The two MIPs of a case for lion review; a correction writes them as ``<stem>_corrected.png``.
SINGLE_VIEWS = ((CORONAL_AXIS, "mip_coronal.png"), (SAGITTAL_AXIS, "mip_sagittal.png"))


def save_mip_pngs(
    pet_image: sitk.Image, suv: np.ndarray, tumor: np.ndarray, organs: np.ndarray | None,
    case_dir: Path, title: str, window: tuple[float, float], suffix: str = "",
    both: bool = True,
) -> list[str]:  # fmt: skip
    """A case's MIP pictures, arrays (z, y, x) on ``pet_image``'s grid: mip.png (``both``) and
    mip_coronal/sagittal``<suffix>``.png, each lesion's number (report.json's ``lesion_id``,
    :func:`.report.lesion_map`, numbered before reorienting) beside it; their names."""
    from .report import lesion_map

    (pet_lps, tumor_lps, organs_lps, lesions_lps), spacing_lps = lps_arrays(
        pet_image, suv, tumor, organs, lesion_map(tumor)
    )
    names = []
    if both:
        save_mip_png(pet_lps, tumor_lps, organs_lps, spacing_lps, case_dir / "mip.png",
                     title=title, window=window, lesions=lesions_lps)  # fmt: skip
        names.append("mip.png")
    for axis, name in SINGLE_VIEWS:
        name = name.replace(".png", f"{suffix}.png")
        save_single_mip_png(pet_lps, tumor_lps, organs_lps, spacing_lps, axis, case_dir / name,
                            title=title, window=window, lesions=lesions_lps)  # fmt: skip
        names.append(name)
    return names


def write_summary(
    out_dir: Path, use_corrected: bool = False, to: Path | None = None
) -> Path | None:
    """Rebuild ``out/summary.csv`` from every ``out/*/report.json`` (one row per case) and
    ``out/lesions.csv`` (one row per lesion, :func:`.lesion_files.lesion_frame`).

    With ``use_corrected``, a case corrected in ``lion review --serve`` contributes its
    report_corrected.json instead, and both tables get a ``corrected`` column (True/False).
    ``to``: write both tables into this folder instead of ``out_dir`` (``lion review`` writes
    the cohort's tables with corrections into its gallery, never over the prediction's).
    """
    out_dir = Path(out_dir)
    to = Path(to) if to is not None else out_dir
    reports = []
    corrected = []
    for path in sorted(out_dir.glob(f"*/{REPORT}")):
        used = False
        if use_corrected:
            from lion_nnunet.inference.corrected import case_report_path

            path, used = case_report_path(path.parent, True)
        try:
            reports.append(json.loads(path.read_text()))
            corrected.append(used)
        except json.JSONDecodeError:
            log.warning("%s: unreadable, left out of %s", path, SUMMARY)
    if not reports:
        return None
    frame, lesions = summary_frame(reports), lesion_frame(reports)
    if use_corrected:
        frame.insert(1, "corrected", corrected)
        by_case = dict(zip(frame["case_id"], corrected, strict=True))
        lesions.insert(1, "corrected", [by_case.get(c, False) for c in lesions["case_id"]])
    write_csv(lesions, to / LESIONS_CSV)
    return write_csv(frame, to / SUMMARY)
