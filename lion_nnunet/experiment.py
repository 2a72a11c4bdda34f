"""The organ-context ablation as a resumable workflow of stock nnU-Net and ``lion`` commands.

``run_ablation`` converts one cohort twice (organ classes / tumor-only), plans and preprocesses
both datasets with the LION plans, trains both with the same trainer, schedule and fold, predicts
the holdout with ``lion predict``, evaluates with ``lion evaluate`` and compares the two models.
``lion demo`` runs it on synthetic phantoms; ``lion experiment ablation`` on your cohort.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from lion_nnunet.demo import DemoSettings
from lion_nnunet.errors import LionError
from lion_nnunet.workflow import Workflow, console_script

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
    num_processes: int = 2

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


def run_ablation(plan: AblationPlan, wf: Workflow) -> dict:
    """Run (or resume) the ablation; return per-arm evaluation summaries and output paths."""
    env = wf.env
    raw = Path(env["nnUNet_raw"])
    results: dict[str, dict] = {}
    for arm in plan.arms():
        dataset = raw / f"Dataset{arm.dataset_id:03d}_{arm.name}"
        convert = _lion(
            "convert", "autopet", "--input", plan.studies, "--tracer", plan.tracer,
            "--dataset-id", arm.dataset_id, "--name", arm.name, "--test-fraction",
            plan.test_fraction, "--seed", plan.seed, "-np", plan.num_processes, "--no-pbar",
        )  # fmt: skip
        convert += ["--organs", plan.organs] if arm.with_organs else ["--no-organs"]
        convert += ["--metadata", plan.metadata] if plan.metadata else []
        wf.run(f"{arm.key}: convert", convert, outputs=[dataset / "dataset.json"])
        did = arm.dataset_id
        wf.run(
            f"{arm.key}: fingerprint",
            _nn("nnUNetv2_extract_fingerprint", "-d", did, "-np", plan.num_processes),
        )
        install = _lion("plans", "install", "--dataset", did, "--tracer", plan.tracer)
        install.append("--overwrite")
        if plan.patch_size:
            install += ["--patch-size", *plan.patch_size]
        wf.run(f"{arm.key}: LION plans", install)
        wf.run(
            f"{arm.key}: preprocess",
            _nn("nnUNetv2_preprocess", "-d", did, "-plans_name", PLANS, "-c", CONFIGURATION,
                "-np", plan.num_processes),
        )  # fmt: skip
        model = model_dir(env, arm, plan.trainer)
        wf.run(
            f"{arm.key}: train",
            _nn("nnUNetv2_train", did, CONFIGURATION, plan.fold, "-p", PLANS, "-tr", plan.trainer,
                "-device", plan.device),
            outputs=[model / f"fold_{plan.fold}" / "checkpoint_final.pth"],
        )  # fmt: skip
        pred = plan.root / "predictions" / arm.key
        wf.run(
            f"{arm.key}: predict holdout",
            _lion("predict", "-i", dataset / "imagesTs", "-o", pred, "-m", model, "-f", plan.fold,
                  "--device", plan.device, "--no-pbar"),
            outputs=[pred / "summary.csv"],
        )  # fmt: skip
        evaluation = plan.root / "evaluation" / arm.key
        wf.run(
            f"{arm.key}: evaluate",
            _lion("evaluate", "--pred", pred, "--gt", dataset / "labelsTs", "--pet",
                  dataset / "imagesTs", "--cases", dataset / "lion_cases.csv", "-o", evaluation,
                  "--no-pbar", "--overwrite"),
            outputs=[evaluation / "per_case.csv"],
        )  # fmt: skip
        results[arm.key] = {
            "dataset": dataset, "model": model, "predictions": pred, "evaluation": evaluation,
        }  # fmt: skip
    organs = plan.arms()[0]
    compare = plan.root / "comparison"
    wf.run(
        "compare models",
        _lion("compare", "--method", f"organs={results['organs']['predictions']}", "--method",
              f"tumor_only={results['tumor_only']['predictions']}", "--gt",
              results["organs"]["dataset"] / "labelsTs", "-o", compare, "--overwrite"),
    )  # fmt: skip
    tom = plan.root / "tom"
    wf.run(
        "tumor occurrence maps",
        _lion("tom", "--dataset", organs.dataset_id, "--group-by", "disease", "-o", tom,
              "--no-pbar", "--overwrite"),
    )  # fmt: skip
    return {"arms": results, "comparison": compare, "tom": tom}


def results_table(arms: dict[str, dict]) -> pd.DataFrame:
    """Median Dice, FP/FN volume (ml) and lesion counts per arm, from lion evaluate's per_case."""
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


def pictures(result: dict) -> list[Path]:
    """PNG files a person should look at: prediction MIPs and TOM heatmaps."""
    found: list[Path] = []
    for info in result["arms"].values():
        found += sorted(Path(info["predictions"]).glob("*/mip.png"))[:2]
    found += sorted(Path(result["tom"]).rglob("*.png"))[:3]
    found += sorted(Path(result["comparison"]).glob("*.png"))[:2]
    return found


def run_demo(settings: DemoSettings) -> dict:
    """Synthetic cohort -> ablation -> table; see :mod:`lion_nnunet.demo`."""
    from lion_nnunet.dataset_conversion.phantoms import make_cohort
    from lion_nnunet.demo import demo_environment
    from lion_nnunet.io import write_csv, write_json
    from lion_nnunet.trainers.schedules import demo_trainer_name

    out: Path = settings.out
    out.mkdir(parents=True, exist_ok=True)
    wf = Workflow(out, env=demo_environment(out))
    if settings.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise LionError("--device cuda was asked for but torch sees no CUDA device")
    data = out / "data"
    wf.call(
        "synthetic cohort",
        lambda: make_cohort(data, settings.tracer, settings.cases, seed=settings.seed),
        signature=f"{settings.tracer}:{settings.cases}:{settings.seed}",
    )
    plan = AblationPlan(
        root=out, studies=data / "studies", organs=data / "organs",
        metadata=data / "cases.csv", tracer=settings.tracer, dataset_id=settings.dataset_id,
        name=f"Demo{settings.tracer.upper()}", trainer=demo_trainer_name(
            settings.epochs, settings.iterations), fold="all", device=settings.device,
        test_fraction=settings.test_fraction, seed=settings.seed,
        patch_size=settings.patch_size,
    )  # fmt: skip
    result = run_ablation(plan, wf)
    table = results_table(result["arms"])
    write_csv(table, out / "results.csv")
    write_json(
        {"settings": {k: str(v) for k, v in vars(settings).items()},
         "table": json.loads(table.to_json(orient="records")), "timings_s": wf.timings},
        out / "results.json",
    )  # fmt: skip
    return {
        "table": table.to_string(index=False, float_format=lambda v: f"{v:.3f}"),
        "pictures": pictures(result),
        "summary_file": str(out / "results.csv"),
    }
