"""Trainers of ``lion demo`` and ``benchmarks/organ_context.py``: short CPU schedules.

Explicit classes (nnU-Net's ``nnUNetTrainer_Xepochs`` style); no mirroring (test-time mirroring
would multiply CPU prediction time by 8), few validation iterations.
"""

from __future__ import annotations

from lion_nnunet.trainers.lion import nnUNetTrainer_LION


class nnUNetTrainer_LION_tumorDice_demo(nnUNetTrainer_LION):
    """``lion demo``: tumor-only Dice + CE over all classes, 10 epochs x 40 iterations."""

    lion_tumor_dice_share = 1.0
    lion_num_epochs, lion_iterations_per_epoch, lion_val_iterations_per_epoch = 10, 40, 2
    lion_mirroring = False
