"""`lion response`: baseline vs follow-up lesion matching, ΔTMTV and PERCIST 1.0."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from lion_nnunet.cliutils import add_command, add_json, add_no_pbar, add_overwrite
from lion_nnunet.errors import LionError
from lion_nnunet.wording import counted

EXAMPLES = """\
  lion response --baseline-pet PETCT_0af7ffe12a/08-12-2005-NA-PET-CT/SUV.nii.gz \\
      --baseline-tumor pred_b/tumor.nii.gz --baseline-organs pred_b/organs.nii.gz \\
      --followup-pet PETCT_0af7ffe12a/03-02-2006-NA-PET-CT/SUV.nii.gz \\
      --followup-tumor pred_f/tumor.nii.gz --followup-organs pred_f/organs.nii.gz \\
      --weight-kg 72 --height-cm 178 --sex M --followup-weight-kg 68 -o resp/
  lion response out/PETCT_0af7ffe12a_08-12-2005 out/PETCT_0af7ffe12a_03-02-2006 \\
      --weight-kg 72 --height-cm 178 --sex M -o resp/          # two lion predict case folders
  lion response --pairs pairs.csv -o resp_cohort/              # one row per pair, see docs
  lion response --from-cases $nnUNet_raw/Dataset501_LION_FDG/lion_cases.csv \
      --predictions-dir out/ --patients patients.csv -o resp_cohort/
  lion phantoms --tracer fdg --cases 2 --followups 1 --out fdg_fu   # phantoms to try it on
"""

#: response_cohort.PAIR_COLUMNS, repeated so that `lion --help` does not import pandas.
PAIR_COLUMNS = ("patient_id", "baseline", "followup", "weight_kg", "height_cm", "sex")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``lion response``."""
    from lion_nnunet.labels import TRACERS

    p = add_command(
        subparsers,
        "response",
        "baseline vs follow-up: lesion matching, ΔTMTV and PERCIST 1.0",
        EXAMPLES,
        description=(
            "Align a follow-up PET onto its baseline (SimpleITK rigid then affine), match lesions "
            "(overlap, then centroid distance), measure TMTV, TLG, SULpeak and the liver "
            "reference per time point, and categorise by PERCIST 1.0 (CMR/PMR/SMD/PMD) and "
            "ΔTMTV. Writes response.json, response.csv and response.png (docs/response.md)."
        ),
    )
    p.add_argument("predictions", nargs="*", metavar="PRED",
                   help="two lion predict case folders (baseline, follow-up) with tumor.nii.gz, "
                   "organs.nii.gz and report.json")  # fmt: skip
    for when in ("baseline", "followup"):
        p.add_argument(f"--{when}-pet", help=f"{when} PET in SUVbw (NIfTI)")
        p.add_argument(f"--{when}-tumor", help=f"{when} tumor mask on its PET's grid")
        p.add_argument(f"--{when}-organs", help=f"{when} organ mask (tracer's LION label ids)")
    p.add_argument("--pairs", help="cohort CSV: " + ",".join(PAIR_COLUMNS) + " (baseline and "
                   "followup: lion predict case folders)")  # fmt: skip
    p.add_argument("--from-cases", metavar="LION_CASES_CSV",
                   help="lion convert's lion_cases.csv: every patient with >= 2 studies, the "
                   "earliest as baseline (needs --predictions-dir and --patients)")  # fmt: skip
    p.add_argument("--predictions-dir", help="lion predict output holding <case_id>/ folders")
    p.add_argument("--patients", help="CSV patient_id,weight_kg,height_cm,sex (--from-cases)")
    p.add_argument("--weight-kg", type=float, help="body weight at baseline (kg)")
    p.add_argument("--followup-weight-kg", type=float, help="weight at follow-up (kg)")
    p.add_argument("--height-cm", type=float, help="height (cm)")
    p.add_argument("--sex", choices=("M", "F", "m", "f"), help="sex, for lean body mass")
    p.add_argument("--tracer", choices=TRACERS, default="fdg",
                   help="tracer: its label set says which organ id is the liver")  # fmt: skip
    p.add_argument("--lbm", choices=("janmahasatian", "james"), default="janmahasatian",
                   help="lean body mass formula for SUL")  # fmt: skip
    p.add_argument(
        "--liver-reference",
        metavar="SUL[,SD]",
        help="liver SULmean (and SD) to use when there is no liver mask",
    )
    p.add_argument("--max-distance-mm", type=float, default=25.0,
                   help="lesions not overlapping after alignment match only within this "
                   "centroid distance")  # fmt: skip
    p.add_argument("--baseline-uptake-min", type=float, help="uptake time at baseline (min)")
    p.add_argument("--followup-uptake-min", type=float, help="uptake time at follow-up (min)")
    p.add_argument("-o", "--out", required=True, help="output folder")
    add_overwrite(p)
    add_no_pbar(p)
    add_json(p)
    p.set_defaults(func=run)


def _liver_reference(text: str | None) -> tuple[float, float] | None:
    if text is None:
        return None
    parts = text.split(",")
    try:
        values = [float(v) for v in parts]
    except ValueError:
        raise LionError(
            f"--liver-reference {text!r}: expected SUL or SUL,SD (e.g. 1.8,0.2)"
        ) from None
    if len(values) not in (1, 2):
        raise LionError(f"--liver-reference {text!r}: expected SUL or SUL,SD (e.g. 1.8,0.2)")
    return values[0], values[1] if len(values) == 2 else 0.0


