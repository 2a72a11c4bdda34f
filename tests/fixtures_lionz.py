"""A tiny model in the lionz label layout (organs first, tumor last), trained for real.

The raw data are those of ``trained_fdg_model`` (LION layout: tumor 1, organs 2..10), relabelled
to lionz's layout before planning: organs 1..9, tumor 10 (lionz's FDG model: 10 organs, tumor 11).
Its fingerprint is ``trained_fdg_model``'s (the same images and foreground); it is planned and
preprocessed by the stock commands and trained through nnU-Net's trainer API
under the authors' trainer name ``nnUNetTrainerDA5_2000epochs``, with the schedule cut to one
epoch of a few iterations after construction (the class keeps its 2000 epochs).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

LIONZ_ID = 611
LIONZ_TRAINER = "nnUNetTrainerDA5_2000epochs"


def lionz_relabel(array: np.ndarray, n_organs: int) -> np.ndarray:
    """LION layout (tumor 1, organs 2..K) -> lionz layout (organs 1..K-1, tumor K)."""
    out = np.where(array >= 2, array - 1, 0)
    out[array == 1] = n_organs + 1
    return out.astype(np.uint8)


def _relabel_folder(src: Path, dst: Path, n_organs: int) -> None:
    dst.mkdir(parents=True)
    for path in sorted(src.glob("*.nii.gz")):
        image = sitk.ReadImage(str(path))
        out = sitk.GetImageFromArray(lionz_relabel(sitk.GetArrayFromImage(image), n_organs))
        out.CopyInformation(image)
        sitk.WriteImage(out, str(dst / path.name), useCompression=True)


@pytest.fixture(scope="session")
def trained_lionz_model(trained_fdg_model: dict) -> dict:
    """Dataset611 in lionz's layout, 1 epoch x 4 iterations of nnUNetTrainerDA5_2000epochs."""
    return train_lionz_model(trained_fdg_model)


def train_lionz_model(trained_fdg_model: dict) -> dict:
    """Relabel, plan, preprocess and train the tumor-last model; return where everything is."""
    import torch
    from fixtures_nnunet import PATCH, SMALL_NET, run_stock

    t0 = time.perf_counter()
    src = trained_fdg_model["dataset_dir"]
    ds = json.loads((src / "dataset.json").read_text())
    organs = sorted((v, k) for k, v in ds["labels"].items() if v >= 2)
    n = len(organs)
    labels = {"background": 0, **{k: v - 1 for v, k in organs}, "Tumor": n + 1}
    dst = src.parent / f"Dataset{LIONZ_ID}_LIONZ_FDG"
    shutil.copytree(src / "imagesTr", dst / "imagesTr")
    shutil.copytree(src / "imagesTs", dst / "imagesTs")
    _relabel_folder(src / "labelsTr", dst / "labelsTr", n)
    _relabel_folder(src / "labelsTs", dst / "labelsTs", n)
    ds = {k: v for k, v in ds.items() if k != "lion"}  # not a LION layout any more
    (dst / "dataset.json").write_text(json.dumps({**ds, "labels": labels}, indent=2))
    did = str(LIONZ_ID)
    # nnU-Net's fingerprint of 611 is 601's, byte for byte: the same images, and it reads the
    # labels only as foreground (label > 0), which the relabelling keeps; copied, not recomputed
    # (extracting samples 10^8 foreground voxels: about 12 s of CPU for these tiny cases)
    for path in sorted((src / "labelsTr").glob("*.nii.gz")):
        a = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
        b = sitk.GetArrayFromImage(sitk.ReadImage(str(dst / "labelsTr" / path.name)))
        assert ((a > 0) == (b > 0)).all(), f"{path.name}: relabelling changed the foreground"
    preprocessed = Path(os.environ["nnUNet_preprocessed"])
    (preprocessed / dst.name).mkdir(parents=True)
    shutil.copy2(preprocessed / src.name / "dataset_fingerprint.json", preprocessed / dst.name)
    run_stock("lion", "plans", "install", "--dataset", did, "--tracer", "fdg",
              "--patch-size", *PATCH, "--spacing", "dataset", *SMALL_NET)  # fmt: skip
    run_stock("nnUNetv2_preprocess", "-d", did, "-plans_name", "LIONPlans", "-c", "3d_fullres",
              "-np", "1")  # fmt: skip
    from nnunetv2.run.run_training import get_trainer_from_args

    from lion_nnunet.trainers.discovery import register_ext_trainer_folder

    register_ext_trainer_folder()  # nnU-Net's own lookup by name finds the authors' class
    trainer = get_trainer_from_args(did, "3d_fullres", 0, LIONZ_TRAINER, "LIONPlans",
                                    device=torch.device("cpu"))  # fmt: skip
    assert type(trainer).__module__ == "lion_nnunet.trainers.authors"
    assert trainer.num_epochs == 2000  # the authors' schedule, before we cut it for the test
    trainer.num_epochs = 1
    trainer.num_iterations_per_epoch = 4
    trainer.num_val_iterations_per_epoch = 1
    trainer.run_training()
    model_dir = (
        Path(os.environ["nnUNet_results"]) / dst.name / (f"{LIONZ_TRAINER}__LIONPlans__3d_fullres")
    )
    assert (model_dir / "fold_0" / "checkpoint_final.pth").is_file()
    return {
        "dataset_id": LIONZ_ID,
        "dataset_dir": dst,
        "model_dir": model_dir,
        "trainer": LIONZ_TRAINER,
        "tumor_label": n + 1,
        "n_organs": n,
        "fold": "0",
        "images_ts": dst / "imagesTs",
        "labels_ts": dst / "labelsTs",
        "lion_labels_ts": trained_fdg_model["labels_ts"],
        "seconds": round(time.perf_counter() - t0, 1),
    }
