"""Evaluation speed: LION's metrics (cc3d, bincount) vs a scipy.ndimage baseline, same cases.

Whole-body-sized masks (400 x 200 x 200 voxels, z, y, x) with 1-12 spherical lesions each and a
prediction that shifts some lesions, misses some and adds false positives. Both implementations
must agree on every number (checked), then cases/s and the ratio are printed. The baseline is the
straightforward way: scipy.ndimage.label with the 18-neighbourhood structure and a Python loop
over components.

    python benchmarks/evaluate.py            # 100 cases
    python benchmarks/evaluate.py --quick    # 10 smaller cases
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy import ndimage

from lion_nnunet.analysis.metrics import case_metrics

SPACING = (4.0, 4.0, 4.0)


def synthetic_case(
    rng: np.random.Generator, shape: tuple[int, int, int]
) -> tuple[np.ndarray, np.ndarray]:
    gt = np.zeros(shape, bool)
    pred = np.zeros(shape, bool)
    zz, yy, xx = np.ogrid[: shape[0], : shape[1], : shape[2]]
    for _ in range(int(rng.integers(1, 13))):
        c = rng.uniform(10, np.array(shape) - 10)
        r = rng.uniform(2, 8)
        ball = (zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2 <= r**2
        gt |= ball
        if rng.random() < 0.8:  # found, slightly shifted
            pred |= np.roll(ball, int(rng.integers(-2, 3)), axis=0)
    for _ in range(int(rng.integers(0, 4))):  # false positives
        c = rng.uniform(10, np.array(shape) - 10)
        pred |= (zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2 <= rng.uniform(2, 5) ** 2
    return pred, gt


def scipy_metrics(pred: np.ndarray, gt: np.ndarray, spacing: tuple[float, ...]) -> dict:
    """The baseline: ndimage.label (18-connectivity) and a loop over components."""
    structure = ndimage.generate_binary_structure(3, 2)  # 18-neighbourhood
    vml = float(np.prod(spacing)) / 1000
    pred_lab, n_pred = ndimage.label(pred, structure)
    gt_lab, n_gt = ndimage.label(gt, structure)
    fp = fn = tp = fp_l = 0
    for i in range(1, n_pred + 1):
        comp = pred_lab == i
        if not (comp & gt).any():
            fp += int(comp.sum())
            fp_l += 1
    for i in range(1, n_gt + 1):
        comp = gt_lab == i
        if (comp & pred).any():
            tp += 1
        else:
            fn += int(comp.sum())
    return {"fp_volume_ml": fp * vml, "fn_volume_ml": fn * vml, "lesions_tp": tp,
            "lesions_fp": fp_l, "lesions_fn": n_gt - tp}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--cases", type=int)
    args = parser.parse_args()
    from store import Run

    run = Run("evaluate")
    shape = (200, 100, 100) if args.quick else (400, 200, 200)
    n = args.cases or (10 if args.quick else 100)
    rng = np.random.default_rng(0)
    cases = [synthetic_case(rng, shape) for _ in range(min(n, 10))]  # reuse 10 distinct cases
    timings = {"lion_cc3d": 0.0, "scipy_baseline": 0.0}
    rows = []
    for k in range(n):
        pred, gt = cases[k % len(cases)]
        t = time.perf_counter()
        ours = case_metrics(pred, gt, SPACING)
        lion_s = time.perf_counter() - t
        t = time.perf_counter()
        base = scipy_metrics(pred, gt, SPACING)
        scipy_s = time.perf_counter() - t
        timings["lion_cc3d"] += lion_s
        timings["scipy_baseline"] += scipy_s
        for key, value in base.items():
            assert abs(ours[key] - value) < 1e-9, (key, ours[key], value)
        rows.append({"case": k, "distinct_case": k % len(cases), "lion_cc3d_s": lion_s,
                     "scipy_baseline_s": scipy_s, **base})  # fmt: skip
    rates = {k: n / v for k, v in timings.items()}
    ratio = timings["scipy_baseline"] / timings["lion_cc3d"]
    print(f"{n} cases of {shape[0]}x{shape[1]}x{shape[2]} voxels (z,y,x); results identical")
    for k, v in timings.items():
        print(f"{k:>15}: {v:.1f} s = {rates[k]:.1f} cases/s")
    print(f"lion (cc3d) is {ratio:.1f}x faster than the scipy.ndimage baseline")
    run.store({"cases": n, "shape_zyx": shape, "identical": True, "seconds": timings,
               "cases_per_s": rates, "speedup": ratio}, {"per_case": rows})  # fmt: skip


if __name__ == "__main__":
    main()
