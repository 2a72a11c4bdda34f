"""``lion predict --click-steps``: every step of the protocol in one run, the model loaded once.

The expected masks come from separate ``lion predict --clicks STEPS/step<n>`` runs (the command
each step stands for); the model here is a random-weight model trained without clicks, so every
step goes through the rule-based edit. The click model's steps are checked in
``test_click_trainer.py``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from lion_nnunet.cli import main
from lion_nnunet.interactive.clickfile import Clicks, write_clicks

SHAPE = (20, 16, 16)  # z, y, x at 6 mm
SPACING = (6.0, 6.0, 6.0)
#: (i, j, k) clicks of the two cases; step n gives the first n of each kind
CLICKS = {
    "a": Clicks(tumor=((7, 7, 9), (12, 12, 15)), background=((12, 3, 3), (3, 12, 4))),
    "b": Clicks(tumor=((4, 10, 5),), background=((7, 7, 9),)),
}


@pytest.fixture(scope="module")
def two_cases(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Two small PETs with hot lesions, a random-weight model, and click steps 0..2."""
    from lion_nnunet.inference.model import make_random_model

    root = tmp_path_factory.mktemp("click_steps")
    rng = np.random.default_rng(1)
    images = root / "images"
    images.mkdir()
    for case, (z, y, x) in (("a", (9, 7, 7)), ("b", (5, 10, 4))):
        suv = rng.uniform(0.5, 1.5, SHAPE).astype(np.float32)
        suv[z - 1 : z + 2, y - 1 : y + 2, x - 1 : x + 2] = 9.0
        suv[15:17, 12:14, 11:14] = 6.0
        image = sitk.GetImageFromArray(suv)
        image.SetSpacing(SPACING)
        sitk.WriteImage(image, str(images / f"{case}_0000.nii.gz"))
    model = make_random_model(root / "Dataset991_RANDOM" / "nnUNetTrainer__LIONPlans__3d_fullres",
                              "fdg", patch_size=(16, 16, 16), spacing=SPACING,
                              folds=("0",))  # fmt: skip
    clicks = root / "clicks"
    for case, c in CLICKS.items():
        write_clicks(c, clicks / f"{case}_clicks.json")
    assert main(["clicks", "steps", str(clicks), "-o", str(root / "steps"), "--steps", "2"]) == 0
    return {"root": root, "images": images, "model": model, "steps": root / "steps"}


def _predict(cases: dict, out: Path, *more: str) -> int:
    return main(["predict", "-i", str(cases["images"]), "-o", str(out), "-m",
                 str(cases["model"]), "--device", "cpu", "--disable-tta", "--no-pbar",
                 *more])  # fmt: skip


