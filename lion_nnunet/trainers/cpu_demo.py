"""Trainers of ``lion demo`` and ``benchmarks/organ_context.py``: short CPU schedules.

Explicit classes (nnU-Net's ``nnUNetTrainer_Xepochs`` style); no mirroring (test-time mirroring
would multiply CPU prediction time by 8), few validation iterations.
"""

from __future__ import annotations

from lion_nnunet.trainers.lion import nnUNetTrainer_LION


class nnUNetTrainer_LION_tumorDice_demo(nnUNetTrainer_LION):
    """``lion demo``: tumor-only Dice + CE over all classes, 15 epochs x 50 iterations.

    Every patch is forced to contain foreground (tumor-centred 70 % of the time where the case
    has tumor): a 48 x 32 x 32 patch covers a third of a demo phantom, so background is in every
    patch anyway, and the few hundred iterations a CPU affords are spent where the lesions are.
    """

    lion_tumor_dice_share = 1.0
    lion_oversample_foreground = 1.0
    lion_num_epochs, lion_iterations_per_epoch, lion_val_iterations_per_epoch = 15, 50, 2
    lion_mirroring = False


class nnUNetTrainer_LION_bench(nnUNetTrainer_LION):
    """``benchmarks/organ_context.py``: nnU-Net's plain Dice mean, 20 epochs x 50 iterations."""

    lion_num_epochs, lion_iterations_per_epoch, lion_val_iterations_per_epoch = 20, 50, 2
    lion_mirroring = False


class nnUNetTrainer_LION_tumorDice_bench(nnUNetTrainer_LION_bench):
    """The benchmark's schedule with Dice over the tumor only (CE over all classes)."""

    lion_tumor_dice_share = 1.0


class nnUNetTrainer_LION_halfTumorDice_bench(nnUNetTrainer_LION_bench):
    """The benchmark's schedule with half of the Dice to the tumor, half to the organs."""

    lion_tumor_dice_share = 0.5
