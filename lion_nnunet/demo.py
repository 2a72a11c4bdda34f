"""`lion demo`: the organ-context ablation on synthetic FDG PET, end to end, on CPU.

Generates phantoms, converts them twice (with organ classes and tumor-only), plans and
preprocesses both with the LION plans, trains both with the same short LION schedule, predicts the
holdout with ``lion predict``, evaluates with ``lion evaluate``, draws Tumor Occurrence Maps with
``lion tom``, and prints a table. Everything lives under ``--out`` (its own nnUNet_raw /
nnUNet_preprocessed / nnUNet_results), so the user's nnU-Net folders are never touched. Every
command is printed as it runs; a re-run resumes after the last finished step. ``--seed`` decides
everything random (phantoms, holdout, splits, and through ``LION_SEED`` the network's
initialisation, patch sampling and augmentation, with deterministic kernels): the same seed on
the same machine prints the same table.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass
from pathlib import Path

from lion_nnunet.cliutils import add_command

EXAMPLES = """\
  lion demo                                   # ./lion_demo, sized for 2 CPU cores, seed 0
  lion demo --seed 3 --out lion_demo_seed3    # another seed: another cohort and training
  lion demo --out /tmp/demo --base-features 16
  lion demo --device cuda --cases 60 --base-features 32 --trainer nnUNetTrainer_LION_tumorDice_bench
"""


@dataclass(frozen=True)
class DemoSettings:
    """What the demo runs. Defaults are sized for a 2-core CPU (aim: under 10 minutes)."""

    out: Path
    tracer: str = "fdg"
    #: 80 phantoms, 30 % holdout: 24 holdout cases, 11 to 19 of them with tumor in the stored
    #: seeds ("negative" studies, and studies whose lesions are all too faint to see, have none).
    #: Was 40: a 12-case holdout's median Dice moved with the few lesions one draw put in it
    #: (organ arm 0.32 to 0.63 over 5 seeds), and 28 training cases left lesion kinds unseen
    #: (docs/reproducing.md); runs took 6.2-6.7 min (benchmarks/results/demo).
    cases: int = 80
    test_fraction: float = 0.3
    #: Same trainer for both arms: Dice over the tumor only + CE over every class (so the organ
    #: classes do not dilute the tumor's Dice), a short CPU schedule (trainers/cpu_demo.py).
    trainer: str = "nnUNetTrainer_LION_tumorDice_demo"
    seed: int = 0
    #: The lesions the masks hold: those a reader could see in the scanned PET (Rose SNR >= 5;
    #: docs/phantoms.md), as in a real annotated cohort; "all" keeps every painted lesion.
    annotate: str = "visible"
    device: str = "cpu"
    dataset_id: int = 901
    #: z, y, x voxels of the 96 x 40 x 48 phantoms (6 mm)
    patch_size: tuple[int, int, int] = (48, 32, 32)
    #: First-stage features of the ResEnc U-Net (template: 32), really reaching the network.
    base_features: int = 8
    #: Residual blocks per encoder stage (template: ResEnc-M's 1, 3, 4, 6): one each, under a
    #: third of the weights (tests/test_plans.py) and less compute per iteration.
    blocks_per_stage: tuple[int, ...] = (1,)
    #: Trainings side by side: on 2 cores two 1-thread trainings do more iterations per second
    #: than two 2-thread trainings in a row (benchmarks/results/side_by_side/summary.json).
    parallel: int = 2


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``lion demo``."""
    p = add_command(
        subparsers,
        "demo",
        "synthetic FDG data end to end: organ context vs tumor-only, on CPU",
        EXAMPLES,
        description=__doc__.split("\n\n")[1].replace("\n", " "),
    )
    p.add_argument("--out", default="lion_demo", help="folder for everything the demo writes")
    p.add_argument("--tracer", choices=("fdg", "psma"), default="fdg", help="phantom tracer")
    p.add_argument("--cases", type=int, default=DemoSettings.cases, help="synthetic studies")
    p.add_argument("--trainer", default=DemoSettings.trainer,
                   help="LION trainer for both arms (a short schedule on CPU)")  # fmt: skip
    p.add_argument("--base-features", type=int, default=DemoSettings.base_features,
                   help="first-stage features of the network")  # fmt: skip
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="training device")
    p.add_argument("--parallel", type=int, default=DemoSettings.parallel, metavar="N",
                   help="prepare and train the two arms side by side (CPU: each training with "
                        "its share of the cores); 1 = one after the other")  # fmt: skip
    p.add_argument("--seed", type=int, default=DemoSettings.seed,
                   help="seed of everything random: phantoms, holdout, splits, training "
                        "(LION_SEED); same seed, same machine, same table")  # fmt: skip
    p.add_argument("--dataset-id", type=int, default=DemoSettings.dataset_id,
                   help="id of the organ dataset; the tumor-only one gets id + 1")  # fmt: skip
    p.set_defaults(func=run)


#: The 5-fold split needs 5 training cases; 30 % of the cases are the holdout.
MIN_CASES = 8


