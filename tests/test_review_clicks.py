"""``lion review --serve`` refines clicks with the case's click model (issue 26 item 2).

A case predicted by ``lion predict`` with the tiny click model of tests/fixtures_clicks.py is
served; its model's inner network is the known answer (tumor logit ``10 * (tumor channel -
background channel) - 5``), so the corrected masks are computed here by hand from the clicks'
distance maps ``max(0, 1 - d / 40 mm)``. A plain model's case, and a click model whose folder is
gone or whose checkpoint changed, get the rule-based edit, and say so.
"""

from __future__ import annotations

import http.client
import json
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from fixtures_clicks import CLICK_SHAPE, CLICK_SPACING, use_known_answer

from lion_nnunet.cli import main
from lion_nnunet.interactive.model_input import CLICK_MODEL
from lion_nnunet.interactive.session import RULE_BASED
from lion_nnunet.review.gallery import build_gallery
from lion_nnunet.review.server import make_server


def _predict(images: Path, out: Path, model: Path) -> None:
    code = main(["predict", "-i", str(images), "-o", str(out), "-m", str(model), "-f", "0",
                 "--device", "cpu", "--disable-tta", "--no-pbar",
                 "--min-volume-ml", "0"])  # fmt: skip
    assert code == 0


@pytest.fixture
def serve(tmp_path):
    """``serve(pred)``: a gallery of ``pred`` served on a free port; its dict."""
    servers = []

    def start(pred: Path) -> dict:
        gallery = tmp_path / "gallery"
        result = build_gallery(pred, gallery, progress=False)
        server = make_server(gallery, set(result["order"]), port=0, pred_dir=pred)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return {"pred": pred, "server": server, "port": server.server_address[1]}

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def post_clicks(served: dict, case_id: str, clicks: dict) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", served["port"], timeout=120)
    try:
        conn.request("POST", f"/api/cases/{case_id}/clicks", json.dumps(clicks).encode(),
                     {"Content-Type": "application/json",
                      "X-Lion-Token": served["server"].token})  # fmt: skip
        answer = conn.getresponse()
        return answer.status, json.loads(answer.read())
    finally:
        conn.close()


def corrected(served: dict, case_id: str) -> np.ndarray:
    path = served["pred"] / case_id / "tumor_corrected.nii.gz"
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path))) > 0


def edits(served: dict, case_id: str) -> list[dict]:
    return json.loads((served["pred"] / case_id / "corrections.json").read_text())["edits"]


def distance_map(ijk) -> np.ndarray:
    """The click's distance-map channel ``max(0, 1 - d / 40 mm)`` on the PET grid (z, y, x)."""
    i, j, k = ijk
    zz, yy, xx = np.indices(CLICK_SHAPE)
    d = CLICK_SPACING * np.sqrt((zz - k) ** 2 + (yy - j) ** 2 + (xx - i) ** 2)
    return np.clip(1 - d / 40.0, 0, None)


@pytest.fixture
def click_case(click_model, tmp_path, monkeypatch, serve) -> dict:
    """case1 (PET all 1) predicted by a copy of the click model (known answer: no clicks, no
    tumor), served."""
    model = tmp_path / "results" / click_model["model"].parent.name / click_model["model"].name
    shutil.copytree(click_model["model"], model)  # the test may change it
    built: dict = {}
    use_known_answer(monkeypatch, built)
    pred = tmp_path / "pred"
    _predict(click_model["images"], pred, model)
    assert not sitk.GetArrayFromImage(sitk.ReadImage(str(pred / "case1" / "tumor.nii.gz"))).any()
    return {**serve(pred), "model": model, "built": built}


def test_clicks_go_through_the_click_model_with_the_earlier_clicks(click_case) -> None:
    served = click_case
    line = served["server"].corrections.click_methods_line()
    assert line == (f"clicks: {CLICK_MODEL} ({served['model'].parent.name}/"
                    f"{served['model'].name}, fold 0) for 1 case(s)")  # fmt: skip
    builds = served["built"]["count"]  # lion predict's predictor
    tumor, background = (10, 10, 10), (13, 13, 13)  # (i, j, k), 31 mm apart
    status, answer = post_clicks(served, "case1", {"tumor": [list(tumor)]})
    assert status == 200, answer
    assert answer["method"].startswith(CLICK_MODEL) and "fallback" not in answer
    # every click's crop (40 mm = 6 voxels of reach + half a 16-voxel patch) covers the 24^3 image
    first = 10 * distance_map(tumor) - 5
    np.testing.assert_array_equal(corrected(served, "case1"), first > 0)
    assert (first > 0).any()
    assert answer["tmtv_ml"] == pytest.approx((first > 0).sum() * 0.216)  # 6 mm: 0.216 ml voxels
    # the background click: the network still sees the tumor click (corrections.json), so the
    # ball keeps the voxels nearer the tumor click; without it the whole ball would go
    status, answer = post_clicks(served, "case1", {"background": [list(background)]})
    assert status == 200, answer
    second = 10 * (distance_map(tumor) - distance_map(background)) - 5
    assert np.abs(second).min() > 1e-3  # no voxel on the fence: float32 agrees with this
    expected = second > 0
    assert 0 < expected.sum() < (first > 0).sum()
    np.testing.assert_array_equal(corrected(served, "case1"), expected)
    record = edits(served, "case1")
    assert [e["method"] for e in record] == [CLICK_MODEL, CLICK_MODEL]
    assert record[0]["earlier_clicks"] == {"tumor": [], "background": []}
    assert record[1]["earlier_clicks"] == {"tumor": [list(tumor)], "background": []}
    assert record[1]["encoding"] == "edt" and record[1]["fold"] == "0"
    assert served["built"]["count"] == builds + 1  # one predictor for the server's two requests


