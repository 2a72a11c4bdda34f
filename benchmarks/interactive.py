"""Interactive refinement: one click through the session vs a whole re-prediction, same run.

On one whole-body FDG phantom (``lion phantoms --size wholebody``: PET 200x200x400 voxels at
4 mm) and a model folder with the LION FDG plans' architecture and random weights (timing does
not depend on the weights), in one run:

1. a whole re-prediction: ``lion predict`` on the case, a fresh process (what a tool without
   local refinement does after each click); its wall time, and the network's share from
   report.json (``timing_s.predict``);
2. refinement steps on that prediction: the session (``RefinementSession``) gets the SUV and
   ``tumor.nii.gz``, then tumor clicks at the hottest voxel of each ground-truth lesion and
   background clicks on predicted components (the largest ones first); each click's time is
   the ``add_point_interaction`` call alone (image and mask already loaded, as in a viewer).

Ratio = re-prediction wall time / the slowest click's time (target >= 5x).

    python benchmarks/interactive.py            # about 3-5 min on 2 CPU cores
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

TARGET_RATIO = 5.0
BIN = Path(sys.executable).parent


def repredict(images: Path, model: Path, out: Path) -> dict:
    """``lion predict`` on the case in a fresh process: wall time and report.json's timing."""
    cmd = [str(BIN / "lion"), "predict", "-i", str(images), "-o", str(out), "-m", str(model),
           "-f", "0", "--device", "cpu", "--disable-tta", "--no-pbar"]  # fmt: skip
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{(proc.stdout + proc.stderr)[-3000:]}")
    (report,) = [json.loads(p.read_text()) for p in out.glob("*/report.json")]
    return {"wall_s": wall, "network_s": report["timing_s"]["predict"],
            "outputs_s": report["timing_s"]["outputs"]}  # fmt: skip


def click_steps(suv_path: Path, seg_path: Path, tumor_path: Path, n: int) -> list[dict]:
    """Time ``n`` tumor and ``n`` background clicks through one session, in the protocol's order."""
    import cc3d
    import numpy as np
    import SimpleITK as sitk

    from lion_nnunet.interactive.session import RefinementSession
    from lion_nnunet.io import read_float_image

    image, suv = read_float_image(suv_path)
    seg = sitk.GetArrayFromImage(sitk.ReadImage(str(seg_path)))
    tumor = sitk.GetArrayFromImage(sitk.ReadImage(str(tumor_path)))
    spacing_zyx = image.GetSpacing()[::-1]
    lesions, n_lesions = cc3d.connected_components(seg == 1, connectivity=18, return_N=True)
    tumor_points = []
    for k in range(1, min(n_lesions, n) + 1):  # the hottest voxel of each of n lesions
        hot = np.where(lesions == k, suv, -np.inf)
        tumor_points.append(np.unravel_index(int(np.argmax(hot)), suv.shape))
    predicted = cc3d.connected_components(tumor > 0, connectivity=18)
    sizes = np.bincount(predicted.ravel())[1:]
    background_points = []
    for k in np.argsort(-sizes)[:n] + 1:  # a voxel of each of the largest predicted components
        background_points.append(tuple(int(v[0]) for v in np.nonzero(predicted == k)))
    session = RefinementSession()
    session.set_image(suv, spacing_zyx)
    session.set_target_buffer(tumor)
    rows = []
    order = []  # the protocol's pairs: tumor 1, background 1, tumor 2, ...
    for k in range(n):
        if k < len(tumor_points):
            order.append(("tumor", tumor_points[k]))
        if k < len(background_points):
            order.append(("background", background_points[k]))
    for name, point in order:
        start = time.perf_counter()
        edit = session.add_point_interaction(point, include_interaction=name == "tumor")
        seconds = time.perf_counter() - start
        box = None if edit.box is None else [s.stop - s.start for s in edit.box]
        rows.append({"click": name, "z": int(point[0]), "y": int(point[1]), "x": int(point[2]),
                     "seconds": seconds, "voxels_added": edit.added,
                     "voxels_removed": edit.removed, "box_zyx": box})  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clicks", type=int, default=5, help="clicks of each kind")
    args = parser.parse_args()
    os.environ.setdefault("nnUNet_compile", "false")
    from store import Run

    run = Run("interactive")

    from lion_nnunet.inference.model import make_random_model
    from lion_nnunet.synthetic.phantoms import make_cohort

    patch, spacing = (96, 48, 48), (6.0, 6.0, 6.0)  # predict.py --quick's model
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        model = make_random_model(tmp / "Dataset996_BENCH" / "nnUNetTrainer__LIONPlans__3d_fullres",
                                  "fdg", patch_size=patch, spacing=spacing)  # fmt: skip
        make_cohort(tmp / "wb", "fdg", 1, seed=0, size="wholebody", diseases=["lymphoma"],
                    progress=False)  # fmt: skip
        (study,) = [p.parent for p in (tmp / "wb" / "studies").rglob("SUV.nii.gz")]
        images = tmp / "images"
        images.mkdir()
        shutil.copy(study / "SUV.nii.gz", images / "wb_0000.nii.gz")
        whole = repredict(images, model, tmp / "out")
        rows = click_steps(study / "SUV.nii.gz", study / "SEG.nii.gz",
                           tmp / "out" / "wb" / "tumor.nii.gz", args.clicks)  # fmt: skip
        import SimpleITK as sitk

        shape = list(sitk.ReadImage(str(study / "SUV.nii.gz")).GetSize()[::-1])
    slowest = max(r["seconds"] for r in rows)
    median = sorted(r["seconds"] for r in rows)[len(rows) // 2]
    result = {
        "device": "cpu", "patch": patch, "shape_zyx": shape, "clicks": len(rows),
        "repredict_wall_s": whole["wall_s"], "repredict_network_s": whole["network_s"],
        "repredict_outputs_s": whole["outputs_s"], "click_max_s": slowest,
        "click_median_s": median, "ratio_wall_over_slowest_click": whole["wall_s"] / slowest,
        "ratio_network_over_slowest_click": whole["network_s"] / slowest,
        "target_ratio": TARGET_RATIO,
    }  # fmt: skip
    print(SUMMARY_MARK)
    print(f"whole-body {shape} (z,y,x): lion predict {whole['wall_s']:.1f} s (network "
          f"{whole['network_s']:.1f} s); {len(rows)} clicks: slowest {slowest:.3f} s, median "
          f"{median:.3f} s")  # fmt: skip
    print(f"ratio re-prediction / slowest click: {result['ratio_wall_over_slowest_click']:.0f}x "
          f"(network only: {result['ratio_network_over_slowest_click']:.0f}x; target >= "
          f"{TARGET_RATIO:g}x)")  # fmt: skip
    for r in rows:
        r["box_zyx"] = "x".join(map(str, r["box_zyx"])) if r["box_zyx"] else ""
    run.store(result, {"clicks": rows})


if __name__ == "__main__":
    main()
