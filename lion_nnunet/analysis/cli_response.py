"""`lion response`: baseline vs follow-up lesion matching, ΔTMTV and PERCIST 1.0."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from lion_nnunet.cliutils import (
    add_command,
    add_json,
    add_no_pbar,
    add_overwrite,
    add_use_corrected,
)
from lion_nnunet.errors import LionError
from lion_nnunet.wording import counted

EXAMPLES = """\
  lion response --baseline-pet PETCT_0af7ffe12a/08-12-2005-NA-PET-CT/SUV.nii.gz \\
      --baseline-tumor pred_b/tumor.nii.gz --baseline-organs pred_b/organs.nii.gz \\
      --followup-pet PETCT_0af7ffe12a/03-02-2006-NA-PET-CT/SUV.nii.gz \\
      --followup-tumor pred_f/tumor.nii.gz --followup-organs pred_f/organs.nii.gz \\
      --weight-kg 72 --height-cm 178 --sex M --followup-weight-kg 68 -o resp/
  lion response out/PETCT_0af7ffe12a_08-12-2005 out/PETCT_0af7ffe12a_03-02-2006 \\
      --weight-kg 72 --height-cm 178 --sex M --followup-weight-kg 70 \\
      --baseline-aorta ts_b/total.nii.gz --followup-aorta ts_f/total.nii.gz \\
      -o resp/                                                 # two lion predict case folders
  lion response --pairs pairs.csv -o resp_cohort/              # one row per pair, see docs
  lion response --from-cases $nnUNet_raw/Dataset501_LION_FDG/lion_cases.csv \\
      --predictions-dir out/ --patients patients.csv -o resp_cohort/
  lion phantoms --tracer fdg --cases 2 --followups 1 --out fdg_fu   # phantoms to try it on
