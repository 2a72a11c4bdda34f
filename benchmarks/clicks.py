"""Clicks on the demo phantoms: the click model vs the plain LION model, autoPET IV protocol, CPU.

On ``lion demo``'s phantom cohort (its organ arm, Dataset901_DemoFDG_organs; the stored run's:
``lion demo --cases 40``, 40 FDG phantoms, 12 in the holdout), with models trained by the stock
command on the demo's dataset
(``nnUNetv2_train 901 3d_fullres 0 -p LIONPlans -tr <trainer> -device cpu``, the demo's
environment and ``LION_SEED``):

* ``click_edt``: ``nnUNetTrainer_LION_ClicksEdt_demo`` (clicks as Euclidean distance maps);
* ``click_gauss``: ``nnUNetTrainer_LION_Clicks_demo`` (clicks as Gaussian blobs);
* ``rule``: the plain demo model ``nnUNetTrainer_LION_tumorDice_demo`` with the rule-based edit;
* ``plain``: the plain demo model without clicks (its one prediction at every step).

Clicks: ``lion clicks simulate`` (the autoPET IV robot user, 10 tumor + 10 background, seed 42)
on the holdout; step n gives the first n of each kind (``lion clicks steps``). Every step is
predicted as ``lion predict --clicks`` predicts it (``lion predict --click-steps``: the same run
loop, in this process with one predictor per model; the rule-based edit is applied to the plain
model's filtered mask as the run loop applies it), and scored by ``lion evaluate
--interactive``'s code. Also: the share of tumor clicks on a ground-truth tumor voxel and of
background clicks off it.

    python benchmarks/clicks.py --demo /tmp/demo      # after lion demo --out /tmp/demo
                                                      # (trains the click models it lacks)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from run_all import SUMMARY_MARK

WORK = Path(__file__).resolve().parent / "work" / "clicks"
DATASET = "Dataset901_DemoFDG_organs"
PLAIN = "nnUNetTrainer_LION_tumorDice_demo"
CLICK_TRAINERS = {"click_edt": "nnUNetTrainer_LION_ClicksEdt_demo",
                  "click_gauss": "nnUNetTrainer_LION_Clicks_demo"}  # fmt: skip
STEPS = 10
SHOWN_STEPS = (0, 1, 5, 10)
TARGET_DICE_GAIN = 0.15
TARGET_TUMOR_ON_TUMOR, TARGET_BACKGROUND_OFF_TUMOR = 0.90, 0.95


def model_folder(demo: Path, trainer: str) -> Path:
    return demo / "nnunet" / "nnUNet_results" / DATASET / f"{trainer}__LIONPlans__3d_fullres"


def train(demo: Path, trainer: str) -> None:
    """The stock training command in the demo's environment (skipped when trained)."""
    if (model_folder(demo, trainer) / "fold_0" / "checkpoint_final.pth").is_file():
        return
    from lion_nnunet.demo import demo_environment

    cmd = [str(Path(sys.executable).parent / "nnUNetv2_train"), "901", "3d_fullres", "0", "-p",
           "LIONPlans", "-tr", trainer, "-device", "cpu"]  # fmt: skip
    print("$", " ".join(cmd[1:]), flush=True)
    subprocess.run(cmd, check=True, env=demo_environment(demo), stdout=subprocess.DEVNULL)


def predict_steps(model: Path, images: Path, click_steps: Path, out: Path, steps_dir: Path,
                  checkpoint: str) -> None:  # fmt: skip
    """A click model's prediction at every step, as ``lion predict --click-steps`` makes it (each
    step as ``lion predict --clicks`` would, one predictor for all), copied into ``steps_dir``."""
    from lion_nnunet.inference.options import PredictOptions
    from lion_nnunet.inference.predict import discover_cases
    from lion_nnunet.interactive.click_steps import predict_click_steps

    options = PredictOptions(folds=("0",), checkpoint=checkpoint, device="cpu", progress=False,
                             overwrite=True)  # fmt: skip
    result = predict_click_steps(discover_cases(images), model, out, click_steps, options)
    for path in Path(result["steps_dir"]).glob("*_pred*.nii.gz"):
        shutil.copy(path, steps_dir / path.name)


