"""The LION trainer: nnU-Net's trainer with the changes LION needs, each a small hook.

* the network sees one channel (PET in SUV) and predicts tumor + auxiliary organ classes: that
  comes from the dataset and plans, not from code here;
* tumor-focused sampling (:mod:`lion_nnunet.trainers.sampling`): organs are in nearly every patch,
  so forced-foreground patches are centred on tumor most of the time;
* a tumor-weighted cross-entropy, so the small tumor class is not drowned by the large organ
  classes (Dice already weighs classes equally);
* the schedule as class attributes (``lion_*``), so a variant is one or two lines and the
  constructor signature stays nnU-Net's (checkpoints record it).

Which numbers come from where: the epoch count and iterations per epoch are nnU-Net's defaults
(1000 x 250); the preprint trains nnU-Net models but gives no schedule changes. The tumor CE weight,
the tumor sampling share and the foreground share are our defaults, documented in docs/training.md.
"""

from __future__ import annotations

import torch
from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class
from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
from nnunetv2.training.loss.robust_ce_loss import RobustCrossEntropyLoss
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from lion_nnunet.labels import TUMOR_LABEL
from lion_nnunet.trainers.sampling import tumor_focused


class nnUNetTrainer_LION(nnUNetTrainer):
    """LION: PET-only, organs as auxiliary classes, tumor-focused sampling and loss."""

    lion_num_epochs: int = 1000
    lion_iterations_per_epoch: int = 250
    lion_val_iterations_per_epoch: int = 50
    lion_oversample_foreground: float = 0.5
    lion_tumor_ce_weight: float = 3.0
    lion_tumor_focused_sampling: bool = True
    #: Mirroring augmentation and test-time mirroring (8 passes per patch in 3-D); the short CPU
    #: schedules turn it off, as nnU-Net's own ``*_NoMirroring`` variants do.
    lion_mirroring: bool = True

    def __init__(
        self,
        plans: dict,
        configuration: str,
        fold: int,
        dataset_json: dict,
        device: torch.device = torch.device("cuda"),  # noqa: B008 - nnU-Net's signature
    ) -> None:
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = self.lion_num_epochs
        self.num_iterations_per_epoch = self.lion_iterations_per_epoch
        self.num_val_iterations_per_epoch = self.lion_val_iterations_per_epoch
        self.oversample_foreground_percent = self.lion_oversample_foreground

    def get_dataloaders(self):
        # nnU-Net's initialize() already set dataset_class (blosc2 or numpy); wrap whichever it is
        if self.lion_tumor_focused_sampling:
            base = self.dataset_class or infer_dataset_class(self.preprocessed_dataset_folder)
            self.dataset_class = tumor_focused(base)
        return super().get_dataloaders()

    def configure_rotation_dummyDA_mirroring_and_inital_patch_size(self):  # nnU-Net's hook
        rotation, dummy_2d, initial_patch_size, mirror_axes = (
            super().configure_rotation_dummyDA_mirroring_and_inital_patch_size()
        )
        if not self.lion_mirroring:
            mirror_axes = None
            self.inference_allowed_mirroring_axes = None
        return rotation, dummy_2d, initial_patch_size, mirror_axes

    def _build_loss(self):
        loss = super()._build_loss()
        if self.lion_tumor_ce_weight != 1.0 and not self.label_manager.has_regions:
            core = loss.loss if isinstance(loss, DeepSupervisionWrapper) else loss
            weight = torch.ones(self.label_manager.num_segmentation_heads, device=self.device)
            weight[TUMOR_LABEL] = self.lion_tumor_ce_weight
            ignore = self.label_manager.ignore_label
            core.ce = RobustCrossEntropyLoss(
                weight=weight, ignore_index=ignore if ignore is not None else -100
            )
        return loss


class nnUNetTrainer_LION_unweighted(nnUNetTrainer_LION):
    """Ablation: plain nnU-Net Dice + CE (no tumor weight), tumor-focused sampling kept."""

    lion_tumor_ce_weight = 1.0


class nnUNetTrainer_LION_uniformSampling(nnUNetTrainer_LION):
    """Ablation: nnU-Net's uniform choice among foreground classes (no tumor focus)."""

    lion_tumor_focused_sampling = False
