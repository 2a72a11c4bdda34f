"""`lion phantoms`: write a synthetic PET cohort (autoPET layout + organ masks + cases.csv)."""

from __future__ import annotations

import argparse
import json

from lion_nnunet.cliutils import (
    add_command,
    add_json,
    add_no_pbar,
    add_overwrite,
    add_processes,
    add_tracer,
)
from lion_nnunet.errors import LionError
from lion_nnunet.wording import counted

EXAMPLES = """\
  lion phantoms --tracer fdg --cases 12 --out fdg_synth
  lion phantoms --tracer psma --cases 8 --organ-format ml --seed 3 --out psma_synth
  lion phantoms --tracer fdg --cases 8 --diseases lymphoma,negative --out lymphoma_synth
  lion phantoms --tracer fdg --cases 20 --diseases lymphoma:3,melanoma:1 --out mixed_synth
  lion phantoms --tracer fdg --cases 2 --size wholebody --out fdg_wholebody   # benchmarks
  lion phantoms --tracer fdg --cases 3 --followups 2 --out fdg_followups   # for lion response
  lion phantoms --tracer fdg --cases 80 --annotate visible --out fdg_seen  # as lion demo
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``lion phantoms``."""
    p = add_command(
        subparsers,
        "phantoms",
        "write a synthetic whole-body PET cohort in the autoPET layout",
        EXAMPLES,
        description=(
            "Write synthetic PET phantoms in SUV (studies/<patient>/<study>/SUV.nii.gz, "
            "CTres.nii.gz, SEG.nii.gz), TotalSegmentator-style organ masks on a different CT grid "
            "(organs/<patient>/<study>/), cases.csv and lesions.csv. Deterministic by --seed; "
            "a re-run skips cases already written."
        ),
    )
    add_tracer(p)
    p.add_argument("--cases", type=int, required=True, help="number of studies")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument(
        "--size",
        choices=("small", "wholebody", "autopet"),
        default="small",
        help="small: 48x40x96 voxels (x,y,z) at 6 mm; wholebody: 200x200x400 at 4 mm; "
        "autopet: 400x400x300 at 2.04 x 2.04 x 3 mm (the autoPET grid)",
    )
    p.add_argument(
        "--organ-format",
        choices=("masks", "ml"),
        default="masks",
        help="per-class binary masks, or TotalSegmentator --ml multi-label files",
    )
    p.add_argument(
        "--diseases",
        default=None,
        help="comma-separated diseases, optionally with weights (lymphoma:3,negative:1); "
        "default: all of the tracer's (fdg: lymphoma, lung_cancer, melanoma, negative; "
        "psma: prostate_cancer, negative)",
    )
    p.add_argument(
        "--followups",
        type=int,
        default=0,
        help="later studies per patient (study_02, ...) with known lesion changes (shrink, grow, "
        "vanish, split, appear) and a patient shift/rotation; truth in followups.csv",
    )
    p.add_argument(
        "--annotate",
        choices=("all", "visible"),
        default="all",
        help="lesions in SEG.nii.gz: all painted ones, or those a reader can see (Rose SNR >= 5 "
        "in the scanned PET: brighter than their surroundings, noise considered); the images "
        "are the same either way",
    )
    add_processes(p)
    add_overwrite(p)
    add_no_pbar(p)
    add_json(p)
    p.set_defaults(func=run)


def parse_diseases(text: str | None) -> dict[str, float] | None:
    """``"lymphoma:3,negative"`` -> ``{"lymphoma": 3.0, "negative": 1.0}``."""
    if text is None:
        return None
    weights = {}
    for item in filter(None, (t.strip() for t in text.split(","))):
        name, _, weight = item.partition(":")
        try:
            weights[name.strip()] = float(weight) if weight else 1.0
        except ValueError:
            raise LionError(
                f"--diseases: weight {weight!r} of {name!r} is not a number (e.g. lymphoma:3)"
            ) from None
    return weights


def run(args: argparse.Namespace) -> int:
    from lion_nnunet.synthetic.phantoms import make_cohort

    table = make_cohort(
        args.out, args.tracer, args.cases, seed=args.seed, size=args.size,
        organ_format=args.organ_format, diseases=parse_diseases(args.diseases),
        num_processes=args.num_processes, overwrite=args.overwrite, progress=not args.no_pbar,
        followups=args.followups, annotate=args.annotate,
    )  # fmt: skip
    counts = {str(k): int(v) for k, v in table["disease"].value_counts().items()}
    if args.json:
        print(json.dumps({"out": str(args.out), "cases": len(table), "diseases": counts}))
    else:
        print(
            f"wrote {len(table)} {args.tracer} studies to {args.out} ({counted(counts)}); "
            f"see {args.out}/cases.csv"
        )
    return 0
