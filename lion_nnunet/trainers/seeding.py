"""Opt-in seeded, deterministic training for the LION trainers (``LION_SEED``).

Stock nnU-Net training is not seeded: network initialisation, patch sampling and augmentation
draw from unseeded generators, and augmentation workers hand batches over in whatever order they
finish (``NonDetMultiThreadedAugmenter``). With ``LION_SEED=<int>`` in the environment of
``nnUNetv2_train -tr nnUNetTrainer_LION*``, the trainer

* seeds Python's ``random``, NumPy's global generator and torch (CPU and CUDA) before nnU-Net
  builds the network and the data loaders;
* asks torch for deterministic kernels (``torch.use_deterministic_algorithms``; cuDNN
  deterministic, no autotuning; ``CUBLAS_WORKSPACE_CONFIG`` set for CUDA);
* with augmentation worker processes (``nnUNet_n_proc_DA`` > 0), replaces nnU-Net's
  non-deterministic augmenter by batchgenerators' ``MultiThreadedAugmenter`` with one seed per
  worker, which returns the workers' batches in a fixed round-robin order.

Same seed, same machine, same thread count (``OMP_NUM_THREADS``), same nnU-Net and torch:
the same checkpoint, bit for bit (tests/test_seeding.py trains twice and compares). Across
machines, CPU instruction sets, thread counts or torch versions floating-point sums may be
ordered differently, so the numbers may differ there. Leaving ``LION_SEED`` unset keeps nnU-Net's
own behaviour exactly.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Mapping

import numpy as np

from lion_nnunet.errors import LionError

log = logging.getLogger(__name__)

SEED_VAR = "LION_SEED"


def seed_from_environment(environ: Mapping[str, str] | None = None) -> int | None:
    """The integer in ``LION_SEED`` (None when unset or empty).

    Raises:
        LionError: the value is not a non-negative integer.

    Examples:
        >>> seed_from_environment({"LION_SEED": "7"})
        7
        >>> seed_from_environment({}) is None
        True
    """
    value = (os.environ if environ is None else environ).get(SEED_VAR, "").strip()
    if not value:
        return None
    if not value.isdigit():
        raise LionError(f"{SEED_VAR}={value!r}: expected a non-negative integer (e.g. 0)")
    return int(value)


def seed_everything(seed: int) -> None:
    """Seed every generator nnU-Net training draws from and choose deterministic kernels."""
    import torch

    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # needed by deterministic cuBLAS
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device
    # warn_only: an op without a deterministic kernel (some CUDA backward passes) warns once
    # instead of stopping a training
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


def deterministic_augmenters(train, val, seed: int) -> tuple:
    """nnU-Net's train/val augmenters, with worker processes made deterministic.

    A ``NonDetMultiThreadedAugmenter`` (nnU-Net's choice when ``nnUNet_n_proc_DA`` > 0) is
    stopped and replaced by a ``MultiThreadedAugmenter`` over the same data loader and
    transforms, one seed per worker (``seed * 1000 + worker``; the validation loader's seeds
    are offset by 500). Single-threaded augmenters are returned as they are.
    """
    from batchgenerators.dataloading.multi_threaded_augmenter import MultiThreadedAugmenter
    from batchgenerators.dataloading.nondet_multi_threaded_augmenter import (
        NonDetMultiThreadedAugmenter,
    )

    out = []
    for offset, aug in ((0, train), (500, val)):
        if isinstance(aug, NonDetMultiThreadedAugmenter):
            aug._finish()
            n = aug.num_processes
            aug = MultiThreadedAugmenter(
                aug.generator, aug.transform, n, num_cached_per_queue=max(2, aug.num_cached // n),
                seeds=[seed * 1000 + offset + i for i in range(n)], pin_memory=aug.pin_memory,
            )  # fmt: skip
            next(aug)  # start the workers now, as nnU-Net does for its own
        out.append(aug)
    return tuple(out)
