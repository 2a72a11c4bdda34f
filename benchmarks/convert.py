"""Conversion speed and peak memory: `lion convert` vs a plain read-resample-write baseline.

Whole-body-sized synthetic cases (PET 200x200x400 voxels at 4 mm; TotalSegmentator-style organ
masks on a 1.5 mm CT grid, so every organ is resampled). Each method runs in its own process with
one worker, so ``ru_maxrss`` is that worker's peak memory. The baseline does the minimum: read the
PET and every organ mask, resample the masks onto the PET grid, write PET and one label map; LION
adds validation, SUV checks, merging, lesion counting, atomic writes and resume records.

    python benchmarks/convert.py            # 4 whole-body cases
    python benchmarks/convert.py --quick    # 3 small cases, seconds
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

#: lion's peak memory per worker must stay below this (GB)
TARGET_PEAK_GB = 4


def _baseline(cohort: Path, out: Path) -> int:
    """Read PET + every organ mask, resample masks to the PET grid, write PET + label."""
    out.mkdir(parents=True, exist_ok=True)
    n = 0
    for pet_path in sorted((cohort / "studies").rglob("SUV.nii.gz")):
        rel = pet_path.parent.relative_to(cohort / "studies")
        pet = sitk.ReadImage(str(pet_path))
        label = np.zeros(pet.GetSize()[::-1], np.uint8)
        for i, mask_path in enumerate(sorted((cohort / "organs" / rel).glob("*.nii.gz"))):
            mask = sitk.Resample(sitk.ReadImage(str(mask_path)), pet, sitk.Transform(),
                                 sitk.sitkNearestNeighbor, 0)  # fmt: skip
            label[sitk.GetArrayFromImage(mask) > 0] = i + 2
        tumor = sitk.GetArrayFromImage(sitk.ReadImage(str(pet_path.parent / "SEG.nii.gz")))
        label[tumor > 0] = 1
        img = sitk.GetImageFromArray(label)
        img.CopyInformation(pet)
        case = "_".join(rel.parts)
        sitk.WriteImage(pet, str(out / f"{case}_0000.nii.gz"), True)
        sitk.WriteImage(img, str(out / f"{case}.nii.gz"), True)
        n += 1
    return n


def _lion(cohort: Path, out: Path) -> int:
    from lion_nnunet.dataset_conversion.autopet import discover_autopet
    from lion_nnunet.dataset_conversion.raw_dataset import convert_cohort
    from lion_nnunet.labels import get_label_set

    os.environ["nnUNet_raw"] = str(out)
    cases = discover_autopet(cohort / "studies", cohort / "organs", "fdg", cohort / "cases.csv")
    convert_cohort(cases, 990, "Bench", get_label_set("fdg"), num_processes=1, progress=False)
    return len(cases)


def worker(method: str, cohort: Path, out: Path) -> None:
    """Run one method in this process and print seconds, cases and peak RSS as JSON."""
    start = time.perf_counter()
    n = {"lion": _lion, "baseline": _baseline}[method](cohort, out)
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"method": method, "cases": n, "seconds": seconds, "peak_mb": peak_mb}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 small cases instead of whole-body")
    parser.add_argument("--cases", type=int, default=None)
    parser.add_argument("--worker", choices=("lion", "baseline"), help=argparse.SUPPRESS)
    parser.add_argument("--cohort", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, Path(args.cohort), Path(args.out))
        return

    from store import Run

    from lion_nnunet.synthetic.phantoms import make_cohort

    run = Run("convert")
    size = "small" if args.quick else "wholebody"
    n = args.cases or (3 if args.quick else 4)
    with tempfile.TemporaryDirectory() as tmp:
        cohort = Path(tmp) / "cohort"
        t0 = time.perf_counter()
        make_cohort(cohort, "fdg", n, seed=0, size=size, progress=False)
        print(f"made {n} {size} FDG cases in {time.perf_counter() - t0:.1f} s")
        runs = {}
        for method in ("baseline", "lion"):
            proc = subprocess.run(
                [sys.executable, __file__, "--worker", method, "--cohort", str(cohort),
                 "--out", str(Path(tmp) / method)],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            runs[method] = json.loads(proc.stdout.strip().splitlines()[-1])
    for r in runs.values():
        r["cases_per_s"] = r["cases"] / r["seconds"]
        print(f"{r['method']:>8}: {r['cases']} cases in {r['seconds']:.1f} s = "
              f"{r['cases_per_s']:.2f} cases/s, peak {r['peak_mb']:.0f} MB per worker")  # fmt: skip
    ratio = runs["lion"]["seconds"] / runs["baseline"]["seconds"]
    peak_gb = runs["lion"]["peak_mb"] / 1024
    print(f"lion / baseline time: {ratio:.2f}x; lion peak memory "
          f"{peak_gb:.2f} GB per worker (target < {TARGET_PEAK_GB} GB)")  # fmt: skip
    run.store(
        {"size": size, "cases": n, "time_ratio": ratio, "lion_peak_gb": peak_gb,
         "target_peak_gb": TARGET_PEAK_GB, "runs": runs},
        {"runs": list(runs.values())},
    )  # fmt: skip


if __name__ == "__main__":
    main()
