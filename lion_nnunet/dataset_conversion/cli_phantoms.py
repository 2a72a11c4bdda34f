"""`lion phantoms`: write a synthetic PET cohort (autoPET layout + organ masks + cases.csv)."""

from __future__ import annotations

import argparse

from lion_nnunet.cliutils import add_command, add_no_pbar, add_overwrite, add_processes, add_tracer

EXAMPLES = """\
  lion phantoms --tracer fdg --cases 12 --out fdg_synth
  lion phantoms --tracer psma --cases 8 --organ-format ml --seed 3 --out psma_synth
  lion phantoms --tracer fdg --cases 5 --size wholebody --out fdg_wholebody   # benchmarks
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
        choices=("small", "wholebody"),
        default="small",
        help="small: 48x40x96 voxels (x,y,z) at 6 mm; wholebody: 200x200x400 at 4 mm",
    )
    p.add_argument(
        "--organ-format",
        choices=("masks", "ml"),
        default="masks",
        help="per-class binary masks, or TotalSegmentator --ml multi-label files",
    )
    add_processes(p)
    add_overwrite(p)
    add_no_pbar(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lion_nnunet.dataset_conversion.phantoms import make_cohort

    table = make_cohort(
        args.out, args.tracer, args.cases, seed=args.seed, size=args.size,
        organ_format=args.organ_format, num_processes=args.num_processes,
        overwrite=args.overwrite, progress=not args.no_pbar,
    )  # fmt: skip
    counts = table["disease"].value_counts().to_dict()
    print(
        f"wrote {len(table)} {args.tracer} studies to {args.out} ({counts}); "
        f"see {args.out}/cases.csv"
    )
    return 0
