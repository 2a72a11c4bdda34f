"""The click trainer (issue 25): trained by the stock ``nnUNetv2_train -tr``, its clicks reach the
network at ``lion predict --clicks`` on the right voxels, and without clicks it is automatic.

The data set is tiny (four 24^3 PETs at 6 mm, a hot ball of tumor in each, patch 16^3, 4 base
features; the session fixture ``click_model`` of tests/fixtures_clicks.py) so that the stock
commands run in well under a minute on 2 cores. Four iterations
teach the network nothing, so where the click must land is checked with a network whose answer
is known by hand: the trained model's inner network is swapped for one whose tumor logit is
``10 * (tumor channel - background channel) - 5``, i.e. tumor where the tumor click's distance
map ``1 - d / 40 mm`` exceeds 0.5: the voxels closer than 20 mm to the click. What clicks do to
a trained model is measured in ``benchmarks/clicks.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from fixtures_clicks import CLICK_SHAPE as SHAPE
from fixtures_clicks import CLICK_SPACING as SPACING
from fixtures_clicks import use_known_answer

from lion_nnunet.cli import main
from lion_nnunet.interactive.clickfile import Clicks, write_clicks


def _predict(click_model: dict, out: Path, *more: str) -> int:
    return main(["predict", "-i", str(click_model["images"]), "-o", str(out), "-m",
                 str(click_model["model"]), "-f", "0", "--device", "cpu", "--disable-tta",
                 "--no-pbar", "--min-volume-ml", "0", *more])  # fmt: skip


def _tumor(out: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(out / "case1" / "tumor.nii.gz")))


def test_click_model_is_found_trains_and_predicts_automatically(click_model: dict, tmp_path):
    checkpoint = torch.load(click_model["model"] / "fold_0" / "checkpoint_final.pth",
                            map_location="cpu", weights_only=False)  # fmt: skip
    first = checkpoint["network_weights"]["network.encoder.stem.convs.0.conv.weight"]
    assert first.shape[1] == 3  # PET + tumor clicks + background clicks
    dataset_json = json.loads((click_model["model"] / "dataset.json").read_text())
    assert dataset_json["channel_names"] == {"0": "PET"}  # the user gives the PET alone
    assert _predict(click_model, tmp_path / "auto") == 0
    report = json.loads((tmp_path / "auto" / "case1" / "report.json").read_text())
    assert "click_mode" not in report
    # an empty click file is the same as no clicks: zero click channels
    (tmp_path / "empty.json").write_text("{}")
    assert _predict(click_model, tmp_path / "empty", "--clicks", str(tmp_path / "empty.json")) == 0
    np.testing.assert_array_equal(_tumor(tmp_path / "empty"), _tumor(tmp_path / "auto"))
    assert json.loads((tmp_path / "empty" / "case1" / "report.json").read_text())[
        "click_mode"] == "click model"  # fmt: skip


def test_clicks_reach_the_network_on_the_clicked_voxels(click_model: dict, tmp_path, monkeypatch):
    built: dict = {}
    use_known_answer(monkeypatch, built)
    click = (5, 9, 14)  # (i, j, k): numpy (z, y, x) = (14, 9, 5)
    write_clicks(Clicks(tumor=(click,), background=((20, 20, 3),)), tmp_path / "c.json")
    assert _predict(click_model, tmp_path / "clicked", "--clicks", str(tmp_path / "c.json")) == 0
    assert built["encoding"] == "edt"
    zz, yy, xx = np.indices(SHAPE)
    distance_mm = SPACING * np.sqrt((zz - 14) ** 2 + (yy - 9) ** 2 + (xx - 5) ** 2)
    # 10 * (1 - d / 40) - 5 > 0  <=>  d < 20 mm (the background click is 100 mm away)
    np.testing.assert_array_equal(_tumor(tmp_path / "clicked"), distance_mm < 20)
    report = json.loads((tmp_path / "clicked" / "case1" / "report.json").read_text())
    assert report["click_mode"] == "click model"
    assert report["clicks"]["tumor"] == [list(click)] and report["clicks"]["encoding"] == "edt"
    assert _predict(click_model, tmp_path / "none") == 0  # no clicks: zero channels, no tumor
    assert not _tumor(tmp_path / "none").any()


def test_refinement_session_runs_the_click_model_around_the_click(click_model: dict, monkeypatch):
    from lion_nnunet.inference.model import check_model_folder
    from lion_nnunet.inference.predict import LionPredictor
    from lion_nnunet.interactive.model_session import ClickModelSession

    built: dict = {}
    use_known_answer(monkeypatch, built)
    predictor = LionPredictor(check_model_folder(click_model["model"], ["0"]), "cpu", False)
    session = ClickModelSession(predictor)
    shape = (60, 24, 24)  # z: the click's crop (40 mm reach + half a patch) ends at z 28
    session.set_image(np.ones(shape, np.float32), (SPACING,) * 3)
    mask = np.zeros(shape, np.uint8)
    mask[50, 0, 0] = 1  # outside the crop: kept as it is
    session.set_target_buffer(mask)
    edit = session.add_point_interaction((14, 9, 5))  # (z, y, x)
    assert edit.box[0] == slice(0, 29)
    zz, yy, xx = np.indices(shape)
    ball = SPACING * np.sqrt((zz - 14) ** 2 + (yy - 9) ** 2 + (xx - 5) ** 2) < 20
    expected = ball.copy()
    expected[50, 0, 0] = True
    np.testing.assert_array_equal(session.mask.astype(bool), expected)
    assert edit.added == ball.sum()
    # the background click at the tumor click cancels it: 10 * (1 - 1) - 5 < 0 everywhere
    session.add_point_interaction((14, 9, 5), include_interaction=False)
    assert session.mask.sum() == 1
    session.reset_interactions()
    assert session.mask.sum() == 1 and session.clicks == type(session.clicks)()


@pytest.mark.parametrize("known_answer", [False, True], ids=["trained", "known-answer"])
def test_click_steps_equal_separate_predictions_with_one_model_load(
    click_model: dict, tmp_path, monkeypatch, known_answer: bool
):
    """``lion predict --click-steps``: each step's mask is the one ``--clicks STEPS/step<n>``
    gives, with the trained weights and with the known-answer network (masks that the clicks
    decide: step 0 none, later steps the balls around the tumor clicks)."""
    from lion_nnunet.inference.predict import LionPredictor

    built: dict = {}
    if known_answer:
        use_known_answer(monkeypatch, built)
    loads: list = []
    init = LionPredictor.__init__

    def counted(self, *args, **kwargs):
        loads.append(1)
        init(self, *args, **kwargs)

    monkeypatch.setattr(LionPredictor, "__init__", counted)
    write_clicks(Clicks(tumor=((5, 9, 14), (18, 15, 6)), background=((20, 20, 3), (3, 3, 20))),
                 tmp_path / "clicks" / "case1_clicks.json")  # fmt: skip
    assert main(["clicks", "steps", str(tmp_path / "clicks"), "-o", str(tmp_path / "steps"),
                 "--steps", "2"]) == 0  # fmt: skip
    out = tmp_path / "out"
    assert _predict(click_model, out, "--click-steps", str(tmp_path / "steps")) == 0
    assert len(loads) == 1  # three steps, one model load
    masks = {}
    for n in (0, 2):
        alone = tmp_path / f"alone{n}"
        assert _predict(click_model, alone, "--clicks", str(tmp_path / "steps" / f"step{n}")) == 0
        masks[n] = _tumor(out / f"step{n}")
        np.testing.assert_array_equal(masks[n], _tumor(alone))
        flat = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "steps" / f"case1_pred{n}.nii.gz")))
        np.testing.assert_array_equal(flat, masks[n])
        report = json.loads((out / f"step{n}" / "case1" / "report.json").read_text())
        assert report["click_mode"] == "click model" and len(report["clicks"]["tumor"]) == n
    if known_answer:  # 10 * (1 - d / 40 mm) - 5 > 0 within 20 mm of a tumor click
        zz, yy, xx = np.indices(SHAPE)
        near = [SPACING * np.sqrt((zz - k) ** 2 + (yy - j) ** 2 + (xx - i) ** 2) < 20
                for i, j, k in ((5, 9, 14), (18, 15, 6))]  # fmt: skip
        assert not masks[0].any()
        assert masks[2][14, 9, 5] and masks[2][6, 15, 18]
        assert not masks[2][~(near[0] | near[1])].any()
