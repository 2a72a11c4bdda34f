"""``lion clicks simulate``, ``lion clicks check`` and ``lion clicks steps``: autoPET IV click
files."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from lion_nnunet.cliutils import add_command, add_json, add_no_pbar, add_overwrite, log_to

EXAMPLES = """\
  lion clicks simulate --gt labelsTs/ --pet imagesTs/ -o clicks/            # 10 + 10, seed 42
  lion clicks simulate --gt labelsTs/ --pet imagesTs/ -o clicks_gc/ --form gc --budget 5
  lion clicks simulate --gt labelsTs/ --from-prediction step0/ -o clicks1/  # the next click
  lion clicks simulate --gt labelsTs/ --from-prediction step1/ --clicks clicks1/ -o clicks2/
  lion clicks steps clicks/ -o clicks_steps/          # clicks_steps/step0 .. step10
  lion clicks check clicks/PETCT_0af7ffe12a_2002-10-19_clicks.json \\
      --pet imagesTs/PETCT_0af7ffe12a_2002-10-19_0000.nii.gz
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``lion clicks`` with its subcommands."""
    p = add_command(subparsers, "clicks", "simulate and check autoPET IV click files", EXAMPLES)
    sub = p.add_subparsers(dest="clicks_command", metavar="<subcommand>")
    s = add_command(
        sub, "simulate", "click files <case>_clicks.json from ground truth: the autoPET IV "
        "robot user, or the next click on a prediction's largest error", EXAMPLES,
    )  # fmt: skip
    s.add_argument("--gt", required=True, help="ground-truth label maps (<case>.nii.gz)")
    s.add_argument("--pet", help="PET (SUV) images on the ground-truth grid "
                   "(<case>_0000.nii.gz or <case>.nii.gz); needed by the robot user")  # fmt: skip
    s.add_argument("-o", "--out", required=True, help="output folder for the click files")
    s.add_argument(
        "--budget",
        type=int,
        default=None,
        help="clicks of each kind (robot user; default 10, as autoPET IV)",
    )
    s.add_argument(
        "--seed",
        type=int,
        default=None,
        help="seed of the robot user's draws (default 42, the official one's)",
    )
    s.add_argument(
        "--form",
        choices=("simple", "gc"),
        default="simple",
        help="simple {tumor, background} or Grand-Challenge 'Multiple points'",
    )
    s.add_argument("--from-prediction", metavar="PRED", default=None,
                   help="error-driven: one click at the centre of the largest missed-tumor or "
                   "false-tumor component of these predictions")  # fmt: skip
    s.add_argument(
        "--clicks",
        metavar="DIR",
        default=None,
        help="with --from-prediction: the click files so far; the new click is added",
    )
    s.add_argument(
        "--gt-tumor-label",
        type=int,
        default=None,
        help="tumor value in the ground truth (default: from its dataset.json, else 1)",
    )
    s.add_argument("--tumor-label", type=int, default=None,
                   help="tumor value in the predictions (default: from their dataset.json, "
                   "else 1)")  # fmt: skip
    add_overwrite(s)
    add_no_pbar(s)
    add_json(s)
    s.set_defaults(func=run_simulate)
    log_to(s, "out")

    c = add_command(sub, "check", "read click files (either form) and check them against the "
                    "PET: one sentence and exit 1 for the first bad point", EXAMPLES)  # fmt: skip
    c.add_argument("files", nargs="+", help="click files")
    c.add_argument("--pet", required=True, help="the PET image the clicks are for")
    add_json(c)
    c.set_defaults(func=run_check)

    t = add_command(sub, "steps", "the protocol's steps: step<n>/ holds every click file cut to "
                    "its first n tumor and n background clicks, n = 0..N", EXAMPLES)  # fmt: skip
    t.add_argument("clicks", help="folder of <case>_clicks.json files (either form)")
    t.add_argument("-o", "--out", required=True, help="output folder (step0/ .. stepN/)")
    t.add_argument("--steps", type=int, default=10, help="N, the last step (default 10)")
    add_overwrite(t)
    t.set_defaults(func=run_steps)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def run_simulate(args: argparse.Namespace) -> int:
    from lion_nnunet.errors import LionError
    from lion_nnunet.interactive.cases import simulate_folder
    from lion_nnunet.interactive.simulate import DEFAULT_BUDGET, DEFAULT_SEED

    if args.from_prediction:
        robot = [f for f, v in (("--pet", args.pet), ("--budget", args.budget),
                 ("--seed", args.seed)) if v is not None]  # fmt: skip
        if robot:
            raise LionError(f"{', '.join(robot)}: the robot user's, not used with "
                            "--from-prediction (one click on the largest error)")  # fmt: skip
    budget = DEFAULT_BUDGET if args.budget is None else args.budget
    seed = DEFAULT_SEED if args.seed is None else args.seed
    rows = simulate_folder(
        args.gt, args.out, pet_dir=args.pet, budget=budget, seed=seed, form=args.form,
        gt_tumor_label=args.gt_tumor_label, pred_dir=args.from_prediction,
        pred_tumor_label=args.tumor_label, previous_dir=args.clicks, overwrite=args.overwrite,
        progress=not args.no_pbar,
    )  # fmt: skip
    if args.json:
        print(json.dumps(rows))
    else:
        tumor = sum(r["tumor"] for r in rows)
        background = sum(r["background"] for r in rows)
        print(f"{len(rows)} click file(s) in {Path(args.out)}: {tumor} tumor and {background} "
              "background click(s)")  # fmt: skip
    return 0


def run_check(args: argparse.Namespace) -> int:
    from lion_nnunet.interactive.clickfile import read_clicks, to_simple
    from lion_nnunet.io import read_image

    image = read_image(args.pet, "PET")
    answers = {path: to_simple(read_clicks(path, image=image)) for path in args.files}
    if args.json:
        print(json.dumps(answers))
    else:
        for path, clicks in answers.items():
            print(f"{path}: {len(clicks['tumor'])} tumor and {len(clicks['background'])} "
                  "background click(s), all inside the image")  # fmt: skip
    return 0


def run_steps(args: argparse.Namespace) -> int:
    from lion_nnunet.errors import LionError
    from lion_nnunet.interactive.clickfile import read_clicks, write_clicks

    files = sorted(Path(args.clicks).glob("*_clicks.json"))
    if not files:
        raise LionError(f"{args.clicks}: no <case>_clicks.json files")
    if args.steps < 0:
        raise LionError(f"--steps {args.steps}: expected 0 or more")
    out = Path(args.out)
    if (out / "step0").exists() and not args.overwrite:
        raise LionError(f"{out / 'step0'} exists; use --overwrite to replace the steps")
    clicks = {f.name: read_clicks(f) for f in files}  # every file checked before writing
    for n in range(args.steps + 1):
        for name, c in clicks.items():
            write_clicks(c.first(n), out / f"step{n}" / name)
    print(f"{len(files)} click file(s) cut to steps 0..{args.steps} in {out}/step<n>/")
    return 0
