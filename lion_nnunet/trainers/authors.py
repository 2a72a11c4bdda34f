"""The trainer classes of the LION authors' released models (lionz), for nnunetv2 2.8.

nnU-Net stores the trainer's class name in every checkpoint and looks it up by that name at
prediction time (``recursive_find_trainer_class_by_name``): stock nnunetv2 first, then the
``nnUNet_extTrainer`` folders, where lion-nnunet's shim lists the classes of
:mod:`lion_nnunet.trainers.all`. A lionz model whose class nobody defines cannot be loaded.

lionz (github.com/ENHANCE-PET/LION, ``lionz/nnUNet_custom_trainer/LION_custom_trainers.py``)
ships one custom class, ``nnUNetTrainerDA5_2000epochs``: nnU-Net's stock ``nnUNetTrainerDA5``
(its heavier data augmentation) trained for 2000 epochs. lionz copies that file into the
installed nnunetv2 at run time, and it still passes ``unpack_dataset``, removed from the trainer
signature in nnunetv2 2.6. Here it is rewritten for 2.8 under the same name: the base
signature, the epoch count set after ``super().__init__()``. ``nnUNetTrainerDA5`` itself and
``nnUNetTrainerDA5_10epochs`` are stock classes and need nothing (stock wins the lookup).

Trainer names are API: never rename these classes.
"""

from __future__ import annotations

import torch
from nnunetv2.training.nnUNetTrainer.variants.data_augmentation.nnUNetTrainerDA5 import (
    nnUNetTrainerDA5,
)

#: Authors' trainer names this module defines, for ``lion doctor`` and the model registry.
AUTHORS_TRAINERS = ("nnUNetTrainerDA5_2000epochs",)


class nnUNetTrainerDA5_2000epochs(nnUNetTrainerDA5):
    """lionz's trainer: nnU-Net's DA5 augmentation, 2000 epochs (name recorded by its models)."""

    def __init__(
        self,
        plans: dict,
        configuration: str,
        fold: int,
        dataset_json: dict,
        device: torch.device = torch.device("cuda"),  # noqa: B008 - nnU-Net's signature
    ) -> None:
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = 2000
