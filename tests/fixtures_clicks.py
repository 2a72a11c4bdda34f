"""A tiny click model trained by the stock commands (session scope), and a known-answer network.

:func:`click_model`: ``nnUNetTrainer_LION_Clicks_1ep_4it`` (distance-map clicks) trained four
iterations by the stock ``nnUNetv2_train -tr`` on four 24^3 PETs at 6 mm (a hot ball of tumor in
each, patch 16^3, 4 base features), so the stock commands run in well under a minute on 2 cores.
Four iterations teach the network nothing, so tests that check where a click lands swap the
trained model's inner network for :class:`KnownAnswer` (:func:`use_known_answer`): its tumor
logit is ``10 * (tumor channel - background channel) - 5``, i.e. tumor where the tumor clicks'
distance map ``1 - d / 40 mm`` exceeds the background clicks' by more than 0.5.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from fixtures_nnunet import run_stock

from lion_nnunet.labels import get_label_set
from lion_nnunet.nnunet_env import FINAL_VALIDATION_VAR

CLICK_TRAINER = "nnUNetTrainer_LION_Clicks_1ep_4it"
CLICK_SPACING = 6.0
CLICK_SHAPE = (24, 24, 24)  # z, y, x
CLICK_DATASET = 993


@pytest.fixture(scope="session")
def click_model(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A click model trained 4 iterations by the stock commands on four tiny PETs."""
    root = tmp_path_factory.mktemp("click_trainer")
    env = dict(os.environ)
    for var in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        env[var] = str(root / var)
        Path(env[var]).mkdir()
    env.update(nnUNet_compile="false", nnUNet_n_proc_DA="0", OMP_NUM_THREADS="2")
    raw = root / "nnUNet_raw" / f"Dataset{CLICK_DATASET}_CLICKS"
    (raw / "imagesTr").mkdir(parents=True)
    (raw / "labelsTr").mkdir()
    rng = np.random.default_rng(0)
    zz, yy, xx = np.indices(CLICK_SHAPE)
    for k in range(4):
        centre = rng.integers(7, 17, 3)
        ball = (zz - centre[0]) ** 2 + (yy - centre[1]) ** 2 + (xx - centre[2]) ** 2 <= 9
        suv = rng.uniform(0.5, 1.5, CLICK_SHAPE).astype(np.float32) + 6.0 * ball
        pairs = ((suv, raw / "imagesTr" / f"c{k}_0000.nii.gz"),
                 (ball.astype(np.uint8), raw / "labelsTr" / f"c{k}.nii.gz"))  # fmt: skip
        for array, path in pairs:
            image = sitk.GetImageFromArray(array)
            image.SetSpacing((CLICK_SPACING,) * 3)
            sitk.WriteImage(image, str(path))
    dataset_json = {"channel_names": {"0": "PET"}, "labels": get_label_set("fdg").labels(),
                    "numTraining": 4, "file_ending": ".nii.gz"}  # fmt: skip
    (raw / "dataset.json").write_text(json.dumps(dataset_json))
    did = str(CLICK_DATASET)
    run_stock("nnUNetv2_extract_fingerprint", "-d", did, "-np", "1", env=env)
    run_stock("lion", "plans", "install", "--dataset", did, "--tracer", "fdg", "--patch-size",
              "16", "16", "16", "--spacing", "dataset", "--base-features", "4",
              "--blocks-per-stage", "1", env=env)  # fmt: skip
    run_stock("nnUNetv2_preprocess", "-d", did, "-plans_name", "LIONPlans", "-c", "3d_fullres",
              "-np", "1", env=env)  # fmt: skip
    pre = root / "nnUNet_preprocessed" / raw.name
    (pre / "splits_final.json").write_text(json.dumps([{"train": ["c0", "c1", "c2"],
                                                        "val": ["c3"]}]))  # fmt: skip
    # no final validation (LION_FINAL_VALIDATION=0): no test reads it; the click trainer's final
    # validation (image-only input through its click network) runs in docs/interactive.md's test
    run_stock("nnUNetv2_train", did, "3d_fullres", "0", "-p", "LIONPlans", "-tr", CLICK_TRAINER,
              "-device", "cpu", env={**env, FINAL_VALIDATION_VAR: "0"})  # fmt: skip
    images = root / "images"
    images.mkdir()
    image = sitk.GetImageFromArray(np.ones(CLICK_SHAPE, np.float32))  # no lesion: only clicks tell
    image.SetSpacing((CLICK_SPACING,) * 3)
    sitk.WriteImage(image, str(images / "case1_0000.nii.gz"))
    model = root / "nnUNet_results" / raw.name / f"{CLICK_TRAINER}__LIONPlans__3d_fullres"
    return {"model": model, "images": images, "root": root}


class KnownAnswer(torch.nn.Module):
    """Tumor logit 10 * (tumor clicks - background clicks) - 5; every other class 0."""

    def __init__(self, classes: int) -> None:
        super().__init__()
        self.classes = classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x.new_zeros((x.shape[0], self.classes, *x.shape[2:]))  # on x's device (CUDA too)
        out[:, 1] = 10 * (x[:, 1] - x[:, 2]) - 5
        return out


def use_known_answer(monkeypatch, built: dict) -> None:
    """Every LionPredictor built from now on runs :class:`KnownAnswer` inside its click model."""
    from lion_nnunet.inference.predict import LionPredictor

    original = LionPredictor.__init__

    def with_known_answer(self, *args, **kwargs):
        original(self, *args, **kwargs)
        wrapper = self.predictor.network
        wrapper.network = KnownAnswer(self.predictor.label_manager.num_segmentation_heads)
        self.predictor.list_of_parameters = [{}]  # nothing to load into the known answer
        wrapper.load_state_dict = lambda params: None
        built["encoding"] = self.click_encoding
        built["count"] = built.get("count", 0) + 1  # predictors built (each loads a model)
        built["predictor"] = self

    monkeypatch.setattr(LionPredictor, "__init__", with_known_answer)
