"""Session-scoped LION models trained with the STOCK nnU-Net commands on synthetic cohorts.

The whole user path, as subprocesses: lion convert -> nnUNetv2_extract_fingerprint -> lion plans
install -> nnUNetv2_preprocess -> nnUNetv2_train -tr <short LION schedule> -device cpu. Shared by
the end-to-end, inference and docs tests so each model is trained once per session.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lion_nnunet.dataset_conversion.autopet import discover_autopet
from lion_nnunet.dataset_conversion.raw_dataset import choose_test_cases, convert_cohort
from lion_nnunet.labels import get_label_set
from lion_nnunet.nnunet_env import FINAL_VALIDATION_VAR

BIN = Path(sys.executable).parent
E2E_TRAINER = "nnUNetTrainer_LION_2ep_5it"
PATCH = ("64", "32", "32")
#: The demo's network (lion_nnunet.demo.DemoSettings): 8 first-stage features, one block per stage.
SMALL_NET = ("--base-features", "8", "--blocks-per-stage", "1")
#: The same network for ``make_random_model``: tests of inputs, outputs and bookkeeping do not
#: need ResEnc-M's width (a 96 x 48 x 48 window: 0.16 s instead of 1.4 s on one CPU thread).
SMALL_RANDOM_NET = {"base_features": 8, "blocks_per_stage": (1,)}


def run_stock(*cmd: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run a console script of this venv; fail the test with its output tail when it fails."""
    exe = str(BIN / cmd[0]) if (BIN / cmd[0]).exists() else cmd[0]
    proc = subprocess.run(
        [exe, *cmd[1:]], capture_output=True, text=True, env=env or dict(os.environ),
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    if proc.returncode != 0:
        pytest.fail(
            f"{' '.join(cmd)} failed ({proc.returncode}):\n{(proc.stdout + proc.stderr)[-3000:]}"
        )
    return proc


def train_lion_model(
    cohort: Path, tracer: str, dataset_id: int, fold: str = "0", validate: bool = True
) -> dict:
    """Convert, plan, preprocess and train a short LION model; return where everything is.

    ``validate=False``: ``LION_FINAL_VALIDATION=0``, no final validation (nnU-Net's spawned
    export and scoring pools, each worker importing torch and nnU-Net: about 10 s of CPU here)
    for a model whose users never read ``validation/``."""
    cases = discover_autopet(cohort / "studies", cohort / "organs", tracer, cohort / "cases.csv")
    test = choose_test_cases([c.case_id for c in cases], 0.2, seed=0)
    for c in cases:
        c.split = "test" if c.case_id in test else "train"
    name = f"E2E_{tracer.upper()}"
    dataset_dir = convert_cohort(cases, dataset_id, name, get_label_set(tracer), progress=False)
    did = str(dataset_id)
    run_stock("nnUNetv2_extract_fingerprint", "-d", did, "-np", "1")
    run_stock("lion", "plans", "install", "--dataset", did, "--tracer", tracer,
              "--patch-size", *PATCH, "--spacing", "dataset", *SMALL_NET)  # fmt: skip
    run_stock("nnUNetv2_preprocess", "-d", did, "-plans_name", "LIONPlans", "-c", "3d_fullres",
              "-np", "1")  # fmt: skip
    env = {**os.environ, **({} if validate else {FINAL_VALIDATION_VAR: "0"})}
    run_stock("nnUNetv2_train", did, "3d_fullres", fold, "-p", "LIONPlans", "-tr", E2E_TRAINER,
              "-device", "cpu", env=env)  # fmt: skip
    results = Path(os.environ["nnUNet_results"]) / dataset_dir.name
    return {
        "dataset_id": dataset_id,
        "dataset_dir": dataset_dir,
        "tracer": tracer,
        "trainer": E2E_TRAINER,
        "model_dir": results / f"{E2E_TRAINER}__LIONPlans__3d_fullres",
        "fold": fold,
        "images_ts": dataset_dir / "imagesTs",
        "labels_ts": dataset_dir / "labelsTs",
    }


@pytest.fixture(scope="session")
def trained_fdg_model(session_nnunet_env: dict, fdg_cohort: Path) -> dict:
    """A LION FDG model (dataset 601, fold 0, 2 x 5 iterations) trained by the stock commands."""
    return train_lion_model(fdg_cohort, "fdg", 601)


@pytest.fixture(scope="session")
def trained_psma_model(session_nnunet_env: dict, psma_cohort: Path) -> dict:
    """A LION PSMA model (dataset 602) trained the same way, without the final validation."""
    return train_lion_model(psma_cohort, "psma", 602, validate=False)


@pytest.fixture(scope="session")
def stock_predicted(tmp_path_factory: pytest.TempPathFactory):
    """``stock_predicted(model)``: the folder where the stock ``nnUNetv2_predict
    --save_probabilities`` wrote ``model``'s test-set label maps and probabilities (read-only),
    run once per model and session (the e2e test checks them; test_predict reads the
    probabilities)."""
    done: dict[int, Path] = {}

    def predict(model: dict) -> Path:
        if model["dataset_id"] not in done:
            out = tmp_path_factory.mktemp(f"stock_pred_{model['dataset_id']}")
            run_stock(
                "nnUNetv2_predict", "-i", str(model["images_ts"]), "-o", str(out), "-d",
                str(model["dataset_id"]), "-c", "3d_fullres", "-p", "LIONPlans", "-tr",
                model["trainer"], "-f", model["fold"], "-device", "cpu", "-npp", "1", "-nps",
                "1", "--save_probabilities",
            )  # fmt: skip
            done[model["dataset_id"]] = out
        return done[model["dataset_id"]]

    return predict
