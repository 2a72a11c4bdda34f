"""Inference speed: `lion predict` vs stock `nnUNetv2_predict`, report overhead, model reuse.

Three measurements in one run, on synthetic FDG phantoms and a model folder with the LION FDG
plans' residual-encoder architecture and random weights (timing does not depend on the weights):

1. wall time of ``lion predict`` vs ``nnUNetv2_predict_from_modelfolder`` (each a fresh
   process, same cases, fold, device, mirroring off) -> ratio;
2. LION's postprocessing + report + MIP picture time, per case, against the prediction time
   (from report.json ``timing_s``), and in absolute seconds on whole-body-sized cases
   (PET 200x200x400 voxels) -> overhead in % (target < 5 %);
3. a batch of cases predicted with the model loaded once vs a predictor rebuilt for every case
   (the pattern of the original LION inference tool) -> ratio.

    python benchmarks/predict.py --quick      # small phantoms, small patch: about 2-4 min on CPU
    python benchmarks/predict.py --device cuda  # FDG patch 160x128x128; meant for a GPU
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from run_all import SUMMARY_MARK

#: LION's outputs (postprocessing, report, MIP) may take at most this share of prediction (%)
TARGET_PCT = 5
BIN = Path(sys.executable).parent


def _run(cmd: list[str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{(proc.stdout + proc.stderr)[-3000:]}")
    return time.perf_counter() - start


def _images(cohort: Path, out: Path, n: int) -> Path:
    out.mkdir(parents=True)
    for i, suv in enumerate(sorted((cohort / "studies").rglob("SUV.nii.gz"))[:n]):
        shutil.copy(suv, out / f"case{i:03d}_0000.nii.gz")
    return out


def compare_with_stock(images: Path, model: Path, tmp: Path, device: str) -> dict:
    lion = _run([str(BIN / "lion"), "predict", "-i", str(images), "-o", str(tmp / "lion"),
                 "-m", str(model), "-f", "0", "--device", device, "--disable-tta",
                 "--no-pbar"])  # fmt: skip
    stock = _run([str(BIN / "nnUNetv2_predict_from_modelfolder"), "-i", str(images), "-o",
                  str(tmp / "stock"), "-m", str(model), "-f", "0", "-device", device,
                  "--disable_tta", "-npp", "1", "-nps", "1"])  # fmt: skip
    reports = sorted((tmp / "lion").glob("*/report.json"))
    timings = [json.loads(p.read_text())["timing_s"] for p in reports]
    predict = sum(t["predict"] for t in timings)
    outputs = sum(t["outputs"] for t in timings)
    return {
        "per_case": [
            {"case": p.parent.name, "predict_s": t["predict"], "outputs_s": t["outputs"]}
            for p, t in zip(reports, timings, strict=True)
        ],
        "cases": len(timings),
        "lion_predict_s": lion,
        "stock_nnunetv2_predict_s": stock,
        "lion_over_stock": lion / stock,
        "predict_s_per_case": predict / len(timings),
        "outputs_s_per_case": outputs / len(timings),
        "outputs_overhead_pct": 100.0 * outputs / predict,
    }


def wholebody_outputs(tmp: Path, n: int) -> dict:
    """Postprocessing + report + MIP on whole-body-sized phantoms (ground truth as prediction)."""
    import numpy as np
    import SimpleITK as sitk

    from lion_nnunet.inference.outputs import write_case_outputs
    from lion_nnunet.inference.postprocess import split_label_map
    from lion_nnunet.io import read_float_image
    from lion_nnunet.labels import get_label_set
    from lion_nnunet.synthetic.phantoms import make_cohort

    cohort = tmp / "wholebody"
    make_cohort(cohort, "fdg", n, seed=0, size="wholebody", progress=False)
    fdg = get_label_set("fdg")
    seconds = []
    shape = None
    for i, suv_path in enumerate(sorted((cohort / "studies").rglob("SUV.nii.gz"))):
        image, suv = read_float_image(suv_path)
        seg = sitk.GetArrayFromImage(sitk.ReadImage(str(suv_path.parent / "SEG.nii.gz")))
        label_map = seg.astype(np.uint8)
        label_map[(label_map == 0) & (suv > np.percentile(suv, 99.0))] = 5  # hot "organ"
        shape = suv.shape
        start = time.perf_counter()
        tumor, organs = split_label_map(label_map, fdg, image.GetSpacing()[::-1])
        write_case_outputs(tmp / "wb_out" / f"c{i}", f"c{i}", image, suv, tumor, organs, fdg)
        seconds.append(time.perf_counter() - start)
    return {"cases": n, "shape_zyx": list(shape), "outputs_s_per_case": sum(seconds) / n}


def reuse_vs_rebuild(images: Path, model: Path, device: str) -> dict:
    from lion_nnunet.inference.model import check_model_folder
    from lion_nnunet.inference.predict import LionPredictor, discover_cases

    info = check_model_folder(model, ["0"])
    cases = discover_cases(images)
    start = time.perf_counter()
    predictor = LionPredictor(info, device, use_mirroring=False)
    for case in cases:
        predictor.predict_label_map(*predictor.load(case)[:2])
    once = time.perf_counter() - start
    start = time.perf_counter()
    for case in cases:
        fresh = LionPredictor(info, device, use_mirroring=False)
        fresh.predict_label_map(*fresh.load(case)[:2])
    rebuilt = time.perf_counter() - start
    return {"cases": len(cases), "loaded_once_s": once, "rebuilt_per_case_s": rebuilt,
            "rebuilt_over_once": rebuilt / once}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small phantoms and patch (CPU)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--cases", type=int, default=10, help="batch size for part 3")
    args = parser.parse_args()
    os.environ.setdefault("nnUNet_compile", "false")
    from store import Run

    run = Run("predict")

    from lion_nnunet.inference.model import make_random_model
    from lion_nnunet.synthetic.phantoms import make_cohort

    if args.quick:
        patch, spacing, size = (96, 48, 48), (6.0, 6.0, 6.0), "small"
    else:
        patch, spacing, size = (160, 128, 128), (4.0, 4.0, 4.0), "wholebody"
    result: dict = {"device": args.device, "quick": args.quick, "patch": patch,
                    "phantom_size": size}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        model = make_random_model(tmp / "Dataset995_BENCH" / "nnUNetTrainer__LIONPlans__3d_fullres",
                                  "fdg", patch_size=patch, spacing=spacing)  # fmt: skip
        cohort = tmp / "cohort"
        make_cohort(cohort, "fdg", args.cases, seed=0, size=size, progress=False)
        n_stock = 3 if args.quick else 2
        images = _images(cohort, tmp / "imagesTs", n_stock)
        result["stock"] = compare_with_stock(images, model, tmp, args.device)
        s = result["stock"]
        print(SUMMARY_MARK)
        print(f"1. lion predict {s['lion_predict_s']:.1f} s vs nnUNetv2_predict "
              f"{s['stock_nnunetv2_predict_s']:.1f} s on {s['cases']} cases: "
              f"{s['lion_over_stock']:.2f}x")  # fmt: skip
        print(
            f"2. outputs (postprocess+report+MIP) {s['outputs_s_per_case']:.2f} s/case vs "
            f"predict {s['predict_s_per_case']:.2f} s/case: {s['outputs_overhead_pct']:.1f} %"
        )
        result["wholebody_outputs"] = wholebody_outputs(tmp, 1 if args.quick else 2)
        w = result["wholebody_outputs"]
        print(
            f"   whole-body {w['shape_zyx']} (z,y,x): outputs {w['outputs_s_per_case']:.2f} s/case"
        )
        wb = _images(tmp / "wholebody", tmp / "imagesWB", 1)
        result["wholebody_predict"] = w = compare_with_stock(wb, model, tmp / "wb", args.device)
        n_lesions = [
            json.loads(r.read_text())["lesion_count"]
            for r in (tmp / "wb" / "lion").glob("*/report.json")
        ]
        realistic = (
            100 * result["wholebody_outputs"]["outputs_s_per_case"] / w["predict_s_per_case"]
        )
        result["wholebody_realistic_overhead_pct"] = realistic
        print(
            f"   whole-body lion predict: predict {w['predict_s_per_case']:.1f} s/case; outputs "
            f"{w['outputs_s_per_case']:.2f} s for the random-weight mask ({n_lesions[0]} lesions, "
            f"{w['outputs_overhead_pct']:.1f} %), {realistic:.1f} % for the phantom-like mask "
            f"above (target < {TARGET_PCT} %)"
        )
        result["wholebody_predict"]["lesions_random_weight_mask"] = n_lesions[0]
        batch = _images(cohort, tmp / "batch", args.cases)
        result["reuse"] = reuse_vs_rebuild(batch, model, args.device)
        r = result["reuse"]
        print(f"3. {r['cases']} cases: model loaded once {r['loaded_once_s']:.1f} s, rebuilt per "
              f"case {r['rebuilt_per_case_s']:.1f} s: {r['rebuilt_over_once']:.2f}x")  # fmt: skip
    result["target_pct"] = TARGET_PCT
    rows = [{"part": part, **row} for part in ("stock", "wholebody_predict")
            for row in result[part].pop("per_case")]  # fmt: skip
    run.store(result, {"per_case": rows})


if __name__ == "__main__":
    main()
