"""The run's log: own lines on the console, other libraries' chatter in <output>/lion.log."""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from lion_nnunet.cli import main
from lion_nnunet.logs import captured, setup


def _chatter() -> None:
    """What a run emits: an own warning, another library's print and warning, an own info."""
    logging.getLogger("lion_nnunet.inference").warning("3 negative SUVs clipped")
    with captured("nnunetv2"):
        print("Searching for class nnUNetTrainer_LION in folder x")
    warnings.warn("`torch.jit.interface` is deprecated", FutureWarning, stacklevel=1)
    logging.getLogger("lion_nnunet.inference").info("skipping 1 case(s) already done")


@pytest.mark.parametrize(
    ("own_level", "verbose", "shown"),
    [
        (logging.WARNING, 0, ["3 negative SUVs clipped"]),  # default
        (logging.ERROR, 0, []),  # -q
        (logging.INFO, 1, ["3 negative SUVs clipped", "skipping 1 case(s)"]),  # -v
        (logging.DEBUG, 2, ["clipped", "Searching", "torch.jit", "skipping"]),  # -vv: everything
    ],
)
def test_console_shows_own_lines_and_the_log_file_everything(
    tmp_path: Path, capsys, own_level: int, verbose: int, shown: list[str]
) -> None:
    out = tmp_path / "predictions"
    with setup(own_level, verbose, out, "lion predict -o predictions") as log_file:
        logging.getLogger("lion_nnunet").warning("before the folder exists")
        out.mkdir()
        _chatter()
    err = capsys.readouterr().err
    everything = ["clipped", "Searching", "torch.jit", "skipping"]
    for text in everything:
        assert (text in err) == any(text in s for s in shown), (text, err)
    log = log_file.read_text()
    assert log.startswith("=== ") and "lion predict -o predictions" in log.splitlines()[0]
    assert "before the folder exists" in log  # held until the folder was made
    for text in everything:
        assert text in log
    assert "INFO nnunetv2: Searching" in log and "WARNING py.warnings:" in log


def test_no_folder_no_log_file_and_state_restored(tmp_path: Path) -> None:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    with setup(logging.WARNING, 0, tmp_path / "never_made", "lion x"):
        _chatter()
    assert not (tmp_path / "never_made").exists()  # a failed run leaves nothing behind
    assert root.handlers == handlers and root.level == level
    with warnings.catch_warnings(record=True) as caught:  # warnings are warnings again
        warnings.simplefilter("always")
        warnings.warn("after", UserWarning, stacklevel=1)
    assert len(caught) == 1


def test_predict_leaves_nnunets_chatter_in_the_log(tmp_path: Path, capsys) -> None:
    """nnU-Net's chatter (its device note) goes to the log; -q shows nothing at all."""
    from lion_nnunet.inference.model import make_random_model

    model = make_random_model(
        tmp_path / "Dataset992_CHATTER" / "nnUNetTrainer_LION__LIONPlans__3d_fullres", "fdg",
        patch_size=(16, 16, 16), spacing=(6.0, 6.0, 6.0), trainer="nnUNetTrainer_LION",
    )  # fmt: skip
    suv = sitk.GetImageFromArray(np.full((16, 16, 16), 1.5, np.float32))
    suv.SetSpacing((6.0, 6.0, 6.0))
    study = tmp_path / "PETCT_0af7ffe12a" / "08-12-2005-NA-PET-CT Ganzkoerper  primaer mit KM-10445"
    study.mkdir(parents=True)
    sitk.WriteImage(suv, str(study / "SUV.nii.gz"))
    out = tmp_path / "pred"
    args = ["predict", "-i", str(study / "SUV.nii.gz"), "-m", str(model), "-o", str(out),
            "--device", "cpu", "--disable-tta"]  # fmt: skip
    capsys.readouterr()
    assert main(["-q", *args]) == 0
    captured_out = capsys.readouterr()
    assert captured_out.err == ""  # errors alone: no chatter, no progress bar
    assert "predicted 1 case(s)" in captured_out.out
    log = (out / "lion.log").read_text()
    assert "INFO nnunetv2: perform_everything_on_device" in log
    assert "Searching for class" not in log  # a LION trainer: found without nnU-Net's search
    assert main([*args, "--overwrite", "--no-pbar"]) == 0  # default level: still no chatter
    assert "nnunetv2" not in capsys.readouterr().err
    assert (out / "lion.log").read_text().count("=== ") == 2  # one header per run, appended


def test_a_refused_run_leaves_an_existing_folder_as_it_was(tmp_path: Path, capsys) -> None:
    gt, pred = tmp_path / "labelsTs", tmp_path / "pred"
    mask = sitk.GetImageFromArray(np.zeros((4, 4, 4), np.uint8))
    gt.mkdir()
    pred.mkdir()
    for case in ("PETCT_0af7ffe12a_0", "PETCT_0af7ffe12a_1"):
        sitk.WriteImage(mask, str(gt / f"{case}.nii.gz"))
    sitk.WriteImage(mask, str(pred / "PETCT_0af7ffe12a_0.nii.gz"))
    out = tmp_path / "eval"
    out.mkdir()  # an existing output folder (e.g. a re-run)
    (out / "notes.txt").write_text("mine")
    assert main(["evaluate", "--pred", str(pred), "--gt", str(gt), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.count("no prediction for 1 of 2") == 1  # printed once, not also logged
    assert [p.name for p in out.iterdir()] == ["notes.txt"]  # no lion.log: nothing was done


def test_an_error_after_the_run_wrote_is_in_the_log(tmp_path: Path) -> None:
    """The run wrote into its (existing) folder, then failed: lion.log has the error."""
    from lion_nnunet.labels import get_label_set

    pred, pets, out = tmp_path / "pred", tmp_path / "pets", tmp_path / "out"
    for folder in (pred, pets, out):
        folder.mkdir()
    for case in ("a", "b"):
        sitk.WriteImage(sitk.GetImageFromArray(np.zeros((4, 4, 4), np.uint8)),
                        str(pred / f"{case}.nii.gz"))  # fmt: skip
    sitk.WriteImage(sitk.GetImageFromArray(np.ones((4, 4, 4), np.float32)),
                    str(pets / "a_0000.nii.gz"))  # fmt: skip
    (pets / "b_0000.nii.gz").write_bytes(b"not a NIfTI")
    labels = get_label_set("fdg").labels()
    (pred / "dataset.json").write_text(json.dumps({"labels": labels, "lion": {"tracer": "fdg"}}))
    assert main(["postprocess", "-i", str(pred), "--pet", str(pets), "-o", str(out),
                 "--no-pbar"]) == 1  # fmt: skip
    assert (out / "a" / "report.json").is_file()
    log = (out / "lion.log").read_text()
    assert "ERROR lion_nnunet: lion postprocess: error:" in log and "b_0000.nii.gz" in log
