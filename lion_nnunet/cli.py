"""``lion <command>``: the one console script. Thin: every command calls library functions.

Each command group is a module with a ``register(subparsers)`` function (listed in
COMMAND_MODULES); heavy imports (torch, nnunetv2) happen inside the handlers, so
``lion --help`` stays fast.
Exit codes: 0 success, 1 runtime error (a :class:`LionError`), 2 usage error (argparse).
Logging (:mod:`lion_nnunet.logs`): the run's own warnings on stderr, other libraries' output and
warnings in ``<output folder>/lion.log`` for commands that write a folder (``cliutils.log_to``).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import shlex
import sys
from collections.abc import Sequence

from lion_nnunet import __version__, logs
from lion_nnunet.cliutils import HelpFormatter
from lion_nnunet.errors import LionError

COMMAND_MODULES = (
    "lion_nnunet.synthetic.cli_phantoms",  # phantoms
    "lion_nnunet.dataset_conversion.cli_organs",  # organs (TotalSegmentator)
    "lion_nnunet.dataset_conversion.cli_convert",  # convert autopet|manifest
    "lion_nnunet.plans.cli_plans",  # plan, plans install, splits
    "lion_nnunet.trainers.cli_doctor",  # env, doctor
    "lion_nnunet.inference.cli_inference",  # predict, postprocess
    "lion_nnunet.inference.cli_models",  # models install|list|verify
    "lion_nnunet.analysis.cli_evaluate",  # evaluate, compare
    "lion_nnunet.interactive.cli_clicks",  # clicks simulate|check
    "lion_nnunet.review.cli_review",  # review
    "lion_nnunet.analysis.cli_tom",  # tom, tom-correlate, embed
    "lion_nnunet.analysis.cli_response",  # response
    "lion_nnunet.demo",  # demo
    "lion_nnunet.experiment",  # experiment ablation|scaling
)

EXAMPLES = """\
examples:
  lion demo --out lion_demo                       # synthetic data end to end on CPU
  lion phantoms --tracer fdg --cases 12 --out fdg_synth
  lion convert autopet --input fdg_synth/studies --organs fdg_synth/organs --tracer fdg \\
       --dataset-id 501 --name LION_FDG
  lion doctor                                     # is nnU-Net set up to find the LION trainers?
  lion <command> --help                           # every command's options and examples
"""


def add_log_flags(parser: argparse.ArgumentParser, default=None) -> None:
    """``-v``/``-q``; ``default`` SUPPRESS leaves them unset when a subcommand does not get them."""
    parser.add_argument(
        "-v", "--verbose", action="count", default=0 if default is None else default,
        help="more log output (-v info, -vv debug)",
    )  # fmt: skip
    parser.add_argument(
        "-q", "--quiet", action="store_true", default=False if default is None else default,
        help="errors only: hide warnings and the libraries' messages (they go to the log file)",
    )  # fmt: skip


class CommandParser(argparse.ArgumentParser):
    """A subcommand's parser: an unknown argument is reported with this command's usage.

    argparse hands a subcommand's unknown arguments back to the top-level parser, which then
    prints ``lion``'s usage; refusing them here prints ``lion predict``'s (exit code 2). It also
    takes ``-v``/``-q`` after the command (``lion predict ... -q``) as ``lion -q predict`` does.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        add_log_flags(self, default=argparse.SUPPRESS)  # unset here: lion's own flags count

    def parse_known_args(self, args=None, namespace=None):
        namespace, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return namespace, extras


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lion",
        description="LION: PET-only tumor segmentation for FDG and PSMA PET/CT on nnU-Net v2.",
        epilog=EXAMPLES,
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"lion-nnunet {__version__}")
    add_log_flags(parser)
    subparsers = parser.add_subparsers(
        dest="command", metavar="<command>", parser_class=CommandParser
    )
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def log_level(verbose: int, quiet: bool) -> int:
    """Warnings by default (clipped SUVs, resampled predictions, missing cases); -q errors only."""
    if quiet:
        return logging.ERROR
    return logging.WARNING - 10 * min(verbose, 2)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``lion`` with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    parser = get_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    if args.quiet and hasattr(args, "no_pbar"):
        args.no_pbar = True  # -q: errors alone, no progress bars either
    dest = getattr(args, "log_folder", None)  # set by cliutils.log_to for folder commands
    folder = getattr(args, dest) if dest else None
    command = shlex.join(["lion", *map(str, sys.argv[1:] if argv is None else argv)])
    with logs.setup(log_level(args.verbose, args.quiet), args.verbose, folder, command):
        try:
            return int(args.func(args) or 0)
        except LionError as e:
            print(f"lion {args.command}: error: {e}", file=sys.stderr)
            logs.to_file_only(f"lion {args.command}: error: {e}")
            return 1
        except OSError as e:  # disk full, no permission, a vanished file: the file and the cause
            where = f"{e.filename}: " if e.filename else ""
            message = f"{where}{e.strerror or e}; outputs finished before it are kept"
            print(f"lion {args.command}: error: {message}", file=sys.stderr)
            logs.to_file_only(f"lion {args.command}: error: {message}")
            return 1
        except KeyboardInterrupt:
            print(f"lion {args.command}: interrupted", file=sys.stderr)
            return 130


if __name__ == "__main__":
    sys.exit(main())