"""

#: response_cohort.PAIR_COLUMNS, repeated so that `lion --help` does not import pandas.
PAIR_COLUMNS = ("patient_id", "baseline", "followup", "weight_kg", "height_cm", "sex")
#: Optional pairs.csv columns (an empty cell or a missing column takes the command-line value).
OPTIONAL_PAIR_COLUMNS = ("followup_weight_kg", "followup_height_cm", "baseline_uptake_min",
                         "followup_uptake_min")  # fmt: skip


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
            "reference per time point, measure every baseline lesion's site on the follow-up PET, "
            "and categorise by PERCIST 1.0 (CMR/PMR/SMD/PMD, NE when not evaluable) and "
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
        p.add_argument(f"--{when}-liver", help=f"{when} liver mask for the liver reference: "
                       "binary, or TotalSegmentator's total label map (liver 5), any grid; "
                       "instead of the organ mask's liver")  # fmt: skip
        p.add_argument(f"--{when}-aorta", help=f"{when} aorta mask for the blood pool: binary, "
                       "or TotalSegmentator's total label map (aorta 52), any grid")  # fmt: skip
    p.add_argument("--pairs", help="cohort CSV: " + ",".join(PAIR_COLUMNS) + " (baseline and "
                   "followup: lion predict case folders), optionally "
                   + ",".join(OPTIONAL_PAIR_COLUMNS))  # fmt: skip
    p.add_argument("--from-cases", metavar="LION_CASES_CSV",
                   help="lion convert's lion_cases.csv: every patient with >= 2 studies, the "
                   "earliest as baseline (needs --predictions-dir and --patients)")  # fmt: skip
    p.add_argument("--predictions-dir", help="lion predict output holding <case_id>/ folders")
    p.add_argument("--patients", help="CSV patient_id,weight_kg,height_cm,sex (--from-cases)")
    p.add_argument("--weight-kg", type=float, help="body weight at baseline (kg)")
    p.add_argument("--followup-weight-kg", type=float, help="weight at follow-up (kg)")
    p.add_argument("--height-cm", type=float, help="height (cm)")
    p.add_argument("--followup-height-cm", type=float,
                   help="height at follow-up (cm); default --height-cm")  # fmt: skip
    p.add_argument("--sex", choices=("M", "F", "m", "f"), help="sex, for lean body mass")
    p.add_argument("--tracer", choices=TRACERS, default="fdg",
                   help="tracer: its label set says which organ id is the liver")  # fmt: skip
    p.add_argument("--lbm", choices=("janmahasatian", "james"), default="janmahasatian",
                   help="lean body mass formula for SUL")  # fmt: skip
    p.add_argument(
        "--liver-reference",
        metavar="MEAN,SD",
        help="liver SULmean and SD (both, >= 0) to use for both time points instead of a liver "
        "mask; the SD may also come from --liver-sd",
    )
    p.add_argument("--liver-sd", type=float, help="liver SUL SD for --liver-reference MEAN")
    p.add_argument("--same-patient", action="store_true",
                   help="the two studies are one patient although their paths do not show it "
                   "(or name different ids); without it such a pair is refused")  # fmt: skip
    p.add_argument("--max-distance-mm", type=float, default=12.4,
                   help="lesions not overlapping after alignment match only when their SULpeak "
                   "sphere centres lie within this distance (at most 12.4 mm: the 1 ml spheres "
                   "overlap)")  # fmt: skip
    p.add_argument("--accept-noncomparable", action="store_true",
                   help="assess scans that fail PERCIST's comparability checks (liver drift, "
                   "uptake time, missing follow-up weight) instead of answering NE; recorded "
                   "in response.json")  # fmt: skip
    p.add_argument("--baseline-uptake-min", type=float, help="uptake time at baseline (min)")
    p.add_argument("--followup-uptake-min", type=float, help="uptake time at follow-up (min)")
    p.add_argument("-o", "--out", required=True, help="output folder")
    add_use_corrected(p, default=True)
    add_overwrite(p)
    add_no_pbar(p)
    add_json(p)
    p.set_defaults(func=run)


def _liver_reference(text: str | None, sd: float | None = None) -> tuple[float, float] | None:
    """--liver-reference MEAN,SD (or MEAN with --liver-sd) as (mean, SD); both required, >= 0."""
    if text is None:
        if sd is not None:
            raise LionError("--liver-sd needs --liver-reference MEAN")
        return None
    usage = "expected MEAN,SD in SUL (e.g. 1.8,0.2), or MEAN with --liver-sd"
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise LionError(f"--liver-reference {text!r}: {usage}") from None
    if len(values) == 1 and sd is not None:
        values.append(float(sd))
    elif len(values) == 2 and sd is not None:
        raise LionError(f"--liver-reference {text!r} already has an SD; drop --liver-sd")
    if len(values) != 2:
        raise LionError(f"--liver-reference {text!r}: the SD is missing; {usage}")
    if values[0] <= 0 or values[1] < 0:
        raise LionError(f"--liver-reference {text!r}: MEAN must be > 0 and SD >= 0; {usage}")
    return values[0], values[1]


def _studies(args: argparse.Namespace):
    from lion_nnunet.analysis.response import load_study, prediction_study

    if args.predictions:
        if len(args.predictions) != 2:
            raise LionError(
                f"give two lion predict case folders (baseline, follow-up), got "
                f"{len(args.predictions)}: {' '.join(args.predictions)}"
            )
        return (
            prediction_study(
                args.predictions[0],
                "baseline",
                args.baseline_pet,
                args.baseline_aorta,
                args.baseline_liver,
                args.use_corrected,
            ),
            prediction_study(
                args.predictions[1],
                "followup",
                args.followup_pet,
                args.followup_aorta,
                args.followup_liver,
                args.use_corrected,
            ),
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
        load_study(
            args.baseline_pet,
            args.baseline_tumor,
            args.baseline_organs,
            "baseline",
            args.baseline_aorta,
            args.baseline_liver,
        ),
        load_study(
            args.followup_pet,
            args.followup_tumor,
            args.followup_organs,
            "followup",
            args.followup_aorta,
            args.followup_liver,
        ),
    )


def _options(args, **override):
    from lion_nnunet.analysis.response import ResponseOptions

    values = {
        "weight_kg": args.weight_kg, "height_cm": args.height_cm, "sex": args.sex,
        "followup_weight_kg": args.followup_weight_kg,
        "followup_height_cm": args.followup_height_cm, "tracer": args.tracer, "lbm": args.lbm,
        "liver_reference": _liver_reference(args.liver_reference, args.liver_sd),
        "max_distance_mm": args.max_distance_mm,
        "baseline_uptake_min": args.baseline_uptake_min,
        "followup_uptake_min": args.followup_uptake_min,
        "accept_noncomparable": args.accept_noncomparable,
        "same_patient": args.same_patient,
    }  # fmt: skip
    values.update(override)
    return ResponseOptions(**values)


def _number(value, default):
    """A CSV cell as a float, or ``default`` when the cell is empty or the column absent."""
    if value is None or (isinstance(value, float) and value != value) or str(value).strip() == "":
        return default
    try:
        return float(value)
    except ValueError:
        raise LionError(f"pairs table: {value!r} is not a number") from None


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
        optional = {
            key: _number(getattr(row, key, None), getattr(args, key))
            for key in OPTIONAL_PAIR_COLUMNS
        }
        return _options(args, weight_kg=row.weight_kg, height_cm=row.height_cm, sex=row.sex,
                        patient_id=str(row.patient_id), same_patient=True,
                        **optional)  # fmt: skip

    frame = run_pairs(table, root, out, options_for, args.overwrite, not args.no_pbar,
                      args.use_corrected)  # fmt: skip
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
        print("corrected masks (lion review --serve) used where they exist" if args.use_corrected
              else "predictions used, corrections ignored (--no-use-corrected)")  # fmt: skip
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
        for reason in data["reasons"][2:]:  # e.g. why an empty follow-up mask is not CMR
            print(reason)
        used = [k for k, v in data["corrected_masks"].items() if v]
        if args.use_corrected and args.predictions:  # files: nothing a review corrected
            print(f"corrected masks (lion review --serve) used for: {', '.join(used) or 'none'}"
                  " (--no-use-corrected: the predictions)")  # fmt: skip
        for w in data["warnings"]:
            print(f"warning: {w}")
        print(f"wrote {out}/response.json, response.csv, response.png")
    return 0
