"""``lion review``: the gallery page, its order, its server, and the page in a real browser.

The cohort: the session's 10 FDG phantoms (``fdg_cohort``), written as ``lion predict`` writes a
case folder (:func:`lion_nnunet.synthetic.review_cohort.write_predictions`: the true lesions as
the prediction) with one planted outlier whose "tumor" is the bladder and the brain. Expected
orders, volumes and Dice values are computed here from the masks with numpy. The browser tests
drive Debian's headless Chromium through Selenium and chromedriver, one browser per module.
"""

from __future__ import annotations

import csv
import json
import shutil
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from fixtures_nnunet import SMALL_RANDOM_NET

from lion_nnunet.cli import main
from lion_nnunet.review.gallery import build_gallery
from lion_nnunet.review.reviews import COLUMNS, ReviewBook, clean_review
from lion_nnunet.review.server import make_server, url_of
from lion_nnunet.synthetic.review_cohort import organ_map, write_labels, write_predictions

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
OUTLIER = "SYNFDG_0002"
PLANTED = {OUTLIER: ["urinary_bladder", "brain"]}
#: A case whose prediction misses its largest lesion (Dice between the outlier's and 1).
MISSED = "SYNFDG_0005"
# a 1x1 PNG (the 1,000-card test shares it)
TINY_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c63f8cfc0f01f0005000201c2b0b14f0000000049454e44ae426082"
)


def _mask(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path))) > 0


def _voxel_ml(path: Path) -> float:
    return float(np.prod(sitk.ReadImage(str(path)).GetSpacing())) / 1000.0


