"""``lion review --serve`` over HTTP without a browser: its safety, corrections, what it saves.

The cases are built here by hand (no phantom cohort, no model): a 24 x 24 x 24 PET of SUV 1 with
hot spheres, predicted masks written by ``lion predict``'s own case writer. Expected voxels,
volumes and counts are computed in the tests with numpy from the spheres planted.
"""

from __future__ import annotations

import csv
import gzip
import http.client
import json
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from lion_nnunet.review.gallery import build_gallery
from lion_nnunet.review.server import make_server, url_of

SHAPE = (24, 24, 24)  # z, y, x
SPACING = (4.0, 4.0, 4.0)  # x, y, z mm
#: Hot spheres (centre z, y, x; radius in voxels; SUV).
LESION_A = ((12, 12, 6), 2.5, 8.0)
LESION_B = ((12, 12, 17), 2.5, 6.0)
CASES = ("CASE_A", "CASE_B")


def sphere(centre, radius) -> np.ndarray:
    z, y, x = np.indices(SHAPE)
    return (z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2 <= radius**2


def pet_image() -> tuple[sitk.Image, np.ndarray]:
    suv = np.ones(SHAPE, np.float32)
    for centre, radius, value in (LESION_A, LESION_B):
        suv[sphere(centre, radius)] = value
        suv[centre] = value + 1.0  # one hottest voxel per lesion, at its centre
    image = sitk.GetImageFromArray(suv)
    image.SetSpacing(SPACING)
    image.SetOrigin((-40.0, 10.0, 100.0))
    return image, suv


def write_case(pred: Path, case_id: str, tumor: np.ndarray) -> None:
    from lion_nnunet.inference.outputs import write_case_outputs
    from lion_nnunet.labels import get_label_set

    image, suv = pet_image()
    write_case_outputs(pred / case_id, case_id, image, suv, tumor, None, get_label_set("fdg"),
                       model="Dataset501_LION_FDG", save_suv=True)  # fmt: skip


@pytest.fixture(scope="module")
def pred_folder(tmp_path_factory) -> Path:
    """CASE_A predicts lesion A only (B is missed); CASE_B predicts both."""
    from lion_nnunet.inference.outputs import write_summary

    pred = tmp_path_factory.mktemp("review_server") / "pred"
    write_case(pred, "CASE_A", sphere(*LESION_A[:2]))
    write_case(pred, "CASE_B", sphere(*LESION_A[:2]) | sphere(*LESION_B[:2]))
    write_summary(pred)
    return pred


@pytest.fixture
def served(pred_folder, tmp_path):
    """A gallery of a copy of ``pred_folder`` (corrections go there) served on a free port."""
    pred = tmp_path / "pred"
    shutil.copytree(pred_folder, pred)
    gallery = tmp_path / "gallery"
    result = build_gallery(pred, gallery, progress=False)
    server = make_server(gallery, set(result["order"]), port=0, pred_dir=pred)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = url_of(server)
    yield {"gallery": gallery, "pred": pred, "url": url, "server": server,
           "port": server.server_address[1], "token": server.token}  # fmt: skip
    server.shutdown()
    server.server_close()


def request(served, method: str, path: str, body: bytes | None = None,
            headers: dict | None = None) -> tuple[int, bytes]:  # fmt: skip
    """A raw request (http.client sends the Host header it is given, unlike urllib)."""
    conn = http.client.HTTPConnection("127.0.0.1", served["port"], timeout=30)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        sent = {"Host": f"127.0.0.1:{served['port']}", **(headers or {})}
        if body is not None:
            sent["Content-Length"] = str(len(body))
        for key, value in sent.items():
            if value is not None:
                conn.putheader(key, value)
        conn.endheaders(body)
        answer = conn.getresponse()
        return answer.status, answer.read()
    finally:
        conn.close()


def post_json(served, path: str, data: object, token: bool = True) -> tuple[int, dict]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["X-Lion-Token"] = served["token"]
    status, body = request(served, "POST", path, json.dumps(data).encode(), headers)
    return status, json.loads(body)


# ---------------------------------------------------------------- item 5: a safe server


def test_url_carries_a_random_token_and_binds_loopback(served, pred_folder, tmp_path) -> None:
    assert served["url"] == f"http://127.0.0.1:{served['port']}/?token={served['token']}"
    assert len(served["token"]) >= 24
    other = make_server(served["gallery"], set(CASES), port=0)
    try:
        assert other.token != served["token"]
        assert other.server_address[0] == "127.0.0.1"
    finally:
        other.server_close()


def test_foreign_host_header_is_refused(served) -> None:
    port = served["port"]
    for host in (f"evil.example:{port}", "127.0.0.1:1", f"127.0.0.1.evil.example:{port}", None):
        status, _ = request(served, "GET", "/", headers={"Host": host})
        assert status == 403, host
        status, _ = request(served, "POST", "/api/reviews", json.dumps(
            {"case_id": "CASE_A", "decision": "accept"}).encode(),
            {"Host": host, "X-Lion-Token": served["token"]})  # fmt: skip
        assert status == 403, host
    assert not (served["gallery"] / "reviews.csv").exists()
    for host in (f"127.0.0.1:{port}", f"localhost:{port}"):
        assert request(served, "GET", "/", headers={"Host": host})[0] == 200


def test_posts_without_the_token_are_refused(served) -> None:
    review = {"case_id": "CASE_A", "decision": "reject"}
    assert post_json(served, "/api/reviews", review, token=False)[0] == 403
    token = served["token"]
    wrong = token[:-1] + ("y" if token[-1] == "x" else "x")  # one character off, never equal
    status, _ = request(served, "POST", "/api/reviews", json.dumps(review).encode(),
                        {"X-Lion-Token": wrong})  # fmt: skip
    assert status == 403
    assert request(served, "GET", "/api/reviews")[0] == 403
    assert not (served["gallery"] / "reviews.csv").exists()
    assert post_json(served, "/api/reviews", review)[0] == 200
    assert (served["gallery"] / "reviews.csv").is_file()


def test_only_the_page_and_its_pictures_are_served(served, pred_folder) -> None:
    gallery = served["gallery"]
    (gallery / "secret.txt").write_text("not for the web")
    assert request(served, "GET", "/")[0] == 200
    assert request(served, "GET", "/index.html")[0] == 200
    picture = next((gallery / "images").glob("*/*.png"))
    status, body = request(served, "GET", f"/images/{picture.parent.name}/{picture.name}")
    assert status == 200 and body == picture.read_bytes()
    for path in ("/secret.txt", "/images/", "/images/CASE_A/", "/reviews.csv", "/evaluation/",
                 "/images/..%2fsecret.txt", "/images/..%2f..%2fsecret.txt",
                 "/images/CASE_A/..%2f..%2fsecret.txt", "/..%2fsecret.txt", "/%2e%2e/secret.txt",
                 "/images/..%2f..%2f..%2fpred/CASE_A/mip.png", "/images/%2e%2e/x.png"):  # fmt: skip
        status, body = request(served, "GET", path)
        assert status == 404, path
        assert b"not for the web" not in body and b"<a href" not in body


def test_formula_comments_are_stored_as_text(served) -> None:
    for n, text in enumerate(('=HYPERLINK("http://x")', "+1", "-2 cm", "@SUM(A1)", "bladder")):
        case = CASES[n % 2]
        status, row = post_json(served, "/api/reviews",
                                {"case_id": case, "decision": "", "comment": text})  # fmt: skip
        assert status == 200
        with (served["gallery"] / "reviews.csv").open(newline="") as f:
            stored = {r["case_id"]: r["comment"] for r in csv.DictReader(f)}[case]
        expected = text if text == "bladder" else "'" + text
        assert stored == expected == row["comment"]


# ---------------------------------------------------------------- items 2 and 3: corrections


VOXEL_ML = 4.0 * 4.0 * 4.0 / 1000.0  # 4 mm voxels


def array_of(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def raw_body(mask: np.ndarray) -> bytes:
    """gzip'd uint8 voxels, i fastest: a (z, y, x) array's C-order bytes."""
    return gzip.compress(np.ascontiguousarray(mask, np.uint8).tobytes())


def nifti_body(mask: np.ndarray, tmp_path: Path, spacing=SPACING) -> bytes:
    image = sitk.GetImageFromArray(mask.astype(np.uint8))
    image.CopyInformation(pet_image()[0])
    image.SetSpacing(spacing)
    path = tmp_path / "edited.nii.gz"
    sitk.WriteImage(image, str(path), useCompression=True)
    return path.read_bytes()


def post_mask(served, case_id: str, body: bytes, content_type: str, token: bool = True):
    headers = {"Content-Type": content_type, "X-Lion-Reviewer": "dr. x"}
    if token:
        headers["X-Lion-Token"] = served["token"]
    status, answer = request(served, "POST", f"/api/cases/{case_id}/mask", body, headers)
    return status, json.loads(answer)


def reviews_of(served) -> dict[str, dict]:
    with (served["gallery"] / "reviews.csv").open(newline="") as f:
        return {r["case_id"]: r for r in csv.DictReader(f)}


def test_whole_mask_posts_save_corrected_files_beside_the_prediction(served, tmp_path) -> None:
    case = served["pred"] / "CASE_A"
    before = {name: (case / name).read_bytes() for name in ("tumor.nii.gz", "report.json")}
    a, b = sphere(*LESION_A[:2]), sphere(*LESION_B[:2])
    # 1. raw voxels: the missed lesion B added
    status, answer = post_mask(served, "CASE_A", raw_body(a | b), "application/gzip")
    assert status == 200, answer
    assert answer["tmtv_ml"] == pytest.approx((a | b).sum() * VOXEL_ML, abs=1e-3)
    assert answer["lesion_count"] == 2
    np.testing.assert_array_equal(array_of(case / "tumor_corrected.nii.gz"), a | b)
    corrected = sitk.ReadImage(str(case / "tumor_corrected.nii.gz"))
    original = sitk.ReadImage(str(case / "tumor.nii.gz"))
    assert corrected.GetSpacing() == original.GetSpacing()
    assert corrected.GetOrigin() == original.GetOrigin()
    assert {n: (case / n).read_bytes() for n in before} == before  # never over the prediction
    report = json.loads((case / "report_corrected.json").read_text())
    assert report["corrected"] is True and report["tmtv_ml"] == answer["tmtv_ml"]
    assert report["model"] == "Dataset501_LION_FDG"
    # lesions_corrected.nii.gz: voxel value = lesion_id, each lesion's volume as in the report
    lesions = array_of(case / "lesions_corrected.nii.gz")
    for lesion in report["lesions"]:
        count = int((lesions == lesion["lesion_id"]).sum())
        assert lesion["volume_ml"] == pytest.approx(count * VOXEL_ML, abs=1e-3)
    assert sorted(np.unique(lesions).tolist()) == [0, 1, 2]
    # 2. a NIfTI body: only lesion B left (A was a false positive, say)
    status, answer = post_mask(served, "CASE_A", nifti_body(b, tmp_path), "application/x-nifti")
    assert status == 200, answer
    np.testing.assert_array_equal(array_of(case / "tumor_corrected.nii.gz"), b)
    record = json.loads((case / "corrections.json").read_text())
    assert record["model"] == "Dataset501_LION_FDG" and record["prediction"] == "tumor.nii.gz"
    assert [
        (e["n"], e["kind"], e["added"], e["removed"], e["reviewer"]) for e in record["edits"]
    ] == [(1, "mask", int(b.sum()), 0, "dr. x"), (2, "mask", 0, int(a.sum()), "dr. x")]
    assert all(e["time"].endswith("+00:00") for e in record["edits"])
    from lion_nnunet.io import sha256_file

    assert record["mask_sha256"] == sha256_file(case / "tumor_corrected.nii.gz")
    assert reviews_of(served)["CASE_A"]["decision"] == "corrected"
    assert reviews_of(served)["CASE_A"]["reviewer"] == "dr. x"


def test_bad_masks_are_refused_and_change_nothing(served, tmp_path) -> None:
    case = served["pred"] / "CASE_A"
    a = sphere(*LESION_A[:2])
    wrong_values = a.astype(np.uint8) * 2
    for body, kind, words in (
        (raw_body(a)[:-8], "application/gzip", "not gzip"),
        (gzip.compress(np.zeros(10, np.uint8).tobytes()), "application/gzip", "24 x 24 x 24"),
        (raw_body(wrong_values), "application/gzip", "expected 0 and 1"),
        (raw_body(a), "text/plain", "Content-Type"),
        (nifti_body(a, tmp_path, spacing=(2.0, 4.0, 4.0)), "application/x-nifti", "grid"),
        (b"not a nifti", "application/x-nifti", "NIfTI"),
    ):
        status, answer = post_mask(served, "CASE_A", body, kind)
        assert status == 400 and words in answer["error"], (words, answer)
    assert post_mask(served, "CASE_A", raw_body(a), "application/gzip", token=False)[0] == 403
    assert post_mask(served, "NOBODY", raw_body(a), "application/gzip")[0] == 404
    assert not list(case.glob("*corrected*")) and not (case / "corrections.json").exists()
    assert not list(case.glob(".*part*"))
    assert not (served["gallery"] / "reviews.csv").exists()


def test_clicks_add_a_missed_lesion_and_remove_a_false_one(served) -> None:
    case = served["pred"] / "CASE_A"
    a, b = sphere(*LESION_A[:2]), sphere(*LESION_B[:2])
    (zb, yb, xb), (za, ya, xa) = LESION_B[0], LESION_A[0]
    # a tumor click on the missed lesion B: the region of SUV >= 41% of its SUVmax 6.0 (2.46)
    # around it is exactly the planted sphere (SUV 6 in a background of SUV 1)
    status, answer = post_json(served, "/api/cases/CASE_A/clicks",
                               {"tumor": [[xb, yb, zb]], "background": []})  # fmt: skip
    assert status == 200, answer
    np.testing.assert_array_equal(array_of(case / "tumor_corrected.nii.gz"), a | b)
    assert answer["lesion_count"] == 2
    assert answer["tmtv_ml"] == pytest.approx((a | b).sum() * VOXEL_ML, abs=1e-3)
    # a background click on lesion A removes its whole component
    status, answer = post_json(served, "/api/cases/CASE_A/clicks", {"background": [[xa, ya, za]]})
    assert status == 200, answer
    np.testing.assert_array_equal(array_of(case / "tumor_corrected.nii.gz"), b)
    assert answer["lesion_count"] == 1 and answer["edits"] == 2
    edits = json.loads((case / "corrections.json").read_text())["edits"]
    assert [(e["kind"], e["tumor"], e["background"]) for e in edits] == [
        ("clicks", [[xb, yb, zb]], []), ("clicks", [], [[xa, ya, za]])]  # fmt: skip
    assert edits[0]["added"] == int(b.sum()) and edits[1]["removed"] == int(a.sum())
    status, answer = post_json(served, "/api/cases/CASE_A/clicks", {"tumor": [[24, 0, 0]]})
    assert status == 400 and "outside the image" in answer["error"]
    assert post_json(served, "/api/cases/CASE_A/clicks", {"tumor": []})[0] == 400
    assert len(json.loads((case / "corrections.json").read_text())["edits"]) == 2


def test_concurrent_posts_on_one_case_do_not_interleave(served) -> None:
    """Eight requests at once on one case: every edit is recorded once, and the files left are
    one consistent set (the mask corrections.json names, the report of that mask)."""
    case = served["pred"] / "CASE_B"
    a, b = sphere(*LESION_A[:2]), sphere(*LESION_B[:2])
    masks = [a, b, a | b, np.zeros(SHAPE, bool)] * 2
    answers = []
    threads = [threading.Thread(target=lambda m=m: answers.append(
        post_mask(served, "CASE_B", raw_body(m), "application/gzip"))) for m in masks]  # fmt: skip
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [s for s, _ in answers] == [200] * len(masks)
    record = json.loads((case / "corrections.json").read_text())
    assert [e["n"] for e in record["edits"]] == list(range(1, len(masks) + 1))
    from lion_nnunet.io import sha256_file

    assert record["mask_sha256"] == sha256_file(case / "tumor_corrected.nii.gz")
    final = array_of(case / "tumor_corrected.nii.gz").astype(bool)
    report = json.loads((case / "report_corrected.json").read_text())
    assert report["tmtv_ml"] == pytest.approx(final.sum() * VOXEL_ML, abs=1e-3)
    assert record["edits"][-1]["tmtv_ml"] == report["tmtv_ml"]
    # each edit's added/removed voxels chain: the mask after edit n is the one before edit n+1
    total = int(b.sum() + a.sum())  # the prediction of CASE_B
    for edit in record["edits"]:
        total += edit["added"] - edit["removed"]
    assert total == int(final.sum())
    assert not list(case.glob(".*part*")) and not (case / ".corrections.journal.json").exists()


def test_a_killed_write_leaves_the_old_or_the_new_files(served, monkeypatch) -> None:
    from lion_nnunet.review import corrections

    case = served["pred"] / "CASE_A"
    a, b = sphere(*LESION_A[:2]), sphere(*LESION_B[:2])
    assert post_mask(served, "CASE_A", raw_body(a | b), "application/gzip")[0] == 200
    old = {
        p.name: p.read_bytes() for p in case.iterdir() if "correct" in p.name and p.name[0] != "."
    }
    assert len(old) == 7  # mask, lesions, colour table, report, two MIPs, corrections.json
    # killed before the journal is written: the old set stays whole
    real_write_json = corrections.write_json

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(corrections, "write_json", killed)
    with pytest.raises(KeyboardInterrupt):
        corrections.CorrectionStore(served["pred"], None).save_mask(
            "CASE_A", raw_body(b), "application/gzip")  # fmt: skip
    assert {
        p.name: p.read_bytes() for p in case.iterdir() if "correct" in p.name and p.name[0] != "."
    } == old
    monkeypatch.setattr(corrections, "write_json", real_write_json)
    # killed after the journal, between two renames: the next reader completes the new set
    real_replace, calls = corrections.os.replace, []

    def replace_once(src, dst):  # the renames of the set (once the journal is there)
        if (case / ".corrections.journal.json").exists():
            calls.append(dst)
            if len(calls) == 2:
                raise KeyboardInterrupt
        real_replace(src, dst)

    monkeypatch.setattr(corrections.os, "replace", replace_once)
    with pytest.raises(KeyboardInterrupt):
        corrections.CorrectionStore(served["pred"], None).save_mask(
            "CASE_A", raw_body(b), "application/gzip")  # fmt: skip
    monkeypatch.setattr(corrections.os, "replace", real_replace)
    assert (case / ".corrections.journal.json").exists()
    path, used = corrections.case_mask(case, use_corrected=True)
    assert used and path.name == "tumor_corrected.nii.gz"
    np.testing.assert_array_equal(array_of(path), b)
    record = json.loads((case / "corrections.json").read_text())
    assert len(record["edits"]) == 2 and record["edits"][-1]["removed"] == int(a.sum())
    report = json.loads((case / "report_corrected.json").read_text())
    assert report["tmtv_ml"] == pytest.approx(b.sum() * VOXEL_ML, abs=1e-3)
    assert not list(case.glob(".*part*")) and not (case / ".corrections.journal.json").exists()


# ---------------------------------------------------------------- item 7: lesions to find


def test_lesion_map_colour_table_and_suvmax_coordinates(pred_folder) -> None:
    case = pred_folder / "CASE_B"
    report = json.loads((case / "report.json").read_text())
    lesions = array_of(case / "lesions.nii.gz")
    a, b = sphere(*LESION_A[:2]), sphere(*LESION_B[:2])
    # lesion ids: components numbered in C order of (z, y, x); A (x = 6) is met before B (x = 17)
    assert sorted(np.unique(lesions).tolist()) == [0, 1, 2]
    assert ((lesions == 1) == a).all() and ((lesions == 2) == b).all()
    by_id = {les["lesion_id"]: les for les in report["lesions"]}
    assert by_id[1]["volume_ml"] == pytest.approx(a.sum() * VOXEL_ML, abs=1e-3)
    # SUVmax voxel of A: its centre z, y, x = 12, 12, 6 -> (i, j, k) = (6, 12, 12); with origin
    # (-40, 10, 100) mm, 4 mm voxels, identity direction: LPS = (-40 + 24, 10 + 48, 100 + 48)
    assert by_id[1]["suv_max_voxel"] == [6, 12, 12]
    assert by_id[1]["suv_max_lps_mm"] == [-16.0, 58.0, 148.0]
    assert by_id[1]["suv_max_ras_mm"] == [16.0, -58.0, 148.0]
    assert by_id[2]["suv_max_voxel"] == [17, 12, 12] and by_id[2]["suv_max"] == 7.0
    table = (case / "lesions.ctbl").read_text().splitlines()
    assert table[1:] == ["0 background 0 0 0 0", "1 lesion_1 230 25 75 255",
                         "2 lesion_2 60 180 75 255"]  # fmt: skip
    assert {"lesions.nii.gz", "lesions.ctbl"} <= set(report["outputs"])
    import pandas as pd

    rows = pd.read_csv(pred_folder / "lesions.csv")
    assert list(zip(rows["case_id"], rows["lesion_id"], strict=True)) == [
        ("CASE_A", 1), ("CASE_B", 1), ("CASE_B", 2)]  # fmt: skip
    row = rows[(rows["case_id"] == "CASE_B") & (rows["lesion_id"] == 2)].iloc[0]
    assert (row["suv_max_i"], row["suv_max_j"], row["suv_max_k"]) == (17, 12, 12)
    assert row["volume_ml"] == pytest.approx(b.sum() * VOXEL_ML, abs=1e-3)
    assert row["suv_max_ras_x_mm"] == -(-40.0 + 17 * 4.0)


def test_lesion_decisions_are_recorded(served) -> None:
    review = {"case_id": "CASE_B", "decision": "", "lesions": {"2": "reject", "1": "accept"}}
    status, row = post_json(served, "/api/reviews", review)
    assert status == 200 and row["lesions"] == "1:accept 2:reject"
    assert reviews_of(served)["CASE_B"]["lesions"] == "1:accept 2:reject"
    for bad in ({"0": "accept"}, {"x": "reject"}, {"1": "maybe"}, ["1"]):
        status, _ = post_json(served, "/api/reviews", {**review, "lesions": bad})
        assert status == 400, bad
    assert reviews_of(served)["CASE_B"]["lesions"] == "1:accept 2:reject"


def test_hot_spots_keep_an_empty_prediction_from_sorting_last() -> None:
    from lion_nnunet.review.cases import review_order

    def case(case_id, tmtv, hot):
        return {"case_id": case_id, "flag_score": 0.0, "tmtv_ml": tmtv, "hot_spots_ml": hot}

    cases = [case("big", 40.0, 0.0), case("empty_with_hot_spot", 0.0, 0.6),
             case("empty", 0.0, 0.0), case("small", 2.0, None)]  # fmt: skip
    assert [c["case_id"] for c in review_order(cases)] == [
        "empty_with_hot_spot", "big", "small", "empty"]  # fmt: skip


# ---------------------------------------------------------------- item 4: corrections flow on


def test_corrections_flow_into_evaluate_review_response_and_summary(served, tmp_path) -> None:
    import pandas as pd

    from lion_nnunet.analysis.evaluate import evaluate
    from lion_nnunet.analysis.response import prediction_study
    from lion_nnunet.inference.outputs import write_summary

    pred = served["pred"]
    a, b = sphere(*LESION_A[:2]), sphere(*LESION_B[:2])
    labels = tmp_path / "labelsTs"
    labels.mkdir()
    for case in CASES:  # the truth of both cases: lesions A and B
        image = sitk.GetImageFromArray((a | b).astype(np.uint8))
        image.CopyInformation(pet_image()[0])
        sitk.WriteImage(image, str(labels / f"{case}.nii.gz"))
    # CASE_A predicted A only: Dice 2|A| / (|A| + |A u B|), by hand from the voxel counts
    dice_before = 2 * a.sum() / (a.sum() + (a | b).sum())
    assert post_mask(served, "CASE_A", raw_body(a | b), "application/gzip")[0] == 200
    for use, expected in ((False, dice_before), (True, 1.0)):
        result = evaluate(pred, labels, tmp_path / f"eval_{use}", progress=False,
                          use_corrected=use)  # fmt: skip
        rows = pd.read_csv(tmp_path / f"eval_{use}" / "per_case.csv").set_index("case_id")
        assert rows.loc["CASE_A", "dice"] == pytest.approx(expected, abs=1e-4)
        assert rows.loc["CASE_B", "dice"] == pytest.approx(1.0)
        assert result["corrected_cases"] == (["CASE_A"] if use else [])
        assert ("corrected" in rows) == use
    # lion review: corrected numbers by default, the prediction's with use_corrected=False
    from lion_nnunet.cli import main

    for flag, tmtv in (([], (a | b).sum()), (["--no-use-corrected"], a.sum())):
        out = tmp_path / f"gallery{len(flag)}"
        assert main(["review", "--pred", str(pred), "-o", str(out), "--no-pbar", *flag]) == 0
        text = (out / "index.html").read_text()
        marker = '<script type="application/json" id="gallery-data">'
        start = text.index(marker) + len(marker)
        data = json.loads(text[start : text.index("</script>", start)])
        case = next(c for c in data["cases"] if c["case_id"] == "CASE_A")
        assert case["tmtv_ml"] == pytest.approx(tmtv * VOXEL_ML, abs=1e-3)
        assert case["corrected"] is (not flag)
    # lion response reads a case folder's corrected mask by default
    study = prediction_study(pred / "CASE_A", "baseline", pet=pred / "CASE_A" / "suv.nii.gz")
    assert study.corrected and (study.tumor > 0).sum() == (a | b).sum()
    study = prediction_study(pred / "CASE_A", "baseline", pet=pred / "CASE_A" / "suv.nii.gz",
                             use_corrected=False)  # fmt: skip
    assert not study.corrected and (study.tumor > 0).sum() == a.sum()
    # the cohort tables: summary.csv and lesions.csv with the corrected case's numbers
    write_summary(pred, use_corrected=True)
    summary = pd.read_csv(pred / "summary.csv").set_index("case_id")
    assert summary.loc["CASE_A", "corrected"] and not summary.loc["CASE_B", "corrected"]
    assert summary.loc["CASE_A", "lesion_count"] == 2
    lesions = pd.read_csv(pred / "lesions.csv")
    assert (lesions["case_id"] == "CASE_A").sum() == 2 and lesions["corrected"].sum() == 2


def test_the_viewer_files_and_the_current_mask_are_served(served) -> None:
    """GET /vendor/niivue.umd.js and /images/<case>/volumes.js (the viewer's), and GET
    /api/cases/<case>/mask: the current mask as POST .../mask takes it raw, corrected or not."""
    import base64

    vendored = Path(__file__).parents[1] / "lion_nnunet/review/static/vendor/niivue/niivue.umd.js"
    status, body = request(served, "GET", "/vendor/niivue.umd.js")
    assert status == 200 and body == vendored.read_bytes()
    assert request(served, "GET", "/vendor/niivue.json")[0] == 404  # only the two files
    status, body = request(served, "GET", "/images/CASE_A/volumes.js")
    assert status == 200 and body.startswith(b'lionVolumes("CASE_A", ')
    data = json.loads(body.decode()[len('lionVolumes("CASE_A", ') : -len(");\n")])
    pred = served["pred"] / "CASE_A"
    assert base64.b64decode(data["tumor"]) == (pred / "tumor.nii.gz").read_bytes()
    assert base64.b64decode(data["pet"]) == (pred / "suv.nii.gz").read_bytes()

    def get_mask(token: bool = True):
        conn = http.client.HTTPConnection("127.0.0.1", served["port"], timeout=30)
        try:
            headers = {"Host": f"127.0.0.1:{served['port']}"}
            if token:
                headers["X-Lion-Token"] = served["token"]
            conn.request("GET", "/api/cases/CASE_A/mask", headers=headers)
            answer = conn.getresponse()
            return answer.status, dict(answer.getheaders()), answer.read()
        finally:
            conn.close()

    assert get_mask(token=False)[0] == 403
    a, b = sphere(*LESION_A[:2]), sphere(*LESION_B[:2])
    status, headers, body = get_mask()
    assert status == 200 and headers["X-Lion-Corrected"] == "false"
    assert headers["X-Lion-Size"] == ",".join(map(str, SHAPE[::-1]))
    assert gzip.decompress(body) == a.astype(np.uint8).tobytes()  # i fastest: C order of (z, y, x)
    assert post_mask(served, "CASE_A", raw_body(a | b), "application/gzip")[0] == 200
    status, headers, body = get_mask()
    assert headers["X-Lion-Corrected"] == "true"
    assert gzip.decompress(body) == (a | b).astype(np.uint8).tobytes()


def test_the_gallery_cohort_tables_follow_corrections(served, tmp_path) -> None:
    """lion review writes the cohort's summary.csv and lesions.csv into the gallery with the
    corrected masks; the server rewrites them after each correction; the prediction's own
    tables stay as lion predict wrote them."""
    import pandas as pd

    from lion_nnunet.cli import main

    pred, gallery = served["pred"], served["gallery"]
    own = {n: (pred / n).read_bytes() for n in ("summary.csv", "lesions.csv")}
    a, b = sphere(*LESION_A[:2]), sphere(*LESION_B[:2])
    assert post_mask(served, "CASE_A", raw_body(a | b), "application/gzip")[0] == 200
    summary = pd.read_csv(gallery / "summary.csv").set_index("case_id")
    assert summary.loc["CASE_A", "corrected"] and not summary.loc["CASE_B", "corrected"]
    assert summary.loc["CASE_A", "tmtv_ml"] == pytest.approx((a | b).sum() * VOXEL_ML, abs=1e-3)
    lesions = pd.read_csv(gallery / "lesions.csv")
    assert sorted(lesions.loc[lesions["case_id"] == "CASE_A", "corrected"]) == [True, True]
    assert {n: (pred / n).read_bytes() for n in own} == own
    for flag, tmtv in (([], (a | b).sum()), (["--no-use-corrected"], a.sum())):
        out = tmp_path / f"rebuilt{len(flag)}"
        assert main(["review", "--pred", str(pred), "-o", str(out), "--no-pbar", *flag]) == 0
        rows = pd.read_csv(out / "summary.csv").set_index("case_id")
        assert rows.loc["CASE_A", "tmtv_ml"] == pytest.approx(tmtv * VOXEL_ML, abs=1e-3)


def test_a_correction_draws_its_own_mips(served, tmp_path) -> None:
    from PIL import Image

    case = served["pred"] / "CASE_A"
    a, b = sphere(*LESION_A[:2]), sphere(*LESION_B[:2])
    status, answer = post_mask(served, "CASE_A", raw_body(a | b), "application/gzip")
    assert status == 200
    assert {"mip_coronal_corrected.png", "mip_sagittal_corrected.png"} <= set(answer["files"])

    # the corrected coronal MIP shows lesion B (x = 17, the missed one) in red; the prediction's
    # does not: the red pixels of the right half of each picture
    def red_right_half(path):
        rgb = np.asarray(Image.open(path).convert("RGB")).astype(int)
        right = rgb[:, rgb.shape[1] // 2 + 10 :]
        return int(((right[..., 0] - right[..., 1]) > 100).sum())

    assert red_right_half(case / "mip_coronal.png") == 0
    assert red_right_half(case / "mip_coronal_corrected.png") > 0

    # a gallery built afterwards shows the corrected MIPs (the prediction's with the switch off)
    from lion_nnunet.cli import main

    for flag, corrected in (([], True), (["--no-use-corrected"], False)):
        out = tmp_path / f"gallery{len(flag)}"
        assert (
            main(["review", "--pred", str(served["pred"]), "-o", str(out), "--no-pbar", *flag]) == 0
        )
        pictures = sorted(p.name for p in (out / "images" / "CASE_A").glob("*.png"))
        assert len(pictures) == 2, pictures
        assert all(p.endswith("_corrected.png") == corrected for p in pictures), pictures


def test_an_empty_prediction_over_hot_spots_is_not_ranked_last(tmp_path) -> None:
    """Phantoms through lion predict's case writer: HOT has nothing predicted but an unsegmented
    hot sphere (SUV 8, far from the liver of SUV 1.5: above 3 x 1.5 = 4.5); QUIET has nothing
    predicted and nothing hot; SMALL has its one hot sphere predicted. HOT comes first."""
    from lion_nnunet.inference.outputs import write_case_outputs
    from lion_nnunet.labels import get_label_set
    from lion_nnunet.review.cases import read_cases, review_order

    fdg = get_label_set("fdg")
    organs = np.zeros(SHAPE, np.uint8)
    organs[2:10, 2:10, 2:10] = fdg.label_of("liver")  # 512 voxels = 32.8 ml
    hot = sphere((16, 16, 16), 2.5)  # z, y, x >= 14 vs the liver <= 9: over 20 mm (> 8 mm) away
    pred = tmp_path / "pred"
    for case, spot, tumor in (("HOT", True, False), ("QUIET", False, False),
                              ("SMALL", True, True)):  # fmt: skip
        suv = np.random.default_rng(0).uniform(0.9, 1.1, SHAPE).astype(np.float32)
        suv[organs > 0] = 1.5
        if spot:
            suv[hot] = 8.0
        image = sitk.GetImageFromArray(suv)
        image.SetSpacing(SPACING)
        write_case_outputs(pred / case, case, image, suv, hot if tumor else np.zeros(SHAPE), organs,
                           fdg, save_organs=True)  # fmt: skip
    cases = {c["case_id"]: c for c in read_cases(pred)}
    assert cases["HOT"]["hot_spots_ml"] == pytest.approx(hot.sum() * VOXEL_ML, abs=1e-3)
    assert cases["HOT"]["tmtv_ml"] == 0 and cases["HOT"]["flag_score"] > 0
    assert cases["SMALL"]["hot_spots_ml"] == 0 and cases["QUIET"]["hot_spots_ml"] == 0
    assert review_order(list(cases.values()))[0]["case_id"] == "HOT"
