"""The per-case output folder of ``lion predict`` / ``lion postprocess`` and ``summary.csv``.

``out/<case_id>/``: ``tumor.nii.gz`` (uint8 0/1 on the PET grid), optionally ``organs.nii.gz``
(the model's organ label ids; LION: 2..K), ``seg.dcm`` and ``mip_rotating.gif``, ``mip.png``,
and ``report.json`` written LAST: a case is done exactly when its report.json exists, so an
interrupted run leaves no case that looks complete.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from lion_nnunet.io import array_to_image, write_csv, write_image, write_json
from lion_nnunet.labels import LabelSet

from .pictures import save_mip_png
from .report import case_report, summary_frame

log = logging.getLogger(__name__)

REPORT = "report.json"
SUMMARY = "summary.csv"


def case_done(case_dir: Path) -> bool:
    """True when the case's report.json (written last) exists."""
    return (Path(case_dir) / REPORT).is_file()


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
            mapping it returns is added to the report.
    """
    case_dir = Path(case_dir)
    case_dir.mkdir(parents=True, exist_ok=True)
    (case_dir / REPORT).unlink(missing_ok=True)  # the case is not done while we rewrite it
    tumor = (np.asarray(tumor) > 0).astype(np.uint8)
    write_image(array_to_image(tumor, pet_image), case_dir / "tumor.nii.gz")
    has_organs = organs is not None and bool(np.any(organs))
    if save_organs and organs is not None:
        write_image(array_to_image(organs.astype(np.uint8), pet_image), case_dir / "organs.nii.gz")
    names = {label: name for name, label in label_set.labels().items()}
    report = case_report(
        case_id, suv, tumor, pet_image, organs if has_organs else None, names, model, folds, extra
    )
    title = f"{case_id}: TMTV {report['tmtv_ml']:.1f} ml, {report['lesion_count']} lesion(s)"
    save_mip_png(suv, tumor, organs if has_organs else None, pet_image.GetSpacing()[::-1],
                 case_dir / "mip.png", title=title)  # fmt: skip
    if more_outputs is not None:
        report.update(more_outputs(case_dir) or {})
    write_json(report, case_dir / REPORT)
    return report


def write_summary(out_dir: Path) -> Path | None:
    """Rebuild ``out/summary.csv`` from every ``out/*/report.json`` (one row per case)."""
    out_dir = Path(out_dir)
    reports = []
    for path in sorted(out_dir.glob(f"*/{REPORT}")):
        try:
            reports.append(json.loads(path.read_text()))
        except json.JSONDecodeError:
            log.warning("%s: unreadable, left out of %s", path, SUMMARY)
    if not reports:
        return None
    return write_csv(summary_frame(reports), out_dir / SUMMARY)
