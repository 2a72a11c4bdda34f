"""`lion doctor`: is this machine set up for what the user wants to do with LION?

Checks come in two groups. **Inference** (``lion predict``, stock ``nnUNetv2_predict``): the
nnunetv2 version, nnU-Net finding the LION trainers (a model's checkpoint names its trainer class)
and the device. **Training** (``lion convert``, ``lion plans install``, ``nnUNetv2_train``): the
three nnU-Net folders and, on CPU, ``nnUNet_compile``. ``lion predict`` needs none of the nnU-Net
folders, so a training check never fails an inference user: unless the purpose is "training", a
training problem is a warning that says it only matters for training.

Each check has a status ("ok", "warn", "fail"), what was found, the fix, and its purpose.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

from lion_nnunet import __version__
from lion_nnunet.nnunet_env import NNUNET_FOLDERS
from lion_nnunet.trainers.discovery import EXT_TRAINER_VAR, find_trainer, shim_folder

REINSTALL = 'eval "$(lion env)"   (or reinstall: the .pth start-up file is missing)'
#: What each purpose is for, as printed above its checks.
PURPOSES = {
    "inference": "inference (lion predict, nnUNetv2_predict)",
    "training": "training (lion convert, lion plans install, nnUNetv2_train)",
}
ONLY_FOR_TRAINING = "only needed for training; lion predict works without it"


@dataclass
class Check:
    name: str
    status: str
    found: str
    fix: str = ""
    purpose: str = "inference"


def _inference_checks(trainer: str) -> list[Check]:
    from importlib.metadata import version

    checks = [Check("lion-nnunet", "ok", __version__)]
    try:
        nn = version("nnunetv2")
        ok = nn.startswith("2.8.")
        checks.append(Check("nnunetv2", "ok" if ok else "fail", nn,
                            "" if ok else 'pip install "nnunetv2>=2.8.1,<2.9"'))  # fmt: skip
    except Exception as e:  # the package metadata is missing: nnunetv2 not installed
        checks.append(Check("nnunetv2", "fail", f"not importable ({e})", "pip install -e ."))
    folder = str(shim_folder())
    listed = folder in os.environ.get(EXT_TRAINER_VAR, "").split(os.pathsep)
    checks.append(
        Check(
            EXT_TRAINER_VAR, "ok" if listed else "fail",
            os.environ.get(EXT_TRAINER_VAR, "<unset>"),
            "" if listed else REINSTALL,
        )
    )  # fmt: skip
    cls = find_trainer(trainer)
    found = cls is not None and cls.__module__.startswith("lion_nnunet")
    checks.append(
        Check(
            f"nnU-Net finds {trainer}", "ok" if found else "fail",
            f"{cls.__module__}.{cls.__name__}" if cls else "not found",
            "" if found else 'eval "$(lion env)", then run lion doctor again',
        )
    )  # fmt: skip
    import torch

    if torch.cuda.is_available():
        checks.append(Check("device", "ok", f"CUDA: {torch.cuda.get_device_name(0)}"))
    else:
        checks.append(
            Check(
                "device",
                "warn",
                f"CPU only (torch {torch.__version__})",
                "predict works on CPU; training works with -device cpu but is slow",
            )
        )
    return checks


def _training_checks(strict: bool) -> list[Check]:
    """The nnU-Net folders and nnUNet_compile; problems fail only when ``strict``."""
    problem = "fail" if strict else "warn"
    note = "" if strict else f"   ({ONLY_FOR_TRAINING})"
    checks = []
    for var in NNUNET_FOLDERS:
        value = os.environ.get(var)
        if not value:
            checks.append(Check(var, problem, "<unset>", f"export {var}=/path/to/{var}{note}",
                                "training"))  # fmt: skip
        elif not Path(value).is_dir():
            checks.append(Check(var, "warn", f"{value} (does not exist yet)",
                                f"mkdir -p {value}{note}", "training"))  # fmt: skip
        else:
            checks.append(Check(var, "ok", value, purpose="training"))
    import torch

    if torch.cuda.is_available() is False and os.environ.get("nnUNet_compile", "") != "false":
        found = os.environ.get("nnUNet_compile", "<unset>")
        fix = "export nnUNet_compile=false   (torch.compile is slow on CPU)"
        checks.append(Check("nnUNet_compile", "warn", found, fix, "training"))
    return checks


def run_checks(trainer: str = "nnUNetTrainer_LION", purpose: str = "all") -> list[Check]:
    """The checks of ``purpose``, in order: inference (versions, discovery, device), training.

    Args:
        trainer: Trainer class nnU-Net must find (a model's checkpoint names it).
        purpose: ``"inference"`` (its checks alone), ``"training"`` (both groups; the nnU-Net
            folders must be set) or ``"all"`` (both groups; training problems are warnings).
    """
    if purpose not in (*PURPOSES, "all"):
        raise ValueError(f"purpose {purpose!r}; expected inference, training or all")
    checks = _inference_checks(trainer)
    if purpose != "inference":
        checks += _training_checks(strict=purpose == "training")
    return checks


def as_json(checks: list[Check]) -> list[dict]:
    return [asdict(c) for c in checks]
