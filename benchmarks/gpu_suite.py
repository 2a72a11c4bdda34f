"""One prepared GPU measurement: memory and speed of LION against stock nnU-Net at the autoPET size.

One process, one device, one time budget that it enforces itself (``--budget-s``), so the whole
suite fits one 10-minute call of a lent GPU machine:

1. data: 3 whole-body FDG phantoms on the autoPET grid (400 x 400 x 300 voxels at 2.04 x 2.04 x
   3 mm; ``lion phantoms --size autopet``), converted, fingerprinted, planned with the shipped LION
   template unchanged (``lion plans install``) and preprocessed with the stock nnU-Net commands;
2. training: ``nnUNetTrainer_LION`` and stock ``nnUNetTrainer`` on the same plans, built through
   nnU-Net's own ``get_trainer_from_args``, alternating blocks of iterations; per trainer the
   seconds per ``train_step`` (AMP on CUDA, as nnU-Net trains; the batch is fetched outside the
   timed region, its loading time recorded apart), the peak memory torch allocated and reserved
   (``torch.cuda.max_memory_allocated`` / ``max_memory_reserved``) and nvidia-smi's view;
3. prediction: one whole-body case with ``lion predict`` and with ``nnUNetv2_predict``, the same
   checkpoint, test-time mirroring on, seconds end to end (process start, model load, writing);
4. the ``gpu``-marked tests (``pytest -m gpu``);
5. one JSON (``--out``; stored as ``benchmarks/results/gpu_suite/summary.json``, which
   ``benchmarks/make_docs.py`` renders into docs/benchmarks.md) and a short text summary beside
   it (same stem, ``.txt``).

A step that no longer fits the budget is recorded as ``skipped (budget)``; the JSON is written
after every step, so a killed run still leaves what it measured.

    python benchmarks/gpu_suite.py --device cuda                 # GPU machine: < 480 s
    python benchmarks/gpu_suite.py --quick --device cpu          # tiny grid, 2 iterations
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "gpu_suite" / "summary.json"
BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parent.parent
DATASET_ID = 982
PLANS = "LIONPlans"
CONFIGURATION = "3d_fullres"
TRAINERS = ("nnUNetTrainer", "nnUNetTrainer_LION")
#: seconds kept free at the end of the budget for writing the results
RESERVE_S = 10.0


class Suite:
    """The results dict, the budget and the step bookkeeping; writes JSON after every step."""

    def __init__(self, out: Path, budget_s: float, settings: dict) -> None:
        self.out = out
        self.budget_s = budget_s
        self.start = time.perf_counter()
        self.results: dict = {
            "suite": "gpu_suite",
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "settings": settings,
            "environment": _environment(settings["device"]),
            "steps": {},
        }

    def left(self) -> float:
        """Seconds of the budget still free (less the reserve for writing results)."""
        return self.budget_s - RESERVE_S - (time.perf_counter() - self.start)

    def step(self, name: str, needs_s: float, fn: Callable[[], dict | None]) -> dict | None:
        """Run ``fn`` when at least ``needs_s`` seconds are left; record status and seconds."""
        if self.left() < needs_s:
            self.results["steps"][name] = {"status": "skipped (budget)", "seconds": 0.0}
            print(f"[gpu_suite] {name}: skipped, {self.left():.0f} s left < {needs_s:.0f} s")
            self.write()
            return None
        print(f"[gpu_suite] {name} ...", flush=True)
        t0 = time.perf_counter()
        try:
            value = fn()
            status = "ok"
        except Exception as e:  # one failing step must not lose the others' numbers
            value, status = None, f"failed: {type(e).__name__}: {str(e).strip()[:500]}"
        seconds = round(time.perf_counter() - t0, 2)
        self.results["steps"][name] = {"status": status, "seconds": seconds}
        if value is not None:
            self.results[name] = value
        print(f"[gpu_suite] {name}: {status} ({seconds:.1f} s)", flush=True)
        self.write()
        return value

    def write(self) -> None:
        self.results["seconds_total"] = round(time.perf_counter() - self.start, 2)
        self.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.out.with_name(f".{self.out.name}.part")
        tmp.write_text(json.dumps(self.results, indent=2) + "\n")
        tmp.replace(self.out)
        summary = self.out.with_suffix(".txt")
        tmp = summary.with_name(f".{summary.name}.part")
        tmp.write_text(summary_text(self.results))
        tmp.replace(summary)


def _environment(device: str) -> dict:
    import torch

    env = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "host_cpus": os.cpu_count(),
    }
    from importlib.metadata import version

    env["nnunetv2"] = version("nnunetv2")
    if device == "cuda" and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        env["gpu"] = props.name
        env["gpu_memory_gib"] = round(props.total_memory / 2**30, 1)
    return env


def _run(cmd: list[str], log: Path, env: dict | None = None) -> float:
    """Run a console script of this Python (output to ``log``); seconds; error on failure."""
    exe = BIN / cmd[0]
    t0 = time.perf_counter()
    with log.open("a") as f:
        f.write(f"\n$ {' '.join(cmd)}\n")
        f.flush()
        done = subprocess.run(
            [str(exe), *cmd[1:]], stdout=f, stderr=subprocess.STDOUT, env=env, check=False
        )
    if done.returncode != 0:
        tail = log.read_text().strip().splitlines()[-5:]
        raise RuntimeError(f"{cmd[0]} exited {done.returncode}: {' | '.join(tail)}")
    return time.perf_counter() - t0


def prepare_data(root: Path, quick: bool, processes: int) -> dict:
    """Phantoms -> raw dataset -> fingerprint -> LION plans -> preprocessed; return the facts."""
    from lion_nnunet.dataset_conversion.autopet import discover_autopet
    from lion_nnunet.dataset_conversion.raw_dataset import convert_cohort
    from lion_nnunet.labels import get_label_set
    from lion_nnunet.synthetic.phantoms import make_cohort

    size = "small" if quick else "autopet"
    make_cohort(root / "cohort", "fdg", 3, seed=0, size=size, progress=False,
                diseases=["lymphoma", "lung_cancer", "melanoma"])  # fmt: skip
    cases = discover_autopet(root / "cohort/studies", root / "cohort/organs", "fdg")
    dataset = convert_cohort(cases, DATASET_ID, "GpuSuite", get_label_set("fdg"), progress=False)
    log = root / "commands.log"
    np_ = str(processes)
    _run(["nnUNetv2_extract_fingerprint", "-d", str(DATASET_ID), "-np", np_], log)
    install = ["lion", "plans", "install", "-d", str(DATASET_ID), "--tracer", "fdg"]
    if quick:  # the phantoms are 6 mm: shrink the network to them
        install += ["--patch-size", "32", "32", "32", "--spacing", "dataset", "--base-features",
                    "8", "--blocks-per-stage", "1", "--batch-size", "2"]  # fmt: skip
    _run(install, log)
    pre = Path(os.environ["nnUNet_preprocessed"]) / dataset.name
    plans = json.loads((pre / f"{PLANS}.json").read_text())
    # three cases: fold 0 trains on all of them (the suite times steps, it does not validate)
    ids = sorted(p.name[: -len("_0000.nii.gz")] for p in (dataset / "imagesTr").iterdir())
    (pre / "splits_final.json").write_text(json.dumps([{"train": ids, "val": ids[:1]}]))
    _run(["nnUNetv2_preprocess", "-d", str(DATASET_ID), "-plans_name", PLANS,
          "-c", CONFIGURATION, "-np", np_], log)  # fmt: skip
    config = plans["configurations"][CONFIGURATION]
    import SimpleITK as sitk

    first = sitk.ReadImage(str(dataset / "imagesTr" / f"{ids[0]}_0000.nii.gz"))
    return {
        "dataset": dataset.name,
        "cases": ids,
        "image_size_xyz": list(first.GetSize()),
        "spacing_xyz_mm": [round(s, 4) for s in first.GetSpacing()],
        "plans_patch_size_zyx": config["patch_size"],
        "plans_batch_size": config["batch_size"],
        "plans_spacing_zyx_mm": config["spacing"],
        "network": config["architecture"]["network_class_name"],
        "features_per_stage": config["architecture"]["arch_kwargs"]["features_per_stage"],
        "template_unchanged": not quick,
    }


def _nvidia_smi_used_mib() -> float | None:
    """Memory in use on GPU 0 as nvidia-smi reports it (MiB), or None without nvidia-smi."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    done = subprocess.run(
        [exe, "--query-gpu=memory.used", "--format=csv,noheader,nounits", "-i", "0"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    try:
        return float(done.stdout.strip().splitlines()[0])
    except (ValueError, IndexError):
        return None


def train(device: str, blocks: int, per_block: int) -> dict:
    """Alternating blocks of ``train_step`` for the stock and the LION trainer; one checkpoint."""
    import torch
    from nnunetv2.run.run_training import get_trainer_from_args

    from lion_nnunet.trainers.discovery import register_ext_trainer_folder

    register_ext_trainer_folder()
    cuda = device == "cuda"
    trainers = {}
    for name in TRAINERS:
        torch.manual_seed(0)
        t = get_trainer_from_args(
            str(DATASET_ID), CONFIGURATION, 0, name, PLANS, device=torch.device(device)
        )
        t.initialize()
        t.on_train_start()
        t.on_epoch_start()
        t.on_train_epoch_start()
        trainers[name] = t
    step_s: dict[str, list[float]] = {n: [] for n in TRAINERS}
    load_s: dict[str, list[float]] = {n: [] for n in TRAINERS}
    peak: dict[str, dict] = {n: {"allocated_gib": 0.0, "reserved_gib": 0.0} for n in TRAINERS}
    smi: dict[str, float | None] = dict.fromkeys(TRAINERS)
    losses: dict[str, list[float]] = {n: [] for n in TRAINERS}
    for t in trainers.values():  # warm-up: cuDNN autotuning, allocator growth
        t.train_step(next(t.dataloader_train))
    for _ in range(blocks):
        for name, t in trainers.items():
            if cuda:
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            for _ in range(per_block):
                t0 = time.perf_counter()
                batch = next(t.dataloader_train)
                t1 = time.perf_counter()
                out = t.train_step(batch)
                if cuda:
                    torch.cuda.synchronize()
                step_s[name].append(time.perf_counter() - t1)
                load_s[name].append(t1 - t0)
                losses[name].append(float(out["loss"]))
            if cuda:
                gib = 2**30
                peak[name]["allocated_gib"] = max(
                    peak[name]["allocated_gib"], round(torch.cuda.max_memory_allocated() / gib, 2)
                )
                peak[name]["reserved_gib"] = max(
                    peak[name]["reserved_gib"], round(torch.cuda.max_memory_reserved() / gib, 2)
                )
                smi[name] = _nvidia_smi_used_mib()
    result: dict = {"blocks": blocks, "iterations_per_block": per_block, "trainers": {}}
    for name in trainers:
        result["trainers"][name] = {
            "median_step_s": round(statistics.median(step_s[name]), 4),
            "median_batch_load_s": round(statistics.median(load_s[name]), 4),
            "iterations": len(step_s[name]),
            "amp": cuda,
            "peak_allocated_gib": peak[name]["allocated_gib"] if cuda else None,
            "peak_reserved_gib": peak[name]["reserved_gib"] if cuda else None,
            "nvidia_smi_used_mib": smi[name],
            "losses_finite": all(v == v and abs(v) != float("inf") for v in losses[name]),
        }
    stock, lion = (result["trainers"][n]["median_step_s"] for n in TRAINERS)
    result["lion_over_stock_step"] = round(lion / stock, 3)
    # the LION trainer's weights become the checkpoint both predictors load
    lion_trainer = trainers["nnUNetTrainer_LION"]
    lion_trainer.on_train_end()  # writes fold_0/checkpoint_final.pth, stops its loaders
    result["checkpoint"] = str(Path(lion_trainer.output_folder) / "checkpoint_final.pth")
    stock_trainer = trainers["nnUNetTrainer"]
    stock_trainer.disable_checkpointing = True
    stock_trainer.on_train_end()
    del trainers
    if cuda:
        torch.cuda.empty_cache()
    return result


def predict(root: Path, device: str, dataset: str, case: str, tta: bool) -> dict:
    """One case through ``lion predict`` and ``nnUNetv2_predict``: seconds, and the label maps.

    ``lion predict --save-organs`` writes the tumor and the organ classes apart; put back together
    they must equal nnU-Net's own label map voxel for voxel (same checkpoint, same settings).
    """
    import numpy as np
    import SimpleITK as sitk

    from lion_nnunet.labels import get_label_set

    raw = Path(os.environ["nnUNet_raw"]) / dataset
    inp = root / "predict_in"
    inp.mkdir(exist_ok=True)
    shutil.copy(raw / "imagesTr" / f"{case}_0000.nii.gz", inp / f"{case}_0000.nii.gz")
    model = (
        Path(os.environ["nnUNet_results"])
        / dataset
        / f"nnUNetTrainer_LION__{PLANS}__{CONFIGURATION}"
    )
    log = root / "predict.log"
    lion_cmd = ["lion", "predict", "-i", str(inp), "-o", str(root / "pred_lion"), "-m", str(model),
                "-f", "0", "--device", device, "--no-pbar", "--save-organs"]  # fmt: skip
    nnunet_cmd = ["nnUNetv2_predict", "-i", str(inp), "-o", str(root / "pred_nnunet"),
                  "-d", str(DATASET_ID), "-c", CONFIGURATION, "-p", PLANS,
                  "-tr", "nnUNetTrainer_LION", "-f", "0", "-device", device,
                  "-npp", "1", "-nps", "1"]  # fmt: skip
    if not tta:
        lion_cmd.append("--disable-tta")
        nnunet_cmd.append("--disable_tta")
    lion_s = _run(lion_cmd, log)
    nnunet_s = _run(nnunet_cmd, log)

    def read(path: Path) -> np.ndarray:
        return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))

    tumor = read(root / "pred_lion" / case / "tumor.nii.gz") > 0
    lion_map = read(root / "pred_lion" / case / "organs.nii.gz").astype(np.int16)
    lion_map[tumor] = get_label_set("fdg").tumor_label
    stock_map = read(root / "pred_nnunet" / f"{case}.nii.gz").astype(np.int16)
    return {
        "case": case,
        "tta": tta,
        "lion_predict_s": round(lion_s, 2),
        "nnUNetv2_predict_s": round(nnunet_s, 2),
        "lion_over_nnunet": round(lion_s / nnunet_s, 3),
        "label_values_nnunet": sorted(int(v) for v in np.unique(stock_map)),
        "tumor_voxels": int(tumor.sum()),
        "label_maps_equal": bool(np.array_equal(lion_map, stock_map)),
    }


