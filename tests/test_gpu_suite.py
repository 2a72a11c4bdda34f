"""benchmarks/gpu_suite.py runs before any device time is spent: --quick --device cpu, end to end.

The suite's own numbers are timings (not checked here); what is checked is that every step ran,
that both trainers trained with finite losses, and that ``lion predict``'s tumor + organ outputs
put back together equal ``nnUNetv2_predict``'s label map from the same checkpoint (nnU-Net is
the reference). The budget knob is tested by its effect: a budget too small for any step skips
every step and still writes the results.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SUITE = Path(__file__).resolve().parent.parent / "benchmarks" / "gpu_suite.py"


def _run_suite(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess, dict, str]:
    out = tmp_path / "gpu_suite.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, str(SUITE), "--device", "cpu", "--out", str(out), *args],
        capture_output=True, text=True, env=env, timeout=1200, check=False,
    )  # fmt: skip
    assert out.is_file(), done.stderr[-2000:]
    return done, json.loads(out.read_text()), out.with_suffix(".txt").read_text()


@pytest.mark.slow
def test_quick_cpu_suite_runs_every_step(tmp_path: Path) -> None:
    done, result, summary = _run_suite(tmp_path, "--quick", "--budget-s", "1100")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert {k: v["status"] for k, v in result["steps"].items()} == {
        "data": "ok", "train": "ok", "predict": "ok", "gpu_tests": "ok",
    }  # fmt: skip
    data = result["data"]
    assert len(data["cases"]) == 3
    assert data["image_size_xyz"] == [48, 40, 96]  # the small phantom grid (x, y, z)
    trainers = result["train"]["trainers"]
    assert set(trainers) == {"nnUNetTrainer", "nnUNetTrainer_LION"}
    for t in trainers.values():
        assert t["iterations"] == 2
        assert t["median_step_s"] > 0
        assert t["losses_finite"]
        assert t["peak_allocated_gib"] is None  # no CUDA: no memory figures claimed
    pred = result["predict"]
    # non-vacuous: nnU-Net's label map holds more than background
    assert len(pred["label_values_nnunet"]) > 1
    assert pred["label_maps_equal"]
    assert pred["tta"] is False
    # the gpu-marked tests were collected and skipped/deselected here, not failed
    assert result["gpu_tests"]["returncode"] == 0, result["gpu_tests"]
    assert "skipped" in result["gpu_tests"]["summary"], result["gpu_tests"]  # found, no CUDA
    assert "LION / stock step time" in summary
    assert "label maps equal: True" in summary
    # a stored result renders into docs/benchmarks.md (benchmarks/make_docs.py)
    sys.path.insert(0, str(SUITE.parent))
    try:
        import make_docs

        section = make_docs.gpu_suite(result)
    finally:
        sys.path.remove(str(SUITE.parent))
    assert summary in section and "gpu.md" in section


def test_budget_too_small_skips_every_step(tmp_path: Path) -> None:
    done, result, summary = _run_suite(tmp_path, "--quick", "--budget-s", "12")
    assert done.returncode == 0, done.stderr[-2000:]
    assert result["steps"], "no step recorded"
    assert all(s["status"] == "skipped (budget)" for s in result["steps"].values())
    assert "train" not in result and "predict" not in result
    assert result["seconds_total"] < 60
    assert "skipped (budget)" in summary


def test_cuda_asked_without_cuda_is_refused(tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    out = tmp_path / "r.json"
    done = subprocess.run(
        [sys.executable, str(SUITE), "--device", "cuda", "--out", str(out)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert "no CUDA GPU" in done.stderr
    assert not out.exists()