def rule_steps(plain_out: Path, images: Path, click_folders: list[Path], steps_dir: Path,
               plain_steps: Path) -> None:  # fmt: skip
    """The plain model: its one prediction at every step (``plain``), and the rule-based edit of
    it by each step's clicks (``rule``; the run loop's :meth:`CaseClicks.edit`)."""
    import numpy as np
    import SimpleITK as sitk

    from lion_nnunet.interactive.prompt import Prompt
    from lion_nnunet.io import read_float_image

    for pet in sorted(images.glob("*_0000.nii.gz")):
        case = pet.name[: -len("_0000.nii.gz")]
        image, suv = read_float_image(pet)
        mask_image = sitk.ReadImage(str(plain_out / case / "tumor.nii.gz"))
        plain = sitk.GetArrayFromImage(mask_image)
        spacing_zyx = image.GetSpacing()[::-1]
        for n, folder in enumerate(click_folders):
            shutil.copy(plain_out / case / "tumor.nii.gz", plain_steps / f"{case}_pred{n}.nii.gz")
            clicks = Prompt(folder / f"{case}_clicks.json").read(image)
            edited, _ = clicks.edit(plain.copy(), suv, spacing_zyx)
            out = sitk.GetImageFromArray(np.asarray(edited, np.uint8))
            out.CopyInformation(mask_image)
            sitk.WriteImage(out, str(steps_dir / f"{case}_pred{n}.nii.gz"))


