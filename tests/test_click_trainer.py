"""The click trainer (issue 25): trained by the stock ``nnUNetv2_train -tr``, its clicks reach the
network at ``lion predict --clicks`` on the right voxels, and without clicks it is automatic.

The data set is tiny (four 24^3 PETs at 6 mm, a hot ball of tumor in each, patch 16^3, 4 base
features) so that the stock commands run in well under a minute on 2 cores. Four iterations
teach the network nothing, so where the click must land is checked with a network whose answer
is known by hand: the trained model's inner network is swapped for one whose tumor logit is
``10 * (tumor channel - background channel) - 5``, i.e. tumor where the tumor click's distance
map ``1 - d / 40 mm`` exceeds 0.5: the voxels closer than 20 mm to the click. What clicks do to
a trained model is measured in ``benchmarks/clicks.py``.
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

from lion_nnunet.cli import main
from lion_nnunet.interactive.clickfile import Clicks, write_clicks
from lion_nnunet.labels import get_label_set

TRAINER = "nnUNetTrainer_LION_Clicks_1ep_4it"
SPACING = 6.0
SHAPE = (24, 24, 24)  # z, y, x
DATASET = 993


@pytest.fixture(scope="module")
def click_model(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A click model trained 4 iterations by the stock commands on four tiny PETs."""
    root = tmp_path_factory.mktemp("click_trainer")
    env = dict(os.environ)
    for var in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        env[var] = str(root / var)
        Path(env[var]).mkdir()
    env.update(nnUNet_compile="false", nnUNet_n_proc_DA="0", OMP_NUM_THREADS="2")
    raw = root / "nnUNet_raw" / f"Dataset{DATASET}_CLICKS"
    (raw / "imagesTr").mkdir(parents=True)
    (raw / "labelsTr").mkdir()
    rng = np.random.default_rng(0)
    zz, yy, xx = np.indices(SHAPE)
    for k in range(4):
        centre = rng.integers(7, 17, 3)
        ball = (zz - centre[0]) ** 2 + (yy - centre[1]) ** 2 + (xx - centre[2]) ** 2 <= 9
        suv = rng.uniform(0.5, 1.5, SHAPE).astype(np.float32) + 6.0 * ball
        pairs = ((suv, raw / "imagesTr" / f"c{k}_0000.nii.gz"),
                 (ball.astype(np.uint8), raw / "labelsTr" / f"c{k}.nii.gz"))  # fmt: skip
        for array, path in pairs:
            image = sitk.GetImageFromArray(array)
            image.SetSpacing((SPACING,) * 3)
            sitk.WriteImage(image, str(path))
    dataset_json = {"channel_names": {"0": "PET"}, "labels": get_label_set("fdg").labels(),
                    "numTraining": 4, "file_ending": ".nii.gz"}  # fmt: skip
    (raw / "dataset.json").write_text(json.dumps(dataset_json))
    did = str(DATASET)
    run_stock("nnUNetv2_extract_fingerprint", "-d", did, "-np", "1", env=env)
    run_stock("lion", "plans", "install", "--dataset", did, "--tracer", "fdg", "--patch-size",
              "16", "16", "16", "--spacing", "dataset", "--base-features", "4",
              "--blocks-per-stage", "1", env=env)  # fmt: skip
    run_stock("nnUNetv2_preprocess", "-d", did, "-plans_name", "LIONPlans", "-c", "3d_fullres",
              "-np", "1", env=env)  # fmt: skip
    pre = root / "nnUNet_preprocessed" / raw.name
    (pre / "splits_final.json").write_text(json.dumps([{"train": ["c0", "c1", "c2"],
                                                        "val": ["c3"]}]))  # fmt: skip
    run_stock("nnUNetv2_train", did, "3d_fullres", "0", "-p", "LIONPlans", "-tr", TRAINER,
              "-device", "cpu", env=env)  # fmt: skip
    images = root / "images"
    images.mkdir()
    image = sitk.GetImageFromArray(np.ones(SHAPE, np.float32))  # no lesion: only clicks tell
    image.SetSpacing((SPACING,) * 3)
    sitk.WriteImage(image, str(images / "case1_0000.nii.gz"))
    model = root / "nnUNet_results" / raw.name / f"{TRAINER}__LIONPlans__3d_fullres"
    return {"model": model, "images": images, "root": root}


def _predict(click_model: dict, out: Path, *more: str) -> int:
    return main(["predict", "-i", str(click_model["images"]), "-o", str(out), "-m",
                 str(click_model["model"]), "-f", "0", "--device", "cpu", "--disable-tta",
                 "--no-pbar", "--min-volume-ml", "0", *more])  # fmt: skip


def _tumor(out: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(out / "case1" / "tumor.nii.gz")))


class _KnownAnswer(torch.nn.Module):
    """Tumor logit 10 * (tumor clicks - background clicks) - 5; every other class 0."""

    def __init__(self, classes: int) -> None:
        super().__init__()
        self.classes = classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.zeros((x.shape[0], self.classes, *x.shape[2:]), dtype=x.dtype)
        out[:, 1] = 10 * (x[:, 1] - x[:, 2]) - 5
        return out


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


def _known_answer(monkeypatch, built: dict) -> None:
    """Every LionPredictor built from now on runs :class:`_KnownAnswer` inside its click model."""
    from lion_nnunet.inference.predict import LionPredictor

    original = LionPredictor.__init__

    def with_known_answer(self, *args, **kwargs):
        original(self, *args, **kwargs)
        wrapper = self.predictor.network
        wrapper.network = _KnownAnswer(self.predictor.label_manager.num_segmentation_heads)
        self.predictor.list_of_parameters = [{}]  # nothing to load into the known answer
        wrapper.load_state_dict = lambda params: None
        built["encoding"] = self.click_encoding
        built["predictor"] = self

    monkeypatch.setattr(LionPredictor, "__init__", with_known_answer)


def test_clicks_reach_the_network_on_the_clicked_voxels(click_model: dict, tmp_path, monkeypatch):
    built: dict = {}
    _known_answer(monkeypatch, built)
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
    _known_answer(monkeypatch, built)
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
        _known_answer(monkeypatch, built)
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
