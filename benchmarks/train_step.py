"""Training-step overhead: nnUNetTrainer_LION vs stock nnUNetTrainer, same plans and data.

Builds a small synthetic FDG dataset with the LION plans (in a temporary nnU-Net tree), then
times ``train_step`` of both trainers on batches from their own data loaders (single-threaded
loading, so data loading counts for both), alternating blocks of iterations A/B/A/B to cancel
drift. The LION trainer adds tumor-focused sampling and a weighted CE; the target is < 5 %.
On CPU it also keeps its convolution weights channels-last (``lion_channels_last_cpu``); a third
arm, the same LION trainer with its weights put back into nnU-Net's layout, measures what that
layout alone changes (``layout_ratio``: channels-last / nnU-Net's layout).

    python benchmarks/train_step.py            # 6 blocks x 10 iterations per trainer
    python benchmarks/train_step.py --quick    # 2 blocks x 4 iterations
    python benchmarks/train_step.py --device cuda
    python benchmarks/train_step.py --threads 1 --base-features 8   # one arm of lion demo
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from run_all import SUMMARY_MARK

#: LION's iteration may take at most this much longer than stock nnU-Net's (%)
TARGET_PCT = 5
BIN = Path(sys.executable).parent
#: The third arm (CPU): the LION trainer with its weights in nnU-Net's (contiguous) layout.
LION_PLAIN = "nnUNetTrainer_LION, nnU-Net's weight layout"


def _prepare(
    root: Path, patch: tuple[int, int, int] = (64, 32, 32), base_features: int = 16
) -> None:
    """8 small FDG phantoms as dataset 980 with LION plans (patch z, y, x), preprocessed."""
    from lion_nnunet.dataset_conversion.autopet import discover_autopet
    from lion_nnunet.dataset_conversion.raw_dataset import convert_cohort
    from lion_nnunet.labels import get_label_set
    from lion_nnunet.synthetic.phantoms import make_cohort

    for var in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        os.environ[var] = str(root / var)
        (root / var).mkdir(parents=True, exist_ok=True)
    os.environ.update(nnUNet_compile="false", nnUNet_n_proc_DA="0")
    make_cohort(root / "cohort", "fdg", 8, seed=0, progress=False)
    cases = discover_autopet(root / "cohort/studies", root / "cohort/organs", "fdg")
    convert_cohort(cases, 980, "TrainStep", get_label_set("fdg"), progress=False)
    for cmd in (
        ["nnUNetv2_extract_fingerprint", "-d", "980", "-np", "1"],
        ["lion", "plans", "install", "-d", "980", "--tracer", "fdg", "--patch-size",
         *map(str, patch), "--spacing", "dataset", "--base-features", str(base_features)],
        ["nnUNetv2_preprocess", "-d", "980", "-plans_name", "LIONPlans", "-c", "3d_fullres",
         "-np", "1"],
    ):  # fmt: skip
        subprocess.run([str(BIN / cmd[0]), *cmd[1:]], check=True, capture_output=True)


def _trainer(name: str, device: str):
    import torch
    from nnunetv2.run.run_training import get_trainer_from_args

    # nnU-Net's own construction path (it adds the plans keys its constructor expects)
    trainer = get_trainer_from_args(
        "980", "3d_fullres", 0, name, "LIONPlans", device=torch.device(device)
    )
    trainer.initialize()
    trainer.on_train_start()
    trainer.on_epoch_start()
    return trainer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--base-features", type=int, default=16,
                        help="first-stage features (lion demo: 8)")  # fmt: skip
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads on CPU (lion demo trains two arms with 1 each); "
                             "default: torch's own")  # fmt: skip
    args = parser.parse_args()
    from store import Run

    run = Run("train_step")
    blocks, per_block = (2, 4) if args.quick else (6, 10)
    with tempfile.TemporaryDirectory() as tmp:
        _prepare(Path(tmp), base_features=args.base_features)
        import torch

        torch.manual_seed(0)
        if args.threads:
            os.environ["OMP_NUM_THREADS"] = str(args.threads)  # the LION trainers honour it
            torch.set_num_threads(args.threads)
        trainers = {
            "stock nnUNetTrainer": _trainer("nnUNetTrainer", args.device),
            "nnUNetTrainer_LION": _trainer("nnUNetTrainer_LION", args.device),
        }
        if args.device == "cpu":
            plain = _trainer("nnUNetTrainer_LION", args.device)
            plain.network.to(memory_format=torch.contiguous_format)
            trainers[LION_PLAIN] = plain
        times: dict[str, list[float]] = {k: [] for k in trainers}
        rows = []
        for t in trainers.values():  # warm-up
            for _ in range(2):
                t.train_step(next(t.dataloader_train))
        for block in range(blocks):
            for name, t in trainers.items():
                for _ in range(per_block):
                    start = time.perf_counter()
                    t.train_step(next(t.dataloader_train))
                    if args.device == "cuda":
                        torch.cuda.synchronize()
                    times[name].append(time.perf_counter() - start)
                    rows.append({"trainer": name, "block": block, "seconds": times[name][-1]})
        for t in trainers.values():
            t.on_train_end()
    import statistics

    med = {k: statistics.median(v) for k, v in times.items()}
    ratio = med["nnUNetTrainer_LION"] / med["stock nnUNetTrainer"]
    layout = med["nnUNetTrainer_LION"] / med[LION_PLAIN] if LION_PLAIN in med else None
    # the hooks alone (sampling, loss), both in nnU-Net's weight layout
    hooks = med[LION_PLAIN] / med["stock nnUNetTrainer"] if LION_PLAIN in med else ratio
    print(f"{SUMMARY_MARK} ({args.device}; LION plans shrunk to the phantoms, batch of the plans)")
    for k, v in med.items():
        print(f"{k:>20}: median {v * 1000:.0f} ms/iteration over {len(times[k])} iterations")
    print(
        f"LION / stock iteration time: {ratio:.3f} ({(ratio - 1) * 100:+.1f} %; "
        f"target within {TARGET_PCT} %)"
    )
    if layout is not None:
        print(f"LION channels-last / nnU-Net's weight layout: {layout:.3f}")
        print(f"LION hooks alone (both in nnU-Net's layout) / stock: {hooks:.3f} "
              f"(target within {TARGET_PCT} %)")  # fmt: skip
    run.store(
        {"device": args.device, "median_ms": {k: v * 1000 for k, v in med.items()},
         "iterations": {k: len(v) for k, v in times.items()}, "ratio": ratio,
         "difference_pct": (ratio - 1) * 100, "target_pct": TARGET_PCT,
         "layout_ratio": layout, "hooks_ratio": hooks, "threads": torch.get_num_threads(),
         "base_features": args.base_features},
        {"iterations": rows},
    )  # fmt: skip


if __name__ == "__main__":
    main()