def run(args: argparse.Namespace) -> int:
    from lion_nnunet.errors import LionError

    if args.parallel < 1:
        raise LionError(f"--parallel must be at least 1, got {args.parallel}")
    if args.seed < 0:
        raise LionError(f"--seed must be a non-negative integer, got {args.seed}")
    if args.cases < MIN_CASES:
        raise LionError(
            f"--cases {args.cases} is too few: the demo holds out 30 % and its 5-fold "
            f"split needs 5 training cases; use at least {MIN_CASES}"
        )
    settings = DemoSettings(
        out=Path(args.out).resolve(), tracer=args.tracer, cases=args.cases,
        trainer=args.trainer, base_features=args.base_features, seed=args.seed,
        device=args.device, dataset_id=args.dataset_id, parallel=args.parallel,
    )  # fmt: skip
    result = run_demo(settings)
    print(
        "\nholdout (median Dice over cases with tumor; lesion F1 pooled; FP volumes in ml, summed)"
    )
    print(result["table"])
    print(f"\n{result['verdict']}")
    print(f"demo time: {result['seconds'] / 60:.1f} min (steps finished earlier are skipped)")
    print("\npictures:")
    for path in result["pictures"]:
        print(f"  {path}")
    print(f"\nresults: {json.dumps(result['summary_file'])}")
    return 0


def demo_environment(out: Path, seed: int = DemoSettings.seed) -> dict[str, str]:
    """The environment of the demo's subprocesses: its own nnU-Net folders, CPU-friendly, and
    ``LION_SEED`` so that training is seeded and deterministic (trainers/seeding.py)."""
    from lion_nnunet.nnunet_env import CPU_FRIENDLY_ENV, FINAL_VALIDATION_VAR
    from lion_nnunet.trainers.seeding import SEED_VAR

    env = dict(os.environ)
    env[SEED_VAR] = str(seed)
    for var in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        env[var] = str(out / "nnunet" / var)
        Path(env[var]).mkdir(parents=True, exist_ok=True)
    # augmentation in the training process: on 2 cores, worker processes only take CPU from
    # torch's two compute threads (each demo batch augments in a few tens of ms)
    env.setdefault("nnUNet_n_proc_DA", "0")
    # the demo scores its holdout with lion predict: nnU-Net's final validation of each fold
    # (predicting the fold's validation cases, then spawned worker pools that export and score
    # them) is not used, so it is skipped (nnUNetv2_train ... --val runs it later)
    env.setdefault(FINAL_VALIDATION_VAR, "0")
    for key, value in CPU_FRIENDLY_ENV.items():
        env.setdefault(key, value)
    return env


