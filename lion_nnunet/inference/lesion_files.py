"""Lesions a reader can find: ``lesions.nii.gz`` with its 3D Slicer colour table, ``lesions.csv``.

``<case>/lesions.nii.gz`` is the tumor mask's lesions as one label map on the PET grid: voxel
value = ``lesion_id`` of report.json (the same 18-connected components,
:func:`lion_nnunet.inference.report.lesion_map`), 0 elsewhere. ``<case>/lesions.ctbl`` is its
colour table in 3D Slicer's colour-table file format (one line ``index name R G B A`` per label;
Slicer loads ``.ctbl`` files as colour nodes: drag both files in, then choose the table as the
label map's lookup table in the Volumes module). No ``.seg.nrrd`` is written: a NIfTI label map
plus a colour table opens in Slicer, ITK-SNAP (as a label image) and nibabel alike.

``PRED/lesions.csv`` (beside summary.csv) has one row per lesion of every case (:data:`COLUMNS`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk

from lion_nnunet.io import array_to_image, write_image, write_text

from .report import lesion_map

LESIONS = "lesions.nii.gz"
COLOR_TABLE = "lesions.ctbl"
LESIONS_CSV = "lesions.csv"
#: Colours of lesions 1, 2, ... (repeated): distinct on a grey PET (Kelly's/tab20 hues).
PALETTE = (
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
    (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212),
    (0, 128, 128), (220, 190, 255), (170, 110, 40), (255, 250, 200), (128, 0, 0),
    (170, 255, 195), (128, 128, 0), (255, 215, 180), (0, 0, 128), (128, 128, 128),
)  # fmt: skip
#: Columns of lesions.csv: ids, measurements (ml, SUV, SUV x ml), where (LPS mm of the centroid,
#: voxel index and RAS mm of the SUVmax voxel), nearest organ, confidence.
COLUMNS = (
    "case_id", "lesion_id", "volume_ml", "suv_max", "suv_peak", "suv_mean", "tlg",
    "centroid_lps_x_mm", "centroid_lps_y_mm", "centroid_lps_z_mm",
    "suv_max_i", "suv_max_j", "suv_max_k", "suv_max_ras_x_mm", "suv_max_ras_y_mm",
    "suv_max_ras_z_mm", "nearest_organ", "distance_to_organ_mm", "confidence", "fold_agreement",
)  # fmt: skip


def color_table(count: int) -> str:
    """3D Slicer colour-table text for labels 0 (background, transparent) .. ``count``.

    Examples:
        >>> print(color_table(2), end="")
        # lion-nnunet lesion colour table: index name R G B A (3D Slicer .ctbl)
        0 background 0 0 0 0
        1 lesion_1 230 25 75 255
        2 lesion_2 60 180 75 255
    """
    lines = ["# lion-nnunet lesion colour table: index name R G B A (3D Slicer .ctbl)",
             "0 background 0 0 0 0"]  # fmt: skip
    for i in range(1, count + 1):
        r, g, b = PALETTE[(i - 1) % len(PALETTE)]
        lines.append(f"{i} lesion_{i} {r} {g} {b} 255")
    return "\n".join(lines) + "\n"


def write_lesion_files(
    case_dir: Path,
    tumor: np.ndarray,
    pet_image: sitk.Image,
    map_name: str = LESIONS,
    table_name: str = COLOR_TABLE,
) -> list[str]:
    """Write the lesion label map of ``tumor`` (z, y, x) and its colour table; their names."""
    labels = lesion_map(tumor)
    write_image(array_to_image(labels, pet_image), Path(case_dir) / map_name)
    write_text(color_table(int(labels.max())), Path(case_dir) / table_name)
    return [map_name, table_name]


def lesion_frame(reports: list[dict]) -> pd.DataFrame:
    """lesions.csv: one row per lesion of each report (:data:`COLUMNS`; None where a report
    predates a key)."""
    rows = []
    for report in reports:
        for les in report.get("lesions") or []:
            centroid = les.get("centroid_mm") or [None] * 3
            voxel = les.get("suv_max_voxel") or [None] * 3
            ras = les.get("suv_max_ras_mm") or [None] * 3
            rows.append({
                "case_id": report.get("case_id"), **{k: les.get(k) for k in (
                    "lesion_id", "volume_ml", "suv_max", "suv_peak", "suv_mean", "tlg")},
                **dict(zip(COLUMNS[7:10], centroid, strict=True)),
                **dict(zip(COLUMNS[10:13], voxel, strict=True)),
                **dict(zip(COLUMNS[13:16], ras, strict=True)),
                **{k: les.get(k) for k in COLUMNS[16:]},
            })  # fmt: skip
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    for key in ("lesion_id", "suv_max_i", "suv_max_j", "suv_max_k"):
        frame[key] = frame[key].astype("Int64")
    return frame
