"""Two CPU trainings: one after the other vs side by side (what `lion demo` does on 2 cores).

Builds the demo's dataset shape (small FDG phantoms, LION plans with the demo's 48 x 32 x 32
patch and 8 first-stage features) in a temporary nnU-Net tree, then runs the demo trainer's
``train_step`` (nnU-Net's own data loader and augmentation, in the training process) in worker
processes, three ways, and reports iterations per second of wall time for the pair:

* in a row, each with every core (what ``nnUNetv2_train -device cpu`` sets up);
* side by side, each with every core (two ``nnUNetv2_train`` commands at once: oversubscribed);
* side by side, each with its share (``OMP_NUM_THREADS``, honoured by the LION trainers).

    python benchmarks/side_by_side.py            # 30 iterations per training
    python benchmarks/side_by_side.py --quick    # 8
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from run_all import SUMMARY_MARK
from train_step import _prepare

TRAINER = "nnUNetTrainer_LION_tumorDice_demo"


def _worker(iterations: int) -> None:
    """Time ``iterations`` training steps of the demo trainer; print seconds as JSON."""
    import torch
    from nnunetv2.run.run_training import get_trainer_from_args

    torch.set_num_threads(os.cpu_count() or 1)  # as nnUNetv2_train -device cpu does
    trainer = get_trainer_from_args(
        "980", "3d_fullres", 0, TRAINER, "LIONPlans", device=torch.device("cpu")
    )  # the LION trainer then applies OMP_NUM_THREADS, where set
    trainer.initialize()
    trainer.on_train_start()
    trainer.on_epoch_start()
    for _ in range(2):  # warm-up
        trainer.train_step(next(trainer.dataloader_train))
    start = time.perf_counter()
    for _ in range(iterations):
        trainer.train_step(next(trainer.dataloader_train))
    seconds = time.perf_counter() - start
    trainer.on_train_end()
    print(json.dumps({"seconds": seconds, "threads": torch.get_num_threads()}))


def _run(root: Path, iterations: int, side_by_side: bool, threads: int | None) -> dict:
    env = dict(os.environ)
    env.pop("OMP_NUM_THREADS", None)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    cmd = [sys.executable, __file__, "--worker", str(iterations), "--root", str(root)]
    start = time.perf_counter()
    if side_by_side:
        procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True) for _ in "ab"]
        outs = [p.communicate()[0] for p in procs]
        assert all(p.returncode == 0 for p in procs), "a worker failed"
    else:
        outs = [subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
                for _ in "ab"]  # fmt: skip
    wall = time.perf_counter() - start
    workers = [json.loads(o.strip().splitlines()[-1]) for o in outs]
    steps = (
        sum(w["seconds"] for w in workers)
        if not side_by_side
        else max(w["seconds"] for w in workers)
    )
    return {
        "iterations_per_s": 2 * iterations / steps,
        "threads_each": workers[0]["threads"],
        "wall_s_incl_startup": wall,
        "workers": workers,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        for var in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
            os.environ[var] = str(Path(args.root) / var)
        os.environ.update(nnUNet_compile="false", nnUNet_n_proc_DA="0")
        _worker(args.worker)
        return
    from store import Run

    run = Run("side_by_side")
    iterations = 8 if args.quick else 30
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        _prepare(Path(tmp), patch=(48, 32, 32), base_features=8)
        ways = {
            "in a row, all cores each": _run(Path(tmp), iterations, False, None),
            "side by side, all cores each": _run(Path(tmp), iterations, True, None),
            "side by side, OMP_NUM_THREADS=cores/2": _run(
                Path(tmp), iterations, True, max(1, cores // 2)
            ),
        }
    base = ways["in a row, all cores each"]["iterations_per_s"]
    print(f"{SUMMARY_MARK} (cpu, {cores} cores; demo plans; {iterations} iterations per training)")
    for name, r in ways.items():
        r["vs_in_a_row"] = r["iterations_per_s"] / base
        print(
            f"{name:>38}: {r['iterations_per_s']:.2f} iterations/s "
            f"({r['threads_each']} threads each; x{r['vs_in_a_row']:.2f})"
        )
    rows = [{"way": name, "worker": i, "iterations": iterations, **w}
            for name, r in ways.items() for i, w in enumerate(r.pop("workers"))]  # fmt: skip
    run.store({"cores": cores, "iterations": iterations, "ways": ways}, {"workers": rows})


if __name__ == "__main__":
    main()
