"""The organ-context ablation as a resumable workflow of stock nnU-Net and ``lion`` commands.

``run_ablation`` converts one cohort twice (organ classes / tumor-only), plans and preprocesses
both datasets with the LION plans, trains both with the same trainer, schedule and fold, predicts
the holdout with ``lion predict``, evaluates with ``lion evaluate`` and compares the two models.
``lion demo`` runs it on synthetic phantoms; ``lion experiment ablation`` on your cohort.
``run_scaling`` is the data-scaling study: nested training subsets from ``lion splits`` (fold k =
subset k, one fixed validation set), one training per subset, evaluation of each on the shared
validation set, TOM diversity per subset, and the diversity-vs-Dice correlation.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lion_nnunet.errors import LionError
from lion_nnunet.nnunet_env import FINAL_VALIDATION_VAR, require_folder
from lion_nnunet.progress import default_processes
from lion_nnunet.provenance import digest, file_digest, folder_digest, training_digest
from lion_nnunet.workflow import Step, Workflow, console_script

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

PLANS = "LIONPlans"
CONFIGURATION = "3d_fullres"


@dataclass(frozen=True)
class Arm:
    """One model of the ablation: a dataset id/name and whether it carries organ classes."""

    key: str
    dataset_id: int
    name: str
    with_organs: bool


@dataclass(frozen=True)
class AblationPlan:
    """Everything the ablation needs; paths are absolute."""

    root: Path
    studies: Path
    organs: Path
    metadata: Path | None
    tracer: str
    dataset_id: int
    name: str
    trainer: str
    fold: str
    device: str
    test_fraction: float
    seed: int
    patch_size: tuple[int, int, int] | None = None
    spacing: str | None = None
    base_features: int | None = None
    blocks_per_stage: tuple[int, ...] | None = None
    num_processes: int = 2
    #: further trainers for the organ arm only (e.g. the tumor-Dice variants), each compared
    #: with the tumor-only arm on the same holdout
    organ_trainers: tuple[str, ...] = ()
    #: trainings (and holdout predictions) run side by side, each with its share of the CPU
    #: cores; 1 = one after the other
    parallel: int = 1

    def arms(self) -> tuple[Arm, Arm]:
        return (
            Arm("organs", self.dataset_id, f"{self.name}_organs", True),
            Arm("tumor_only", self.dataset_id + 1, f"{self.name}_tumoronly", False),
        )


def _lion(*args: object) -> list[str]:
    return [console_script("lion"), *map(str, args)]


def _nn(name: str, *args: object) -> list[str]:
    return [console_script(name), *map(str, args)]


def model_dir(env: dict[str, str], arm: Arm, trainer: str) -> Path:
    """nnU-Net's results folder of one arm."""
    return (
        Path(env["nnUNet_results"])
        / f"Dataset{arm.dataset_id:03d}_{arm.name}"
        / f"{trainer}__{PLANS}__{CONFIGURATION}"
    )


def shared_splits(cases_csv: Path, n_splits: int = 5, seed: int = 0) -> list[dict]:
    """One set of cross-validation splits for both arms, from the converted case list.

    The training cases of ``lion_cases.csv`` split by :func:`lion_nnunet.splitting.grouped_kfold`,
    the rule ``lion convert`` and ``lion splits`` use: all studies of a patient (``patient_id``,
    else the case) in one fold, stratified by ``disease`` where the column exists. Returned in
    nnU-Net's splits_final.json layout.
    """
    import pandas as pd

    from lion_nnunet.splitting import grouped_kfold

    cases = pd.read_csv(cases_csv, dtype=str).fillna("")
    train = cases[cases["split"] == "train"]
    ids = list(train["case_id"])
    patients = list(train["patient_id"]) if "patient_id" in train.columns else ids
    diseases = list(train["disease"]) if "disease" in train.columns else [""] * len(ids)
    return grouped_kfold(
        {c: p or c for c, p in zip(ids, patients, strict=True)},
        dict(zip(ids, diseases, strict=True)),
        folds=n_splits,
        seed=seed,
    )