def click_voxels(clicks_dir: Path, labels: Path) -> dict:
    """Share of tumor clicks on a ground-truth tumor voxel, of background clicks off tumor."""
    import SimpleITK as sitk

    from lion_nnunet.interactive.clickfile import read_clicks
    from lion_nnunet.labels import TUMOR_LABEL

    counts = {"tumor_on_tumor": 0, "tumor": 0, "background_off_tumor": 0, "background": 0}
    for f in sorted(clicks_dir.glob("*_clicks.json")):
        gt = sitk.GetArrayFromImage(
            sitk.ReadImage(str(labels / f.name.replace("_clicks.json", ".nii.gz")))
        )
        clicks = read_clicks(f)
        for i, j, k in clicks.tumor:
            counts["tumor"] += 1
            counts["tumor_on_tumor"] += int(gt[k, j, i] == TUMOR_LABEL)
        for i, j, k in clicks.background:
            counts["background"] += 1
            counts["background_off_tumor"] += int(gt[k, j, i] != TUMOR_LABEL)
    return {**counts,
            "tumor_click_on_tumor": counts["tumor_on_tumor"] / max(counts["tumor"], 1),
            "background_click_off_tumor": counts["background_off_tumor"]
            / max(counts["background"], 1)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--demo", type=Path, required=True, help="a finished lion demo --out")
    parser.add_argument("--arms", nargs="+", default=["click_edt", "click_gauss", "rule", "plain"])
    parser.add_argument("--checkpoint", default="checkpoint_final.pth",
                        help="checkpoint of every model (checkpoint_best.pth: a training that "
                        "has not finished; then nothing is trained here)")  # fmt: skip
    args = parser.parse_args()
    os.environ.setdefault("nnUNet_compile", "false")
    from store import Run

    run = Run("clicks")
    from lion_nnunet.cli import main as lion
    from lion_nnunet.interactive.steps import evaluate_steps

    demo = args.demo.resolve()
    raw = demo / "nnunet" / "nnUNet_raw" / DATASET
    images, labels = raw / "imagesTs", raw / "labelsTs"
    for trainer in [PLAIN, *CLICK_TRAINERS.values()]:
        if args.checkpoint == "checkpoint_final.pth":
            train(demo, trainer)
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    clicks_dir = WORK / "clicks"
    assert lion(["clicks", "simulate", "--gt", str(labels), "--pet", str(images), "-o",
                 str(clicks_dir), "--budget", str(STEPS), "--no-pbar"]) == 0  # fmt: skip
    assert lion(["clicks", "steps", str(clicks_dir), "-o", str(WORK / "clicks_steps"),
                 "--steps", str(STEPS)]) == 0  # fmt: skip
    folders = [WORK / "clicks_steps" / f"step{n}" for n in range(STEPS + 1)]
    steps = {arm: WORK / f"steps_{arm}" for arm in args.arms}
    for folder in steps.values():
        folder.mkdir()
    for arm, trainer in CLICK_TRAINERS.items():
        if arm in steps:
            predict_steps(model_folder(demo, trainer), images, WORK / "clicks_steps",
                          WORK / f"out_{arm}", steps[arm], args.checkpoint)  # fmt: skip
    if "rule" in steps or "plain" in steps:
        plain_out = WORK / "out_plain"
        assert lion(["predict", "-i", str(images), "-o", str(plain_out), "-m",
                     str(model_folder(demo, PLAIN)), "-f", "0", "--device", "cpu",
                     "--checkpoint", args.checkpoint, "--no-pbar"]) == 0  # fmt: skip
        rule_steps(plain_out, images, folders, steps.get("rule", WORK / "steps_rule"),
                   steps.get("plain", WORK / "steps_plain"))  # fmt: skip
    arms, curve_rows, case_rows = {}, [], []
    for arm, folder in steps.items():
        result = evaluate_steps(folder, labels, WORK / f"eval_{arm}", progress=False)
        curve = {row["step"]: row for row in result["curve"]}
        arms[arm] = {
            **{f"dice_step{n}": curve[n]["dice_mean"] for n in SHOWN_STEPS},
            **{f"fpv_step{n}": curve[n]["fp_volume_ml_mean"] for n in SHOWN_STEPS},
            **{f"fnv_step{n}": curve[n]["fn_volume_ml_mean"] for n in SHOWN_STEPS},
            **{k: result["mean"][k] for k in ("dice_auc", "fpv_auc", "fnv_auc")},
            "dice_gain_10_clicks": curve[STEPS]["dice_mean"] - curve[0]["dice_mean"],
        }  # fmt: skip
        arms[arm]["dice_gain_met"] = arms[arm]["dice_gain_10_clicks"] >= TARGET_DICE_GAIN
        curve_rows += [{"arm": arm, **row} for row in result["curve"]]
        case_rows += [{"arm": arm, **row} for row in result["per_case"]]
    voxels = click_voxels(clicks_dir, labels)
    cases = len({r["case_id"] for r in case_rows})
    summary = {
        "dataset": DATASET, "holdout_cases": cases,
        "cases_with_tumor": len({r["case_id"] for r in case_rows if r["dice_auc"] is not None}),
        "steps": STEPS + 1, "checkpoint": args.checkpoint,
        "trainers": {"plain": PLAIN, **CLICK_TRAINERS}, "arms": arms,
        "clicks": voxels,
        "targets": {"dice_gain_10_clicks": TARGET_DICE_GAIN,
                    "tumor_click_on_tumor": TARGET_TUMOR_ON_TUMOR,
                    "background_click_off_tumor": TARGET_BACKGROUND_OFF_TUMOR},
        "click_voxel_targets_met": voxels["tumor_click_on_tumor"] >= TARGET_TUMOR_ON_TUMOR
        and voxels["background_click_off_tumor"] >= TARGET_BACKGROUND_OFF_TUMOR,
        "demo_training": json.loads((demo / "summary.json").read_text())["settings"]
        if (demo / "summary.json").is_file() else None,
    }  # fmt: skip
    print(SUMMARY_MARK)
    print(f"{cases} holdout cases; clicks: tumor on tumor {voxels['tumor_click_on_tumor']:.1%}, "
          f"background off tumor {voxels['background_click_off_tumor']:.1%}")  # fmt: skip
    for arm, a in arms.items():
        dice = " ".join(f"{a[f'dice_step{n}']:.3f}" for n in SHOWN_STEPS)
        print(f"{arm:12s} Dice at {SHOWN_STEPS}: {dice}; AUC {a['dice_auc']:.2f}; gain "
              f"{a['dice_gain_10_clicks']:+.3f} (target >= {TARGET_DICE_GAIN})")  # fmt: skip
    run.store(summary, {"curve": curve_rows, "per_case": case_rows})


if __name__ == "__main__":
    main()
