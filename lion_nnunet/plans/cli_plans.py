"""`lion plans install`, `lion plan`, `lion splits`."""

from __future__ import annotations

import argparse
import json

from lion_nnunet.cliutils import HelpFormatter, add_command, add_json, add_overwrite, add_tracer

EXAMPLES_PLANS = """\
  nnUNetv2_extract_fingerprint -d 501
  lion plans install --dataset 501 --tracer fdg
  lion plans install --dataset 501 --tracer fdg --patch-size 64 32 32 --spacing dataset  # tiny data
  nnUNetv2_preprocess -d 501 -plans_name LIONPlans -c 3d_fullres
"""
EXAMPLES_PLAN = """\
  lion plan -d 501                     # nnU-Net derives spacing/patch; PET normalization as LION's
  nnUNetv2_preprocess -d 501 -plans_name LIONPlans -c 3d_fullres
"""
EXAMPLES_SPLITS = """\
  lion splits --dataset 501 --folds 5 --overwrite      # 5-fold CV by patient (lion convert's)
  lion splits --dataset 501 --subset-sizes 50 100 250 500 --stratify disease --seed 0
  lion splits --dataset 501 --subset-sizes 50 100 --pool lymphoma      # single-disease pool
  nnUNetv2_train 501 3d_fullres 0 -p LIONPlans -tr nnUNetTrainer_LION  # fold 0 = first subset
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``lion plans install``, ``lion plan`` and ``lion splits``."""
    p = add_command(
        subparsers, "plans", "install the shipped LION plans for a dataset", EXAMPLES_PLANS
    )
    sub = p.add_subparsers(dest="action", metavar="<action>", required=True)
    i = sub.add_parser(
        "install",
        help="write LIONPlans.json into $nnUNet_preprocessed/DatasetXXX",
        epilog="examples:\n" + EXAMPLES_PLANS,
        formatter_class=HelpFormatter,
    )
    i.add_argument("-d", "--dataset", required=True, help="dataset id or name")
    add_tracer(i)
    i.add_argument("--plans-name", default="LIONPlans", help="plans identifier (= -p of nnU-Net)")
    i.add_argument("--patch-size", type=int, nargs=3, metavar=("Z", "Y", "X"),
                   help="patch in voxels; the network topology follows it")  # fmt: skip
    i.add_argument("--batch-size", type=int, help="patches per iteration")
    i.add_argument("--base-features", type=int, help="first-stage features (template: 32)")
    i.add_argument("--blocks-per-stage", type=int, nargs="+", metavar="N",
                   help="residual blocks per encoder stage (template: 1 3 4 6 6 ...); "
                        "one number for every stage")  # fmt: skip
    i.add_argument("--intensity-from", metavar="DATASET",
                   help="take the PET intensity statistics from this dataset's fingerprint "
                        "(one normalization for both arms of an ablation)")  # fmt: skip
    i.add_argument(
        "--spacing", nargs="+", metavar="MM", help="target Z Y X in mm, or 'dataset' (its median)"
    )
    add_overwrite(i)
    add_json(i)
    i.set_defaults(func=run_install)

    q = add_command(subparsers, "plan", "plan a dataset with the LION planner (nnU-Net API)",
                    EXAMPLES_PLAN)  # fmt: skip
    q.add_argument("-d", "--dataset", type=int, required=True, help="dataset id")
    q.add_argument("--plans-name", default="LIONPlans", help="plans identifier")
    q.add_argument(
        "--gpu-memory-gb", type=float, help="GPU memory target (nnU-Net's -gpu_memory_target)"
    )
    q.set_defaults(func=run_plan)

    s = add_command(subparsers, "splits",
                    "splits_final.json by patient: nested subsets with one val set, or k folds",
                    EXAMPLES_SPLITS)  # fmt: skip
    s.add_argument("-d", "--dataset", required=True, help="dataset id or name")
    kind = s.add_mutually_exclusive_group(required=True)
    kind.add_argument("--subset-sizes", type=int, nargs="+", help="increasing sizes (cases)")
    kind.add_argument("--folds", type=int, help="k cross-validation folds instead of subsets")
    s.add_argument("--stratify", default="disease", help="lion_cases.csv column")
    s.add_argument("--seed", type=int, default=0, help="random seed")
    s.add_argument("--val-fraction", type=float, default=0.2, help="validation share of cases")
    s.add_argument("--val-size", type=int, help="validation cases (instead of --val-fraction)")
    s.add_argument("--pool", default="mixed", help="'mixed' or one value of --stratify")
    add_overwrite(s)
    add_json(s)
    s.set_defaults(func=run_splits)


def run_install(args: argparse.Namespace) -> int:
    from lion_nnunet.errors import LionError
    from lion_nnunet.plans.install import install_plans

    spacing = None
    if args.spacing:
        if args.spacing == ["dataset"]:
            spacing = "dataset"
        elif len(args.spacing) == 3:
            try:
                spacing = tuple(float(v) for v in args.spacing)
            except ValueError:
                raise LionError(
                    f"--spacing takes Z Y X in mm or 'dataset', got {args.spacing}"
                ) from None
        else:
            raise LionError(f"--spacing takes Z Y X in mm or 'dataset', got {args.spacing}")
    path = install_plans(
        args.dataset, args.tracer, plans_name=args.plans_name,
        patch_size=tuple(args.patch_size) if args.patch_size else None,
        batch_size=args.batch_size, spacing=spacing, base_features=args.base_features,
        blocks_per_stage=tuple(args.blocks_per_stage) if args.blocks_per_stage else None,
        intensity_from=args.intensity_from, overwrite=args.overwrite,
    )  # fmt: skip
    if args.json:
        print(json.dumps({"plans": str(path), "plans_name": args.plans_name}))
    else:
        print(f"wrote {path}\nnext: nnUNetv2_preprocess -d {args.dataset} -plans_name "
              f"{args.plans_name} -c 3d_fullres")  # fmt: skip
    return 0


def run_plan(args: argparse.Namespace) -> int:
    from lion_nnunet.plans.planner import plan_dataset

    name = plan_dataset(args.dataset, args.plans_name, args.gpu_memory_gb)
    print(f"planned dataset {args.dataset} as {name}; next: nnUNetv2_preprocess -d {args.dataset} "
          f"-plans_name {name} -c 3d_fullres")  # fmt: skip
    return 0


def run_splits(args: argparse.Namespace) -> int:
    from lion_nnunet.plans.splits import make_folds, make_splits

    if args.folds is not None:
        splits, table = make_folds(
            args.dataset, args.folds, args.stratify, args.seed, overwrite=args.overwrite
        )
    else:
        splits, table = make_splits(
            args.dataset, args.subset_sizes, stratify=args.stratify, seed=args.seed,
            val_fraction=args.val_fraction, val_size=args.val_size, pool=args.pool,
            overwrite=args.overwrite,
        )  # fmt: skip
    n = args.folds if args.folds is not None else len(args.subset_sizes)
    if args.json:
        print(json.dumps({"splits_final": str(splits), "lion_splits": str(table)}))
    else:
        print(f"wrote {splits} ({n} folds, whole patients) and {table}")
    return 0