def _write_shared_splits(cases_csv: Path, targets: list[Path], seed: int) -> None:
    from lion_nnunet.io import write_json

    splits = shared_splits(cases_csv, seed=seed)
    for target in targets:
        write_json(splits, target)


def run_ablation(plan: AblationPlan, wf: Workflow) -> dict:
    """Run (or resume) the ablation; return per-arm evaluation summaries and output paths.

    Fair by construction: both arms get the same cases, the same splits (one splits_final.json
    written from the organ arm's case list into both datasets), the same plans apart from the
    number of output classes, and the same PET normalization (the tumor-only arm's plans take
    their intensity statistics from the organ arm's fingerprint: nnU-Net computes them over
    label-foreground voxels, which differ between the arms).
    """
    env = wf.env
    raw = Path(env["nnUNet_raw"])
    preprocessed_root = Path(env["nnUNet_preprocessed"])
    arms = plan.arms()
    datasets = {arm.key: raw / f"Dataset{arm.dataset_id:03d}_{arm.name}" for arm in arms}
    phases: dict[str, list[Step]] = {"convert": [], "fingerprint": [], "plans": [], "prep": []}
    organ_fingerprint = preprocessed_root / datasets["organs"].name / "dataset_fingerprint.json"
    for arm in arms:
        dataset = datasets[arm.key]
        preprocessed = preprocessed_root / dataset.name
        convert = _lion(
            "convert", "autopet", "--input", plan.studies, "--tracer", plan.tracer,
            "--dataset-id", arm.dataset_id, "--name", arm.name, "--test-fraction",
            plan.test_fraction, "--seed", plan.seed, "-np", plan.num_processes, "--no-pbar",
        )  # fmt: skip
        convert += ["--organs", plan.organs] if arm.with_organs else ["--no-organs"]
        convert += ["--metadata", plan.metadata] if plan.metadata else []
        phases["convert"].append(Step(
            f"{arm.key}: convert", convert, [dataset / "dataset.json"],
            lambda: digest(folder_digest(plan.studies), folder_digest(plan.organs),
                           file_digest(plan.metadata) if plan.metadata else ""),
        ))  # fmt: skip
        phases["fingerprint"].append(Step(
            f"{arm.key}: fingerprint",
            _nn("nnUNetv2_extract_fingerprint", "-d", arm.dataset_id, "-np", plan.num_processes),
            [preprocessed / "dataset_fingerprint.json"],
            lambda d=dataset: folder_digest(d),
        ))  # fmt: skip
        install = _lion("plans", "install", "--dataset", arm.dataset_id, "--tracer", plan.tracer)
        install += ["--intensity-from", arms[0].dataset_id, "--overwrite"]
        if plan.patch_size:
            install += ["--patch-size", *plan.patch_size]
        if plan.spacing:
            install += ["--spacing", plan.spacing]
        if plan.base_features:
            install += ["--base-features", plan.base_features]
        if plan.blocks_per_stage:
            install += ["--blocks-per-stage", *plan.blocks_per_stage]
        phases["plans"].append(Step(
            f"{arm.key}: LION plans", install,
            [preprocessed / f"{PLANS}.json", preprocessed / "dataset.json"],
            lambda p=preprocessed: digest(file_digest(p / "dataset_fingerprint.json"),
                                          file_digest(organ_fingerprint)),
        ))  # fmt: skip
        phases["prep"].append(Step(
            f"{arm.key}: preprocess",
            _nn("nnUNetv2_preprocess", "-d", arm.dataset_id, "-plans_name", PLANS, "-c",
                CONFIGURATION, "-np", plan.num_processes),
            [],
            lambda p=preprocessed, d=dataset: digest(file_digest(p / f"{PLANS}.json"),
                                                     folder_digest(d)),
        ))  # fmt: skip
    # phase by phase (the tumor-only plans read the organ arm's fingerprint); both arms of a
    # phase side by side when the trainings are (--parallel), else one after the other
    side = max(1, plan.parallel) if wf.client is None else 1
    for steps in phases.values():
        for batch in [steps[i : i + side] for i in range(0, len(steps), side)]:
            wf.run_parallel(batch)
    split_files = [preprocessed_root / d.name / "splits_final.json" for d in datasets.values()]
    cases_csv = datasets["organs"] / "lion_cases.csv"
    wf.call(
        "shared splits (both arms)",
        lambda: _write_shared_splits(cases_csv, split_files, plan.seed),
        signature=(hashlib.sha1(cases_csv.read_bytes()).hexdigest() if cases_csv.is_file() else "")
        + f":{plan.seed}",
    )
    jobs = [
        (arm, trainer, arm.key if trainer == plan.trainer else f"{arm.key}:{trainer}")
        for arm in arms
        for trainer in [plan.trainer] + (list(plan.organ_trainers) if arm.with_organs else [])
    ]
    if plan.parallel < 1:
        raise LionError(f"--parallel must be at least 1, got {plan.parallel}")
    # on a Dask cluster (--cluster) every arm is a task at once and each worker has its own cores
    width = len(jobs) if wf.client is not None else plan.parallel
    # side by side on CPU, each training gets its share of the cores (nnU-Net would give each
    # one all of them, oversubscribing the cores: benchmarks/results/side_by_side/)
    threads = max(1, default_processes() // width)
    local_cpu = plan.device == "cpu" and width > 1 and wf.client is None
    share = {"OMP_NUM_THREADS": str(threads)} if local_cpu else {}
    results: dict[str, dict] = {}
    for key_arm_trainer in [jobs[i : i + width] for i in range(0, len(jobs), width)]:
        train, predict = [], []
        for arm, trainer, key in key_arm_trainer:
            dataset = datasets[arm.key]
            model = model_dir(env, arm, trainer)
            checkpoint = model / f"fold_{plan.fold}" / "checkpoint_final.pth"
            train.append(Step(
                f"{key}: train",
                _nn("nnUNetv2_train", arm.dataset_id, CONFIGURATION, plan.fold, "-p", PLANS,
                    "-tr", trainer, "-device", plan.device),
                [checkpoint],
                lambda p=preprocessed_root / dataset.name, t=trainer: training_digest(
                    p, t, PLANS, CONFIGURATION),
            ))  # fmt: skip
            folder = key.replace(":", "__")
            pred = plan.root / "predictions" / folder
            predict.append(Step(
                f"{key}: predict holdout",
                _lion("predict", "-i", dataset / "imagesTs", "-o", pred, "-m", model, "-f",
                      plan.fold, "--device", plan.device, "--no-pbar"),
                [pred / "summary.csv"],
                lambda c=checkpoint, d=dataset: digest(file_digest(c),
                                                       folder_digest(d / "imagesTs")),
            ))  # fmt: skip
            results[key] = {
                "dataset": dataset, "model": model, "predictions": pred,
                "evaluation": plan.root / "evaluation" / folder, "trainer": trainer,
            }  # fmt: skip
        wf.run_parallel(train, env=share)
        wf.run_parallel(predict, env=share)
    for key, info in results.items():
        evaluation, dataset = info["evaluation"], info["dataset"]
        wf.run(
            f"{key}: evaluate",
            _lion("evaluate", "--pred", info["predictions"], "--gt", dataset / "labelsTs", "--pet",
                  dataset / "imagesTs", "--cases", dataset / "lion_cases.csv", "-o",
                  evaluation, "--no-pbar", "--overwrite"),
            outputs=[evaluation / "per_case.csv"],
            inputs=lambda p=info["predictions"], d=dataset: digest(
                folder_digest(p), folder_digest(d / "labelsTs")),
        )  # fmt: skip
    organs = arms[0]
    compare = plan.root / "comparison"
    methods = [a for k, info in results.items() for a in ("--method", f"{k.replace(':', '__')}="
                                                             f"{info['predictions']}")]  # fmt: skip
    wf.run(
        "compare models",
        _lion("compare", *methods, "--gt", results["organs"]["dataset"] / "labelsTs", "-o",
              compare, "--overwrite"),
        inputs=lambda: digest(*(folder_digest(i["predictions"]) for i in results.values())),
    )  # fmt: skip
    tom = plan.root / "tom"
    wf.run(
        "tumor occurrence maps",
        _lion("tom", "--dataset", organs.dataset_id, "--group-by", "disease", "-o", tom,
              "--no-pbar", "--overwrite"),
        inputs=lambda: folder_digest(datasets["organs"]),
    )  # fmt: skip
    return {"arms": results, "comparison": compare, "tom": tom}


def results_table(arms: dict[str, dict]) -> pd.DataFrame:
    """Median Dice, FP/FN volume (ml) and lesion counts per arm, from lion evaluate's per_case."""
    import pandas as pd

    rows = []
    for key, info in arms.items():
        per_case = pd.read_csv(Path(info["evaluation"]) / "per_case.csv")
        rows.append(
            {
                "model": key,
                "cases": len(per_case),
                "median_dice": per_case["dice"].median(),
                "median_fp_volume_ml": per_case["fp_volume_ml"].median(),
                "median_fn_volume_ml": per_case["fn_volume_ml"].median(),
                "lesions_tp": int(per_case["lesions_tp"].sum()),
                "lesions_fp": int(per_case["lesions_fp"].sum()),
                "lesions_fn": int(per_case["lesions_fn"].sum()),
            }
        )
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class ScalingPlan:
    """The data-scaling study on one preprocessed dataset (LION plans installed)."""

    root: Path
    dataset_id: int
    subset_sizes: tuple[int, ...]
    trainer: str
    device: str
    stratify: str = "disease"
    seed: int = 0
    val_fraction: float = 0.2
    measure: str = "coverage"


def run_scaling(plan: ScalingPlan, wf: Workflow) -> dict:
    """Run (or resume) the scaling study; return the models table and output paths."""
    import pandas as pd

    from lion_nnunet.io import write_csv

    env = wf.env
    found = sorted(Path(env["nnUNet_raw"]).glob(f"Dataset{plan.dataset_id:03d}_*"))
    if len(found) != 1:
        raise LionError(
            f"dataset {plan.dataset_id}: expected one folder Dataset{plan.dataset_id:03d}_* in "
            f"{env['nnUNet_raw']}, found {len(found)}"
        )
    name = found[0].name
    raw = Path(env["nnUNet_raw"]) / name
    splits_csv = Path(env["nnUNet_preprocessed"]) / name / "lion_splits.csv"
    wf.run(
        "splits",
        _lion("splits", "--dataset", plan.dataset_id, "--subset-sizes", *plan.subset_sizes,
              "--stratify", plan.stratify, "--seed", plan.seed, "--val-fraction",
              plan.val_fraction, "--overwrite"),
        outputs=[splits_csv],
        inputs=lambda: file_digest(raw / "lion_cases.csv"),
    )  # fmt: skip
    preprocessed = Path(env["nnUNet_preprocessed"]) / name
    model = Path(env["nnUNet_results"]) / name / f"{plan.trainer}__{PLANS}__{CONFIGURATION}"

    def training(fold: int, size: int) -> Step:
        command = _nn("nnUNetv2_train", plan.dataset_id, CONFIGURATION, fold, "-p", PLANS,
                      "-tr", plan.trainer, "-device", plan.device)  # fmt: skip
        return Step(f"train subset {size} (fold {fold})", command,
                    [model / f"fold_{fold}" / "checkpoint_final.pth"],
                    lambda: training_digest(preprocessed, plan.trainer, PLANS,
                                            CONFIGURATION))  # fmt: skip

    trainings = [training(fold, size) for fold, size in enumerate(plan.subset_sizes)]
    # one after the other here; every subset at once as tasks of a Dask cluster (--cluster);
    # each subset is scored on its fold's validation, which nnU-Net's final validation writes
    # (whatever LION_FINAL_VALIDATION says in the user's environment)
    validate = {FINAL_VALIDATION_VAR: "1"}
    for batch in [trainings] if wf.client is not None else [[t] for t in trainings]:
        wf.run_parallel(batch, env=validate)
    rows = []
    for fold, size in enumerate(plan.subset_sizes):
        evaluation = plan.root / "evaluation" / f"fold_{fold}"
        validation = model / f"fold_{fold}" / "validation"
        wf.run(
            f"evaluate subset {size} (fold {fold})",
            _lion("evaluate", "--pred", validation, "--gt", raw / "labelsTr", "--cases",
                  raw / "lion_cases.csv", "-o", evaluation, "--no-pbar", "--overwrite",
                  "--allow-missing"),  # the fold's validation cases only
            outputs=[evaluation / "per_case.csv"],
            inputs=lambda v=validation: folder_digest(v),
        )  # fmt: skip
        per_case = pd.read_csv(evaluation / "per_case.csv")
        rows.append(
            {"set": f"fold={fold};subset_size={size}", "fold": fold, "subset_size": size,
             "dice": per_case["dice"].median(),
             "cases": int((per_case["status"] != "missing").sum())}
        )  # fmt: skip
    models = pd.DataFrame(rows)
    write_csv(models, plan.root / "models.csv")
    tom = plan.root / "tom"
    wf.run(
        "tumor occurrence maps per subset",
        _lion("tom", "--dataset", plan.dataset_id, "--splits", splits_csv, "-o", tom,
              "--no-pbar", "--overwrite"),
        outputs=[tom / "diversity.csv"],
        inputs=lambda: digest(file_digest(splits_csv), folder_digest(raw / "labelsTr")),
    )  # fmt: skip
    wf.run(
        "diversity vs Dice",
        _lion("tom-correlate", "--tom", tom / "diversity.csv", "--eval", plan.root / "models.csv",
              "--measure", plan.measure, "-o", tom / "correlation.png"),
        inputs=lambda: digest(file_digest(tom / "diversity.csv"),
                              file_digest(plan.root / "models.csv")),
    )  # fmt: skip
    return {"models": models, "tom": tom, "correlation": tom / "correlation.png"}


EXAMPLES = """\
  lion experiment ablation --input autoPET/studies --organs autoPET/totalseg \\
      --metadata autoPET/metadata.csv --tracer fdg --dataset-id 501 --name LION_FDG \\
      --trainer nnUNetTrainer_LION --organ-trainers nnUNetTrainer_LION_tumorDice \\
      --fold 0 --device cuda --out ablation/
  lion experiment scaling --dataset 501 --subset-sizes 50 100 250 500 \\
      --trainer nnUNetTrainer_LION --device cuda --out scaling/
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``lion experiment ablation`` and ``lion experiment scaling``."""
    from lion_nnunet.cliutils import HelpFormatter, add_cluster_args, add_command, add_tracer

    exp = add_command(subparsers, "experiment", "the paper's experiments as resumable workflows",
                      EXAMPLES)  # fmt: skip
    kinds = exp.add_subparsers(dest="kind", metavar="<experiment>", required=True)
    fmt = {"epilog": "examples:\n" + EXAMPLES, "formatter_class": HelpFormatter}
    a = kinds.add_parser("ablation", help="organ context vs tumor-only on the same cases", **fmt)
    a.add_argument("--input", required=True, help="autoPET-style cohort folder")
    a.add_argument("--organs", required=True, help="TotalSegmentator outputs")
    a.add_argument("--metadata", help="metadata CSV (disease, center, scanner)")
    add_tracer(a)
    a.add_argument(
        "--dataset-id", type=int, required=True, help="organ dataset id; tumor-only gets +1"
    )
    a.add_argument("--name", required=True, help="dataset name stem")
    a.add_argument("--test-fraction", type=float, default=0.2, help="holdout fraction")
    a.add_argument("--patch-size", type=int, nargs=3, help="override the LION plans' patch size")
    a.add_argument("--base-features", type=int, help="override the plans' first-stage features")
    a.add_argument("--blocks-per-stage", type=int, nargs="+", metavar="N",
                   help="override the encoder blocks per stage (one number: all)")  # fmt: skip
    a.add_argument("--organ-trainers", nargs="+", default=[], metavar="TRAINER",
                   help="further trainers for the organ arm, each compared with tumor-only "
                        "(e.g. nnUNetTrainer_LION_tumorDice)")  # fmt: skip
    a.add_argument("--parallel", type=int, default=1, metavar="N",
                   help="prepare both arms and train N models side by side (CPU: each training "
                        "gets its share of the cores; default 1: one after the other)")  # fmt: skip
    for p in (a,):
        p.add_argument("--trainer", default="nnUNetTrainer_LION", help="nnU-Net trainer class")
        p.add_argument("--fold", default="0", help="fold to train (0-4 or all)")
    s = kinds.add_parser("scaling", help="progressive subsets, TOM diversity vs Dice", **fmt)
    s.add_argument("--dataset", type=int, required=True, help="dataset id (LION plans installed)")
    s.add_argument("--subset-sizes", type=int, nargs="+", required=True, help="nested subset sizes")
    s.add_argument("--stratify", default="disease", help="lion_cases.csv column to stratify by")
    s.add_argument("--val-fraction", type=float, default=0.2, help="fixed validation fraction")
    s.add_argument("--measure", default="coverage", help="TOM diversity measure to correlate")
    s.add_argument("--trainer", default="nnUNetTrainer_LION", help="nnU-Net trainer class")
    for p in (a, s):
        p.add_argument("--device", choices=("cuda", "cpu"), default="cuda", help="training device")
        p.add_argument("--seed", type=int, default=0, help="split seed")
        p.add_argument("--out", required=True, help="folder for logs, predictions, evaluations")
        add_cluster_args(p)
    exp.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if getattr(args, "parallel", 1) < 1:
        raise LionError(f"--parallel must be at least 1, got {args.parallel}")
    from lion_nnunet.cliutils import cluster_options
    from lion_nnunet.cohort.cluster import open_client, visible_gpus

    for var in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        require_folder(var)
    out = Path(args.out).resolve()
    with open_client(cluster_options(args), visible_gpus(args.device)) as client:
        return _run(args, Workflow(out, client=client), out)


def _run(args: argparse.Namespace, wf: Workflow, out: Path) -> int:
    if args.kind == "ablation":
        plan = AblationPlan(
            root=out, studies=Path(args.input).resolve(), organs=Path(args.organs).resolve(),
            metadata=Path(args.metadata).resolve() if args.metadata else None,
            tracer=args.tracer, dataset_id=args.dataset_id, name=args.name,
            trainer=args.trainer, fold=args.fold, device=args.device,
            test_fraction=args.test_fraction, seed=args.seed,
            patch_size=tuple(args.patch_size) if args.patch_size else None,
            base_features=args.base_features, organ_trainers=tuple(args.organ_trainers),
            blocks_per_stage=tuple(args.blocks_per_stage) if args.blocks_per_stage else None,
            parallel=args.parallel,
        )  # fmt: skip
        result = run_ablation(plan, wf)
        print(results_table(result["arms"]).to_string(index=False))
    else:
        plan = ScalingPlan(
            root=out, dataset_id=args.dataset, subset_sizes=tuple(args.subset_sizes),
            trainer=args.trainer, device=args.device, stratify=args.stratify, seed=args.seed,
            val_fraction=args.val_fraction, measure=args.measure,
        )  # fmt: skip
        result = run_scaling(plan, wf)
        print(result["models"].to_string(index=False))
        print(f"correlation plot: {result['correlation']}")
    return 0
