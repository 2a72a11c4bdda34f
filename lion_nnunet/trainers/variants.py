"""LION trainer variants, each a small class in nnU-Net's variant style.

Tumor not drowned by organs: nnU-Net's soft Dice is the plain mean over the foreground classes,
so with nine organ classes the tumor gets a tenth of the Dice gradient. These keep the organ
classes (in the CE, and as outputs) but give the tumor a fixed share of the Dice.

The authors' recipe: the published LION models were trained with nnU-Net's DA5 augmentation for
2,000 epochs (``nnUNetTrainerDA5_2000epochs`` in the lionz repository's custom trainers; its
model metadata names ``nnUNetTrainerDA5``). ``nnUNetTrainer_LION_DA5*`` combine that augmentation
with the LION hooks, by inheritance, as nnU-Net's ``competitions/aortaseg24.py`` combines variants.
"""

from __future__ import annotations

from nnunetv2.training.nnUNetTrainer.variants.data_augmentation.nnUNetTrainerDA5 import (
    nnUNetTrainerDA5,
)

from lion_nnunet.trainers.lion import nnUNetTrainer_LION


class nnUNetTrainer_LION_tumorDice(nnUNetTrainer_LION):
    """Dice over the tumor class only; CE (tumor-weighted) over tumor and every organ class."""

    lion_tumor_dice_share = 1.0


class nnUNetTrainer_LION_halfTumorDice(nnUNetTrainer_LION):
    """Class-weighted Dice: half to the tumor, half shared by the organs; CE over all classes."""

    lion_tumor_dice_share = 0.5


class nnUNetTrainer_LION_DA5(nnUNetTrainer_LION, nnUNetTrainerDA5):
    """LION hooks with nnU-Net's DA5 augmentation (the authors' augmentation), 1000 epochs."""


class nnUNetTrainer_LION_DA5_2000epochs(nnUNetTrainer_LION_DA5):
    """LION hooks, DA5 augmentation, 2,000 epochs x 250 iterations (the authors' schedule)."""

    lion_num_epochs = 2000


class nnUNetTrainer_LION_tumorDice_DA5_2000epochs(nnUNetTrainer_LION_DA5_2000epochs):
    """The authors' augmentation and schedule with the tumor-only Dice."""

    lion_tumor_dice_share = 1.0