def _studies(args: argparse.Namespace):
    from lion_nnunet.analysis.response import load_study, prediction_study

    if args.predictions:
        if len(args.predictions) != 2:
            raise LionError(
                f"give two lion predict case folders (baseline, follow-up), got "
                f"{len(args.predictions)}: {' '.join(args.predictions)}"
            )
        return (
            prediction_study(args.predictions[0], "baseline", args.baseline_pet),
            prediction_study(args.predictions[1], "followup", args.followup_pet),
        )
    missing = [
        f"--{w}-{k}" for w in ("baseline", "followup") for k in ("pet", "tumor")
        if getattr(args, f"{w}_{k}") is None
    ]  # fmt: skip
    if missing:
        raise LionError(
            f"{', '.join(missing)} missing; give --baseline-pet/--baseline-tumor and "
            "--followup-pet/--followup-tumor, two lion predict folders, or --pairs"
        )
    return (
        load_study(args.baseline_pet, args.baseline_tumor, args.baseline_organs, "baseline"),
        load_study(args.followup_pet, args.followup_tumor, args.followup_organs, "followup"),
    )


def _options(args, **override):
    from lion_nnunet.analysis.response import ResponseOptions

    values = {
        "weight_kg": args.weight_kg, "height_cm": args.height_cm, "sex": args.sex,
        "followup_weight_kg": args.followup_weight_kg, "tracer": args.tracer, "lbm": args.lbm,
        "liver_reference": _liver_reference(args.liver_reference),
        "max_distance_mm": args.max_distance_mm,
        "baseline_uptake_min": args.baseline_uptake_min,
        "followup_uptake_min": args.followup_uptake_min,
    }  # fmt: skip
    values.update(override)
    return ResponseOptions(**values)


def _run_cohort(args: argparse.Namespace) -> int:
    import pandas as pd

    from lion_nnunet.analysis.response_cohort import (
        PAIR_COLUMNS,
        PATIENT_COLUMNS,
        pairs_from_cases,
        read_table,
        run_pairs,
    )
    from lion_nnunet.io import write_csv

    out = Path(args.out)
    if args.pairs:
        table = read_table(args.pairs, PAIR_COLUMNS, "pairs.csv")
        root = Path(args.pairs).parent
    else:
        if not args.predictions_dir or not args.patients:
            raise LionError(
                "--from-cases needs --predictions-dir (the lion predict output) and --patients "
                "(patient_id,weight_kg,height_cm,sex)"
            )
        patients = read_table(args.patients, PATIENT_COLUMNS, "patients CSV")
        table = pairs_from_cases(args.from_cases, args.predictions_dir, patients)
        root = Path()

    def options_for(row):
        return _options(args, weight_kg=row.weight_kg, height_cm=row.height_cm, sex=row.sex,
                        patient_id=str(row.patient_id))  # fmt: skip

    frame = run_pairs(table, root, out, options_for, args.overwrite, not args.no_pbar)
    if not args.pairs:
        write_csv(table, out / "pairs.csv")
    ok = frame[frame["status"] == "ok"]
    failed = frame[frame["status"] == "failed"]
    counts = {str(k): int(v) for k, v in pd.Series(ok.get("percist", [])).value_counts().items()}
    if args.json:
        print(json.dumps({"out": str(out), "pairs": len(ok), "percist": counts,
                          "failed": [Path(f).name for f in failed["followup"]]}))  # fmt: skip
    else:
        print(f"wrote {len(ok)} responses to {out}; PERCIST: {counted(counts)}; "
              f"see {out}/response.csv")  # fmt: skip
    if len(failed):
        names = ", ".join(f"{p} ({Path(f).name})" for p, f in
                          zip(failed["patient_id"], failed["followup"], strict=True))  # fmt: skip
        print(f"lion response: {len(failed)} pair(s) failed: {names}; reasons in "
              f"{out / 'response.csv'}", file=sys.stderr)  # fmt: skip
        return 1
    return 0


def run(args: argparse.Namespace) -> int:
    from lion_nnunet.analysis.response import assess_response, check_output, write_response

    if args.pairs or args.from_cases:
        if args.pairs and args.from_cases:
            raise LionError("give --pairs or --from-cases, not both")
        if args.predictions or args.baseline_pet or args.followup_pet:
            raise LionError("--pairs/--from-cases run a cohort; give them without studies")
        return _run_cohort(args)
    out = check_output(args.out, args.overwrite)
    options = _options(args)
    baseline, followup = _studies(args)
    result = assess_response(baseline, followup, options)
    data = write_response(result, out)
    if args.json:
        print(json.dumps({"out": str(out), "percist": data["percist"], "tmtv": data["tmtv"],
                          "warnings": data["warnings"]}))  # fmt: skip
    else:
        print(f"PERCIST {data['percist']['category']}: {data['percist']['reason']}")
        print(f"TMTV {data['tmtv']['category']}: {data['tmtv']['reason']}")
        for w in data["warnings"]:
            print(f"warning: {w}")
        print(f"wrote {out}/response.json, response.csv, response.png")
    return 0
