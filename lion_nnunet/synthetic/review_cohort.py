"""Prediction folders made from a phantom cohort's truth (review gallery tests and picture).

:func:`write_predictions` writes, for every study of a ``lion phantoms`` cohort, the case folder
``lion predict`` writes (through the same function, :func:`~lion_nnunet.inference.outputs.
write_case_outputs`: tumor.nii.gz, mip.png, report.json), as a model that finds exactly the
true lesions would; ``planted`` cases get instead a tumor mask covering whole organs (e.g. the
bladder and the brain: the classic false positive of FDG PET), an outlier a reviewer must see
first. :func:`write_labels` writes the truth as ``labelsTs/<case_id>.nii.gz``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from lion_nnunet.inference.outputs import write_case_outputs, write_summary
from lion_nnunet.inference.predict import discover_cases
from lion_nnunet.io import read_float_image, read_image, write_image
from lion_nnunet.labels import get_label_set


def organ_map(organ_dir: Path, pet_image: sitk.Image, tracer: str) -> np.ndarray:
    """The tracer's organ label map (LION ids, numpy z, y, x) on the PET grid, from the
    phantom's per-class masks (CT grid; resampled nearest neighbour in physical space)."""
    lookup = get_label_set(tracer).totalseg_lookup()
    out = np.zeros(sitk.GetArrayViewFromImage(pet_image).shape, np.uint8)
    for (_, name), label in lookup.items():
        path = Path(organ_dir) / f"{name}.nii.gz"
        if path.is_file():
            mask = sitk.Resample(read_image(path, "organ mask"), pet_image, sitk.Transform(),
                                 sitk.sitkNearestNeighbor, 0)  # fmt: skip
            out[sitk.GetArrayFromImage(mask) > 0] = label
    return out


def _studies(cohort: Path) -> dict[str, Path]:
    """Case id (as lion predict names it) -> study folder, for ``cohort/studies``."""
    return {c.case_id: Path(c.files[0]).parent for c in discover_cases(cohort / "studies")}


def write_predictions(
    cohort: str | Path,
    out_dir: str | Path,
    tracer: str = "fdg",
    planted: Mapping[str, Sequence[str]] | None = None,
) -> list[str]:
    """Write ``out_dir/<case_id>/`` for every study of a phantom cohort; return the case ids.

    Args:
        cohort: a ``lion phantoms`` output folder (studies/, organs/).
        out_dir: the prediction folder to write (plus summary.csv).
        tracer: the cohort's tracer (organ label set).
        planted: case id -> organ classes (TotalSegmentator names, e.g. ``urinary_bladder``,
            ``brain``) whose voxels make up that case's tumor mask instead of the truth.
    """
    cohort, out_dir = Path(cohort), Path(out_dir)
    planted = dict(planted or {})
    studies = _studies(cohort)
    unknown = sorted(set(planted) - set(studies))
    if unknown:
        raise ValueError(f"planted cases {unknown} are not in {cohort} ({sorted(studies)})")
    label_set = get_label_set(tracer)
    lookup = {name: label for (_, name), label in label_set.totalseg_lookup().items()}
    for case_id, study in studies.items():
        pet, suv = read_float_image(study / "SUV.nii.gz", "PET")
        organs = organ_map(cohort / "organs" / study.relative_to(cohort / "studies"), pet, tracer)
        if case_id in planted:  # the organ map keeps them: the tumor lies inside hot organs
            tumor = np.isin(organs, [lookup[n] for n in planted[case_id]])
        else:
            tumor = sitk.GetArrayFromImage(read_image(study / "SEG.nii.gz", "tumor mask")) > 0
        write_case_outputs(out_dir / case_id, case_id, pet, suv, tumor, organs, label_set,
                           model="phantom truth", folds=None)  # fmt: skip
    write_summary(out_dir)
    return sorted(studies)


def write_labels(cohort: str | Path, labels_dir: str | Path) -> list[str]:
    """The cohort's true tumor masks as ``labels_dir/<case_id>.nii.gz`` (labelsTs naming)."""
    labels_dir = Path(labels_dir)
    studies = _studies(Path(cohort))
    for case_id, study in studies.items():
        seg = read_image(study / "SEG.nii.gz", "tumor mask")
        write_image(seg, labels_dir / f"{case_id}.nii.gz")
    return sorted(studies)
