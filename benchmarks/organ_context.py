"""The paper's central claim on data we control: do organ classes cut false positives?

For each tracer, one synthetic cohort is converted twice (organ classes / tumor-only) and both
models are trained with the same LION trainer, plans, holdout and iterations (``lion experiment
ablation`` under the hood, so every stock nnU-Net command is printed and logged). The holdout is
scored per model: median Dice, false-positive volume split into "at a hot organ" (within
``--margin-mm`` of a physiologically hot organ of the ground-truth label map) and "elsewhere",
false-negative volume, and lesion-wise F1, all from ``lion_nnunet.analysis.metrics`` (autoPET
definitions, 18-connectivity).

    python benchmarks/organ_context.py                 # FDG + PSMA, ~30 min on 2 CPU cores
    python benchmarks/organ_context.py --quick         # minutes, FDG only, tiny schedule
    python benchmarks/organ_context.py --device cuda --epochs 100 --iterations 100 --cases 120

Writes benchmarks/results/organ_context.{json,md} and a MIP figure of one holdout case from both
models per tracer (docs/img/organ_context_<tracer>.png; with --quick under benchmarks/results);
``benchmarks/run_all.py`` copies the table and the figures into docs/benchmarks.md.
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

RESULTS = Path(__file__).parent / "results"
FIGURES = Path(__file__).parent.parent / "docs" / "img"
#: Hot organs (LION class names) per tracer: FPs within the margin of these count as "at organ".
HOT = {
    "fdg": ("brain", "heart", "kidneys", "urinary_bladder"),
    "psma": ("salivary_glands", "kidneys", "urinary_bladder", "small_bowel", "liver", "spleen"),
}


def _arr(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def score_case(pred_tumor: np.ndarray, gt_label: np.ndarray, hot_ids: list[int],
               spacing_zyx: np.ndarray, margin_mm: float) -> dict:  # fmt: skip
    """lion evaluate's metrics plus the FP volume split at hot organs / elsewhere (ml)."""
    from lion_nnunet.analysis.metrics import case_metrics, fp_volume_near_labels

    pred, gt = pred_tumor > 0, gt_label == 1
    m = case_metrics(pred, gt, spacing_zyx)
    near = fp_volume_near_labels(pred, gt, gt_label, spacing_zyx, hot_ids, margin_mm)
    return {
        "dice": m["dice"], "fp_ml": m["fp_volume_ml"], "fn_ml": m["fn_volume_ml"],
        "fp_at_hot_organ_ml": near["fp_near_organs_ml"], "fp_elsewhere_ml": near["fp_elsewhere_ml"],
        "lesions_tp": m["lesions_tp"], "lesions_fp": m["lesions_fp"], "lesions_fn": m["lesions_fn"],
    }  # fmt: skip


def score_arm(pred_dir: Path, labels_ts: Path, tracer: str, margin_mm: float) -> pd.DataFrame:
    from lion_nnunet.labels import get_label_set

    ls = get_label_set(tracer)
    hot_ids = [ls.label_of(o) for o in HOT[tracer]]
    rows = []
    for gt_path in sorted(labels_ts.glob("*.nii.gz")):
        case = gt_path.name[: -len(".nii.gz")]
        img = sitk.ReadImage(str(gt_path))
        spacing = np.array(img.GetSpacing())[::-1]
        pred = _arr(pred_dir / case / "tumor.nii.gz")
        rows.append({"case_id": case, **score_case(pred, sitk.GetArrayFromImage(img), hot_ids,
                                                   spacing, margin_mm)})  # fmt: skip
    return pd.DataFrame(rows)


def summarize(per_case: pd.DataFrame) -> dict:
    tp, fp, fn = (per_case[f"lesions_{k}"].sum() for k in ("tp", "fp", "fn"))
    f1 = 2 * tp / (2 * tp + fp + fn) if (tp + fp + fn) else np.nan
    return {
        "cases": len(per_case),
        "median_dice": float(per_case["dice"].median()),
        "fp_at_hot_organ_ml": float(per_case["fp_at_hot_organ_ml"].sum()),
        "fp_elsewhere_ml": float(per_case["fp_elsewhere_ml"].sum()),
        "median_fp_ml": float(per_case["fp_ml"].median()),
        "median_fn_ml": float(per_case["fn_ml"].median()),
        "lesion_f1": float(f1),
    }


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


def markdown(table: pd.DataFrame) -> str:
    """A markdown table (no tabulate dependency), floats with 3 decimals."""

    def cell(v: object) -> str:
        return f"{v:.3f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(table.columns) + " |", "|" + " --- |" * len(table.columns)]
    lines += [
        "| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    from lion_nnunet.dataset_conversion.phantoms import make_cohort
    from lion_nnunet.demo import demo_environment
    from lion_nnunet.experiment import AblationPlan, run_ablation
    from lion_nnunet.trainers.schedules import demo_trainer_name
    from lion_nnunet.workflow import Workflow

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tracers", nargs="+", default=["fdg", "psma"])
    parser.add_argument("--cases", type=int, default=40)
    parser.add_argument("--epochs", type=int, default=16)
    parser.add_argument("--iterations", type=int, default=25)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--margin-mm", type=float, default=12.0)
    parser.add_argument("--out", default=str(RESULTS / "organ_context_run"))
    parser.add_argument("--quick", action="store_true", help="FDG only, 12 cases, 2x5 iterations")
    args = parser.parse_args()
    if args.quick:
        args.tracers, args.cases, args.epochs, args.iterations = ["fdg"], 12, 2, 5
    out = Path(args.out).resolve()
    summary: dict = {"settings": vars(args), "results": {}}
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
            name=f"Bench{tracer.upper()}", trainer=demo_trainer_name(args.epochs, args.iterations),
            fold="0", device=args.device, test_fraction=0.3, seed=k, patch_size=(64, 32, 32),
            spacing="dataset", base_features=16,
        )  # fmt: skip
        result = run_ablation(plan, wf)
        arms = result["arms"]
        labels_ts = arms["organs"]["dataset"] / "labelsTs"
        for arm, info in arms.items():
            per_case = score_arm(info["predictions"], labels_ts, tracer, args.margin_mm)
            per_case.to_csv(root / f"scores_{arm}.csv", index=False)
            summary["results"][f"{tracer}/{arm}"] = summarize(per_case)
        fig_dir = RESULTS if args.quick else FIGURES
        fig = figure({a: i["predictions"] for a, i in arms.items()},
                     arms["organs"]["dataset"] / "imagesTs", labels_ts,
                     fig_dir / f"organ_context_{tracer}.png")  # fmt: skip
        summary["results"][f"{tracer}/figure"] = str(fig)
    summary["minutes"] = (time.perf_counter() - start) / 60
    table = pd.DataFrame(
        [{"tracer/model": k, **v} for k, v in summary["results"].items() if isinstance(v, dict)]
    )
    md = markdown(table) + "".join(
        f"\n![{t.split('/')[0].upper()}: one holdout case, ground truth and both models]"
        f"(img/{Path(f).name})\n"
        for t, f in summary["results"].items()
        if t.endswith("/figure") and Path(f).parent == FIGURES
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "organ_context.json").write_text(json.dumps(summary, indent=2, default=str))
    (RESULTS / "organ_context.md").write_text(md)
    print(f"{SUMMARY_MARK} (FP volumes at/away from hot organs: sums over the holdout, ml)")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"this run {summary['minutes']:.1f} min (finished steps resume, not rerun)")
    print(f"wrote {RESULTS / 'organ_context.json'}")


if __name__ == "__main__":
    main()