def _mask(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def _count_predictors(monkeypatch) -> list:
    """Every LionPredictor built from now on is appended to the returned list."""
    from lion_nnunet.inference.predict import LionPredictor

    built: list = []
    original = LionPredictor.__init__

    def counted(self, *args, **kwargs):
        original(self, *args, **kwargs)
        built.append(self)

    monkeypatch.setattr(LionPredictor, "__init__", counted)
    return built


def test_every_step_equals_its_own_lion_predict_clicks(two_cases: dict, tmp_path, monkeypatch):
    built = _count_predictors(monkeypatch)
    out = tmp_path / "out"
    assert _predict(two_cases, out, "--click-steps", str(two_cases["steps"])) == 0
    assert len(built) == 1  # one model load for 3 steps x 2 cases
    for n in (0, 2):
        alone = tmp_path / f"alone{n}"
        assert _predict(two_cases, alone, "--clicks", str(two_cases["steps"] / f"step{n}")) == 0
        for case in CLICKS:
            expected = _mask(alone / case / "tumor.nii.gz")
            np.testing.assert_array_equal(_mask(out / f"step{n}" / case / "tumor.nii.gz"),
                                          expected)  # fmt: skip
            # the flat folder of lion evaluate --interactive: the same mask
            np.testing.assert_array_equal(_mask(out / "steps" / f"{case}_pred{n}.nii.gz"),
                                          expected)  # fmt: skip
            ours = json.loads((out / f"step{n}" / case / "report.json").read_text())
            theirs = json.loads((alone / case / "report.json").read_text())
            assert ours["clicks"] == theirs["clicks"]
            assert ours["clicks"]["tumor"] == [list(p) for p in CLICKS[case].tumor[:n]]
            assert ours["tmtv_ml"] == theirs["tmtv_ml"]
    # the clicks changed the mask: step 2 of case a adds its second lesion (z 15, y 12, x 12)
    step0, step2 = (_mask(out / "steps" / f"a_pred{n}.nii.gz") for n in (0, 2))
    assert not step0[15, 12, 12] and step2[15, 12, 12]
    assert sorted(p.name for p in (out / "steps").iterdir()) == [
        f"{c}_pred{n}.nii.gz" for c in CLICKS for n in range(3)
    ]


def test_lion_evaluate_interactive_reads_the_flat_folder(two_cases: dict, tmp_path: Path):
    out = tmp_path / "out"
    assert _predict(two_cases, out, "--click-steps", str(two_cases["steps"])) == 0
    gt = tmp_path / "gt"
    gt.mkdir()
    for case in CLICKS:  # the ground truth: the step-2 mask itself, so Dice 1 at step 2
        (gt / f"{case}.nii.gz").write_bytes((out / "step2" / case / "tumor.nii.gz").read_bytes())
    code = main(["evaluate", "--interactive", str(out / "steps"), "--gt", str(gt), "-o",
                 str(tmp_path / "eval"), "--no-pbar"])  # fmt: skip
    assert code == 0
    result = json.loads((tmp_path / "eval" / "interactive.json").read_text())
    assert result["cases"] == 2 and result["steps"] == 3
    assert [row["dice_final"] for row in result["per_case"]] == [1.0, 1.0]


def test_a_rerun_predicts_only_the_missing_steps(two_cases: dict, tmp_path, monkeypatch):
    out = tmp_path / "out"
    assert _predict(two_cases, out, "--click-steps", str(two_cases["steps"])) == 0
    built = _count_predictors(monkeypatch)
    first = (out / "step1" / "a" / "report.json").stat().st_mtime_ns
    assert _predict(two_cases, out, "--click-steps", str(two_cases["steps"]), "--json") == 0
    assert built == []  # every step done: the model is not even loaded
    shutil.rmtree(out / "step2" / "b")
    (out / "steps" / "b_pred2.nii.gz").unlink()
    assert _predict(two_cases, out, "--click-steps", str(two_cases["steps"])) == 0
    assert len(built) == 1
    assert (out / "step1" / "a" / "report.json").stat().st_mtime_ns == first
    assert (out / "step2" / "b" / "report.json").is_file()
    assert (out / "steps" / "b_pred2.nii.gz").is_file()


def _break_missing_step0(steps: Path) -> None:
    (steps / "step0").rename(steps / "not_a_step")


def _break_gap(steps: Path) -> None:
    shutil.copytree(steps / "step2", steps / "step4")


def _break_missing_file(steps: Path) -> None:
    (steps / "step1" / "b_clicks.json").unlink()


def _break_bad_point(steps: Path) -> None:
    (steps / "step2" / "a_clicks.json").write_text(json.dumps({"tumor": [[7, 7, 25]]}))


@pytest.mark.parametrize(
    ("breaks", "says"),
    [
        (_break_missing_step0, "steps run up to step2 but step0 is missing"),
        (_break_gap, "steps run up to step4 but step3 is missing"),
        (_break_missing_file, "step1: no click file for 1 case(s): b (<case_id>_clicks.json)"),
        (_break_bad_point, "point 1 [7, 7, 25] (tumor) lies outside the image"),
        (None, "no step0/ .. stepN/ folders"),
    ],
)
def test_a_bad_steps_folder_gets_one_sentence_and_nothing_written(
    two_cases: dict, tmp_path: Path, capsys: pytest.CaptureFixture, breaks, says: str
):
    steps = tmp_path / "steps"
    if breaks is None:
        steps.mkdir()
    else:
        shutil.copytree(two_cases["steps"], steps)
        breaks(steps)
    out = tmp_path / "out"
    assert _predict(two_cases, out, "--click-steps", str(steps)) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len([line for line in err if "error:" in line]) == 1 and says in err[-1]
    assert not out.exists() or not any(out.rglob("*.nii.gz"))


def test_click_steps_and_clicks_are_exclusive(two_cases: dict, tmp_path: Path):
    with pytest.raises(SystemExit) as stop:
        _predict(two_cases, tmp_path / "out", "--click-steps", str(two_cases["steps"]),
                 "--clicks", str(two_cases["steps"] / "step0"))  # fmt: skip
    assert stop.value.code == 2


def test_click_steps_on_a_cluster_is_refused(
    two_cases: dict, tmp_path: Path, capsys: pytest.CaptureFixture
):
    out = tmp_path / "out"
    code = _predict(two_cases, out, "--click-steps", str(two_cases["steps"]), "--cluster",
                    "local:2")  # fmt: skip
    assert code == 1
    assert "--click-steps runs in one process" in capsys.readouterr().err
    assert not out.exists() or not any(out.rglob("*.nii.gz"))
