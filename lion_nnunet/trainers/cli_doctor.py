"""`lion env` and `lion doctor`."""

from __future__ import annotations

import argparse
import json
import shlex

from lion_nnunet.cliutils import add_command, add_json

EXAMPLES_ENV = """\
  eval "$(lion env)"            # only needed where Python start-up files (.pth) do not run
  lion env >> ~/.bashrc
"""
EXAMPLES_DOCTOR = """\
  lion doctor                        # inference checks; training checks as warnings
  lion doctor --for inference        # only what lion predict needs (no nnU-Net folders)
  lion doctor --for training         # the nnU-Net folders must be set too
  lion doctor --json | python -m json.tool
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``lion env`` and ``lion doctor``."""
    e = add_command(subparsers, "env", "print the shell line that lets nnU-Net find LION trainers",
                    EXAMPLES_ENV)  # fmt: skip
    e.set_defaults(func=run_env)
    d = add_command(subparsers, "doctor", "check nnU-Net, trainer discovery, folders and device",
                    EXAMPLES_DOCTOR)  # fmt: skip
    d.add_argument("--trainer", default="nnUNetTrainer_LION", help="trainer name to look up")
    d.add_argument(
        "--for", dest="purpose", choices=("all", "inference", "training"), default="all",
        help="what to check for: inference needs no nnU-Net folders; training fails without "
        "them; all reports both and fails on inference problems only",
    )  # fmt: skip
    add_json(d)
    d.set_defaults(func=run_doctor)


def run_env(args: argparse.Namespace) -> int:
    from lion_nnunet.trainers.discovery import EXT_TRAINER_VAR, register_ext_trainer_folder

    value = register_ext_trainer_folder(dict(__import__("os").environ))
    print(f"export {EXT_TRAINER_VAR}={shlex.quote(value)}")
    return 0


def run_doctor(args: argparse.Namespace) -> int:
    from lion_nnunet.trainers.doctor import PURPOSES, as_json, run_checks

    checks = run_checks(args.trainer, args.purpose)
    if args.json:
        print(json.dumps(as_json(checks), indent=2))
    else:
        for purpose, title in PURPOSES.items():
            group = [c for c in checks if c.purpose == purpose]
            if group:
                print(f"{title}:")
            for c in group:
                print(f"[{c.status:>4}] {c.name}: {c.found}")
                if c.fix:
                    print(f"       fix: {c.fix}")
    return 1 if any(c.status == "fail" for c in checks) else 0
