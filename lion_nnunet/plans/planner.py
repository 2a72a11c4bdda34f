"""The LION planner: nnU-Net's ResEnc-M planner with the PET normalization LION uses.

nnU-Net has no external hook for ``-pl``, so ``lion plan`` calls nnU-Net's planning API with this
class. Use it when you want nnU-Net to derive spacing/patch/topology from your data (instead of the
shipped templates of ``lion plans install``); the result is saved as ``LIONPlans`` too.
"""

from __future__ import annotations

from nnunetv2.experiment_planning.experiment_planners.residual_unets.residual_encoder_unet_planners import (  # noqa: E501
    nnUNetPlannerResEncM,
)


class LIONPlanner(nnUNetPlannerResEncM):
    """ResEnc-M planning; PET channel normalized with CTNormalization on SUV (see templates.py)."""

    def determine_normalization_scheme_and_whether_mask_is_used_for_norm(self):
        channels = self.dataset_json.get("channel_names", self.dataset_json.get("modality"))
        return ["CTNormalization"] * len(channels), [False] * len(channels)


def plan_dataset(
    dataset_id: int, plans_name: str = "LIONPlans", gpu_memory_gb: float | None = None
) -> str:
    """Plan a dataset with :class:`LIONPlanner` through nnU-Net's API; return the plans name."""
    from nnunetv2.experiment_planning.plan_and_preprocess_api import plan_experiment_dataset

    _, identifier = plan_experiment_dataset(
        dataset_id,
        LIONPlanner,
        gpu_memory_target_in_gb=gpu_memory_gb,
        overwrite_plans_name=plans_name,
    )
    return identifier
