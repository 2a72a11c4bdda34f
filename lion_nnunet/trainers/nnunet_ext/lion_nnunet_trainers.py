"""Shim for nnU-Net's trainer search: this folder goes on ``nnUNet_extTrainer``.

nnU-Net imports the modules of that folder as top-level modules, so this file holds only an
absolute import; the classes keep their real module path (checkpoints refer to lion_nnunet).
"""

from lion_nnunet.trainers.all import *  # noqa: F403
