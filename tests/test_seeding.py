"""``LION_SEED``: the stock ``nnUNetv2_train`` with a LION trainer gives the same weights twice;
``LION_FINAL_VALIDATION=0`` skips nnU-Net's final validation (``--val`` still runs it).

Judged by the effect, on checkpoints written by the stock command: the same seed gives equal
weights, bit for bit, with nnU-Net's augmentation worker processes on (the path nnU-Net makes
non-deterministic); another seed gives other weights.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import torch
from fixtures_nnunet import BIN

from lion_nnunet.nnunet_env import FINAL_VALIDATION_VAR

TRAINER = "nnUNetTrainer_LION_1ep_2it"


def _train(model: dict, results: Path, seed: str | None, n_proc_da: str, validate: bool = True,
           *more: str) -> subprocess.Popen:  # fmt: skip
    env = {**os.environ, "nnUNet_results": str(results), "nnUNet_n_proc_DA": n_proc_da,
           "OMP_NUM_THREADS": "1"}  # fmt: skip
    env.pop("LION_SEED", None)
    env.pop(FINAL_VALIDATION_VAR, None)
    if seed is not None:
        env["LION_SEED"] = seed
    if not validate:
        env[FINAL_VALIDATION_VAR] = "0"
    cmd = [str(BIN / "nnUNetv2_train"), str(model["dataset_id"]), "3d_fullres", "0", "-p",
           "LIONPlans", "-tr", TRAINER, "-device", "cpu", *more]  # fmt: skip
    results.mkdir(parents=True, exist_ok=True)
    with (results / "train.log").open("a") as log:
        return subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)  # fmt: skip


def _fold(results: Path, model: dict) -> Path:
    return results / model["dataset_dir"].name / f"{TRAINER}__LIONPlans__3d_fullres" / "fold_0"


def _weights(results: Path, model: dict) -> dict[str, torch.Tensor]:
    checkpoint = torch.load(_fold(results, model) / "checkpoint_final.pth", map_location="cpu",
                            weights_only=False)  # fmt: skip
    return checkpoint["network_weights"]


@pytest.mark.slow
def test_same_seed_same_weights_other_seed_other_weights(
    trained_fdg_model: dict, tmp_path: Path
) -> None:
    # (seed, augmentation workers, final validation): LION_FINAL_VALIDATION=0 in a and c
    runs = {"a": ("3", "2", False), "b": ("3", "2", True), "c": ("4", "2", False)}
    procs = {k: _train(trained_fdg_model, tmp_path / k, *v) for k, v in runs.items()}
    for key, proc in procs.items():
        assert proc.wait(timeout=600) == 0, (tmp_path / key / "train.log").read_text()[-3000:]
    a, b, c = (_weights(tmp_path / k, trained_fdg_model) for k in runs)
    assert a.keys() == b.keys() == c.keys()
    unequal = [name for name in a if not torch.equal(a[name], b[name])]
    assert not unequal, f"LION_SEED=3 twice: {len(unequal)} tensors differ, e.g. {unequal[:3]}"
    assert any(not torch.equal(a[n], c[n]) for n in a), "LION_SEED=3 and 4: equal weights"
    log = next((tmp_path / "a").rglob("training_log_*.txt")).read_text()
    assert "LION_SEED=3: seeded" in log
    # LION_FINAL_VALIDATION=0 skipped nnU-Net's final validation; the default ran it
    assert "final validation skipped" in log
    assert not (_fold(tmp_path / "a", trained_fdg_model) / "validation").exists()
    validated = _fold(tmp_path / "b", trained_fdg_model) / "validation" / "summary.json"
    assert json.loads(validated.read_text())["foreground_mean"]["Dice"] >= 0
    # --val validates the saved model later, whatever the variable says
    later = _train(trained_fdg_model, tmp_path / "c", "4", "2", False, "--val")
    assert later.wait(timeout=600) == 0, (tmp_path / "c" / "train.log").read_text()[-3000:]
    summary = _fold(tmp_path / "c", trained_fdg_model) / "validation" / "summary.json"
    assert json.loads(summary.read_text())["metric_per_case"], "no case validated"


def test_bad_final_validation_value_is_one_sentence() -> None:
    from lion_nnunet.errors import LionError
    from lion_nnunet.nnunet_env import skip_final_validation

    assert skip_final_validation({FINAL_VALIDATION_VAR: "0"}) is True
    assert skip_final_validation({FINAL_VALIDATION_VAR: " 1 "}) is False
    assert skip_final_validation({}) is False
    with pytest.raises(LionError, match=r"LION_FINAL_VALIDATION='no': expected 0 \(skip"):
        skip_final_validation({FINAL_VALIDATION_VAR: "no"})


def test_bad_seed_is_one_sentence() -> None:
    from lion_nnunet.errors import LionError
    from lion_nnunet.trainers.seeding import seed_from_environment

    with pytest.raises(LionError, match=r"LION_SEED='seven': expected a non-negative integer"):
        seed_from_environment({"LION_SEED": "seven"})
