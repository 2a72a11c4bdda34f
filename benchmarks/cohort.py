"""Cohort throughput: `lion predict` on 1 and 2 Dask workers vs one process vs nnU-Net's parts.

One run, the same synthetic FDG phantoms for every arm (nnU-Net layout ``case_0000.nii.gz``), a
model folder with the LION FDG plans' residual-encoder architecture shrunk to a small patch and
random weights (throughput does not depend on the weights), CPU, mirroring off. Each arm is a
fresh process (or two), timed from start to exit as a user sees it, start-up included:

1. ``lion predict`` (today's single-process path, ``--cluster local``);
2. ``lion predict --cluster local:1`` (one Dask worker process);
3. ``lion predict --cluster local:2`` (two Dask worker processes, one torch thread each);
4. ``nnUNetv2_predict -num_parts 2 -part_id 0`` and ``-part_id 1`` as two processes at once.

Cases per minute of each, and the ratios (2 workers / 1 worker, 2 workers / one process,
2 workers / nnU-Net's two parts). On a machine shared with other work the load average is stored
with the result; compare the ratios of one run, not seconds across runs.

    python benchmarks/cohort.py            # 12 phantoms, about 10-20 min on 2 busy cores
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from run_all import SUMMARY_MARK

BIN = Path(sys.executable).parent


def _start(cmd: list[str], env: dict) -> subprocess.Popen:
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            stdin=subprocess.DEVNULL, env=env)  # fmt: skip


def _wait(procs: list[subprocess.Popen], cmd: list[str]) -> None:
    for proc in procs:
        out, _ = proc.communicate()
        if proc.returncode:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{out[-3000:]}")


def timed(cmds: list[list[str]], env: dict) -> float:
    """Wall seconds from starting every command (at once) until the last one exits."""
    start = time.perf_counter()
    procs = [_start(cmd, env) for cmd in cmds]
    _wait(procs, cmds[0])
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=12, help="phantoms (>= 12 for the docs)")
    args = parser.parse_args()
    from store import Run

    run = Run("cohort")

    from lion_nnunet.inference.model import make_random_model
    from lion_nnunet.nnunet_env import CPU_FRIENDLY_ENV
    from lion_nnunet.synthetic.phantoms import make_cohort

    patch, spacing = (32, 32, 64), (8.0, 8.0, 8.0)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        results = tmp / "nnUNet_results"
        model = make_random_model(
            results / "Dataset995_BENCH" / "nnUNetTrainer__LIONPlans__3d_fullres", "fdg",
            patch_size=patch, spacing=spacing,
        )  # fmt: skip
        make_cohort(tmp / "cohort", "fdg", args.cases, seed=0, progress=False)
        images = tmp / "imagesTs"
        images.mkdir()
        for i, suv in enumerate(sorted((tmp / "cohort" / "studies").rglob("SUV.nii.gz"))):
            shutil.copy(suv, images / f"case{i:03d}_0000.nii.gz")
        env = {**os.environ, **CPU_FRIENDLY_ENV, "nnUNet_results": str(results),
               "nnUNet_raw": str(tmp), "nnUNet_preprocessed": str(tmp)}  # fmt: skip
        lion = [str(BIN / "lion"), "predict", "-i", str(images), "-m", str(model), "-f", "0",
                "--device", "cpu", "--disable-tta", "--no-pbar", "-q"]  # fmt: skip
        arms = {
            "lion predict (one process)": [[*lion, "-o", str(tmp / "single")]],
            "lion predict --cluster local:1": [[*lion, "-o", str(tmp / "dask1"),
                                                "--cluster", "local:1"]],
            "lion predict --cluster local:2": [[*lion, "-o", str(tmp / "dask2"),
                                                "--cluster", "local:2"]],
            "nnUNetv2_predict -num_parts 2 (two processes)": [
                [str(BIN / "nnUNetv2_predict"), "-i", str(images), "-o", str(tmp / "stock"),
                 "-d", "995", "-c", "3d_fullres", "-p", "LIONPlans", "-tr", "nnUNetTrainer",
                 "-f", "0", "-device", "cpu", "--disable_tta", "-npp", "1", "-nps", "1",
                 "-num_parts", "2", "-part_id", str(part), "--disable_progress_bar"]
                for part in (0, 1)
            ],
        }  # fmt: skip
        rows = []
        for name, cmds in arms.items():
            seconds = timed(cmds, env)
            rows.append({"arm": name, "cases": args.cases, "seconds": seconds,
                         "cases_per_min": 60.0 * args.cases / seconds})  # fmt: skip
            print(f"{name}: {seconds:.1f} s, {rows[-1]['cases_per_min']:.2f} cases/min",
                  flush=True)  # fmt: skip
        done = {p.parent.name for p in (tmp / "dask2").glob("*/tumor.nii.gz")}
        stock = {p.name[: -len(".nii.gz")] for p in (tmp / "stock").glob("case*.nii.gz")}
        if len(done) != args.cases or done != stock:
            raise SystemExit(f"arms did not predict every case: {len(done)} and {len(stock)}")
    rate = {r["arm"]: r["cases_per_min"] for r in rows}
    names = list(arms)
    ratios = {
        "two_workers_over_one_worker": rate[names[2]] / rate[names[1]],
        "two_workers_over_one_process": rate[names[2]] / rate[names[0]],
        "two_workers_over_nnunet_two_parts": rate[names[2]] / rate[names[3]],
    }
    print(SUMMARY_MARK)
    for key, value in ratios.items():
        print(f"{key.replace('_', ' ')}: {value:.2f}x")
    summary = {"device": "cpu", "cases": args.cases, "patch": list(patch),
               "spacing_mm": list(spacing), "model": "LION FDG plans' architecture, patch "
               "shrunk, random weights", "arms": rows, "ratios": ratios}  # fmt: skip
    run.store(summary, {"arms": rows})


if __name__ == "__main__":
    main()