def worker_processes(env: dict[str, str]) -> int:
    """``-np`` of the demo's conversion, fingerprint and preprocessing: ``nnUNet_def_n_proc``
    (nnU-Net's default pool size; the demo's environment sets 2 unless the user exported
    another number)."""
    value = env.get("nnUNet_def_n_proc", "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else 2


def pictures(result: dict) -> list[Path]:
    """PNG files a person should look at: prediction MIPs and TOM heatmaps."""
    found: list[Path] = []
    for info in result["arms"].values():
        found += sorted(Path(info["predictions"]).glob("*/mip.png"))[:2]
    found += sorted(Path(result["tom"]).rglob("*.png"))[:3]
    found += sorted(Path(result["comparison"]).glob("*.png"))[:2]
    return found


def ablation_scores(result: dict, tracer: str) -> dict[str, dict]:
    """Per-arm summaries (median Dice over cases with tumor, lesion F1, FP at hot organs)."""
    from lion_nnunet.analysis.ablation_scores import score_arm, summarize

    labels_ts = Path(result["arms"]["organs"]["dataset"]) / "labelsTs"
    out = {}
    for key, info in result["arms"].items():
        per_case = score_arm(Path(info["predictions"]), labels_ts, tracer)
        out[key] = {**summarize(per_case), "per_case": per_case}
    return out


#: The organ-context model's median holdout Dice (cases with tumor) the demo is sized to reach.
DEMO_DICE_TARGET = 0.5


def verdict(arms: dict[str, dict]) -> str:
    """Did organ context beat tumor-only? Paired per holdout case, with bootstrap CIs.

    ``arms["organs"]`` and ``arms["tumor_only"]`` each hold a ``per_case`` table
    (:func:`lion_nnunet.analysis.ablation_scores.score_arm`: ``case_id``, ``has_tumor``, ``dice``,
    ``fp_at_hot_organ_ml``). Dice is compared over the cases with tumor, FP volume at hot organs
    (ml) over all cases; a difference whose 95 % CI contains 0 is "not decided", whichever way
    its median leans (:mod:`lion_nnunet.analysis.paired_stats`).
    """
    from lion_nnunet.analysis.paired_stats import NOT_DECIDED, decide, describe, paired

    o = arms["organs"]["per_case"].set_index("case_id")
    t = arms["tumor_only"]["per_case"].set_index("case_id").loc[o.index]
    tumor = o["has_tumor"].astype(bool)
    dice = paired(o.loc[tumor, "dice"], t.loc[tumor, "dice"])
    fp = paired(o["fp_at_hot_organ_ml"], t["fp_at_hot_organ_ml"])
    lines = [
        describe("organs", "tumor-only", "Dice (cases with tumor)", dice, higher_is_better=True),
        describe("organs", "tumor-only", "FP at hot organs", fp, higher_is_better=False,
                 unit=" ml"),
    ]  # fmt: skip
    winners = {"Dice": decide(dice["ci95"], True), "FP at hot organs": decide(fp["ci95"], False)}
    said = []
    for who, name in (("a", "organ context better"), ("b", "tumor-only better")):
        if measures := [m for m, w in winners.items() if w == who]:
            said.append(f"{name} on {' and '.join(measures)}")
    if undecided := [m for m, w in winners.items() if w == NOT_DECIDED]:
        said.append(f"{NOT_DECIDED} on {' and '.join(undecided)} (the CI contains 0)")
    head = "; ".join(said) + "."
    if len(undecided) == len(winners):
        head += " A demo-sized holdout rarely decides; see docs/reproducing.md."
    found = float(o.loc[tumor, "dice"].median())
    if found < DEMO_DICE_TARGET:  # NaN (no case with tumor) compares False: nothing said
        lines.append(
            f"organ context's median Dice {found:.2f} is under the {DEMO_DICE_TARGET} the demo "
            "is sized for: look at its MIPs (missed lesions, too small or too large)"
        )
    return "\n".join([head, *(f"  {line}" for line in lines)])


#: Said under every verdict: a demo run is one draw of phantoms and training.
ONE_SEED = (
    "This is one seed (--seed {seed}): another seed draws other phantoms and trains another "
    "model. Over seeds: docs/benchmarks.md (python benchmarks/demo.py --seeds 5)."
)


def _json_safe(value):
    """NaN (e.g. a median over no case with tumor) as null, so summary.json is strict JSON."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, float) and value != value:
        return None
    return value


def run_demo(settings: DemoSettings) -> dict:
    """Synthetic cohort -> ablation -> table and summary.json; see :mod:`lion_nnunet.demo`."""
    import time

    import pandas as pd

    from lion_nnunet.errors import LionError
    from lion_nnunet.experiment import AblationPlan, run_ablation
    from lion_nnunet.io import write_csv, write_json
    from lion_nnunet.synthetic.phantoms import make_cohort
    from lion_nnunet.workflow import Workflow

    start = time.perf_counter()
    out: Path = settings.out
    out.mkdir(parents=True, exist_ok=True)
    env = demo_environment(out, settings.seed)
    wf = Workflow(out, env=env)
    if settings.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise LionError("--device cuda was asked for but torch sees no CUDA device")
    data = out / "data"
    wf.call(
        "synthetic cohort",
        # overwrite: the step reruns only when its signature changed (e.g. a cohort written by
        # an older lion demo), and the folder is the demo's own
        lambda: make_cohort(
            data,
            settings.tracer,
            settings.cases,
            seed=settings.seed,
            annotate=settings.annotate,
            overwrite=True,
        ),
        signature=f"{settings.tracer}:{settings.cases}:{settings.seed}:{settings.annotate}",
    )
    plan = AblationPlan(
        root=out, studies=data / "studies", organs=data / "organs",
        metadata=data / "cases.csv", tracer=settings.tracer, dataset_id=settings.dataset_id,
        name=f"Demo{settings.tracer.upper()}", trainer=settings.trainer, fold="0",
        device=settings.device, test_fraction=settings.test_fraction, seed=settings.seed,
        patch_size=settings.patch_size, spacing="dataset", base_features=settings.base_features,
        blocks_per_stage=settings.blocks_per_stage, parallel=settings.parallel,
        num_processes=worker_processes(env),
    )  # fmt: skip
    result = run_ablation(plan, wf)
    scores = ablation_scores(result, settings.tracer)
    keys = ("cases", "cases_with_tumor", "median_dice", "lesion_f1", "lesions_tp", "lesions_fp",
            "lesions_fn", "fp_at_hot_organs_ml", "fp_elsewhere_ml", "median_fn_ml")  # fmt: skip
    table = pd.DataFrame([{"model": k, **{c: v[c] for c in keys}} for k, v in scores.items()])
    write_csv(table, out / "results.csv")
    for key, info in scores.items():
        write_csv(info["per_case"], out / f"scores_{key}.csv")
    seconds = time.perf_counter() - start
    summary = {
        "seconds": round(seconds, 1),
        "arms": {k: {c: v[c] for c in keys} for k, v in scores.items()},
        "trainer": settings.trainer,
        "verdict": verdict(scores) + "\n" + ONE_SEED.format(seed=settings.seed),
        "settings": {k: str(v) for k, v in vars(settings).items()},
        "timings_s": wf.timings,
    }
    write_json(_json_safe(summary), out / "summary.json")
    return {
        "table": table.to_string(index=False, float_format=lambda v: f"{v:.2f}"),
        "verdict": summary["verdict"],
        "seconds": seconds,
        "pictures": pictures(result),
        "summary_file": str(out / "summary.json"),
    }
