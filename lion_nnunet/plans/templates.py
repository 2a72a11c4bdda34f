"""LION plans for nnU-Net: the FDG and PSMA templates and the one function that builds them.

Choices (docs/training.md says why):

* **Network**: nnU-Net's residual-encoder U-Net, ResEnc **M** topology (blocks per stage
  1,3,4,6,6,6; features 32..320), the configuration nnU-Net recommends since 2024 for ~8-11 GB
  GPUs; LesionTracer (autoPET III) and nnU-Net's own autoPET baselines use residual encoders too.
* **Target spacing** 3.0 x 2.04 x 2.04 mm (z, y, x): the median autoPET FDG/PSMA PET spacing.
* **Patch** 160 x 128 x 128 voxels, batch 2: whole-body PET is long along z; nnU-Net plans ResEnc M
  for about 8 GB of GPU memory with mixed precision. The memory these plans take on a GPU is what
  ``benchmarks/gpu_suite.py`` measures (docs/benchmarks.md); no figure here is measured.
* **batch_dice** True, nnU-Net's own choice for 3d_fullres: the Dice is computed over the whole
  batch, not per patch. Per patch, a patch without tumor scores a perfect tumor Dice only by
  predicting no tumor at all, which pulls lesion models towards empty predictions.
* **PET normalization**: nnU-Net's ``CTNormalization`` applied to SUV: clip to the 0.5/99.5
  percentiles of foreground SUV over the training set, then subtract the global mean and divide
  by the global std (both from nnU-Net's fingerprint). SUV is already a quantitative,
  patient-normalized unit, so one global affine map keeps "SUV 5 is hot" true across patients,
  while per-image z-scoring (what nnU-Net silently does for a channel named "PET") would rescale
  every scan by its own uptake distribution.

Arrays in plans follow nnU-Net's order (z, y, x after ``transpose_forward``).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

from lion_nnunet.errors import LionError

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
CONFIGURATION = "3d_fullres"
BLOCKS_PER_STAGE = (1, 3, 4, 6, 6, 6, 6, 6, 6, 6)
BASE_FEATURES, MAX_FEATURES = 32, 320
MIN_FEATURE_MAP_EDGE = 4
RESENC_CLASS = "dynamic_network_architectures.architectures.unet.ResidualEncoderUNet"
DEFAULTS = {
    "fdg": {"spacing": (3.0, 2.0364, 2.0364), "patch_size": (160, 128, 128), "batch_size": 2},
    "psma": {"spacing": (3.0, 2.0364, 2.0364), "patch_size": (160, 128, 128), "batch_size": 2},
}


def architecture(
    spacing: tuple[float, ...],
    patch_size: tuple[int, ...],
    base_features: int = BASE_FEATURES,
    blocks_per_stage: tuple[int, ...] | None = None,
) -> tuple[dict, list[int]]:
    """ResEnc-M ``architecture`` entry for a spacing/patch, and the patch made divisible.

    Uses nnU-Net's own topology rule (``get_pool_and_conv_props``), so strides and kernel sizes
    are what nnU-Net's planner would choose for that patch. ``blocks_per_stage``: residual blocks
    of the encoder stages (ResEnc-M: 1, 3, 4, 6, 6, ...); one number applies to every stage, a
    shorter list is extended with its last number.
    """
    from nnunetv2.experiment_planning.experiment_planners.network_topology import (
        get_pool_and_conv_props,
    )

    _, pool_kernels, conv_kernels, patch, _ = get_pool_and_conv_props(
        list(spacing), list(patch_size), MIN_FEATURE_MAP_EDGE, 999999
    )
    n_stages = len(pool_kernels)
    if n_stages > len(BLOCKS_PER_STAGE):
        raise LionError(
            f"patch {patch_size} needs {n_stages} stages; at most {len(BLOCKS_PER_STAGE)}"
        )
    arch = {
        "network_class_name": RESENC_CLASS,
        "arch_kwargs": {
            "n_stages": n_stages,
            "features_per_stage": [
                min(MAX_FEATURES, base_features * 2**i) for i in range(n_stages)
            ],
            "conv_op": "torch.nn.modules.conv.Conv3d",
            "kernel_sizes": [list(map(int, k)) for k in conv_kernels],
            "strides": [list(map(int, k)) for k in pool_kernels],
            "n_blocks_per_stage": _blocks(blocks_per_stage, n_stages),
            "n_conv_per_stage_decoder": [1] * (n_stages - 1),
            "conv_bias": True,
            "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d",
            "norm_op_kwargs": {"eps": 1e-05, "affine": True},
            "dropout_op": None,
            "dropout_op_kwargs": None,
            "nonlin": "torch.nn.LeakyReLU",
            "nonlin_kwargs": {"inplace": True},
        },
        "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
    }
    return arch, [int(p) for p in patch]


def rebuild_architecture(
    config: dict,
    patch_size: tuple[int, ...] | None = None,
    base_features: int | None = None,
    blocks_per_stage: tuple[int, ...] | None = None,
) -> None:
    """Rebuild a plans configuration's ``architecture`` and ``patch_size`` in place for its
    ``spacing`` and the given patch, first-stage features and blocks (None: keep the config's
    patch and features; the template's ResEnc-M blocks)."""
    features = config["architecture"]["arch_kwargs"]["features_per_stage"][0]
    config["architecture"], config["patch_size"] = architecture(
        tuple(config["spacing"]),
        tuple(patch_size or config["patch_size"]),
        base_features=int(base_features or features),
        blocks_per_stage=tuple(blocks_per_stage) if blocks_per_stage else None,
    )


def _blocks(blocks: tuple[int, ...] | None, n_stages: int) -> list[int]:
    if not blocks:
        return list(BLOCKS_PER_STAGE[:n_stages])
    if min(blocks) < 1:
        raise LionError(f"blocks per stage must be at least 1, got {list(blocks)}")
    return [int(b) for b in (list(blocks) + [blocks[-1]] * n_stages)[:n_stages]]


def build_plans(
    tracer: str,
    spacing: tuple[float, ...] | None = None,
    patch_size: tuple[int, ...] | None = None,
    batch_size: int | None = None,
) -> dict:
    """A complete LION plans dict (dataset-specific fields left as placeholders)."""
    if tracer not in DEFAULTS:
        raise LionError(f"no LION plans for tracer {tracer!r}; choose from {', '.join(DEFAULTS)}")
    d = DEFAULTS[tracer]
    spacing = tuple(float(s) for s in (spacing or d["spacing"]))
    arch, patch = architecture(spacing, tuple(patch_size or d["patch_size"]))
    resample = {"is_seg": False, "order": 3, "order_z": 0, "force_separate_z": None}
    config = {
        "data_identifier": f"LIONPlans_{CONFIGURATION}",
        "preprocessor_name": "DefaultPreprocessor",
        "batch_size": int(batch_size or d["batch_size"]),
        "patch_size": patch,
        "median_image_size_in_voxels": patch,
        "spacing": list(spacing),
        "normalization_schemes": ["CTNormalization"],
        "use_mask_for_norm": [False],
        "resampling_fn_data": "resample_data_or_seg_to_shape",
        "resampling_fn_seg": "resample_data_or_seg_to_shape",
        "resampling_fn_data_kwargs": resample,
        "resampling_fn_seg_kwargs": {**resample, "is_seg": True, "order": 1},
        "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
        "resampling_fn_probabilities_kwargs": {**resample, "order": 1},
        "architecture": arch,
        "batch_dice": True,
    }
    return {
        "dataset_name": "<set by lion plans install>",
        "plans_name": "LIONPlans",
        "original_median_spacing_after_transp": list(spacing),
        "original_median_shape_after_transp": patch,
        "image_reader_writer": "SimpleITKIO",
        "transpose_forward": [0, 1, 2],
        "transpose_backward": [0, 1, 2],
        "configurations": {CONFIGURATION: config},
        "experiment_planner_used": f"LION {tracer.upper()} template (lion_nnunet.plans)",
        "label_manager": "LabelManager",
        "foreground_intensity_properties_per_channel": {"0": {}},
    }


def template_path(tracer: str) -> Path:
    return TEMPLATE_DIR / f"lion_{tracer}_plans.json"


def load_template(tracer: str) -> dict:
    """The shipped template for a tracer (a copy)."""
    path = template_path(tracer)
    if not path.is_file():
        raise LionError(f"no LION plans template for tracer {tracer!r} ({path} missing)")
    return copy.deepcopy(json.loads(path.read_text()))


if (
    __name__ == "__main__"
):  # regenerate the shipped templates: python -m lion_nnunet.plans.templates
    TEMPLATE_DIR.mkdir(exist_ok=True)
    for name in DEFAULTS:
        template_path(name).write_text(json.dumps(build_plans(name), indent=2) + "\n")
