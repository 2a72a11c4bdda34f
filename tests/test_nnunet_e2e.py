"""The stock nnU-Net commands end to end with LION plans and trainers (FDG and PSMA, on CPU)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from lion_nnunet.labels import get_label_set

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("which", ["trained_fdg_model", "trained_psma_model"])
def test_stock_train_and_predict_give_lion_label_maps(
    which: str, request: pytest.FixtureRequest, stock_predicted
) -> None:
    model = request.getfixturevalue(which)
    plans = json.loads((model["model_dir"] / "plans.json").read_text())
    assert plans["plans_name"] == "LIONPlans"
    assert plans["configurations"]["3d_fullres"]["normalization_schemes"] == ["CTNormalization"]
    assert (model["model_dir"] / "fold_0" / "checkpoint_final.pth").is_file()
    label_set = get_label_set(model["tracer"])
    predicted = stock_predicted(model)  # nnUNetv2_predict --save_probabilities
    preds = sorted(predicted.glob("*.nii.gz"))
    inputs = sorted(model["images_ts"].glob("*_0000.nii.gz"))
    assert len(preds) == len(inputs) >= 1
    seen: set[int] = set()
    for pred, image in zip(preds, inputs, strict=True):
        p, i = sitk.ReadImage(str(pred)), sitk.ReadImage(str(image))
        assert p.GetSize() == i.GetSize() and p.GetSpacing() == i.GetSpacing()
        seen |= set(np.unique(sitk.GetArrayFromImage(p)).tolist())
    assert seen <= set(range(label_set.num_classes)), seen
    # the network predicts exactly the label set's classes: background, tumor, organs 2..K
    # (a 10-iteration CPU model is not asked to be accurate; lion demo and
    # benchmarks/organ_context.py show what longer training learns)
    probabilities = np.load(sorted(predicted.glob("*.npz"))[0])["probabilities"]
    assert probabilities.shape[0] == label_set.num_classes == len(label_set.labels())
