"""`lion evaluate` and `lion compare`."""

from __future__ import annotations

import argparse
import json

from lion_nnunet.cliutils import add_command, add_json, add_no_pbar, add_overwrite, add_processes

EXAMPLES_EVALUATE = """\
  lion evaluate --pred out/ --gt $nnUNet_raw/Dataset501_LION_FDG/labelsTs -o eval/
  lion evaluate --pred out/ --gt labelsTs/ --cases lion_cases.csv --group-by disease center -o eval/
  lion evaluate --pred other_tool/ --gt labelsTs/ --tumor-label 2 --strict -o eval_other/
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``lion evaluate`` (``lion compare`` is added by analysis.cli_compare when present)."""
    e = add_command(subparsers, "evaluate", "autoPET metrics per case and per cohort/group",
                    EXAMPLES_EVALUATE)  # fmt: skip
    e.add_argument(
        "--pred", required=True, help="predictions: <case>.nii.gz or <case>/tumor.nii.gz"
    )
    e.add_argument("--gt", required=True, help="ground-truth label maps (<case>.nii.gz)")
    e.add_argument("-o", "--out", required=True, help="output folder")
    e.add_argument("--pet", help="PET folder (accepted for symmetry with lion predict; unused)")
    e.add_argument("--cases", help="CSV with case_id and grouping columns (lion_cases.csv)")
    e.add_argument("--group-by", nargs="*", default=None, help="grouping columns of --cases")
    e.add_argument("--tumor-label", type=int, default=1, help="tumor value in the predictions")
    e.add_argument("--gt-tumor-label", type=int, default=1, help="tumor value in the ground truth")
    e.add_argument("--strict", action="store_true", help="refuse predictions on another grid")
    add_processes(e)
    add_overwrite(e)
    add_no_pbar(e)
    add_json(e)
    e.set_defaults(func=run_evaluate)


def run_evaluate(args: argparse.Namespace) -> int:
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
        num_processes=args.num_processes, overwrite=args.overwrite, progress=not args.no_pbar,
    )  # fmt: skip
    overall = result["summary"][0]
    if args.json:
        print(json.dumps(overall))
    else:
        print(f"{overall['evaluated']} of {overall['cases']} case(s) evaluated "
              f"({overall['missing']} without prediction): median Dice "
              f"{overall['dice_median']}, median FP {overall['fp_volume_ml_median']:.2f} ml, "
              f"median FN {overall['fn_volume_ml_median']:.2f} ml, lesion F1 "
              f"{overall['lesion_f1']}; see {args.out}/per_case.csv")  # fmt: skip
    return 0
