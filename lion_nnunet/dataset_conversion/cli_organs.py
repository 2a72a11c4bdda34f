"""`lion organs`: TotalSegmentator on every study's CT, writing the tree lion convert reads."""

from __future__ import annotations

import argparse
import json

from lion_nnunet.cliutils import (
    add_cluster_args,
    add_command,
    add_json,
    add_no_pbar,
    add_overwrite,
    cluster_options,
)

EXAMPLES = """\
  lion organs --input fdg_studies --output fdg_organs --tracer fdg --device cuda
  lion organs --input fdg_studies --output fdg_organs --tracer fdg --weights /data/totalseg_weights
  lion organs --input psma_studies --output psma_organs --tracer psma   # total + head glands
  lion convert autopet --input psma_studies --organs psma_organs --tracer psma \\
      --dataset-id 602 --name LION_PSMA
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``lion organs``."""
    from lion_nnunet.labels import TRACERS

    p = add_command(
        subparsers, "organs", "segment organs with TotalSegmentator (the tasks a label set needs)",
        EXAMPLES,
        description=(
            "Run TotalSegmentator's Python API on each study's CT.nii.gz (else CTres.nii.gz) "
            "with exactly the tasks the label set needs (FDG: total; PSMA: total + "
            "head_glands_cavities), as multi-label files OUTPUT/<patient>/<study>/<task>.nii.gz. "
            "Resumable: finished tasks are skipped. Needs pip install 'lion-nnunet[organs]' and "
            "TotalSegmentator's weights for those tasks, copied in by hand: nothing is "
            "downloaded, and missing weights are named before any study starts."
        ),
    )  # fmt: skip
    p.add_argument("--input", required=True, help="studies: <patient>/<study>/CT[res].nii.gz")
    p.add_argument("--output", required=True, help="organ tree to write (lion convert --organs)")
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--tracer", choices=TRACERS, help="tracer: picks the built-in label set")
    who.add_argument("--label-set", help="JSON file with your own organ label set")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument(
        "--weights", metavar="DIR",
        help="folder holding TotalSegmentator's weight sets (the Dataset291_... folders its "
             "release zips unpack to); without it, TotalSegmentator's own folder: "
             "$TOTALSEG_WEIGHTS_PATH, else $TOTALSEG_HOME_DIR/nnunet/results, else "
             "~/.totalsegmentator/nnunet/results",
    )  # fmt: skip
    p.add_argument("-np", "--num-processes", dest="num_processes", type=int, default=1,
                   help="studies at the same time (1 for one GPU)")  # fmt: skip
    add_cluster_args(p)
    add_overwrite(p)
    add_no_pbar(p)
    add_json(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lion_nnunet.dataset_conversion.totalseg_run import run_organs
    from lion_nnunet.labels import resolve_label_set

    label_set = resolve_label_set(args.tracer, args.label_set)
    result = run_organs(
        args.input, args.output, label_set, device=args.device,
        num_processes=args.num_processes, overwrite=args.overwrite, progress=not args.no_pbar,
        weights=args.weights, cluster=cluster_options(args, not args.no_pbar),
    )  # fmt: skip
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['out']}: {result['studies']} study(ies), tasks {', '.join(result['tasks'])}"
              f" ({result['ran']} run now, {result['skipped']} already done)")  # fmt: skip
    return 0
