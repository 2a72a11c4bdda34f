"""LION trainers for nnU-Net v2 (imported lazily: importing lion_nnunet does not import torch).

nnU-Net finds them by name through the ``nnUNet_extTrainer`` folder that
:mod:`lion_nnunet.trainers.discovery` sets up; ``from lion_nnunet.trainers.all import *`` gives
every class.
"""
