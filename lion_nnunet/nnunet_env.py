"""nnU-Net's folders (nnUNet_raw / nnUNet_preprocessed / nnUNet_results) and dataset names."""

from __future__ import annotations

import os
import re
from pathlib import Path

from lion_nnunet.errors import LionError

NNUNET_FOLDERS = ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")

#: ``LION_FINAL_VALIDATION=0``: the LION trainers skip nnU-Net's final validation right after
#: training (trainers/lion.py); ``nnUNetv2_train ... --val`` runs it whatever the value.
FINAL_VALIDATION_VAR = "LION_FINAL_VALIDATION"


def skip_final_validation(environ: dict[str, str] | None = None) -> bool:
    """True when ``LION_FINAL_VALIDATION`` is 0; unset, empty or 1: False; else a LionError."""
    value = (os.environ if environ is None else environ).get(FINAL_VALIDATION_VAR, "").strip()
    if value not in ("", "0", "1"):
        raise LionError(
            f"{FINAL_VALIDATION_VAR}={value!r}: expected 0 (skip nnU-Net's final validation "
            "after training) or 1 (run it)"
        )
    return value == "0"


#: Settings that make nnU-Net behave on a small CPU machine (2 cores): no torch.compile, few
#: augmentation workers. Applied only where the user has not set them.
CPU_FRIENDLY_ENV = {
    "nnUNet_compile": "false",
    "nnUNet_n_proc_DA": "2",
    "nnUNet_def_n_proc": "2",
}


def require_folder(var: str) -> Path:
    """The folder named by environment variable ``var`` (see NNUNET_FOLDERS), or a clear error."""
    value = os.environ.get(var)
    if not value:
        raise LionError(
            f"{var} is not set; export it to a folder (e.g. export {var}=$HOME/nnunet/{var}), "
            "as for any nnU-Net v2 command"
        )
    return Path(value)


def dataset_folder_name(dataset_id: int, name: str) -> str:
    """nnU-Net's folder name for a dataset, e.g. ``Dataset501_LION_FDG``."""
    if not 1 <= int(dataset_id) <= 999:
        raise LionError(f"dataset id {dataset_id} is out of range; nnU-Net uses 1..999")
    if not re.fullmatch(r"[A-Za-z0-9_\-]+", name):
        raise LionError(f"dataset name {name!r} may only contain letters, digits, '_' and '-'")
    return f"Dataset{int(dataset_id):03d}_{name}"


def find_dataset_name(dataset: int | str) -> str:
    """Resolve ``501`` or ``Dataset501_LION_FDG`` to the dataset's folder name, as nnU-Net does."""
    from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name

    try:
        return maybe_convert_to_dataset_name(dataset)
    except (RuntimeError, ValueError) as e:
        first = str(e).splitlines()[0]
        raise LionError(f"dataset {dataset}: {first}") from None


def apply_cpu_friendly_defaults(environ: dict[str, str] | None = None) -> dict[str, str]:
    """Set CPU_FRIENDLY_ENV in ``environ`` (default ``os.environ``) where unset; return it."""
    env = os.environ if environ is None else environ
    for key, value in CPU_FRIENDLY_ENV.items():
        env.setdefault(key, value)
    return env  # type: ignore[return-value]
