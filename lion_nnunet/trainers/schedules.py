"""Short LION schedules for CPU smoke tests, the demo and benchmarks, as real trainer classes.

``nnUNetTrainer_LION_<E>ep_<I>it`` trains ``E`` epochs of ``I`` iterations (validation: a few
iterations), without mirroring (augmentation and test-time), which would multiply CPU prediction
time by 8. nnU-Net finds trainers by class name, so each combination in EPOCHS x ITERATIONS is a
module-level class, generated from these two tuples.
"""

from __future__ import annotations

from lion_nnunet.errors import LionError
from lion_nnunet.trainers.lion import nnUNetTrainer_LION

EPOCHS = (1, 2, 4, 8, 16, 32, 64, 100, 250, 500)
ITERATIONS = (2, 5, 10, 12, 25, 50, 100, 250)


def schedule_name(epochs: int, iterations: int) -> str:
    """Class name of a short schedule."""
    return f"nnUNetTrainer_LION_{epochs}ep_{iterations}it"


def _make(epochs: int, iterations: int) -> type[nnUNetTrainer_LION]:
    attrs = {
        "__module__": __name__,
        "__doc__": f"LION recipe, {epochs} epochs x {iterations} iterations (short schedule).",
        "lion_num_epochs": epochs,
        "lion_iterations_per_epoch": iterations,
        "lion_val_iterations_per_epoch": max(1, min(5, iterations // 2)),
        "lion_mirroring": False,
    }
    return type(schedule_name(epochs, iterations), (nnUNetTrainer_LION,), attrs)


SCHEDULES: dict[str, type[nnUNetTrainer_LION]] = {
    schedule_name(e, i): _make(e, i) for e in EPOCHS for i in ITERATIONS
}
globals().update(SCHEDULES)
__all__ = ["EPOCHS", "ITERATIONS", "SCHEDULES", "demo_trainer_name", "schedule_name", *SCHEDULES]


def demo_trainer_name(epochs: int, iterations: int) -> str:
    """The short-schedule trainer for ``epochs`` x ``iterations``, or a clear error."""
    if epochs not in EPOCHS or iterations not in ITERATIONS:
        raise LionError(
            f"no LION schedule with {epochs} epochs x {iterations} iterations; choose epochs from "
            f"{EPOCHS} and iterations from {ITERATIONS}"
        )
    return schedule_name(epochs, iterations)
