"""Does confidence mean anything? Per-lesion AUROC of ``confidence`` and ``fold_agreement``.

Every lesion ``lion predict`` finds on a phantom holdout is a true positive when it overlaps the
ground-truth tumor (any voxel) and a false positive otherwise; the per-lesion AUROC of
``confidence`` (mean ensemble tumor probability) and of ``fold_agreement`` (share of folds whose
own prediction overlaps it) says how well each tells the two apart (0.5 = not at all, 1 = every
true lesion scores above every false one; sklearn's ``roc_auc_score``).

    python benchmarks/confidence.py --from-demo lion_demo/   # 2 folds fine-tuned from a demo
    python benchmarks/confidence.py --model DIR --images imagesTs --labels labelsTs
    python benchmarks/confidence.py --quick    # pipeline check: random 2-fold model, minutes
    python benchmarks/confidence.py --recompute-ci   # the stored run's CIs from its lesions.csv

Each AUROC comes with a 95 % percentile-bootstrap confidence interval over cases
(:func:`auroc_ci`): the holdout cases are drawn with replacement (lesions of one case stay
together, cases without a predicted lesion are drawn too), 2000 times with seed 0.

``--from-demo`` takes a finished ``lion demo --out DIR`` and measures two models on the demo's
holdout: the demo's organ-context model as trained (fold 0 alone: ``confidence`` only, one fold
has no fold agreement), and a 2-fold ensemble: folds 0 and 1 of a 2-fold split of the demo's
training cases, each trained with the stock ``nnUNetv2_train ... -pretrained_weights <demo fold
0>`` and a short schedule (``--trainer``, default ``nnUNetTrainer_LION_tumorDice_demo_finetune``:
the demo's AdamW set-up, 2 x 25 iterations at learning rate 1e-3), side by side, in
``benchmarks/work/confidence`` (kept: a re-run reuses finished folds). nnU-Net's
``load_pretrained_weights`` does not transfer the segmentation output layers (``.seg_layers.``),
so these folds relearn their output layer in those 50 iterations: a weak model, useful for the
fold agreement's mechanics more than as a verdict. The stored result goes to
``benchmarks/results/confidence/`` (``summary.json``, ``lesions.csv``) and docs/benchmarks.md
(``make_docs.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from store import Run

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "confidence"
#: the bootstrap of the AUROC's confidence interval: resampled holdouts, seed, coverage (%)
CI = {"resamples": 2000, "seed": 0, "percent": 95, "unit": "case"}
WORK = HERE / "work" / "confidence"
BIN = Path(sys.executable).parent
CONFIGURATION, PLANS = "3d_fullres", "LIONPlans"
#: the demo's organ-context arm (lion demo): dataset folder prefix and trainer
DEMO_DATASET, DEMO_TRAINER = "Dataset901_", "nnUNetTrainer_LION_tumorDice_demo"


def _run(cmd: list[str], env: dict | None = None) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL)
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{(proc.stdout + proc.stderr)[-3000:]}")


def _environment(root: Path) -> dict[str, str]:
    from lion_nnunet.nnunet_env import CPU_FRIENDLY_ENV
    from lion_nnunet.trainers.discovery import register_ext_trainer_folder

    env = dict(os.environ)
    for var in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        env[var] = str(root / var)
        Path(env[var]).mkdir(parents=True, exist_ok=True)
    env.setdefault("nnUNet_n_proc_DA", "0")
    for key, value in CPU_FRIENDLY_ENV.items():
        env.setdefault(key, value)
    register_ext_trainer_folder(env)
    return env


def two_fold_splits(cases: list[str]) -> list[dict]:
    """nnU-Net's splits_final.json for a 2-fold split (sorted cases, alternating)."""
    cases = sorted(cases)
    halves = [cases[0::2], cases[1::2]]
    return [{"train": halves[1 - k], "val": halves[k]} for k in (0, 1)]


