"""Shared pieces of the ``lion`` command line: flags every command spells the same way."""

from __future__ import annotations

import argparse

from lion_nnunet.progress import default_processes


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keeps the examples in epilogs as written and shows defaults that say something.

    No "(default: ...)" for required arguments, flags (store_true/false), defaults of None or
    an empty list, or when the help text already names its default.
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            action.required
            or default is None
            or default is False  # not "in (None, False)": 0 == False would hide a 0 default
            or default == argparse.SUPPRESS
            or (isinstance(default, (list, tuple)) and not default)
            or isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction))
            or "default" in text.lower()
        ):
            return text
        return super()._get_help_string(action)


def add_command(
    subparsers: argparse._SubParsersAction,
    name: str,
    help: str,
    examples: str,
    description: str = "",
) -> argparse.ArgumentParser:
    """Add a subcommand whose ``--help`` ends with runnable examples."""
    return subparsers.add_parser(
        name,
        help=help,
        description=description or help,
        epilog="examples:\n" + examples.strip("\n"),
        formatter_class=HelpFormatter,
    )


def log_to(parser: argparse.ArgumentParser, dest: str) -> None:
    """The command writes the folder ``args.<dest>``: ``lion`` logs the run to its lion.log.

    The log holds other libraries' output and warnings (kept off the console) and the run's own
    messages; it is written only once the command has changed the folder (created it or written
    into it), so a refused run leaves the folder as it was (:class:`.logs.FolderLogHandler`).
    """
    parser.set_defaults(log_folder=dest)


def add_overwrite(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace existing output instead of refusing/skipping",
    )


def add_no_pbar(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-pbar", action="store_true", help="do not show progress bars")


def add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print a machine-readable JSON answer")


def add_processes(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-np",
        "--num-processes",
        dest="num_processes",
        type=int,
        default=default_processes(),
        help="worker processes (as nnU-Net's -np)",
    )


def add_sharding(parser: argparse.ArgumentParser) -> None:
    """``--num-parts/--part-id``: process every num_parts-th case starting at part_id."""
    parser.add_argument(
        "--num-parts", type=int, default=1, help="split the cohort into this many parts"
    )
    parser.add_argument("--part-id", type=int, default=0, help="which part this run does (0-based)")


def add_tracer(parser: argparse.ArgumentParser, required: bool = True) -> None:
    from lion_nnunet.labels import TRACERS

    parser.add_argument(
        "--tracer", choices=TRACERS, required=required, help="tracer, picks the organ label set"
    )


CLUSTER_EPILOG = """\
  --cluster local:4                    # 4 worker processes on this machine
  --cluster tcp://10.0.0.5:8786        # an existing Dask scheduler
  --cluster slurm --cluster-config slurm.yaml --max-workers 20   # see docs/cohort.md
"""


def _cluster_spec(text: str) -> str:
    """argparse ``type`` of ``--cluster``: a malformed spec is a usage error (exit 2)."""
    from lion_nnunet.cohort.cluster import check_spec
    from lion_nnunet.errors import LionError

    try:
        return check_spec(text.strip())
    except LionError as e:
        message = str(e).removeprefix(f"--cluster {text.strip()}: ")
        raise argparse.ArgumentTypeError(message) from None


def add_cluster_args(parser: argparse.ArgumentParser) -> None:
    """``--cluster``, ``--cluster-config``, ``--max-workers``: where the cases run (Dask)."""
    group = parser.add_argument_group(
        "cohort execution", "one task per case on Dask; a failed case is recorded in "
        "<out>/cohort.csv and the others go on (docs/cohort.md)",
    )  # fmt: skip
    group.add_argument(
        "--cluster", default="local", metavar="SPEC", type=_cluster_spec,
        help="local (this process; one worker per GPU when several and dask-cuda is installed), "
        "local:N (N worker processes), tls://HOST:PORT (a running Dask scheduler, TLS), "
        "tcp://HOST:PORT (the same, unencrypted) or slurm (--cluster-config)",
    )  # fmt: skip
    group.add_argument(
        "--cluster-config", default=None, metavar="FILE",
        help="YAML: dask-jobqueue's jobqueue: slurm: (queue, cores, memory, walltime, "
        "job_extra_directives, job_script_prologue) for --cluster slurm, and a security: section "
        "(tls_ca_file, tls_client_cert, tls_client_key, ...) for tls:// or slurm",
    )  # fmt: skip
    group.add_argument(
        "--max-workers", type=int, default=1, metavar="N",
        help="SLURM jobs (one worker each) to scale to with --cluster slurm",
    )  # fmt: skip


def cluster_options(args: argparse.Namespace, progress: bool = True):
    """The :class:`~lion_nnunet.cohort.cluster.ClusterOptions` of ``add_cluster_args``' flags."""
    from pathlib import Path

    from lion_nnunet.cohort.cluster import ClusterOptions

    config = None if args.cluster_config is None else Path(args.cluster_config)
    return ClusterOptions(args.cluster, config, args.max_workers, dashboard=progress)


def add_use_corrected(parser: argparse.ArgumentParser, default: bool) -> None:
    """``--use-corrected``/``--no-use-corrected``: a case's ``tumor_corrected.nii.gz`` (saved by
    ``lion review --serve``) instead of its prediction, where one exists."""
    parser.add_argument(
        "--use-corrected", action=argparse.BooleanOptionalAction, default=default,
        help="use a case's tumor_corrected.nii.gz (corrected in lion review --serve) instead of "
        f"its tumor.nii.gz where one exists (default: {'on' if default else 'off'})",
    )  # fmt: skip
