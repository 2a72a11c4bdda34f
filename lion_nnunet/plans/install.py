"""`lion plans install`: put a LION plans template into a dataset's nnUNet_preprocessed folder.

What is rewritten for the dataset: ``dataset_name``; ``plans_name`` (= the file stem, because
results folders use it and ``nnUNetv2_predict -p`` looks the file up by it); a ``data_identifier``
unique to the plans name (preprocessing deletes and rewrites that folder); the PET intensity
statistics (mean, std, 0.5/99.5 percentiles of foreground SUV) from nnU-Net's fingerprint, which
``CTNormalization`` uses (or from another dataset's fingerprint, ``intensity_from``); and the
median spacing/shape. Like nnU-Net's planner it also copies the raw dataset.json next to the plans
(preprocessing reads it there) and, when absent there, the raw folder's ``splits_final.json``
(lion convert's 5 folds by patient; nnU-Net's planner copies it the same way). Optional
overrides: patch size (the network topology is recomputed with nnU-Net's rule), first-stage
features, batch size, target spacing.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from lion_nnunet.errors import LionError
from lion_nnunet.io import write_json
from lion_nnunet.nnunet_env import find_dataset_name, require_folder
from lion_nnunet.plans.splits import install_default_splits
from lion_nnunet.plans.templates import CONFIGURATION, load_template, rebuild_architecture


def _median(values: list[list[float]]) -> list[float]:
    return [float(statistics.median(v[i] for v in values)) for i in range(len(values[0]))]


def install_plans(
    dataset: int | str,
    tracer: str,
    plans_name: str = "LIONPlans",
    patch_size: tuple[int, int, int] | None = None,
    batch_size: int | None = None,
    spacing: tuple[float, float, float] | str | None = None,
    base_features: int | None = None,
    blocks_per_stage: tuple[int, ...] | None = None,
    intensity_from: int | str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``$nnUNet_preprocessed/DatasetXXX/<plans_name>.json``; return its path.

    Args:
        dataset: dataset id or name.
        tracer: "fdg" or "psma" (which template).
        plans_name: plans identifier, also the file stem (``-p``/``-plans_name`` of nnU-Net).
        patch_size: (z, y, x) voxels; the topology follows nnU-Net's rule for it.
        batch_size: patches per iteration.
        spacing: (z, y, x) mm, or "dataset" for the dataset's median spacing (no resampling).
        base_features: features of the first stage (doubling per stage, at most 320); the
            template's 32 suits GPUs, 8-16 make CPU demos several times faster.
        blocks_per_stage: residual blocks per encoder stage (template: ResEnc-M's 1, 3, 4, 6,
            6, ...); one number for every stage, e.g. 1 for a lighter CPU network.
        intensity_from: another dataset (id or name) whose fingerprint supplies the PET
            intensity statistics (clip range, mean, std in SUV). nnU-Net takes them from the
            label-foreground voxels, so a dataset with organ classes and the same cohort with
            tumor only get different PET normalizations; the organ-context ablation gives both
            arms one set.
        overwrite: replace an existing plans file with other content.
    """
    name = find_dataset_name(dataset)
    folder = require_folder("nnUNet_preprocessed") / name
    fingerprint_file = folder / "dataset_fingerprint.json"
    if not fingerprint_file.is_file():
        raise LionError(
            f"{fingerprint_file} not found; run nnUNetv2_extract_fingerprint -d "
            f"{int(name[7:10])} first (LION plans take the PET statistics from it)"
        )
    fingerprint = json.loads(fingerprint_file.read_text())
    plans = load_template(tracer)
    config = plans["configurations"][CONFIGURATION]
    median_spacing = _median(fingerprint["spacings"])
    median_shape = _median(fingerprint["shapes_after_crop"])
    if spacing == "dataset":
        config["spacing"] = median_spacing
    elif spacing is not None:
        config["spacing"] = [float(s) for s in spacing]
    if base_features is not None and base_features < 1:
        raise LionError(f"--base-features must be at least 1, got {base_features}")
    if any(v is not None for v in (patch_size, spacing, base_features, blocks_per_stage)):
        rebuild_architecture(config, patch_size, base_features, blocks_per_stage)
    if batch_size is not None:
        if batch_size < 1:
            raise LionError(f"--batch-size must be at least 1, got {batch_size}")
        config["batch_size"] = int(batch_size)
    config["data_identifier"] = f"{plans_name}_{CONFIGURATION}"
    config["median_image_size_in_voxels"] = [
        round(s * sp / t, 1)
        for s, sp, t in zip(median_shape, median_spacing, config["spacing"], strict=True)
    ]
    if intensity_from is not None:
        fingerprint_file = (
            require_folder("nnUNet_preprocessed")
            / find_dataset_name(intensity_from)
            / "dataset_fingerprint.json"
        )
        if not fingerprint_file.is_file():
            raise LionError(f"--intensity-from: {fingerprint_file} not found; fingerprint it first")
        fingerprint = json.loads(fingerprint_file.read_text())
    channels = fingerprint["foreground_intensity_properties_per_channel"]
    if set(channels) != {"0"}:
        raise LionError(
            f"{fingerprint_file}: {len(channels)} input channels; "
            "LION plans expect one (the PET in SUV)"
        )
    plans.update(
        dataset_name=name,
        plans_name=plans_name,
        original_median_spacing_after_transp=median_spacing,
        original_median_shape_after_transp=[round(s) for s in median_shape],
        foreground_intensity_properties_per_channel=channels,
    )
    target = folder / f"{plans_name}.json"
    if (
        target.is_file()
        and not overwrite
        and json.loads(target.read_text()) != json.loads(json.dumps(plans))
    ):
        raise LionError(f"{target} exists with other content; use --overwrite to replace it")
    write_json(plans, target)
    # nnU-Net's planner also copies dataset.json next to the plans; preprocessing reads it there.
    raw_json = require_folder("nnUNet_raw") / name / "dataset.json"
    if raw_json.is_file():
        write_json(json.loads(raw_json.read_text()), folder / "dataset.json")
    # ... and the raw folder's splits_final.json (lion convert's folds by patient)
    install_default_splits(name)
    return target
