"""How stock nnU-Net finds the LION trainers: the ``nnUNet_extTrainer`` folder list (nnunetv2 2.8).

nnU-Net imports every module of each listed folder as a top-level module and looks for the
trainer class by name. We list one folder holding one uniquely named shim module
(``nnunet_ext/lion_nnunet_trainers.py``) that imports our classes with absolute imports.

Installing lion-nnunet puts ``lion_nnunet_ext.pth`` into site-packages; Python runs it at start-up
and it calls :func:`register_ext_trainer_folder`, which appends the folder when it is missing (so
running twice, e.g. through a venv's lib64 symlink, adds nothing). ``lion env`` prints the same
setting as a shell line for environments where start-up files do not run.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, MutableMapping
from pathlib import Path

EXT_TRAINER_VAR = "nnUNet_extTrainer"


def shim_folder() -> Path:
    """The folder to put on ``nnUNet_extTrainer``."""
    return Path(__file__).resolve().parent / "nnunet_ext"


def register_ext_trainer_folder(environ: MutableMapping[str, str] | None = None) -> str:
    """Append the shim folder to ``nnUNet_extTrainer`` unless it is there; return the new value."""
    env = os.environ if environ is None else environ
    folder = str(shim_folder())
    parts = [p for p in env.get(EXT_TRAINER_VAR, "").split(os.pathsep) if p]
    if folder not in parts:
        parts.append(folder)
        env[EXT_TRAINER_VAR] = os.pathsep.join(parts)
    return env[EXT_TRAINER_VAR]


def lion_trainer_class(name: str) -> type | None:
    """The class of the LION trainer ``name`` (one of :mod:`lion_nnunet.trainers.all`), or None.

    nnU-Net's search finds a LION trainer only after importing every module of nnunetv2's own
    trainer tree (about 3 s of CPU at every start-up) and finding no class of that name there;
    no stock trainer bears a LION trainer's name (tests/test_trainers.py checks every one against
    nnU-Net's own search), so this answer is the one nnU-Net's search gives.
    """
    from lion_nnunet.trainers import all as lion_trainers

    cls = getattr(lion_trainers, name, None)
    ours = isinstance(cls, type) and cls.__module__.startswith("lion_nnunet.")
    return cls if ours else None  # a stock class imported there: nnU-Net's search finds it


def find_trainer(name: str) -> type | None:
    """Look a trainer up exactly as ``nnUNetv2_train -tr NAME`` does (None when not found)."""
    import io

    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    try:
        with contextlib.redirect_stdout(io.StringIO()):  # nnU-Net narrates its search on stdout
            return recursive_find_trainer_class_by_name(name)
    except (RuntimeError, ValueError):
        return None


@contextlib.contextmanager
def quick_lion_lookup() -> Iterator[None]:
    """Within the block, nnU-Net's predictor finds LION trainers by :func:`lion_trainer_class`
    (other names: nnU-Net's own search, unchanged). Saves ``lion predict`` about 3 s per start.

    Only where the shim folder is on ``nnUNet_extTrainer`` (:func:`register_ext_trainer_folder`,
    which the predictor calls first), as nnU-Net's search would then find the same class;
    :func:`find_trainer` (``lion doctor``) keeps nnU-Net's own search, which is what it checks.
    """
    import nnunetv2.inference.predict_from_raw_data as raw

    search = raw.recursive_find_trainer_class_by_name

    def lookup(name: str) -> type:
        listed = os.environ.get(EXT_TRAINER_VAR, "").split(os.pathsep)
        found = lion_trainer_class(name) if str(shim_folder()) in listed else None
        return found or search(name)

    raw.recursive_find_trainer_class_by_name = lookup
    try:
        yield
    finally:
        raw.recursive_find_trainer_class_by_name = search
