"""`lion doctor`: is this machine set up so that stock nnU-Net finds and runs the LION trainers?

Each check has a status ("ok", "warn", "fail"), what was found, and the fix.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

from lion_nnunet import __version__
from lion_nnunet.trainers.discovery import EXT_TRAINER_VAR, find_trainer, shim_folder

REINSTALL = 'eval "$(lion env)"   (or reinstall: the .pth start-up file is missing)'


@dataclass
class Check:
    name: str
    status: str
    found: str
    fix: str = ""


def run_checks(trainer: str = "nnUNetTrainer_LION") -> list[Check]:
    """All checks, in order: versions, discovery, nnU-Net folders, device."""
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
    for var in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        value = os.environ.get(var)
        if not value:
            checks.append(Check(var, "fail", "<unset>", f"export {var}=/path/to/{var}"))
        elif not Path(value).is_dir():
            checks.append(Check(var, "warn", f"{value} (does not exist yet)", f"mkdir -p {value}"))
        else:
            checks.append(Check(var, "ok", value))
    import torch

    if torch.cuda.is_available():
        checks.append(Check("device", "ok", f"CUDA: {torch.cuda.get_device_name(0)}"))
    else:
        checks.append(
            Check(
                "device",
                "warn",
                f"CPU only (torch {torch.__version__})",
                "training works with -device cpu but is slow; predict works on CPU",
            )
        )
    if torch.cuda.is_available() is False and os.environ.get("nnUNet_compile", "") != "false":
        found = os.environ.get("nnUNet_compile", "<unset>")
        fix = "export nnUNet_compile=false   (torch.compile is slow on CPU)"
        checks.append(Check("nnUNet_compile", "warn", found, fix))
    return checks


def as_json(checks: list[Check]) -> list[dict]:
    return [asdict(c) for c in checks]