def model_from_demo(demo: Path, trainer: str) -> tuple[list[tuple], Path, Path, dict]:
    """The demo's model and folds 0, 1 trained from it: ([(name, model, folds, what)], imagesTs,
    labelsTs, settings); folds with a checkpoint_final.pth from an earlier run are reused."""
    nnunet = demo / "nnunet"
    raw = next((nnunet / "nnUNet_raw").glob(f"{DEMO_DATASET}*"))
    demo_model = nnunet / "nnUNet_results" / raw.name / f"{DEMO_TRAINER}__{PLANS}__{CONFIGURATION}"
    pretrained = demo_model / "fold_0" / "checkpoint_final.pth"
    if not pretrained.is_file():
        raise SystemExit(f"{demo}: no organ-context model ({pretrained}); run lion demo first")
    env = _environment(WORK / "nnunet")
    model = Path(env["nnUNet_results"]) / raw.name / f"{trainer}__{PLANS}__{CONFIGURATION}"
    training = sorted(p.name[: -len(".nii.gz")] for p in (raw / "labelsTr").glob("*.nii.gz"))
    settings = {"source": "lion demo, organ-context arm", "pretrained": DEMO_TRAINER,
                "trainer": trainer, "training_cases": len(training)}  # fmt: skip
    models = [
        ("demo model", demo_model, ("0",), f"`{DEMO_TRAINER}`, fold 0, as trained"),
        ("fine-tuned folds", model, ("0", "1"), f"`{trainer}`, folds 0 and 1 from it"),
    ]
    if all((model / f"fold_{f}" / "checkpoint_final.pth").is_file() for f in "01"):
        print(f"reusing the trained folds in {model}")
        return models, raw / "imagesTs", raw / "labelsTs", settings
    shutil.rmtree(WORK / "nnunet", ignore_errors=True)
    env = _environment(WORK / "nnunet")
    shutil.copytree(raw, Path(env["nnUNet_raw"]) / raw.name)
    pre = Path(env["nnUNet_preprocessed"]) / raw.name
    shutil.copytree(nnunet / "nnUNet_preprocessed" / raw.name, pre)
    (pre / "splits_final.json").write_text(json.dumps(two_fold_splits(training), indent=1))
    dataset_id = raw.name[len("Dataset") : len("Dataset") + 3]
    train = [str(BIN / "nnUNetv2_train"), dataset_id, CONFIGURATION, "-p", PLANS, "-tr", trainer,
             "-device", "cpu", "-pretrained_weights", str(pretrained)]  # fmt: skip
    procs = [
        subprocess.Popen(
            [*train[:3], fold, *train[3:]],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for fold in ("0", "1")
    ]
    for proc in procs:
        _, err = proc.communicate()
        if proc.returncode:
            raise SystemExit(f"nnUNetv2_train failed:\n{err[-3000:]}")
    return models, raw / "imagesTs", raw / "labelsTs", settings


def quick_model(cases: int) -> tuple[list[tuple], Path, Path, dict]:
    """A random-weight 2-fold tumor-only model and a few phantoms (pipeline check only)."""
    import SimpleITK as sitk

    from lion_nnunet.inference.model import make_random_model
    from lion_nnunet.synthetic.phantoms import make_cohort

    shutil.rmtree(WORK / "quick", ignore_errors=True)
    cohort = WORK / "quick" / "cohort"
    make_cohort(cohort, "fdg", cases, seed=3, progress=False)
    images, labels = WORK / "quick" / "imagesTs", WORK / "quick" / "labelsTs"
    images.mkdir(parents=True)
    labels.mkdir(parents=True)
    for k, study in enumerate(sorted((cohort / "studies").rglob("SUV.nii.gz"))):
        shutil.copy(study, images / f"case{k:03d}_0000.nii.gz")
        seg = sitk.ReadImage(str(study.parent / "SEG.nii.gz"))
        sitk.WriteImage(seg, str(labels / f"case{k:03d}.nii.gz"))
    model = make_random_model(
        WORK / "quick" / "Dataset993_QUICK" / "nnUNetTrainer__LIONPlans__3d_fullres", "fdg",
        patch_size=(48, 32, 32), spacing=(12.0, 12.0, 12.0), folds=("0", "1"),
        labels={"background": 0, "tumor": 1},
    )  # fmt: skip
    models = [("random weights", model, ("0", "1"), "random weights, folds 0 and 1")]
    return models, images, labels, {"source": "random weights (pipeline check)"}


def lesion_rows(pred: Path, labels: Path, tumor_label: int = 1) -> list[dict]:
    """One row per predicted lesion: its confidence, fold agreement and whether it is true.

    A lesion (report.json ``lesions``; ids are the cc3d component numbers of tumor.nii.gz at
    the report's connectivity) is a true positive when any of its voxels is ground-truth tumor.
    """
    import cc3d
    import SimpleITK as sitk

    rows = []
    for report_path in sorted(pred.glob("*/report.json")):
        report = json.loads(report_path.read_text())
        case = report["case_id"]
        tumor = sitk.GetArrayFromImage(sitk.ReadImage(str(report_path.parent / "tumor.nii.gz")))
        truth = sitk.GetArrayFromImage(sitk.ReadImage(str(labels / f"{case}.nii.gz")))
        components = cc3d.connected_components(tumor.astype(np.uint8),
                                               connectivity=report["connectivity"])  # fmt: skip
        for lesion in report["lesions"]:
            inside = components == lesion["lesion_id"]
            rows.append({
                "case_id": case, "lesion_id": lesion["lesion_id"],
                "volume_ml": lesion["volume_ml"], "confidence": lesion["confidence"],
                "fold_agreement": lesion["fold_agreement"],
                "true_positive": bool((truth[inside] == tumor_label).any()),
            })  # fmt: skip
    return rows


def auroc(rows: list[dict], key: str) -> float | None:
    """Per-lesion AUROC of ``key`` for true vs false positives; None without both kinds."""
    from sklearn.metrics import roc_auc_score

    truth = [r["true_positive"] for r in rows]
    if len(set(truth)) < 2 or any(r[key] is None for r in rows):
        return None
    return round(float(roc_auc_score(truth, [r[key] for r in rows])), 3)


def _pair_auroc(scores: np.ndarray, truth: np.ndarray) -> float:
    """Share of (true, false) lesion pairs where the true one scores higher, ties half."""
    pos, neg = scores[truth], scores[~truth]
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(wins / (len(pos) * len(neg)))


def auroc_ci(
    rows: list[dict],
    key: str,
    cases: int | None = None,
    resamples: int = CI["resamples"],
    seed: int = CI["seed"],
    level: float = CI["percent"] / 100,
) -> dict | None:
    """Percentile-bootstrap confidence interval of the per-lesion AUROC of ``key``, over cases.

    Each resample draws as many cases as the holdout has, with replacement, and pools their
    lesions (a case drawn twice counts twice); the AUROC of every resample that holds both true
    and false lesions is kept and the interval is their ``(1 - level) / 2`` and
    ``(1 + level) / 2`` percentiles (numpy's linear interpolation).

    Args:
        rows: lesions with ``case_id``, ``true_positive`` and ``key``.
        key: the score (``confidence`` or ``fold_agreement``).
        cases: holdout cases (>= the cases in ``rows``; those without a lesion are drawn as
            empty cases); None: the cases in ``rows``.
        resamples: bootstrap resamples.
        seed: numpy ``default_rng`` seed.
        level: coverage (0.95: 2.5th and 97.5th percentiles).

    Returns:
        ``{"low", "high", "resamples_used"}`` (rounded to 3 decimals), or None where the
        AUROC itself is not defined (one kind of lesion, or a missing score).
    """
    if auroc(rows, key) is None:
        return None
    ids = sorted({r["case_id"] for r in rows})
    scores = np.array([float(r[key]) for r in rows])
    truth = np.array([bool(r["true_positive"]) for r in rows])
    case_of = np.array([ids.index(r["case_id"]) for r in rows])
    members = [np.flatnonzero(case_of == k) for k in range(len(ids))]
    n = len(ids) if cases is None else cases
    if n < len(ids):
        raise ValueError(f"cases={n}, fewer than the {len(ids)} cases with lesions")
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(resamples):
        drawn = rng.integers(0, n, size=n)  # indices >= len(ids): cases without a lesion
        picked = np.concatenate([members[k] for k in drawn if k < len(ids)] or [[]]).astype(int)
        if 0 < truth[picked].sum() < len(picked):
            values.append(_pair_auroc(scores[picked], truth[picked]))
    low, high = np.percentile(values, [50 * (1 - level), 50 * (1 + level)])
    return {"low": round(float(low), 3), "high": round(float(high), 3),
            "resamples_used": len(values)}  # fmt: skip


def summarize(rows: list[dict], cases: int | None = None) -> dict:
    """Counts, AUROCs (with their bootstrap CIs over ``cases`` holdout cases) and the medians of
    each score among true and false positives."""
    out: dict = {"lesions": len(rows), "true_positives": sum(r["true_positive"] for r in rows)}
    out["false_positives"] = out["lesions"] - out["true_positives"]
    for key in ("confidence", "fold_agreement"):
        out[f"auroc_{key}"] = auroc(rows, key)
        out[f"auroc_{key}_ci"] = auroc_ci(rows, key, cases)
        for kind, flag in (("true", True), ("false", False)):
            values = [r[key] for r in rows if r["true_positive"] is flag and r[key] is not None]
            out[f"median_{key}_{kind}"] = round(float(np.median(values)), 3) if values else None
    return out


def read_lesions(path: Path) -> list[dict]:
    """lesions.csv as :func:`lesion_rows` gives them (scores float or None, truth bool)."""
    import csv

    def number(text: str) -> float | None:
        return float(text) if text not in ("", "None", "nan") else None

    with Path(path).open(newline="") as f:
        rows = list(csv.DictReader(f))
    if rows and not {"model", "case_id", "true_positive"} <= set(rows[0]):
        raise SystemExit(f"{path}: expected columns model, case_id, true_positive, ...")
    return [{**r, "confidence": number(r["confidence"]),
             "fold_agreement": number(r["fold_agreement"]),
             "true_positive": r["true_positive"] == "True"} for r in rows]  # fmt: skip


def recompute_ci(folder: Path = RESULTS) -> dict:
    """The stored run's AUROC CIs from its lesions.csv, written into its summary.json (nothing
    is predicted or trained again); returns the summary."""
    path = folder / "summary.json"
    summary = json.loads(path.read_text())
    rows = read_lesions(folder / summary["raw"]["lesions"])
    cases = summary["settings"].get("holdout_cases")
    for name, model in summary["models"].items():
        mine = [r for r in rows if r["model"] == name]
        for key in ("confidence", "fold_agreement"):
            if auroc(mine, key) != model[f"auroc_{key}"]:
                raise SystemExit(f"{path}: {name}'s auroc_{key} {model[f'auroc_{key}']} is not "
                                 f"the {auroc(mine, key)} of its lesions.csv rows")  # fmt: skip
            model[f"auroc_{key}_ci"] = auroc_ci(mine, key, cases)
    summary["auroc_ci"] = {**CI, "recomputed_by": "python benchmarks/confidence.py --recompute-ci"}
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(summary, indent=2) + "\n")
    tmp.replace(path)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recompute-ci", action="store_true",
                        help="only the CIs of the stored run, from its lesions.csv")  # fmt: skip
    source = parser.add_mutually_exclusive_group(required=False)
    source.add_argument("--from-demo", type=Path, help="a finished lion demo --out folder")
    source.add_argument("--model", type=Path, help="a model folder with >= 2 folds")
    source.add_argument("--quick", action="store_true", help="random 2-fold model, 3 phantoms")
    parser.add_argument("--images", type=Path, help="with --model: holdout PETs (<case>_0000)")
    parser.add_argument("--labels", type=Path, help="with --model: ground truth (<case>.nii.gz)")
    parser.add_argument("--trainer", default="nnUNetTrainer_LION_tumorDice_demo_finetune")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if args.recompute_ci:
        summary = recompute_ci()
        print(json.dumps(summary["models"], indent=2))
        return
    if not (args.quick or args.from_demo or args.model):
        parser.error("one of --from-demo, --model, --quick or --recompute-ci is required")
    run = Run("confidence")
    if args.quick:
        models, images, labels, settings = quick_model(3)
    elif args.from_demo:
        models, images, labels, settings = model_from_demo(args.from_demo.resolve(), args.trainer)
    else:
        if not (args.images and args.labels):
            parser.error("--model needs --images and --labels")
        models = [("model", args.model, ("0", "1"), "folds 0 and 1")]
        images, labels, settings = args.images, args.labels, {"source": str(args.model)}
    rows, results = [], {}
    for name, model, folds, what in models:
        pred = WORK / "predictions" / name.replace(" ", "_")
        shutil.rmtree(pred, ignore_errors=True)
        _run([str(BIN / "lion"), "predict", "-i", str(images), "-o", str(pred), "-m", str(model),
              "-f", *folds, "--device", args.device, "--disable-tta", "--no-pbar"])  # fmt: skip
        found = [{"model": name, **row} for row in lesion_rows(pred, labels)]
        holdout = len(list(pred.glob("*/report.json")))
        results[name] = {"what": what, "folds": len(folds), **summarize(found, holdout)}
        rows += found
    settings.update(quick=bool(args.quick), holdout_cases=holdout)
    summary = {"settings": settings, "models": results, "auroc_ci": CI}
    print(json.dumps(summary, indent=2))
    run.store(summary, {"lesions": rows})


if __name__ == "__main__":
    main()