@pytest.fixture(scope="module")
def predicted(fdg_cohort: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Prediction folder (outlier planted, one lesion of MISSED dropped), labelsTs, truths."""
    root = tmp_path_factory.mktemp("review")
    pred, labels = root / "pred", root / "labelsTs"
    ids = write_predictions(fdg_cohort, pred, "fdg", PLANTED)
    write_labels(fdg_cohort, labels)
    # MISSED: drop its largest lesion from the prediction, as lion predict would write it
    study = fdg_cohort / "studies" / MISSED / "study_01"
    seg = sitk.ReadImage(str(study / "SEG.nii.gz"))
    comps = sitk.GetArrayFromImage(sitk.ConnectedComponent(seg, True))
    sizes = np.bincount(comps.ravel())[1:]
    assert len(sizes) >= 2  # the case keeps lesions, so its Dice lies strictly between 0 and 1
    from lion_nnunet.inference.outputs import write_case_outputs, write_summary
    from lion_nnunet.io import read_float_image
    from lion_nnunet.labels import get_label_set

    pet, suv = read_float_image(study / "SUV.nii.gz", "PET")
    organs = organ_map(fdg_cohort / "organs" / MISSED / "study_01", pet, "fdg")
    tumor = (comps > 0) & (comps != int(np.argmax(sizes)) + 1)
    write_case_outputs(pred / MISSED, MISSED, pet, suv, tumor, organs, get_label_set("fdg"))
    write_summary(pred)
    return {"root": root, "pred": pred, "labels": labels, "ids": ids}


def _tmtv_ml(pred: Path, case_id: str) -> float:
    path = pred / case_id / "tumor.nii.gz"
    return float(_mask(path).sum()) * _voxel_ml(path)


def _page_data(index: Path) -> dict:
    text = index.read_text(encoding="utf-8")
    marker = '<script type="application/json" id="gallery-data">'
    start = text.index(marker) + len(marker)
    return json.loads(text[start : text.index("</script>", start)])


def _as_before_flag_scores(pred: Path, case_ids: list[str]) -> None:
    """Make case folders look as lion predict wrote them before flag scores and single views."""
    for case_id in case_ids:
        path = pred / case_id / "report.json"
        report = json.loads(path.read_text())
        for key in ("flag_score", "flag_reasons", "flag_terms"):
            report.pop(key, None)
        path.write_text(json.dumps(report))
        for view in ("mip_coronal.png", "mip_sagittal.png"):
            (pred / case_id / view).unlink(missing_ok=True)


def test_planted_outlier_comes_first(predicted, tmp_path) -> None:
    """Reports as write_case_outputs writes them (with or without flag scores): outlier first."""
    data = _page_data(
        Path(build_gallery(predicted["pred"], tmp_path / "g", progress=False)["index"])
    )
    assert len(data["cases"]) == len(predicted["ids"]) == 10
    assert data["cases"][0]["case_id"] == OUTLIER


def test_cards_go_largest_tmtv_first_when_reports_have_no_flag_score(predicted, tmp_path) -> None:
    """lion predict output without flag_score: planted outlier first, then by TMTV."""
    pred = tmp_path / "pred"
    shutil.copytree(predicted["pred"], pred)
    _as_before_flag_scores(pred, predicted["ids"])
    tmtv = {c: _tmtv_ml(pred, c) for c in predicted["ids"]}
    assert tmtv[OUTLIER] > 0
    expected = sorted(predicted["ids"], key=lambda c: (-tmtv[c], c))
    assert expected[0] == OUTLIER
    gallery = tmp_path / "gallery"
    assert main(["review", "--pred", str(pred), "-o", str(gallery), "--no-pbar"]) == 0
    data = _page_data(gallery / "index.html")
    assert [c["case_id"] for c in data["cases"]] == expected
    assert all(c["flag_score"] is None for c in data["cases"])
    for case in data["cases"]:  # every picture copied beside the page, linked relatively
        assert [p["src"] for p in case["pictures"]] == [f"images/{case['case_id']}/mip.png"]
        assert (gallery / case["pictures"][0]["src"]).stat().st_size > 1000
    page = (gallery / "index.html").read_text()
    assert "<link" not in page and 'src="http' not in page and "@import" not in page


def test_flag_scores_order_cards_and_views_replace_mip(predicted, tmp_path) -> None:
    """With the confidence contract's fields: flag score order, reasons, lesion confidence,
    and mip_coronal.png / mip_sagittal.png instead of mip.png."""
    pred = tmp_path / "pred"
    shutil.copytree(predicted["pred"], pred)
    _as_before_flag_scores(pred, predicted["ids"])
    scores = {"SYNFDG_0007": 4.5, OUTLIER: 3.25, "SYNFDG_0001": 0.5}  # others: absent
    for case_id, score in scores.items():
        path = pred / case_id / "report.json"
        report = json.loads(path.read_text())
        report["flag_score"] = score
        report["flag_reasons"] = [f"reason of {case_id}", "second reason"]
        for k, lesion in enumerate(report["lesions"]):
            lesion["confidence"], lesion["fold_agreement"] = 0.123456 + k / 100, None
        path.write_text(json.dumps(report))
        for view in ("mip_coronal.png", "mip_sagittal.png"):
            (pred / case_id / view).write_bytes(TINY_PNG)
    (pred / "SYNFDG_0003" / "mip.png").unlink()  # a case without any picture still gets a card
    data = _page_data(Path(build_gallery(pred, tmp_path / "g", progress=False)["index"]))
    order = [c["case_id"] for c in data["cases"]]
    rest = sorted(set(predicted["ids"]) - set(scores), key=lambda c: (-_tmtv_ml(pred, c), c))
    assert order == ["SYNFDG_0007", OUTLIER, "SYNFDG_0001", *rest]
    cards = {c["case_id"]: c for c in data["cases"]}
    assert cards[OUTLIER]["flag_reasons"] == [f"reason of {OUTLIER}", "second reason"]
    assert [p["view"] for p in cards[OUTLIER]["pictures"]] == ["coronal", "sagittal"]
    assert [p["view"] for p in cards[rest[0]]["pictures"]] == ["coronal + sagittal"]
    assert cards["SYNFDG_0003"]["pictures"] == [] and "SYNFDG_0003" in rest
    columns = data["lesion_columns"]
    rows = [dict(zip(columns, row, strict=True)) for row in cards[OUTLIER]["lesions"]]
    assert len(rows) == 2  # bladder and brain: two components
    assert rows[0]["volume_ml"] >= rows[1]["volume_ml"]  # largest first
    assert {r["id"]: r["confidence"] for r in rows} == {1: 0.123, 2: 0.133}  # 3 decimals
    assert all(r["fold_agreement"] is None for r in rows)


def test_gt_puts_worst_dice_first(predicted, tmp_path) -> None:
    """--gt: Dice (computed here with numpy) ascending; empty truth predicted empty ranks as 1."""
    pred, labels = predicted["pred"], predicted["labels"]
    dice = {}
    for c in predicted["ids"]:
        p, g = _mask(pred / c / "tumor.nii.gz"), _mask(labels / f"{c}.nii.gz")
        dice[c] = 2 * (p & g).sum() / (p.sum() + g.sum()) if g.any() else (0.0 if p.any() else 1.0)
    assert dice[OUTLIER] < dice[MISSED] < 1.0
    gallery = tmp_path / "gallery"
    args = ["review", "--pred", str(pred), "--gt", str(labels), "-o", str(gallery), "--no-pbar"]
    assert main(args) == 0
    data = _page_data(gallery / "index.html")
    order = [c["case_id"] for c in data["cases"]]
    assert order[:2] == [OUTLIER, MISSED]
    assert [dice[c] for c in order] == sorted(dice.values())
    cards = {c["case_id"]: c for c in data["cases"]}
    assert cards[MISSED]["dice"] == pytest.approx(dice[MISSED], abs=1e-4)
    assert (gallery / "evaluation" / "per_case.csv").is_file()


def test_rebuild_keeps_reviews_and_drops_pictures_of_cases_gone(predicted, tmp_path) -> None:
    pred, gallery = tmp_path / "pred", tmp_path / "gallery"
    shutil.copytree(predicted["pred"], pred)
    build_gallery(pred, gallery, progress=False)
    ReviewBook(gallery / "reviews.csv").record(
        clean_review({"case_id": OUTLIER, "decision": "reject", "comment": "bladder"}, {OUTLIER})
    )
    written = (gallery / "reviews.csv").read_text()
    shutil.rmtree(pred / MISSED)
    assert (gallery / "images" / MISSED).is_dir()
    result = build_gallery(pred, gallery, overwrite=True, progress=False)
    assert result["cases"] == len(predicted["ids"]) - 1
    assert (gallery / "reviews.csv").read_text() == written
    assert _page_data(gallery / "index.html")["reviews"][OUTLIER]["decision"] == "reject"
    assert not (gallery / "images" / MISSED).exists() and (gallery / "images" / OUTLIER).is_dir()
    assert sorted(p.name for p in gallery.iterdir()) == [
        "images", "index.html", "reviews.csv", "vendor"]  # no staging folder left  # fmt: skip


def _tree(folder: Path) -> dict[str, tuple[bytes | None, int]]:
    """Every path under ``folder``: its bytes (None for a folder) and its mtime in ns."""
    return {str(p.relative_to(folder)): (None if p.is_dir() else p.read_bytes(),
                                         p.stat().st_mtime_ns)
            for p in folder.rglob("*")}  # fmt: skip


def test_foreign_images_folder_survives_without_overwrite(predicted, tmp_path, capsys) -> None:
    out = tmp_path / "mine"
    (out / "images").mkdir(parents=True)
    (out / "images" / "holiday.jpg").write_bytes(b"not the gallery's")
    (out / "evaluation").mkdir()
    (out / "evaluation" / "notes.txt").write_text("mine too")
    base = ["review", "--pred", str(predicted["pred"]), "-o", str(out), "--no-pbar"]
    held = _tree(out)
    for extra in ([], ["--gt", str(predicted["labels"])]):
        assert main([*base, *extra]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert err == [f"lion review: error: {out / 'images'} exists but {out} holds no "
                       "gallery (index.html); the gallery would replace it, so give another -o, "
                       "or use --overwrite to replace it"]  # fmt: skip
        assert (out / "images" / "holiday.jpg").read_bytes() == b"not the gallery's"
        assert (out / "evaluation" / "notes.txt").read_text() == "mine too"
        assert _tree(out) == held  # refused: -o holds what it held, no lion.log either
    (out / "images").rename(tmp_path / "moved")  # evaluation/ alone is replaced only with --gt
    assert main([*base, "--gt", str(predicted["labels"])]) == 1
    assert f"{out / 'evaluation'} exists" in capsys.readouterr().err
    assert main(base) == 0 and (out / "index.html").is_file()
    assert (out / "evaluation" / "notes.txt").read_text() == "mine too"


def test_bad_input_is_one_sentence(predicted, tmp_path, capsys) -> None:
    empty = tmp_path / "empty_pred"
    (empty / "PETCT_0af7ffe12a").mkdir(parents=True)  # an unfinished case: no report.json
    assert main(["review", "--pred", str(empty), "-o", str(tmp_path / "g")]) == 1
    err = capsys.readouterr().err
    assert "no case outputs" in err and str(empty) in err and "lion predict" in err
    assert not (tmp_path / "g").exists()  # nothing written
    gallery = tmp_path / "g2"
    base = ["review", "--pred", str(predicted["pred"]), "-o", str(gallery), "--no-pbar"]
    assert main(base) == 0
    assert main(base) == 1
    assert "index.html exists; use --overwrite" in capsys.readouterr().err
    broken = tmp_path / "broken"
    shutil.copytree(predicted["pred"], broken)
    (broken / OUTLIER / "report.json").write_text("{not json")
    assert main(["review", "--pred", str(broken), "-o", str(tmp_path / "g3")]) == 1
    assert f"{OUTLIER}/report.json: unreadable report" in capsys.readouterr().err
    shutil.copytree(broken / MISSED, broken / f"{MISSED}_copy")  # one case in two folders
    (broken / OUTLIER / "report.json").unlink()
    assert main(["review", "--pred", str(broken), "-o", str(tmp_path / "g3")]) == 1
    assert f"case ids repeat ({MISSED} in {MISSED} and {MISSED}_copy)" in capsys.readouterr().err
    other_gt = tmp_path / "labelsTs"
    other_gt.mkdir()
    shutil.copy(predicted["labels"] / f"{OUTLIER}.nii.gz", other_gt / "PETCT_0af7ffe12a.nii.gz")
    assert main([*base, "--overwrite", "--gt", str(other_gt)]) == 1
    assert "no ground truth for any of the 10 predicted case(s)" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:
        main([*base, "--serve", "http"])
    assert stop.value.code == 2


@pytest.fixture(scope="module")
def thousand(tmp_path_factory) -> Path:
    """A gallery of 1,000 cases at the lesion-table cap, with the contract's fields."""
    root = tmp_path_factory.mktemp("thousand")
    pred = root / "pred"
    rng = np.random.default_rng(0)
    for i in range(1000):
        case_id = f"PETCT_{rng.bytes(5).hex()}_{i:04d}"
        lesions = [{"lesion_id": k + 1, "volume_ml": 123.456, "suv_max": 12.34, "suv_mean": 5.67,
                    "suv_peak": 8.9, "tlg": 700.12, "centroid_mm": [-123.4, 56.7, -890.1],
                    "nearest_organ": "urinary_bladder", "distance_to_organ_mm": 123.4,
                    "confidence": 0.987654321, "fold_agreement": 0.8}
                   for k in range(60)]  # fmt: skip
        report = {"case_id": case_id, "tmtv_ml": 9876.543, "lesion_count": 60, "suv_max": 45.67,
                  "lesions": lesions, "flag_score": float(rng.random() * 10),
                  "flag_reasons": ["1,234.5 ml of tumor inside or touching urinary_bladder",
                                   "12 lesions with confidence below 0.5 (345.6 ml)"]}  # fmt: skip
        (pred / case_id).mkdir(parents=True)
        (pred / case_id / "report.json").write_text(json.dumps(report))
        for view in ("mip_coronal.png", "mip_sagittal.png"):
            (pred / case_id / view).write_bytes(TINY_PNG)
    result = build_gallery(pred, root / "gallery", progress=False)
    assert result["cases"] == 1000
    return Path(result["index"])


def test_a_thousand_cases_make_a_page_under_5_mb(thousand) -> None:
    size = thousand.stat().st_size
    print(f"1,000-case index.html: {size / 1e6:.2f} MB")
    assert size < 5_000_000
    data = _page_data(thousand)
    assert len(data["cases"]) == 1000 and all(len(c["lesions"]) == 20 for c in data["cases"])
    scores = [c["flag_score"] for c in data["cases"]]
    assert scores == sorted(scores, reverse=True)


def _post(url: str, body: bytes) -> tuple[int, dict]:
    """POST a review with the token of ``url`` (``http://127.0.0.1:PORT/?token=T``)."""
    base, token = url.split("?token=")
    request = urllib.request.Request(base + "api/reviews", data=body, method="POST", headers={
        "Content-Type": "application/json", "X-Lion-Token": token})  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.fixture
def served(predicted, tmp_path):
    """A gallery and its server on a free 127.0.0.1 port, running in a thread."""
    gallery = tmp_path / "gallery"
    result = build_gallery(predicted["pred"], gallery, progress=False)
    server = make_server(gallery, set(result["order"]), port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield {"gallery": gallery, "url": url_of(server), "server": server}
    server.shutdown()
    server.server_close()


def test_server_records_reviews_atomically_and_refuses_bad_ones(served, predicted) -> None:
    url, csv_path = served["url"], served["gallery"] / "reviews.csv"
    assert url.startswith("http://127.0.0.1:")
    assert _post(url, b"{not json")[0] == 400
    assert _post(url, json.dumps({"case_id": "nobody", "decision": "accept"}).encode())[0] == 400
    assert _post(url, json.dumps({"case_id": OUTLIER, "decision": "maybe"}).encode())[0] == 400
    base, token = url.split("?token=")
    foreign = urllib.request.Request(base + "api/reviews", method="POST", headers={
        "Content-Type": "text/plain", "Origin": "https://example.org", "X-Lion-Token": token},
        data=json.dumps({"case_id": OUTLIER, "decision": "accept"}).encode())  # fmt: skip
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(foreign, timeout=10)
    assert refused.value.code == 403  # another site's page cannot record a decision
    assert not csv_path.exists()
    ids = predicted["ids"]
    threads = [threading.Thread(target=_post, args=(url, json.dumps(
        {"case_id": c, "decision": "reject", "comment": f'bladder, "brain" {c}'}).encode()))
        for c in ids]  # fmt: skip
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    status, row = _post(url, json.dumps({"case_id": ids[0], "decision": "accept",
                                          "reviewer": "dr. x"}).encode())  # fmt: skip
    assert status == 200 and row["decision"] == "accept" and row["timestamp"]
    with csv_path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == COLUMNS
    assert sorted(r["case_id"] for r in rows) == sorted(ids)  # one row per case, none lost
    by_id = {r["case_id"]: r for r in rows}
    assert by_id[ids[0]]["decision"] == "accept" and by_id[ids[0]]["reviewer"] == "dr. x"
    assert by_id[ids[1]]["comment"] == f'bladder, "brain" {ids[1]}'
    listing = urllib.request.Request(base + "api/reviews", headers={"X-Lion-Token": token})
    with urllib.request.urlopen(listing, timeout=10) as answer:
        assert len(json.loads(answer.read())) == len(ids)
    assert not list(served["gallery"].glob(".*part*"))


# ---------------------------------------------------------------- the page in a real browser


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium (Debian's, via its chromedriver) for the module's tests."""
    if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
        pytest.skip(f"browser tests need Debian's chromium and chromedriver ({CHROMIUM}, "
                    f"{CHROMEDRIVER}): apt-get install chromium chromium-driver")  # fmt: skip
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000",
                "--disable-dev-shm-usage"):  # fmt: skip
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def _open(driver, url: str) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    WebDriverWait(driver, 15).until(
        lambda d: d.execute_script("return document.body.dataset.ready === 'true'")
    )


def _order(driver) -> list[str]:
    return driver.execute_script(
        "return [...document.querySelectorAll('.card')].filter(c => !c.hidden)"
        ".map(c => c.dataset.caseId)"
    )


@pytest.fixture(scope="module")
def gallery_page(predicted, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("gallery_page")
    assert main(["review", "--pred", str(predicted["pred"]), "-o", str(out), "--no-pbar"]) == 0
    return out / "index.html"


def test_browser_shows_every_case_outlier_first_and_every_image_loads(
    browser, gallery_page, predicted
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    _open(browser, gallery_page.as_uri())
    cards = browser.find_elements(By.CSS_SELECTOR, ".card[data-case-id][data-flag-score]")
    assert len(cards) == len(predicted["ids"]) == 10
    assert cards[0].get_attribute("data-case-id") == OUTLIER
    images = browser.find_elements(By.CSS_SELECTOR, ".card img")
    pred = predicted["pred"]
    views = sum(2 if (pred / c / "mip_coronal.png").is_file() else 1 for c in predicted["ids"])
    assert len(images) == views >= len(cards)
    assert all(img.get_attribute("loading") == "lazy" for img in images)
    for img in images:  # lazy: each loads once scrolled into view
        browser.execute_script("arguments[0].scrollIntoView()", img)
        WebDriverWait(browser, 10).until(lambda d, img=img: d.execute_script(
            "return arguments[0].complete && arguments[0].naturalWidth > 0", img))  # fmt: skip
    report = json.loads((pred / OUTLIER / "report.json").read_text())
    score = report.get("flag_score")
    first = cards[0].text
    assert f"TMTV {report['tmtv_ml']:.1f} ml" in first
    assert ("flag n/a" if score is None else f"flag {score:.2f}") in first


def test_browser_sort_and_filter_controls(browser, gallery_page, predicted) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    _open(browser, gallery_page.as_uri())
    review_order = _order(browser)
    assert review_order[0] == OUTLIER and review_order != sorted(review_order)
    Select(browser.find_element(By.ID, "sort")).select_by_value("case")
    assert _order(browser) == sorted(predicted["ids"])
    Select(browser.find_element(By.ID, "sort")).select_by_value("lesions")
    counts = browser.execute_script(
        "return [...document.querySelectorAll('.card')].map(c => +c.dataset.lesions)"
    )
    assert counts == sorted(counts, reverse=True) and counts[0] > counts[-1]
    Select(browser.find_element(By.ID, "sort")).select_by_value("rank")
    assert _order(browser) == review_order
    browser.find_element(By.ID, "filter").send_keys(MISSED)
    assert _order(browser) == [MISSED]
    assert browser.find_element(By.ID, "shown").text == "1 of 10 cases"


def test_browser_export_without_server(browser, gallery_page) -> None:
    """Opened from disk: decisions are exported as reviews.csv (a Blob download)."""
    from selenium.webdriver.common.by import By

    _open(browser, gallery_page.as_uri())
    browser.execute_script(
        "window.__blobs = []; const make = URL.createObjectURL;"
        "URL.createObjectURL = (b) => { window.__blobs.push(b); return make(b); };"
    )
    card = browser.find_element(By.CSS_SELECTOR, f'.card[data-case-id="{OUTLIER}"]')
    card.find_element(By.CSS_SELECTOR, "button.reject").click()
    card.find_element(By.CSS_SELECTOR, "textarea.comment").send_keys("bladder and brain")
    browser.find_element(By.ID, "reviewer").send_keys("AB")  # blur: the comment is recorded
    browser.find_element(By.ID, "export").click()
    text = browser.execute_async_script(
        "const done = arguments[0]; window.__blobs[0].text().then(done);"
    )
    rows = list(csv.DictReader(text.splitlines()))
    assert tuple(rows[0]) == COLUMNS
    assert [(r["case_id"], r["decision"], r["comment"]) for r in rows] == [
        (OUTLIER, "reject", "bladder and brain")
    ]
    browser.execute_script("localStorage.clear()")


def test_browser_accept_click_lands_in_reviews_csv(browser, served) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    _open(browser, served["url"])
    csv_path = served["gallery"] / "reviews.csv"
    assert not csv_path.exists()
    card = browser.find_element(By.CSS_SELECTOR, f'.card[data-case-id="{OUTLIER}"]')
    card.find_element(By.CSS_SELECTOR, "button.accept").click()
    WebDriverWait(browser, 10).until(lambda d: csv_path.is_file())
    with csv_path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["case_id"], r["decision"]) for r in rows] == [(OUTLIER, "accept")]
    assert "saved" in browser.find_element(By.ID, "status").text
    browser.execute_script("localStorage.clear()")
    _open(browser, served["url"])  # the recorded decision comes back from the server
    card = browser.find_element(By.CSS_SELECTOR, f'.card[data-case-id="{OUTLIER}"]')
    WebDriverWait(browser, 10).until(lambda d: card.find_element(
        By.CSS_SELECTOR, "button.accept").get_attribute("aria-pressed") == "true")  # fmt: skip


def _csv_decisions(path: Path) -> dict[str, str]:
    with path.open(newline="") as f:
        return {r["case_id"]: r["decision"] for r in csv.DictReader(f)}


def _click_offline(driver, case_id: str, button: str) -> None:
    """A click whose POST cannot reach the server: the decision stays in this browser."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.execute_script("window.fetch = () => Promise.reject(new Error('offline'));")
    card = driver.find_element(By.CSS_SELECTOR, f'.card[data-case-id="{case_id}"]')
    card.find_element(By.CSS_SELECTOR, f"button.{button}").click()
    WebDriverWait(driver, 10).until(lambda d: "NOT saved" in d.find_element(By.ID, "status").text)


def _pressed(driver, case_id: str) -> str:
    """The decision a card shows: accept, reject or empty."""
    return driver.execute_script(
        "const c = document.querySelector(`.card[data-case-id='${arguments[0]}']`);"
        "return c.classList.contains('accept') ? 'accept' : c.classList.contains('reject') ? "
        "'reject' : '';",
        case_id,
    )


def test_browser_keeps_the_newer_of_local_and_served_decisions(browser, served, predicted) -> None:
    """An unsaved decision of this browser newer than the server's survives a reload (and is
    then saved); a server decision newer than an unsaved local one replaces it."""
    from selenium.webdriver.support.ui import WebDriverWait

    url, csv_path = served["url"], served["gallery"] / "reviews.csv"
    other = next(c for c in predicted["ids"] if c != OUTLIER)
    # 1. the server has an older decision; this browser then rejects while the server is away
    assert _post(url, json.dumps({"case_id": OUTLIER, "decision": "accept"}).encode())[0] == 200
    time.sleep(1.1)  # timestamps have whole seconds: the local decision is a second newer
    _open(browser, url)
    _click_offline(browser, OUTLIER, "reject")
    assert _csv_decisions(csv_path) == {OUTLIER: "accept"}
    _open(browser, url)  # the server's older accept must not replace the local reject
    WebDriverWait(browser, 10).until(lambda d: _csv_decisions(csv_path)[OUTLIER] == "reject")
    assert _pressed(browser, OUTLIER) == "reject"
    # 2. a local decision the server never got, then a newer one on the server: the server's wins
    _click_offline(browser, other, "accept")
    time.sleep(1.1)
    assert _post(url, json.dumps({"case_id": other, "decision": "reject"}).encode())[0] == 200
    _open(browser, url)
    WebDriverWait(browser, 10).until(lambda d: _pressed(d, other) == "reject")
    time.sleep(0.5)  # nothing of the older local accept is sent afterwards
    assert _csv_decisions(csv_path) == {OUTLIER: "reject", other: "reject"}
    assert _pressed(browser, OUTLIER) == "reject"
    browser.execute_script("localStorage.clear()")


def test_browser_gallery_of_real_lion_predict_output(browser, fdg_cohort, tmp_path) -> None:
    """Real ``lion predict`` output (random-weights model, 2 phantoms) makes a working page."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from lion_nnunet.inference.model import make_random_model

    model = make_random_model(
        tmp_path / "Dataset990_RANDOM" / "nnUNetTrainer__LIONPlans__3d_fullres", "fdg",
        patch_size=(32, 32, 32), spacing=(18.0, 18.0, 18.0),  # one window per case
        **SMALL_RANDOM_NET,
    )  # fmt: skip
    cases = tmp_path / "cases.csv"
    ids = ["SYNFDG_0000", "SYNFDG_0003"]
    pets = [fdg_cohort / "studies" / c / "study_01" / "SUV.nii.gz" for c in ids]
    cases.write_text(
        "case_id,pet\n" + "".join(f"{c},{p}\n" for c, p in zip(ids, pets, strict=True))
    )
    pred, gallery = tmp_path / "pred", tmp_path / "gallery"
    started = time.perf_counter()
    assert main(["predict", "-i", str(cases), "-o", str(pred), "-m", str(model), "-f", "0",
                 "--device", "cpu", "--disable-tta", "--no-pbar"]) == 0  # fmt: skip
    print(f"lion predict, 2 phantoms: {time.perf_counter() - started:.1f} s")
    assert main(["review", "--pred", str(pred), "-o", str(gallery), "--no-pbar"]) == 0
    _open(browser, (gallery / "index.html").as_uri())
    cards = browser.find_elements(By.CSS_SELECTOR, ".card")
    assert sorted(c.get_attribute("data-case-id") for c in cards) == ids
    for card in cards:  # the flag score shown is the report's, or empty where it has none
        report = json.loads((pred / card.get_attribute("data-case-id") / "report.json").read_text())
        shown, expected = card.get_attribute("data-flag-score"), report.get("flag_score")
        assert shown == "" if expected is None else float(shown) == pytest.approx(expected)
    for img in browser.find_elements(By.CSS_SELECTOR, ".card img"):
        browser.execute_script("arguments[0].scrollIntoView()", img)
        WebDriverWait(browser, 10).until(lambda d, img=img: d.execute_script(
            "return arguments[0].complete && arguments[0].naturalWidth > 0", img))  # fmt: skip


def test_browser_renders_a_thousand_cards_and_loads_pictures_lazily(browser, thousand) -> None:
    """1,000 cards render; only the pictures near the top are fetched until one scrolls."""
    started = time.perf_counter()
    _open(browser, thousand.as_uri())
    print(f"1,000 cards ready in {time.perf_counter() - started:.1f} s")
    assert browser.execute_script("return document.querySelectorAll('.card').length") == 1000
    loaded = "return [...document.images].filter(i => i.complete && i.naturalWidth > 0).length"
    assert browser.execute_script("return document.images.length") == 2000
    near_top = browser.execute_script(loaded)
    assert 0 < near_top < 200
    browser.execute_script("document.querySelector('.card:last-child').scrollIntoView()")
    time.sleep(0.5)
    assert browser.execute_script(
        "const i = document.querySelector('.card:last-child img');"
        "return i.complete && i.naturalWidth > 0"
    )
