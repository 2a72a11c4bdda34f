"""LION trainers: found by nnU-Net's own lookup, built and run against the pinned nnunetv2."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from lion_nnunet.errors import LionError
from lion_nnunet.trainers.discovery import find_trainer, register_ext_trainer_folder, shim_folder
from lion_nnunet.trainers.schedules import SCHEDULES, demo_trainer_name


def test_register_is_idempotent() -> None:
    env = {"nnUNet_extTrainer": os.pathsep.join(["/somewhere", str(shim_folder())])}
    before = env["nnUNet_extTrainer"]
    register_ext_trainer_folder(env)
    register_ext_trainer_folder(env)
    assert env["nnUNet_extTrainer"] == before
    env = {}
    register_ext_trainer_folder(env)
    register_ext_trainer_folder(env)
    assert env["nnUNet_extTrainer"] == str(shim_folder())


def test_installed_startup_file_sets_the_folder() -> None:
    # the .pth file installed into site-packages ran when this interpreter started
    parts = os.environ.get("nnUNet_extTrainer", "").split(os.pathsep)
    assert parts.count(str(shim_folder())) == 1


@pytest.mark.parametrize(
    "name", ["nnUNetTrainer_LION", "nnUNetTrainer_LION_unweighted", "nnUNetTrainer_LION_4ep_12it"]
)
def test_nnunet_lookup_finds_lion_classes_not_stock_ones(name: str) -> None:
    cls = find_trainer(name)
    assert cls is not None, f"nnU-Net's trainer search does not find {name}"
    assert cls.__module__.startswith("lion_nnunet.trainers"), cls.__module__


def test_schedules() -> None:
    assert demo_trainer_name(4, 12) == "nnUNetTrainer_LION_4ep_12it"
    cls = SCHEDULES["nnUNetTrainer_LION_4ep_12it"]
    assert (cls.lion_num_epochs, cls.lion_iterations_per_epoch, cls.lion_mirroring) == (
        4,
        12,
        False,
    )
    with pytest.raises(LionError, match="choose epochs from"):
        demo_trainer_name(3, 12)


@pytest.mark.slow
@pytest.mark.parametrize(
    "name",
    ["nnUNetTrainer_LION", "nnUNetTrainer_LION_unweighted", "nnUNetTrainer_LION_uniformSampling"],
)
def test_trainer_builds_and_trains_two_iterations(name: str, trained_fdg_model: dict) -> None:
    from nnunetv2.run.run_training import get_trainer_from_args

    cls = find_trainer(name)
    did = str(trained_fdg_model["dataset_id"])
    trainer = get_trainer_from_args(
        did, "3d_fullres", 0, name, "LIONPlans", device=torch.device("cpu")
    )
    trainer.initialize()
    core = trainer.loss.loss if hasattr(trainer.loss, "loss") else trainer.loss
    weight = core.ce.weight
    if name == "nnUNetTrainer_LION_unweighted":
        assert weight is None
    else:
        assert weight is not None and float(weight[1]) == cls.lion_tumor_ce_weight
    old = os.environ.get("nnUNet_n_proc_DA")
    os.environ["nnUNet_n_proc_DA"] = "0"
    try:
        dl_train, _ = trainer.get_dataloaders()
    finally:
        os.environ["nnUNet_n_proc_DA"] = old or "2"
    focused = "TumorFocused" in type(dl_train.data_loader._data).__name__
    assert focused == (name != "nnUNetTrainer_LION_uniformSampling")
    trainer.network.train()
    losses = [trainer.train_step(next(dl_train))["loss"] for _ in range(2)]
    assert all(np.isfinite(losses))


@pytest.mark.slow
def test_tumor_focused_dataset_returns_tumor_locations(trained_fdg_model: dict) -> None:
    from nnunetv2.paths import nnUNet_preprocessed

    from lion_nnunet.trainers import sampling

    name = trained_fdg_model["dataset_dir"].name
    ds = sampling.TumorFocusedDatasetBlosc2(
        str(Path(nnUNet_preprocessed) / name / "LIONPlans_3d_fullres")
    )
    key = next(
        k for k in ds.identifiers if len(ds.load_case(k)[3]["class_locations"].get(1, [])) > 0
    )
    np.random.seed(0)
    keys = [tuple(ds.load_case(key)[3]["class_locations"]) for _ in range(40)]
    tumor_only = sum(k == (1,) for k in keys)
    assert 15 <= tumor_only <= 39  # TUMOR_PROBABILITY 0.7 of 40, and never always
