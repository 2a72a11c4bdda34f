"""From an nnU-Net label map (a tumor class and organ classes) to the tumor mask LION reports.

The organ classes are auxiliary: they are dropped from the tumor mask. Which label is the tumor
and which are organs is read from the model's (or prediction folder's) dataset.json ``labels``
through :func:`lion_nnunet.labels.label_set_from_dataset_labels` (LION: tumor 1; lionz's FDG
model: tumor 11 after 10 organs), never assumed. Three optional filters, all off by default:
tumor voxels below an SUV threshold (lionz's ``-t``), tumor components smaller than
``min_volume_ml``, and tumor components inside or touching named organs (e.g.
``urinary_bladder``) are removed. Components are 18-connected (see
:mod:`lion_nnunet.inference.report`). Arrays are numpy (z, y, x).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import cc3d
import numpy as np
from scipy import ndimage

from lion_nnunet import wording
from lion_nnunet.case_ids import case_id_of_name
from lion_nnunet.errors import LionError
from lion_nnunet.labels import (
    LabelSet,
    check_tracer_matches,
    get_label_set,
    label_set_from_dataset_labels,
)
from lion_nnunet.progress import track

from .report import CONNECTIVITY

log = logging.getLogger(__name__)


def label_set_from_dataset_json(path: str | Path, tumor_label: int | None = None) -> LabelSet:
    """The label set declared by a dataset.json (model folder, raw dataset or prediction folder).

    ``tumor_label`` overrides the tumor found from the label names (``--tumor-label``).
    """
    path = Path(path)
    if not path.is_file():
        raise LionError(f"{path}: dataset.json not found; pass --dataset-json FILE or --tracer")
    try:
        data = json.loads(path.read_text())
        labels = data["labels"]
    except (json.JSONDecodeError, KeyError) as e:
        raise LionError(f"{path}: not an nnU-Net dataset.json with 'labels' ({e})") from None
    tracer = data.get("lion", {}).get("tracer", "custom")
    return label_set_from_dataset_labels(labels, tracer, tumor_label, where=str(path))


def resolve_prediction_labels(
    pred_dir: str | Path,
    dataset_json: str | Path | None = None,
    tracer: str | None = None,
    tumor_label: int | None = None,
) -> LabelSet:
    """The label set of a prediction folder: labels on disk first, ``--tracer`` only checked.

    Order: ``dataset_json`` if given, else ``pred_dir/dataset.json`` (nnUNetv2_predict copies the
    model's there). When such a file exists and ``tracer`` is given too, the two must agree
    (:func:`lion_nnunet.labels.check_tracer_matches`). Without a file, ``tracer`` gives LION's
    layout (tumor 1) and ``tumor_label`` must, if given, agree with it.
    """
    path = Path(dataset_json) if dataset_json else Path(pred_dir) / "dataset.json"
    if path.is_file() or dataset_json:
        label_set = label_set_from_dataset_json(path, tumor_label)
        if tracer:
            check_tracer_matches(label_set, tracer, str(path))
        return label_set
    if tracer is None:
        raise LionError(
            f"{pred_dir}: no dataset.json to read the labels from; pass --dataset-json "
            "MODEL/dataset.json (or --tracer fdg|psma for a LION model's prediction)"
        )
    label_set = get_label_set(tracer)
    if tumor_label is not None and tumor_label != label_set.tumor_label:
        raise LionError(
            f"--tumor-label {tumor_label} contradicts --tracer {tracer} (LION layout: tumor "
            f"{label_set.tumor_label}); give the model's dataset.json with --dataset-json instead"
        )
    return label_set


def check_remove_in_organs(label_set: LabelSet, organs: Sequence[str], where: str) -> None:
    """Refuse ``--remove-in-organ`` names the model cannot filter by, before any work.

    Args:
        label_set: The model's labels.
        organs: The organ names given.
        where: Whose labels these are, for the message (``"the model <folder>"``).
    """
    if organs and not label_set.organs:
        raise LionError(
            f"--remove-in-organ {' '.join(organs)}: {where} has no organ classes "
            f"(labels {label_set.labels()}); --remove-in-organ needs a model trained with organ "
            "classes (lion convert without --no-organs), so leave it out for this one"
        )
    unknown = [name for name in organs if name not in label_set.organ_names]
    if unknown:
        raise LionError(
            f"--remove-in-organ {' '.join(unknown)}: {where} has no such organ class; "
            f"its organ classes are {', '.join(label_set.organ_names)}"
        )


def apply_suv_threshold(tumor: np.ndarray, suv: np.ndarray, threshold: float | None) -> np.ndarray:
    """Drop tumor voxels whose SUV is below ``threshold`` (kept: SUV >= threshold).

    The fixed-threshold practice of lionz's ``-t`` and of many TMTV studies (SUV 2.5 or 4.0;
    PERCIST's threshold is 1.5 x liver SUVmean + 2 SD of the liver). Arrays (z, y, x), same grid.
    None or 0 keeps the mask unchanged.
    """
    if not threshold:
        return tumor
    if threshold < 0:
        raise LionError(f"--suv-threshold {threshold}: must be >= 0 (SUV)")
    if tumor.shape != suv.shape:
        raise LionError(f"tumor mask {tumor.shape} and SUV image {suv.shape} differ in shape")
    return (tumor.astype(bool) & (suv >= threshold)).astype(np.uint8)


def split_label_map(
    label_map: np.ndarray,
    label_set: LabelSet,
    spacing_zyx: tuple[float, float, float],
    min_volume_ml: float = 0.0,
    remove_in_organs: Sequence[str] = (),
    suv: np.ndarray | None = None,
    suv_threshold: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Tumor mask and organ map from a predicted label map.

    Args:
        label_map: nnU-Net segmentation (z, y, x): 0 background, the tumor and organ classes.
        label_set: the model's label set (tumor id, organ ids and names).
        spacing_zyx: voxel spacing (z, y, x) in mm, for volumes.
        min_volume_ml: drop tumor components below this volume (ml); 0 keeps all.
        remove_in_organs: organ names; tumor components touching (sharing a face with) or
            inside these organs are dropped.
        suv, suv_threshold: SUV image (z, y, x) and threshold; tumor voxels below it are
            dropped before the component filters (:func:`apply_suv_threshold`).

    Returns:
        (tumor uint8 0/1, organs uint8 with the model's organ label ids and 0 elsewhere).
    """
    label_map = np.asarray(label_map)
    unknown = set(np.unique(label_map).tolist()) - set(range(label_set.num_classes))
    if unknown:
        raise LionError(
            f"prediction holds labels {wording.names(sorted(unknown))} that the label set "
            f"({label_set.num_classes - 1} foreground classes) does not declare; wrong "
            "--dataset-json/--tracer for this model?"
        )
    tumor = (label_map == label_set.tumor_label).astype(np.uint8)
    organs = np.where(np.isin(label_map, label_set.organ_labels), label_map, 0).astype(np.uint8)
    if suv_threshold:
        if suv is None:
            raise LionError("an SUV threshold needs the SUV image")
        tumor = apply_suv_threshold(tumor, suv, suv_threshold)
    if (min_volume_ml > 0 or remove_in_organs) and tumor.any():
        organ_ids = [label_set.label_of(name) for name in remove_in_organs]
        forbidden = np.isin(organs, organ_ids) if organ_ids else None
        voxel_ml = float(np.prod(spacing_zyx)) / 1000.0
        cc, n = cc3d.connected_components(tumor, connectivity=CONNECTIVITY, return_N=True)
        stats = cc3d.statistics(cc)
        for i in range(1, n + 1):
            bbox = stats["bounding_boxes"][i]
            drop = stats["voxel_counts"][i] * voxel_ml < min_volume_ml
            if not drop and forbidden is not None:
                grown = tuple(
                    slice(max(0, b.start - 1), min(s, b.stop + 1))
                    for b, s in zip(bbox, tumor.shape, strict=True)
                )
                comp = cc[grown] == i
                drop = bool((ndimage.binary_dilation(comp) & forbidden[grown]).any())
            if drop:
                tumor[bbox][cc[bbox] == i] = 0
    return tumor, organs


def find_pet(pet_dir: Path, case_id: str, file_ending: str = ".nii.gz") -> Path:
    """``<case>_0000<ending>`` (nnU-Net layout) or ``<case><ending>`` in ``pet_dir``."""
    for name in (f"{case_id}_0000{file_ending}", f"{case_id}{file_ending}"):
        if (pet_dir / name).is_file():
            return pet_dir / name
    raise LionError(
        f"{pet_dir}: no PET for case {case_id!r} (expected {case_id}_0000{file_ending}); "
        "pass the folder the predictions were made from (e.g. imagesTs/)"
    )


#: What nnUNetv2_predict writes beside its label maps: its predict_from_files arguments.
NNUNET_ARGS = "predict_from_raw_data_args.json"


def nnunet_prediction_record(pred_dir: Path) -> dict:
    """What a stock nnUNetv2_predict folder says about how it was made.

    ``predict_from_raw_data_args.json`` (the input folder, ``-npp``/``-nps``, parts) and the
    ``dataset_name``/``plans_name`` of the plans.json nnU-Net copies there. nnU-Net records
    neither the trainer, the configuration nor the folds there: those come from ``-m``/``-d``
    and ``-f`` (:func:`postprocess_folder`).
    """
    out: dict = {"folder": str(pred_dir)}
    for name, keys in ((NNUNET_ARGS, None), ("plans.json", ("dataset_name", "plans_name"))):
        try:
            data = json.loads((pred_dir / name).read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if keys is None:
            out["predict_args"] = data
        else:
            out.update({k: data.get(k) for k in keys})
    return out


def postprocess_folder(
    pred_dir: str | Path,
    pet_dir: str | Path,
    out_dir: str | Path,
    label_set: LabelSet | None = None,
    min_volume_ml: float = 0.0,
    remove_in_organs: Sequence[str] = (),
    save_organs: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    num_parts: int = 1,
    part_id: int = 0,
    suv_threshold: float | None = None,
    mip_window: tuple[float, float] | None = None,
    model_folder: str | Path | None = None,
    folds: Sequence[str] | None = None,
) -> list[dict]:
    """Turn stock ``nnUNetv2_predict`` output into LION's per-case outputs and summary.csv.

    Args:
        pred_dir: folder of nnU-Net label maps ``<case>.nii.gz`` (its dataset.json, which
            nnUNetv2_predict copies there, gives the labels when ``label_set`` is None).
        pet_dir: folder with the PET inputs (``<case>_0000.nii.gz``), in SUV.
        out_dir: output folder (``<case>/tumor.nii.gz, report.json, mip.png``, ``summary.csv``).
        label_set: organ classes; None = read ``pred_dir/dataset.json``.
        min_volume_ml, remove_in_organs: optional filters, see :func:`split_label_map`.
        save_organs: also write ``organs.nii.gz`` and ``organs.json``.
        overwrite: redo every case; else a done case is skipped when its recorded settings equal
            this run's and refused when they differ (:func:`provenance.check_resume`).
        progress: show a progress bar.
        num_parts, part_id: process every num_parts-th case starting at part_id.
        suv_threshold: drop tumor voxels below this SUV (:func:`apply_suv_threshold`).
        mip_window: SUV window of mip.png; None = the tracer's (``options.MIP_WINDOWS``).
        model_folder: the model that made the predictions (recorded with its checkpoint sums).
        folds: its folds that were ensembled (recorded).

    Returns:
        The reports of the cases processed in this run. A case whose PET or prediction fails a
        check (:mod:`lion_nnunet.io`, :func:`check_pet_values`) is skipped and named; the others
        are written, summary.csv too, then a LionError lists the failed cases.
    """
    from lion_nnunet.io import geometry_mismatch, read_image

    from .installed import checkpoint_sha256
    from .model import CHECKPOINT, check_model_folder
    from .options import MIP_WINDOWS, PredictOptions
    from .outputs import drop_failed_case, write_case_outputs, write_summary
    from .plausibility import read_pet
    from .provenance import check_resume, files_identity, installed_name, run_settings

    pred_dir, pet_dir, out_dir = Path(pred_dir), Path(pet_dir), Path(out_dir)
    if not pred_dir.is_dir():
        raise LionError(f"{pred_dir}: prediction folder not found")
    if label_set is None:
        label_set = resolve_prediction_labels(pred_dir)
    check_remove_in_organs(label_set, remove_in_organs, f"the model of {pred_dir}")
    options = PredictOptions(  # the same argument checks as lion predict
        folds=None if folds is None else tuple(folds), min_volume_ml=min_volume_ml,
        remove_in_organs=tuple(remove_in_organs), suv_threshold=suv_threshold,
        save_organs=save_organs, mip_window=mip_window, num_parts=num_parts, part_id=part_id,
    )  # fmt: skip
    window = options.mip_window or MIP_WINDOWS.get(label_set.tracer, MIP_WINDOWS["fdg"])
    ending = ".nii.gz"
    files = sorted(p for p in pred_dir.glob(f"*{ending}") if not p.name.startswith("."))
    if not files:
        raise LionError(f"{pred_dir}: no *{ending} label maps; run nnUNetv2_predict first")
    files = files[part_id::num_parts]
    keep = ("min_volume_ml", "remove_in_organs", "suv_threshold", "save_organs")
    settings = {k: v for k, v in options.result_settings().items() if k in keep}
    settings.update({"tumor_label": label_set.tumor_label, "mip_window": list(window)})
    record = {"prediction": nnunet_prediction_record(pred_dir)}
    model_name, model_folds = None, None
    if model_folder is not None:
        model = check_model_folder(model_folder, options.folds and list(options.folds))
        sums = checkpoint_sha256(model)
        settings = run_settings(settings, model, sums)
        model_name, model_folds = model.name, list(model.folds)
        record.update({"model_path": str(model.folder.resolve()),
                       "installed_model": installed_name(model), "checkpoint": CHECKPOINT,
                       "checkpoint_sha256": sums})  # fmt: skip
    record["settings"] = settings
    ids = {path: case_id_of_name(path.name[: -len(ending)]) for path in files}
    # the nnU-Net prediction is this step's input: a re-run of nnUNetv2_predict changes it
    identities = {ids[path]: files_identity([path]) for path in files}
    skipped = set(check_resume(out_dir, list(ids.values()), settings, overwrite, identities))
    reports, failed = [], {}
    for path in track(files, "postprocess", len(files), progress):
        name = path.name[: -len(ending)]
        case_id = ids[path]  # the id convert, predict and evaluate use
        if case_id in skipped:
            continue
        try:  # a case whose input fails a check is named; the others go on
            pet_image, suv, _ = read_pet(find_pet(pet_dir, name, ending))
            seg_image = read_image(path, "prediction")
            problem = geometry_mismatch(pet_image, seg_image)
            if problem:
                raise LionError(f"{path}: {problem} of the PET; not a prediction of this PET")
        except LionError as e:
            failed[case_id] = str(e)
            log.info("case %s not postprocessed: %s", case_id, e)  # said once, below
            drop_failed_case(out_dir / case_id)
            continue
        spacing_zyx = tuple(float(s) for s in pet_image.GetSpacing()[::-1])
        import SimpleITK as sitk

        tumor, organs = split_label_map(
            sitk.GetArrayFromImage(seg_image), label_set, spacing_zyx, min_volume_ml,
            remove_in_organs, suv, suv_threshold,
        )  # fmt: skip
        report = write_case_outputs(
            out_dir / case_id, case_id, pet_image, suv, tumor, organs, label_set,
            save_organs=save_organs, model=model_name, folds=model_folds,
            extra={"prediction_file": str(path), "input_identity": identities[case_id],
                   "tumor_label": label_set.tumor_label, "suv_threshold": suv_threshold,
                   **record},
            mip_window=window,
        )  # fmt: skip
        reports.append(report)
    summary = write_summary(out_dir)
    if failed:
        raise LionError(
            f"{len(failed)} case(s) not postprocessed, the other {len(reports)} written "
            f"(summary: {summary}):\n{wording.failures(failed)}"
        )
    return reports
