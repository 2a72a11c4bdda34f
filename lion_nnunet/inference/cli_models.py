"""``lion models install``, ``list`` and ``verify``: released models by name."""

from __future__ import annotations

import argparse
import json

from lion_nnunet.cliutils import add_command, add_json, add_overwrite

EXAMPLES = """\
  lion models install clin_pt_fdg.zip --name fdg --tracer fdg   # a lionz / Zenodo release zip
  lion models install $nnUNet_results/Dataset501_LION_FDG --name lion-fdg --folds 0 1 2 3 4 \\
      --model-folder nnUNetTrainer_LION__LIONPlans__3d_fullres  # one of several model folders
  lion models install psma.zip --name psma --tracer psma --tumor-label 6
  lion models list
  lion models verify fdg                                         # checkpoints unchanged?
  lion predict -i subjects/ -o out/ -m fdg                       # by name
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``lion models`` with its subcommands."""
    p = add_command(subparsers, "models", "install, list and verify released models by name",
                    EXAMPLES)  # fmt: skip
    sub = p.add_subparsers(dest="models_command", metavar="<subcommand>")
    i = add_command(sub, "install", "check a model zip/folder and install it under a name",
                    EXAMPLES)  # fmt: skip
    i.add_argument("path", help="nnU-Net model zip (nnUNetv2_install_pretrained_model_from_zip "
                   "format), DatasetXXX_NAME folder or model folder")  # fmt: skip
    i.add_argument("--name", required=True, help="name for lion predict -m NAME")
    from lion_nnunet.labels import TRACERS

    i.add_argument("--tracer", choices=TRACERS, default=None, help="tracer the model is for")
    i.add_argument("--tumor-label", type=int, default=None,
                   help="tumor label id when the label names do not say it")  # fmt: skip
    i.add_argument("--checkpoint", default="checkpoint_final.pth", help="checkpoint file name")
    i.add_argument("-f", "--folds", nargs="+", default=None,
                   help="folds to install (each needs its checkpoint); default: every fold_* "
                   "folder")  # fmt: skip
    i.add_argument("--model-folder", default=None, metavar="TRAINER__PLANS__CONFIG",
                   help="the model folder to install when the zip/folder holds several; only "
                   "that one is copied")  # fmt: skip
    i.add_argument("--trust-checkpoint", action="store_true",
                   help="read the checkpoints with torch.load(weights_only=False): their pickle "
                   "can run code; only for a model whose source you trust and that the default "
                   "weights-only check refuses")  # fmt: skip
    add_overwrite(i)
    add_json(i)
    i.set_defaults(func=run_install)
    ls = add_command(sub, "list", "installed models (name, tracer, tumor label, folds)", EXAMPLES)
    add_json(ls)
    ls.set_defaults(func=run_list)
    v = add_command(sub, "verify", "re-check an installed model's SHA-256 sums (checkpoints, "
                    "plans.json, dataset.json) and trainer class; exit 1 on any mismatch",
                    EXAMPLES)  # fmt: skip
    v.add_argument("name", help="installed model name (lion models list)")
    add_json(v)
    v.set_defaults(func=run_verify)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def run_install(args: argparse.Namespace) -> int:
    from .installed import model_home
    from .registry import install_model

    record = install_model(args.path, args.name, args.tracer, args.tumor_label, args.checkpoint,
                           args.overwrite, args.folds, args.model_folder,
                           args.trust_checkpoint)  # fmt: skip
    if args.json:
        print(json.dumps(record, indent=2))
    else:
        print(f"installed {record['name']} ({record['tracer'] or 'tracer not given'}, tumor label "
              f"{record['tumor_label']}, folds {' '.join(record['folds'])}, trainer "
              f"{record['trainer']}) in {model_home() / record['name']}")  # fmt: skip
    return 0


def run_list(args: argparse.Namespace) -> int:
    from .installed import list_models, model_home

    records = list_models()
    if args.json:
        print(json.dumps(records, indent=2))
        return 0
    if not records:
        print(f"no models installed in {model_home()}; see `lion models install --help`")
        return 0
    print(f"{'name':<16} {'tracer':<7} {'tumor':>5}  {'folds':<12} trainer")
    for r in records:
        print(f"{r['name']:<16} {r['tracer'] or '-':<7} {r['tumor_label']:>5}  "
              f"{' '.join(r['folds']):<12} {r['trainer']}")  # fmt: skip
    return 0


def run_verify(args: argparse.Namespace) -> int:
    from lion_nnunet.errors import LionError

    from .registry import verify_model

    result = verify_model(args.name)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for row in result["checkpoints"]:
            state = "ok" if row["ok"] else "CHANGED" if row["actual"] else "MISSING"
            print(f"fold {row['fold']:<4} {state:<8} {row['actual'] or '-'}  {row['path']}")
        for row in result["files"]:
            state = "ok" if row["ok"] else "CHANGED" if row["actual"] else "MISSING"
            print(f"{row['file']:<12} {state:<8} {row['actual'] or '-'}  {row['path']}")
        found = "found" if result["trainer_found"] else "NOT FOUND"
        print(f"trainer {result['trainer']}: {found}")
    if not result["ok"]:
        raise LionError("; ".join(result["problems"]))
    return 0