def gpu_test_files() -> list[Path]:
    """The test files that mark tests ``gpu`` (``pytest.mark.gpu``, also as ``pytestmark``)."""
    return sorted(p for p in (REPO / "tests").glob("test_*.py") if "mark.gpu" in p.read_text())


def gpu_tests(timeout_s: float) -> dict:
    """``pytest -m gpu`` on this checkout's files with gpu tests (collecting every test file
    would import the whole suite's dependencies for nothing); the closing line and exit code."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider",
           "-o", "addopts=", *map(str, gpu_test_files() or [REPO / "tests"])]  # fmt: skip
    try:
        done = subprocess.run(
            cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired:
        return {"returncode": None, "summary": f"timed out after {timeout_s:.0f} s"}
    lines = [ln for ln in done.stdout.strip().splitlines() if ln.strip()]
    # pytest exits 5 when every test was deselected/none collected; 0 when all passed/skipped
    return {"returncode": done.returncode, "summary": lines[-1] if lines else ""}


def summary_text(results: dict) -> str:
    """A few lines a person reads first (the JSON has everything)."""
    env = results.get("environment", {})
    lines = [
        f"gpu_suite {results['date']} on {env.get('gpu', results['settings']['device'])} "
        f"(torch {env.get('torch')}, nnunetv2 {env.get('nnunetv2')}); "
        f"{results.get('seconds_total', 0):.0f} s of a "
        f"{results['settings']['budget_s']:.0f} s budget",
    ]
    for name, step in results["steps"].items():
        lines.append(f"  step {name}: {step['status']} ({step['seconds']:.1f} s)")
    data = results.get("data")
    if data:
        lines.append(
            f"data: {len(data['cases'])} cases of {data['image_size_xyz']} voxels (x, y, z) at "
            f"{data['spacing_xyz_mm']} mm; plans patch {data['plans_patch_size_zyx']} (z, y, x), "
            f"batch {data['plans_batch_size']}, template unchanged: {data['template_unchanged']}"
        )
    train_ = results.get("train")
    if train_:
        for name, t in train_["trainers"].items():
            mem = (
                f", peak {t['peak_allocated_gib']} GiB allocated / {t['peak_reserved_gib']} GiB "
                f"reserved, nvidia-smi {t['nvidia_smi_used_mib']} MiB"
                if t["peak_allocated_gib"] is not None
                else ""
            )
            lines.append(
                f"train {name}: {t['median_step_s']:.3f} s/step (median of {t['iterations']}), "
                f"batch load {t['median_batch_load_s']:.3f} s{mem}"
            )
        lines.append(f"LION / stock step time: {train_['lion_over_stock_step']:.3f}")
    pred = results.get("predict")
    if pred:
        lines.append(
            f"predict 1 case (TTA {'on' if pred['tta'] else 'off'}): lion predict "
            f"{pred['lion_predict_s']:.1f} s, nnUNetv2_predict {pred['nnUNetv2_predict_s']:.1f} s "
            f"(ratio {pred['lion_over_nnunet']:.2f}); label maps equal: {pred['label_maps_equal']}"
        )
    tests = results.get("gpu_tests")
    if tests:
        lines.append(f"gpu tests: {tests['summary']} (exit {tests['returncode']})")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument(
        "--quick", action="store_true",
        help="small phantoms, shrunk network, 2 iterations, no TTA (a CPU check)",
    )  # fmt: skip
    parser.add_argument("--budget-s", type=float, default=480.0,
                        help="the suite ends inside this many seconds")  # fmt: skip
    parser.add_argument(
        "--out", type=Path, default=None,
        help="results JSON (default: benchmarks/results/gpu_suite/summary.json; with --quick a "
        "file in the temporary folder, never a stored result)",
    )  # fmt: skip
    parser.add_argument("--work", type=Path, default=None,
                        help="working folder (default: a temporary one, removed)")  # fmt: skip
    parser.add_argument("--no-tests", action="store_true", help="skip the gpu-marked tests")
    args = parser.parse_args(argv)
    if args.out is None:
        args.out = Path(tempfile.gettempdir()) / "gpu_suite_quick.json" if args.quick else RESULTS
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu_suite: --device cuda, but torch sees no CUDA GPU; use --device cpu --quick",
              file=sys.stderr)  # fmt: skip
        return 1
    blocks, per_block = (1, 2) if args.quick else (3, 10)
    # --quick: 3 tiny cases, one worker per nnU-Net pool (each spawned worker imports torch and
    # nnU-Net, seconds of CPU, for milliseconds of work)
    processes = 1 if args.quick else min(8, os.cpu_count() or 1)
    settings = {"device": args.device, "quick": args.quick, "budget_s": args.budget_s,
                "blocks": blocks, "iterations_per_block": per_block}  # fmt: skip
    suite = Suite(args.out.resolve(), args.budget_s, settings)
    work = args.work or Path(tempfile.mkdtemp(prefix="lion_gpu_suite_"))
    work.mkdir(parents=True, exist_ok=True)
    for var in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        os.environ[var] = str(work / var)
        (work / var).mkdir(exist_ok=True)
    os.environ["nnUNet_compile"] = "false"  # compiling takes minutes on CUDA
    os.environ["nnUNet_n_proc_DA"] = "0" if args.quick else str(processes)
    try:
        # rough floors per step (s) on the GPU machine; a step that cannot fit is skipped
        data = suite.step("data", 60 if not args.quick else 5,
                          lambda: prepare_data(work, args.quick, processes))  # fmt: skip
        trained = None
        if data:
            trained = suite.step("train", 60 if not args.quick else 5,
                                 lambda: train(args.device, blocks, per_block))  # fmt: skip
        if data and trained:
            case, tta = data["cases"][0], not args.quick
            suite.step("predict", 60 if not args.quick else 5,
                       lambda: predict(work, args.device, data["dataset"], case, tta))  # fmt: skip
        if not args.no_tests:
            suite.step("gpu_tests", 20, lambda: gpu_tests(max(suite.left() - 5, 10)))
    finally:
        suite.write()
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    print(summary_text(suite.results), end="")
    failed = [n for n, s in suite.results["steps"].items() if s["status"].startswith("failed")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
