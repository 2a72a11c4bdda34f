"""The paper's central claim on data we control: do organ classes cut false positives?

For each tracer, one synthetic cohort is converted twice (organ classes / tumor-only) and the
models are trained with the same schedule, plans (PET normalization included), splits and holdout
(``lion experiment ablation`` under the hood, so every stock nnU-Net command is printed and
logged): tumor-only with the first trainer, the organ arm with each trainer (plain Dice mean,
tumor-only Dice, half-tumor Dice). The holdout is scored per model
(``lion_nnunet.analysis.ablation_scores``): median Dice over cases with tumor, lesion-wise F1,
false-positive volume at hot organs (within ``--margin-mm`` of a physiologically hot organ of the
ground-truth label map) and elsewhere; each organ model against tumor-only on the same cases:
paired Wilcoxon p-value and bootstrap 95 % CI of the median difference. Two reference rows need
no training: the 41 % and 50 % SUVmax isocontours of each true lesion (its location given), the
Dice a classical threshold segmentation reaches on the same PET.

    python benchmarks/organ_context.py                 # FDG, 60 phantoms, 4 models x 6000 it.
    python benchmarks/organ_context.py --quick         # minutes, FDG only, tiny schedule
    python benchmarks/organ_context.py --tracers fdg psma --device cuda

Writes benchmarks/results/organ_context/ (summary.json, every model's per-case scores in
per_case.csv) and a MIP figure of one holdout case from all models per tracer
(docs/img/organ_context_<tracer>.png; with --quick into the results folder);
``benchmarks/make_docs.py`` renders docs/benchmarks.md from them. The nnU-Net tree, models and
predictions go to benchmarks/work/organ_context (not committed; a re-run resumes there).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk
from run_all import SUMMARY_MARK

RESULTS = Path(__file__).parent / "results" / "organ_context"
WORK = Path(__file__).parent / "work" / "organ_context"
FIGURES = Path(__file__).parent.parent / "docs" / "img"
#: No-training reference rows: SUVmax isocontours of each true lesion (EANM's 41 %, and 50 %).
REFERENCE_FRACTIONS = (0.41, 0.5)
#: The tumor-only arm trains the first; the organ arm trains all three (same schedule).
TRAINERS = (
    "nnUNetTrainer_LION_bench",
    "nnUNetTrainer_LION_tumorDice_bench",
    "nnUNetTrainer_LION_halfTumorDice_bench",
)


def _arr(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def figure(pred_dirs: dict[str, Path], images_ts: Path, labels_ts: Path, out: Path) -> Path:
    """Coronal PET MIP of one holdout case with ground truth and each model's prediction."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = sorted(p.name[: -len(".nii.gz")] for p in labels_ts.glob("*.nii.gz"))
    sizes = [(_arr(labels_ts / f"{c}.nii.gz") == 1).sum() for c in cases]
    case = cases[int(np.argmax(sizes))]
    pet = _arr(images_ts / f"{case}_0000.nii.gz")
    gt = _arr(labels_ts / f"{case}.nii.gz") == 1
    fig, axes = plt.subplots(1, 1 + len(pred_dirs), figsize=(3.2 * (1 + len(pred_dirs)), 6))
    panels = [("ground truth", gt)] + [
        (name, _arr(d / case / "tumor.nii.gz") > 0) for name, d in pred_dirs.items()
    ]
    for ax, (title, mask) in zip(axes, panels, strict=True):
        ax.imshow(pet.max(axis=1)[::-1], cmap="gray_r", vmin=0, vmax=np.percentile(pet, 99.5))
        if mask.any():
            ax.contour(mask.max(axis=1)[::-1], levels=[0.5], colors="red", linewidths=1)
        ax.set_title(f"{title}\n{case}", fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


def main() -> None:
    from store import Run

    from lion_nnunet.analysis.ablation_scores import (
        paired,
        score_arm,
        summarize,
        threshold_reference,
    )
    from lion_nnunet.demo import demo_environment
    from lion_nnunet.experiment import AblationPlan, run_ablation
    from lion_nnunet.synthetic.phantoms import make_cohort
    from lion_nnunet.workflow import Workflow

    run = Run("organ_context")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tracers", nargs="+", default=["fdg"])
    parser.add_argument("--cases", type=int, default=60)
    parser.add_argument("--trainers", nargs="+", default=list(TRAINERS),
                        help="first: both arms; the others: organ arm only")  # fmt: skip
    parser.add_argument("--base-features", type=int, default=8)
    parser.add_argument("--blocks-per-stage", type=int, nargs="+", default=[1])
    parser.add_argument("--parallel", type=int, default=2, help="trainings side by side")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--margin-mm", type=float, default=12.0)
    parser.add_argument("--out", default=str(WORK))
    parser.add_argument("--quick", action="store_true", help="FDG only, 12 cases, 2x5 iterations")
    args = parser.parse_args()
    if args.quick:
        args.tracers, args.cases, args.trainers = ["fdg"], 12, ["nnUNetTrainer_LION_2ep_5it"]
    out = Path(args.out).resolve()
    summary: dict = {"settings": vars(args), "results": {}, "paired": {}}
    rows: list[dict] = []
    start = time.perf_counter()
    for k, tracer in enumerate(args.tracers):
        root = out / tracer
        wf = Workflow(root, env=demo_environment(root))
        data = root / "data"
        wf.call(
            "cohort",
            lambda d=data, t=tracer, s=k: make_cohort(d, t, args.cases, seed=s, progress=False),
            signature=f"{tracer}:{args.cases}:{k}",
        )
        plan = AblationPlan(
            root=root, studies=data / "studies", organs=data / "organs",
            metadata=data / "cases.csv", tracer=tracer, dataset_id=950 + 2 * k,
            name=f"Bench{tracer.upper()}", trainer=args.trainers[0],
            organ_trainers=tuple(args.trainers[1:]), fold="0", device=args.device,
            test_fraction=0.3, seed=k, patch_size=(48, 32, 32), spacing="dataset",
            base_features=args.base_features, blocks_per_stage=tuple(args.blocks_per_stage),
            parallel=args.parallel,
        )  # fmt: skip
        result = run_ablation(plan, wf)
        arms = result["arms"]
        labels_ts = arms["organs"]["dataset"] / "labelsTs"
        scores = {}
        for arm, info in arms.items():
            per_case = score_arm(info["predictions"], labels_ts, tracer, args.margin_mm)
            per_case.to_csv(root / f"scores_{arm.replace(':', '__')}.csv", index=False)
            rows += [{"tracer/model": f"{tracer}/{arm}", **r} for r in per_case.to_dict("records")]
            scores[arm] = per_case.set_index("case_id")
            summary["results"][f"{tracer}/{arm}"] = summarize(per_case)
        for fraction in REFERENCE_FRACTIONS:
            ref = threshold_reference(
                arms["organs"]["dataset"] / "imagesTs", labels_ts,
                root / "reference" / f"suvmax{round(100 * fraction)}", fraction, args.margin_mm,
            )  # fmt: skip
            name = f"{tracer}/reference {fraction:.0%} SUVmax, lesions given"
            per_case = score_arm(ref, labels_ts, tracer, args.margin_mm)
            rows += [{"tracer/model": name, **r} for r in per_case.to_dict("records")]
            summary["results"][name] = summarize(per_case)
        base = scores["tumor_only"]
        positive = base.index[base["has_tumor"]]
        for arm, per_case in scores.items():
            if arm == "tumor_only":
                continue
            summary["paired"][f"{tracer}/{arm} - tumor_only"] = {
                "dice (cases with tumor)": paired(per_case.loc[positive, "dice"],
                                                  base.loc[positive, "dice"]),
                "fp_at_hot_organ_ml (all cases)": paired(per_case["fp_at_hot_organ_ml"],
                                                         base.loc[per_case.index,
                                                                  "fp_at_hot_organ_ml"]),
            }  # fmt: skip
        fig_dir = RESULTS if args.quick else FIGURES
        fig = figure({a: i["predictions"] for a, i in arms.items()},
                     arms["organs"]["dataset"] / "imagesTs", labels_ts,
                     fig_dir / f"organ_context_{tracer}.png")  # fmt: skip
        summary.setdefault("figures", {})[tracer] = str(fig.relative_to(FIGURES.parent.parent))
    summary["minutes"] = (time.perf_counter() - start) / 60
    # each step's time when it ran (a re-run resumes finished steps and takes seconds)
    summary["step_minutes"] = {
        f"{m.parent.parent.name}/{m.stem}": round(json.loads(m.read_text())["seconds"] / 60, 1)
        for m in sorted(out.glob("*/.lion_steps/*.json"))
    }
    table = pd.DataFrame([{"tracer/model": k, **v} for k, v in summary["results"].items()])
    comparisons = [
        {"comparison": name, "measure": measure, "n": r["n"], "median_diff": r["median_diff"],
         "ci95_low": r["ci95"][0], "ci95_high": r["ci95"][1], "wilcoxon_p": r["p"]}
        for name, measures in summary["paired"].items() for measure, r in measures.items()
    ]  # fmt: skip
    summary["comparisons"] = comparisons
    tests = pd.DataFrame(comparisons)
    run.store(summary, {"per_case": rows})
    print(
        f"{SUMMARY_MARK} (median Dice over cases with tumor; FP volumes: sums over the holdout, ml)"
    )
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if len(tests):
        print(tests.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"this run {summary['minutes']:.1f} min (finished steps resume, not rerun)")
    print(
        "minutes each training took when it ran (side by side in pairs): "
        + ", ".join(f"{k} {v}" for k, v in summary["step_minutes"].items() if "train" in k)
    )


if __name__ == "__main__":
    main()
