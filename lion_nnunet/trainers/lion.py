"""The LION trainer: nnU-Net's trainer with the changes LION needs, each a small hook.

* the network sees one channel (PET in SUV) and predicts tumor + auxiliary organ classes: that
  comes from the dataset and plans, not from code here;
* a foreground share that means what it says: nnU-Net's ``probabilistic_oversampling`` (each
  patch is forced to contain foreground with probability ``lion_oversample_foreground``); nnU-Net's
  default rule forces ``b - round(b * (1 - p))`` patches per batch, 1 of 2 at batch 2 for any p
  between 0.25 and 0.75;
* tumor-focused sampling (:mod:`lion_nnunet.trainers.sampling`): organs are in nearly every case,
  so forced-foreground patches are centred on tumor most of the time;
* nnU-Net's Dice + CE loss built with a tumor class weight in the CE (``ce_kwargs``, as nnU-Net's
  own loss variants build theirs); the variants in :mod:`lion_nnunet.trainers.variants` change
  how the Dice weighs tumor against organs;
* on CPU, ``OMP_NUM_THREADS`` is honoured: ``nnUNetv2_train -device cpu`` sets torch's threads to
  every core, so two trainings side by side would each run as many threads as there are cores
  (oversubscribed and slower per iteration than a share each: benchmarks/side_by_side.py, its
  stored result in benchmarks/results/side_by_side/);
* on CPU, convolution weights in the channels-last 3-D layout, which oneDNN convolves faster
  (the same results to float rounding, summed in another order; a training step of the demo's
  network on one thread, augmentation included, took about a sixth less time:
  ``benchmarks/train_step.py``, stored in benchmarks/results/train_step/);
* opt-in seeded, deterministic training with ``LION_SEED`` (:mod:`lion_nnunet.trainers.seeding`);
  stock nnU-Net training is not seeded;
* opt-in ``LION_FINAL_VALIDATION=0``: skip nnU-Net's final validation after training (predicting,
  exporting and scoring the fold's validation cases through two spawned pools of
  ``nnUNet_def_n_proc`` workers, each importing torch and nnU-Net); ``nnUNetv2_train ... --val``
  runs it later, whatever the variable says, and a ``--disable_checkpointing`` run, which keeps
  no checkpoint, always validates;
* the schedule as class attributes (``lion_*``), so a variant is one or two lines and the
  constructor signature stays nnU-Net's (checkpoints record it).

Which numbers come from where (docs/training.md): the epoch count and iterations per epoch are
nnU-Net's defaults (1000 x 250). The authors' published LION trainer is nnU-Net's DA5 augmentation
trained for 2,000 epochs (``nnUNetTrainer_LION_DA5_2000epochs`` here). The tumor CE weight, the
tumor sampling share and the foreground share are lion-nnunet defaults, not the authors'.
"""

from __future__ import annotations

import os
from functools import partial

import torch
from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class
from nnunetv2.training.loss.compound_losses import DC_and_CE_loss
from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from lion_nnunet.labels import TUMOR_LABEL
from lion_nnunet.nnunet_env import FINAL_VALIDATION_VAR, skip_final_validation
from lion_nnunet.trainers.losses import ClassWeightedSoftDiceLoss, deep_supervision
from lion_nnunet.trainers.sampling import tumor_focused
from lion_nnunet.trainers.seeding import (
    SEED_VAR,
    deterministic_augmenters,
    seed_everything,
    seed_from_environment,
)


