"""Trainers of ``lion demo`` and ``benchmarks/organ_context.py``: short CPU schedules.

Explicit classes (nnU-Net's ``nnUNetTrainer_Xepochs`` style); no mirroring (test-time mirroring
would multiply CPU prediction time by 8), few validation iterations. They train with nnU-Net's own
``nnUNetTrainerAdam`` optimizer set-up, unchanged (AdamW with amsgrad, learning rate 1e-2, poly
decay): in a trial with the thousand iterations a CPU affords, on a phantom cohort the demo does
not use (``--seed 1``; issue 10's note), nnU-Net's default SGD (1e-2, Nesterov momentum 0.99)
found far fewer holdout lesions with the organ model than AdamW did (that trial's numbers are
not stored, so none are quoted).
"""

from __future__ import annotations

from nnunetv2.training.nnUNetTrainer.variants.optimizer.nnUNetTrainerAdam import nnUNetTrainerAdam

from lion_nnunet.trainers.lion import nnUNetTrainer_LION


class _CpuAdamW(nnUNetTrainer_LION):
    """nnU-Net's AdamW configuration (``nnUNetTrainerAdam``), no mirroring, 2 validation its."""

    configure_optimizers = nnUNetTrainerAdam.configure_optimizers
    lion_val_iterations_per_epoch = 2
    lion_mirroring = False


class nnUNetTrainer_LION_tumorDice_demo(_CpuAdamW):
    """``lion demo``: tumor-only Dice + CE over all classes, 28 epochs x 50 iterations, no
    augmentation.

    Every patch is forced to contain foreground (tumor-centred 70 % of the time where the case
    has tumor): a 48 x 32 x 32 patch covers a third of a demo phantom, so background is in every
    patch anyway, and the iterations a CPU affords are spent where the lesions are. Patches are
    used as cut (nnU-Net's ``nnUNetTrainerNoDA`` transforms): in 1,400 iterations augmentation
    slowed learning more than it helped (two development runs on seeds 1 and 2, one training
    each, not stored, so no numbers are quoted), and an epoch is shorter without it. 28 epochs:
    what the channels-last weights (``lion_channels_last_cpu``) let the demo train in about the
    time 20 epochs took before.
    """

    lion_tumor_dice_share = 1.0
    lion_oversample_foreground = 1.0
    lion_augmentation = False
    lion_num_epochs, lion_iterations_per_epoch = 28, 50


class nnUNetTrainer_LION_tumorDice_demo_finetune(nnUNetTrainer_LION_tumorDice_demo):
    """``benchmarks/confidence.py``: the demo's set-up, 2 epochs x 25 iterations at a tenth of its
    learning rate (1e-3), for folds started from the demo's trained model
    (``nnUNetv2_train ... -pretrained_weights``). nnU-Net does not transfer the output layers
    (``.seg_layers.``), so 50 iterations leave a weak model; the benchmark says so."""

    lion_num_epochs, lion_iterations_per_epoch = 2, 25
    lion_augmentation = True  # as in its stored run (the demo trainer trained with it then)

    def configure_optimizers(self):
        self.initial_lr = 1e-3
        return super().configure_optimizers()


class nnUNetTrainer_LION_bench(_CpuAdamW):
    """``benchmarks/organ_context.py``: nnU-Net's plain Dice mean, 120 epochs x 50 iterations."""

    lion_oversample_foreground = 1.0
    lion_num_epochs, lion_iterations_per_epoch = 120, 50


class nnUNetTrainer_LION_tumorDice_bench(nnUNetTrainer_LION_bench):
    """The benchmark's schedule with Dice over the tumor only (CE over all classes)."""

    lion_tumor_dice_share = 1.0


class nnUNetTrainer_LION_halfTumorDice_bench(nnUNetTrainer_LION_bench):
    """The benchmark's schedule with half of the Dice to the tumor, half to the organs."""

    lion_tumor_dice_share = 0.5
