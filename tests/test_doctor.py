"""`lion doctor` and `lion env`: the checks a user runs when nnU-Net cannot find the trainers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from lion_nnunet.cli import main
from lion_nnunet.trainers.discovery import shim_folder


def test_doctor_reports_ok_with_folders_set(nnunet_dirs: dict, capsys) -> None:
    assert main(["doctor", "--json"]) == 0
    checks = {c["name"]: c for c in json.loads(capsys.readouterr().out)}
    assert checks["nnU-Net finds nnUNetTrainer_LION"]["status"] == "ok"
    assert checks["nnunetv2"]["found"].startswith("2.8.")
    assert checks["nnUNet_raw"]["status"] == "ok"
    assert checks["device"]["status"] in ("ok", "warn")


def test_doctor_names_the_fix_for_each_problem(monkeypatch, capsys) -> None:
    for var in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results", "nnUNet_extTrainer"):
        monkeypatch.delenv(var, raising=False)
    assert main(["doctor"]) == 1  # the trainer is not found: inference fails
    out = capsys.readouterr().out
    assert "[fail] nnU-Net finds nnUNetTrainer_LION: not found" in out
    assert 'fix: eval "$(lion env)"' in out
    assert "[warn] nnUNet_raw: <unset>" in out and "fix: export nnUNet_raw=" in out


def test_inference_users_pass_without_nnunet_folders(monkeypatch, capsys) -> None:
    for var in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        monkeypatch.delenv(var, raising=False)
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    inference, training = out.split("training (")
    assert "[  ok] nnU-Net finds nnUNetTrainer_LION" in inference and "nnUNet_raw" not in inference
    for var in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        assert f"[warn] {var}: <unset>" in training
    assert training.count("only needed for training; lion predict works without it") == 3
    assert main(["doctor", "--for", "inference", "--json"]) == 0
    checks = json.loads(capsys.readouterr().out)
    assert checks and {c["purpose"] for c in checks} == {"inference"}
    assert not any(c["name"].startswith("nnUNet_r") for c in checks)
    assert main(["doctor", "--for", "training"]) == 1  # training needs the folders
    assert "[fail] nnUNet_raw: <unset>" in capsys.readouterr().out


def test_env_line_makes_a_clean_shell_find_the_trainer(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "nnUNet_extTrainer"}
    lion = str(Path(sys.executable).parent / "lion")
    line = subprocess.run([lion, "env"], capture_output=True, text=True, env=env, check=True).stdout
    assert line.strip() == f"export nnUNet_extTrainer={shim_folder()}"
