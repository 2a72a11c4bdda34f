"""`lion evaluate` and `lion compare`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from lion_nnunet.cliutils import (
    add_cluster_args,
    add_command,
    add_json,
    add_no_pbar,
    add_overwrite,
    add_processes,
    add_use_corrected,
    cluster_options,
    log_to,
)

EXAMPLES_EVALUATE = """\
  lion evaluate --pred out/ --gt $nnUNet_raw/Dataset501_LION_FDG/labelsTs -o eval/
  lion evaluate --pred out/ --gt labelsTs/ --cases lion_cases.csv --group-by disease center -o eval/
  lion evaluate --pred out/ --gt labelsTs/ --pet imagesTs/ -o eval_suv/
  lion evaluate --pred other_tool/ --gt labelsTs/ --tumor-label 2 --strict -o eval_other/
  lion evaluate --pred first_half/ --gt labelsTs/ --allow-missing -o eval_partial/
  lion evaluate --interactive steps/ --gt labelsTs/ -o eval_interactive/   # <case>_pred0..10
"""


EXAMPLES_COMPARE = """\
  lion compare --method LION=out/ --method autoPET-baseline=other/ --gt labelsTs/ -o cmp/
  lion compare --method LION=out/ --method TMTV-Net=tmtv/ --tumor-label TMTV-Net=1 \\
      --gt labelsTs/ -o cmp/
  lion compare --interactive --method clicks=steps/ --method edit=steps_edit/ --gt labelsTs/ \\
      -o cmp_interactive/
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``lion evaluate`` and ``lion compare``."""
    e = add_command(subparsers, "evaluate", "autoPET metrics per case and per cohort/group",
                    EXAMPLES_EVALUATE)  # fmt: skip
    which = e.add_mutually_exclusive_group(required=True)
    which.add_argument("--pred", help="predictions: <case>.nii.gz or <case>/tumor.nii.gz")
    which.add_argument(
        "--interactive", metavar="STEPS_DIR",
        help="autoPET IV protocol: predictions after 0..N clicks, <case>_pred<i>.nii.gz; "
        "Dice, FP and FN volume per step, their areas under the curve and final values "
        "(docs/interactive.md)",
    )  # fmt: skip
    e.add_argument("--gt", required=True, help="ground-truth label maps (<case>.nii.gz)")
    e.add_argument("-o", "--out", required=True, help="output folder")
    e.add_argument("--pet", help="PET (SUV) folder on the ground-truth grid (imagesTs): adds "
                   "gt_suv_max, gt_tlg, pred_tlg, tlg_error")  # fmt: skip
    e.add_argument("--cases", help="CSV with case_id and grouping columns (lion_cases.csv)")
    e.add_argument("--group-by", nargs="*", default=None, help="grouping columns of --cases")
    e.add_argument("--tumor-label", type=int, default=None,
                   help="tumor value in the predictions (default: from --pred/dataset.json, "
                   "which nnUNetv2_predict copies there, else 1)")  # fmt: skip
    e.add_argument("--gt-tumor-label", type=int, default=None,
                   help="tumor value in the ground truth (default: from the dataset.json of "
                   "--gt or its parent, else 1)")  # fmt: skip
    e.add_argument("--strict", action="store_true", help="refuse predictions on another grid")
    add_use_corrected(e, default=False)
    add_allow_missing(e, "evaluate the predicted cases, list the others as missing")
    add_processes(e)
    add_cluster_args(e)
    add_overwrite(e)
    add_no_pbar(e)
    add_json(e)
    e.set_defaults(func=run_evaluate)
    log_to(e, "out")

    c = add_command(
        subparsers,
        "compare",
        "several tools on common cases: paired tests, plots",
        EXAMPLES_COMPARE,
    )
    c.add_argument("--method", action="append", required=True, metavar="NAME=FOLDER",
                   help="a method and its prediction folder (repeat)")  # fmt: skip
    c.add_argument("--gt", required=True, help="ground-truth label maps")
    c.add_argument(
        "--tumor-label", action="append", default=[], metavar="NAME=VALUE",
        help="tumor value in a method's masks (default: its dataset.json, else 1)",
    )  # fmt: skip
    c.add_argument("-o", "--out", required=True, help="output folder")
    c.add_argument("--interactive", action="store_true",
                   help="each FOLDER holds step predictions <case>_pred<i>.nii.gz: compare the "
                   "Dice, FP and FN volume AUCs (lion evaluate --interactive)")  # fmt: skip
    add_allow_missing(c, "compare on the cases every method predicted")
    add_use_corrected(c, default=False)
    add_overwrite(c)
    add_no_pbar(c)
    add_json(c)
    c.set_defaults(func=run_compare)
    log_to(c, "out")


def add_allow_missing(parser: argparse.ArgumentParser, what: str) -> None:
    """``--allow-missing`` (nnU-Net's ``--chill``); without it a missing prediction is an error."""
    parser.add_argument(
        "--allow-missing", action="store_true",
        help=f"when a ground-truth case has no prediction: {what} (default: refuse, exit 1)",
    )  # fmt: skip


def _num(value: float | None, digits: int) -> str:
    """A summary number for the terminal; n/a for an undefined (None/NaN) value."""
    if value is None or value != value:
        return "n/a"
    return f"{value:.{digits}f}"


def run_evaluate(args: argparse.Namespace) -> int:
    if args.interactive:
        return run_evaluate_interactive(args)
    from lion_nnunet.analysis.evaluate import evaluate

    group_by = args.group_by
    if group_by is None:
        group_by = ["disease", "center"] if args.cases else []
        if args.cases:
            import pandas as pd

            columns = set(pd.read_csv(args.cases, nrows=0).columns)
            group_by = [c for c in group_by if c in columns]
    result = evaluate(
        args.pred, args.gt, args.out, cases_csv=args.cases, group_by=group_by,
        tumor_label=args.tumor_label, gt_tumor_label=args.gt_tumor_label, strict=args.strict,
        pet_dir=args.pet, allow_missing=args.allow_missing, num_processes=args.num_processes,
        overwrite=args.overwrite, progress=not args.no_pbar,
        cluster=cluster_options(args, not args.no_pbar), use_corrected=args.use_corrected,
    )  # fmt: skip
    overall = result["summary"][0]
    if args.json:
        print(json.dumps(overall))
    else:
        print(f"{overall['evaluated']} of {overall['cases']} case(s) evaluated "
              f"({overall['missing']} without prediction): median Dice "
              f"{_num(overall['dice_median'], 3)}, median FP "
              f"{_num(overall['fp_volume_ml_median'], 2)} ml, median FN "
              f"{_num(overall['fn_volume_ml_median'], 2)} ml, lesion F1 "
              f"{_num(overall['lesion_f1'], 3)}; see "
              f"{Path(args.out) / 'per_case.csv'}")  # fmt: skip
        if args.use_corrected:
            print(f"corrected masks used for {len(result['corrected_cases'])} case(s) "
                  "(--use-corrected)")  # fmt: skip
    return 0


def run_evaluate_interactive(args: argparse.Namespace) -> int:
    from lion_nnunet.errors import LionError
    from lion_nnunet.interactive.steps import evaluate_steps

    unused = [flag for flag, value in (("--pet", args.pet), ("--cases", args.cases),
              ("--group-by", args.group_by), ("--cluster", args.cluster != "local"))
              if value]  # fmt: skip
    if unused:
        raise LionError(f"{', '.join(unused)}: not with --interactive (per-step scores only)")
    result = evaluate_steps(
        args.interactive, args.gt, args.out, tumor_label=args.tumor_label,
        gt_tumor_label=args.gt_tumor_label, strict=args.strict,
        allow_missing=args.allow_missing, overwrite=args.overwrite, progress=not args.no_pbar,
    )  # fmt: skip
    if args.json:
        print(json.dumps({k: result[k] for k in ("cases", "steps", "missing", "mean", "curve")}))
        return 0
    mean, curve = result["mean"], result["curve"]
    print(f"{result['cases']} case(s), {result['steps']} steps each: mean Dice "
          f"{_num(curve[0]['dice_mean'], 3)} without clicks, {_num(mean['dice_final'], 3)} "
          f"after the last; Dice AUC {_num(mean['dice_auc'], 3)}, FP volume AUC "
          f"{_num(mean['fpv_auc'], 2)}, FN volume AUC {_num(mean['fnv_auc'], 2)}; see "
          f"{Path(args.out) / 'per_case.csv'}")  # fmt: skip
    return 0


def run_compare(args: argparse.Namespace) -> int:
    from lion_nnunet.analysis.compare import compare, parse_methods
    from lion_nnunet.errors import LionError

    labels = {}
    for spec in args.tumor_label:
        name, sep, value = spec.partition("=")
        if not sep or not value.isdigit():
            raise LionError(f"--tumor-label {spec!r}: expected NAME=INTEGER")
        labels[name] = int(value)
    result = compare(parse_methods(args.method), args.gt, args.out, tumor_labels=labels,
                     allow_missing=args.allow_missing, overwrite=args.overwrite,
                     progress=not args.no_pbar, interactive=args.interactive,
                     use_corrected=args.use_corrected)  # fmt: skip
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['common_cases']} common case(s); paired tests in "
              f"{Path(args.out) / 'paired.csv'}, "
              f"box plots: {', '.join(result['plots'])}")  # fmt: skip
        for sentence in result["verdicts"]:
            print(f"  {sentence}")
    return 0
