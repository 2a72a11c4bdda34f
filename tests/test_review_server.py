"""``lion review --serve`` over HTTP without a browser: its safety, corrections, what it saves.

The cases are built here by hand (no phantom cohort, no model): a 24 x 24 x 24 PET of SUV 1 with
hot spheres, predicted masks written by ``lion predict``'s own case writer. Expected voxels,
volumes and counts are computed in the tests with numpy from the spheres planted.
"""

from __future__ import annotations

import csv
import http.client
import json
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
    gallery = tmp_path / "gallery"
    result = build_gallery(pred_folder, gallery, progress=False)
    server = make_server(gallery, set(result["order"]), port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = url_of(server)
    yield {"gallery": gallery, "url": url, "base": url.split("?")[0], "server": server,
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
    status, _ = request(served, "POST", "/api/reviews", json.dumps(review).encode(),
                        {"X-Lion-Token": served["token"][:-1] + "x"})  # fmt: skip
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