def test_a_changed_or_missing_click_model_falls_back_to_the_rule_based_edit(click_case) -> None:
    served = click_case
    checkpoint = served["model"] / "fold_0" / "checkpoint_final.pth"
    with checkpoint.open("ab") as f:
        f.write(b"\0")  # another checkpoint than the one the case was predicted with
    line = served["server"].corrections.click_methods_line()
    assert line.startswith(f"clicks: {RULE_BASED} for 1 case(s); ") and "SHA-256" in line
    status, answer = post_clicks(served, "case1", {"tumor": [[10, 10, 10]]})
    assert status == 200, answer
    assert answer["method"] == RULE_BASED and "SHA-256 differs" in answer["fallback"]
    assert edits(served, "case1")[-1]["fallback"] == answer["fallback"]
    shutil.rmtree(served["model"])
    status, answer = post_clicks(served, "case1", {"background": [[0, 0, 0]]})
    assert status == 200, answer
    assert answer["method"] == RULE_BASED and "is gone" in answer["fallback"]
    assert [(e["method"], "fallback" in e) for e in edits(served, "case1")] == [
        (RULE_BASED, True), (RULE_BASED, True)]  # fmt: skip
    assert served["built"]["count"] == 1  # lion predict's; the server loaded no model


def test_a_plain_models_case_gets_the_rule_based_edit(tmp_path, serve, monkeypatch,
                                                     capsys) -> None:  # fmt: skip
    from lion_nnunet.inference.model import make_random_model

    folder = tmp_path / "Dataset994_PLAIN" / "nnUNetTrainer__LIONPlans__3d_fullres"
    model = make_random_model(folder, patch_size=(16, 16, 16), spacing=(6.0, 6.0, 6.0))
    suv = np.ones(CLICK_SHAPE, np.float32)
    zz, yy, xx = np.indices(CLICK_SHAPE)
    sphere = (zz - 12) ** 2 + (yy - 8) ** 2 + (xx - 16) ** 2 <= 4
    suv[sphere] = 6.0
    image = sitk.GetImageFromArray(suv)
    image.SetSpacing((6.0,) * 3)
    (tmp_path / "images").mkdir()
    sitk.WriteImage(image, str(tmp_path / "images" / "p1_0000.nii.gz"))
    _predict(tmp_path / "images", tmp_path / "pred", model)
    # lion review --serve prints which method clicks get (Ctrl-C at once)
    from http.server import ThreadingHTTPServer

    def interrupted(self):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(ThreadingHTTPServer, "serve_forever", interrupted)
        assert main(["review", "--pred", str(tmp_path / "pred"), "-o", str(tmp_path / "g0"),
                     "--no-pbar", "--serve", "0"]) == 0  # fmt: skip
    assert f"clicks: {RULE_BASED} for 1 case(s)\n" in capsys.readouterr().out
    served = serve(tmp_path / "pred")
    assert (
        served["server"].corrections.click_methods_line() == f"clicks: {RULE_BASED} for 1 case(s)"
    )
    before = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "pred/p1/tumor.nii.gz"))) > 0
    status, answer = post_clicks(served, "p1", {"tumor": [[16, 8, 12]]})  # (i, j, k)
    assert status == 200, answer
    assert answer["method"] == RULE_BASED and "fallback" not in answer
    # the rule: SUV >= 1 + 41% x (6 - 1) = 3.05 around the click: the planted sphere (added
    # to the prediction unless the click's voxel was already tumor: then nothing changes)
    expected = before if before[12, 8, 16] else before | sphere
    np.testing.assert_array_equal(corrected(served, "p1"), expected)
    assert [(e["method"], "fallback" in e) for e in edits(served, "p1")] == [(RULE_BASED, False)]