class nnUNetTrainer_LION(nnUNetTrainer):
    """LION: PET-only, organs as auxiliary classes, tumor-focused sampling and loss."""

    lion_num_epochs: int = 1000
    lion_iterations_per_epoch: int = 250
    lion_val_iterations_per_epoch: int = 50
    #: Probability that a patch is forced to contain foreground (nnU-Net's probabilistic rule).
    lion_oversample_foreground: float = 0.5
    lion_tumor_ce_weight: float = 3.0
    lion_tumor_focused_sampling: bool = True
    #: Share of the Dice term that goes to the tumor class: ``None`` = nnU-Net's plain mean over
    #: the foreground classes (1/K with K-1 organs); 1.0 = Dice over the tumor only; 0.5 = half to
    #: the tumor, half shared by the organs. See :mod:`lion_nnunet.trainers.variants`.
    lion_tumor_dice_share: float | None = None
    #: Mirroring augmentation and test-time mirroring (8 passes per patch in 3-D); the short CPU
    #: schedules turn it off, as nnU-Net's own ``*_NoMirroring`` variants do.
    lion_mirroring: bool = True
    #: nnU-Net's training augmentation (spatial, intensity, noise, blur, resolution); False trains
    #: on the patches as cut, with nnU-Net's validation transforms, and turns mirroring off in
    #: training and at test time, as ``nnUNetTrainerNoDA`` does.
    lion_augmentation: bool = True
    #: On CPU, keep the network's weights in the channels-last 3-D layout (faster convolutions).
    lion_channels_last_cpu: bool = True

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
        self.probabilistic_oversampling = True
        threads = os.environ.get("OMP_NUM_THREADS", "")
        if self.device.type == "cpu" and threads.isdigit() and int(threads) > 0:
            torch.set_num_threads(int(threads))
        #: ``LION_SEED`` (None: nnU-Net's unseeded training); seeded before the network is built
        self.lion_seed = seed_from_environment()
        #: set by on_train_end: this process trained (LION_FINAL_VALIDATION applies only then)
        self.lion_trained_here = False
        self.lion_skip_final_validation = skip_final_validation()  # a bad value stops here
        if self.lion_seed is not None:
            seed_everything(self.lion_seed)
            self.print_to_log_file(f"{SEED_VAR}={self.lion_seed}: seeded, deterministic kernels")

    def initialize(self) -> None:  # nnU-Net's hook: builds network, optimizer and loss
        super().initialize()
        if self.lion_channels_last_cpu and self.device.type == "cpu":
            # in place: the optimizer keeps the same parameter objects
            self.network.to(memory_format=torch.channels_last_3d)

    def on_train_end(self) -> None:  # nnU-Net's hook, after the last epoch
        super().on_train_end()
        self.lion_trained_here = True

    def perform_actual_validation(self, save_probabilities: bool = False) -> None:
        """nnU-Net's final validation, unless this process just trained and
        ``LION_FINAL_VALIDATION=0`` asks to skip it (``--val`` always validates; so does a run
        with ``--disable_checkpointing``, whose validation is all it keeps)."""
        if (
            self.lion_skip_final_validation
            and self.lion_trained_here
            and (not self.disable_checkpointing)
        ):
            self.print_to_log_file(
                f"{FINAL_VALIDATION_VAR}=0: final validation skipped; run it with "
                "nnUNetv2_train ... --val"
            )
            return
        super().perform_actual_validation(save_probabilities)

    def get_training_transforms(self, patch_size, rotation_for_DA, deep_supervision_scales,
                                mirror_axes, do_dummy_2d_data_aug, **kwargs):  # fmt: skip
        if self.lion_augmentation:  # nnU-Net's (or a mixed-in variant's, e.g. DA5) pipeline
            return super().get_training_transforms(
                patch_size, rotation_for_DA, deep_supervision_scales, mirror_axes,
                do_dummy_2d_data_aug, **kwargs,
            )  # fmt: skip
        return self.get_validation_transforms(
            deep_supervision_scales, kwargs.get("is_cascaded", False),
            kwargs.get("foreground_labels"), kwargs.get("regions"), kwargs.get("ignore_label"),
        )  # fmt: skip

    def get_dataloaders(self):
        # nnU-Net's initialize() already set dataset_class (blosc2 or numpy); wrap whichever it is
        if self.lion_tumor_focused_sampling:
            base = self.dataset_class or infer_dataset_class(self.preprocessed_dataset_folder)
            self.dataset_class = tumor_focused(base)
        loaders = super().get_dataloaders()
        if self.lion_seed is None:
            return loaders
        return deterministic_augmenters(*loaders, self.lion_seed)

    def configure_rotation_dummyDA_mirroring_and_inital_patch_size(self):  # nnU-Net's hook
        rotation, dummy_2d, initial_patch_size, mirror_axes = (
            super().configure_rotation_dummyDA_mirroring_and_inital_patch_size()
        )
        if not self.lion_mirroring or not self.lion_augmentation:
            mirror_axes = None
            self.inference_allowed_mirroring_axes = None
        if not self.lion_augmentation:  # no rotation or scaling: cut the patch size itself
            initial_patch_size = self.configuration_manager.patch_size
        return rotation, dummy_2d, initial_patch_size, mirror_axes

    def _dice_class_weights(self) -> list[float] | None:
        """Weights of the foreground classes in the Dice (None: nnU-Net's plain mean)."""
        share = self.lion_tumor_dice_share
        labels = list(self.label_manager.foreground_labels)
        if share is None or len(labels) == 1:
            return None
        organ = (1.0 - share) / (len(labels) - 1)
        return [share if c == TUMOR_LABEL else organ for c in labels]

    def _build_loss(self):
        if self.label_manager.has_regions:
            return super()._build_loss()
        heads = self.label_manager.num_segmentation_heads
        ce_weight = torch.ones(heads, device=self.device)
        ce_weight[TUMOR_LABEL] = self.lion_tumor_ce_weight
        dice_kwargs = {"batch_dice": self.configuration_manager.batch_dice, "smooth": 1e-5,
                       "do_bg": False, "ddp": self.is_ddp}  # fmt: skip
        class_weights = self._dice_class_weights()
        dice_class = (
            MemoryEfficientSoftDiceLoss  # nnU-Net's own: the plain mean over foreground classes
            if class_weights is None
            else partial(ClassWeightedSoftDiceLoss, class_weights)
        )
        loss = DC_and_CE_loss(
            dice_kwargs,
            {"weight": ce_weight} if self.lion_tumor_ce_weight != 1.0 else {},
            weight_ce=1,
            weight_dice=1,
            ignore_label=self.label_manager.ignore_label,
            dice_class=dice_class,
        )
        if self._do_i_compile():
            loss.dc = torch.compile(loss.dc)
        if self.enable_deep_supervision:
            loss = deep_supervision(loss, len(self._get_deep_supervision_scales()), self.is_ddp)
        return loss


class nnUNetTrainer_LION_unweighted(nnUNetTrainer_LION):
    """Ablation: plain nnU-Net Dice + CE (no tumor weight), tumor-focused sampling kept."""

    lion_tumor_ce_weight = 1.0


class nnUNetTrainer_LION_uniformSampling(nnUNetTrainer_LION):
    """Ablation: nnU-Net's uniform choice among foreground classes (no tumor focus)."""

    lion_tumor_focused_sampling = False
