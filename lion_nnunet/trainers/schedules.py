"""Short LION schedules for CPU tests, the demo and the benchmarks: a few explicit classes.

As nnU-Net's ``variants/training_length/nnUNetTrainer_Xepochs.py``: one class per schedule,
findable by grep. They turn mirroring off (augmentation and test time), as nnU-Net's
``*_NoMirroring`` variants do: test-time mirroring multiplies CPU prediction time by 8.

=================================== ====== ========== ===============================
class                               epochs iterations  used by
=================================== ====== ========== ===============================
nnUNetTrainer_LION_1ep_2it          1      2          docs tests
nnUNetTrainer_LION_2ep_5it          2      5          end-to-end test fixtures
nnUNetTrainer_LION_4ep_12it         4      12         trainer tests
nnUNetTrainer_LION_4ep_25it         4      25         quick CPU runs
nnUNetTrainer_LION_16ep_25it        16     25         organ_context benchmark (earlier runs)
=================================== ====== ========== ===============================

The demo's and the benchmark's trainers (these schedules with the loss variants) are in
:mod:`lion_nnunet.trainers.cpu_demo`.
"""

from __future__ import annotations

from lion_nnunet.trainers.lion import nnUNetTrainer_LION


class _ShortSchedule(nnUNetTrainer_LION):
    """No mirroring and few validation iterations (base of the short schedules)."""

    lion_mirroring = False
    lion_val_iterations_per_epoch = 2


class nnUNetTrainer_LION_1ep_2it(_ShortSchedule):
    lion_num_epochs, lion_iterations_per_epoch, lion_val_iterations_per_epoch = 1, 2, 1


class nnUNetTrainer_LION_2ep_5it(_ShortSchedule):
    lion_num_epochs, lion_iterations_per_epoch = 2, 5


class nnUNetTrainer_LION_4ep_12it(_ShortSchedule):
    lion_num_epochs, lion_iterations_per_epoch = 4, 12


class nnUNetTrainer_LION_4ep_25it(_ShortSchedule):
    lion_num_epochs, lion_iterations_per_epoch = 4, 25


class nnUNetTrainer_LION_16ep_25it(_ShortSchedule):
    lion_num_epochs, lion_iterations_per_epoch = 16, 25
