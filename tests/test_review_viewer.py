"""The review page's slice viewer (vendored NiiVue) in a real browser, with the network off.

One FDG phantom (``fdg_cohort``'s SYNFDG_0005) written as ``lion predict`` writes a case, its
largest true lesion left out of the prediction (a planted missed lesion) and a sphere of tumor
planted where there is none (a planted false positive). Headless Chromium draws WebGL in
software (SwiftShader). Where the page clicks is computed here from SimpleITK's geometry (voxel
index -> LPS mm -> RAS mm), and the voxels a click or a stroke must touch are computed here with
numpy, so the viewer's own voxel conversions are checked, not trusted. Every request the browser
makes is read back from its performance log: only the loopback server, ``file:``, ``data:`` and
``blob:`` URLs may appear.
"""

from __future__ import annotations

import hashlib
import io
import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from lion_nnunet.review.gallery import build_gallery
from lion_nnunet.review.server import make_server, url_of

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CASE = "SYNFDG_0005"
VENDOR = Path(__file__).parents[1] / "lion_nnunet" / "review" / "static" / "vendor" / "niivue"


def _array(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def test_vendored_niivue_is_the_recorded_file() -> None:
    record = json.loads((VENDOR / "niivue.json").read_text())
    assert record["package"] == "@niivue/niivue" and record["version"] == "0.69.0"
    data = (VENDOR / "niivue.umd.js").read_bytes()
    assert hashlib.sha256(data).hexdigest() == record["sha256"]
    assert "BSD 2-Clause License" in (VENDOR / "LICENSE").read_text()


@pytest.fixture(scope="module")
def phantom(fdg_cohort: Path, tmp_path_factory) -> dict:
    """The prediction folder of CASE (missed lesion and false positive planted), SUV saved."""
    import cc3d

    from lion_nnunet.inference.outputs import write_case_outputs, write_summary
    from lion_nnunet.io import read_float_image
    from lion_nnunet.labels import get_label_set
    from lion_nnunet.synthetic.review_cohort import organ_map

    root = tmp_path_factory.mktemp("viewer")
    study = fdg_cohort / "studies" / CASE / "study_01"
    pet, suv = read_float_image(study / "SUV.nii.gz", "PET")
    truth = _array(study / "SEG.nii.gz") > 0
    lesions = cc3d.connected_components(truth.astype(np.uint8), connectivity=18)
    sizes = np.bincount(lesions.ravel())[1:]
    missed = lesions == int(np.argmax(sizes)) + 1
    # the false positive: a sphere of radius 2 voxels in the body, 5+ voxels from any lesion
    z, y, x = np.indices(truth.shape)
    from scipy import ndimage

    far = ndimage.distance_transform_edt(~truth) > 5
    body = (suv > 0.3) & far & (z > 3) & (z < truth.shape[0] - 4)
    centre = np.argwhere(body)[len(np.argwhere(body)) // 2]
    fp = (z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2 <= 4
    assert not (fp & truth).any() and fp.sum() > 20
    predicted = (truth & ~missed) | fp
    pred = root / "pred"
    organs = organ_map(fdg_cohort / "organs" / CASE / "study_01", pet, "fdg")
    write_case_outputs(pred / CASE, CASE, pet, suv, predicted, organs, get_label_set("fdg"),
                       model="Dataset501_LION_FDG", save_suv=True)  # fmt: skip
    write_summary(pred)
    return {"pred": pred, "pet": pet, "suv": suv, "truth": truth, "missed": missed, "fp": fp,
            "fp_centre": tuple(int(c) for c in centre), "predicted": predicted}  # fmt: skip


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium with software WebGL and its performance (network) log."""
    if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
        pytest.skip(f"browser tests need Debian's chromium and chromedriver ({CHROMIUM})")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--use-angle=swiftshader",
                "--enable-unsafe-swiftshader", "--window-size=1400,1000",
                "--disable-dev-shm-usage", "--force-device-scale-factor=1"):  # fmt: skip
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def _requests(driver) -> list[str]:
    """URLs the browser requested since the last call (its performance log)."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def _assert_offline(driver, port: int | None = None) -> None:
    allowed = ("file:", "data:", "blob:") + ((f"http://127.0.0.1:{port}/",) if port else ())
    urls = _requests(driver)
    assert urls and all(u.startswith(allowed) for u in urls), urls


def _open_viewer(driver, url: str) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    WebDriverWait(driver, 40).until(lambda d: d.execute_script(
        "const v = document.querySelector('.viewer');"
        "return v && (v.dataset.state === 'ready' || v.dataset.state === 'error')"))  # fmt: skip
    state = driver.execute_script("return document.querySelector('.viewer').dataset.state")
    status = driver.execute_script("return document.querySelector('.viewer-status').textContent")
    assert state == "ready", status


def _gray_share(driver) -> float:
    """The share of the viewer canvas's pixels that are grey and not black (the PET)."""
    from PIL import Image

    canvas = driver.find_element("css selector", ".viewer-canvas")
    rgb = np.asarray(Image.open(io.BytesIO(canvas.screenshot_as_png)).convert("RGB"), int)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    gray = (abs(r - g) < 10) & (abs(g - b) < 10) & (r > 40)
    return float(gray.mean())


def _outline(mask: np.ndarray) -> np.ndarray:
    """Voxels of ``mask`` with a face neighbour outside it (or outside the volume), by brute
    force over the six neighbours."""
    padded = np.pad(mask, 1)
    inner = np.ones_like(mask)
    core = (slice(1, -1),) * 3
    for axis in range(3):
        for step in (-1, 1):
            inner &= np.roll(padded, step, axis)[core]
    return mask & ~inner


def test_viewer_from_disk_shows_the_pet_truth_and_fetches_nothing(browser, phantom, tmp_path):
    """Opened from disk (file://) at #view=CASE: the PET is drawn, the viewer is read-only, the
    mask is the prediction and the truth overlay marks the missed lesion whole and the found
    ones by their outline."""
    labels = tmp_path / "labelsTs"
    labels.mkdir()
    truth_image = sitk.GetImageFromArray(phantom["truth"].astype(np.uint8))
    truth_image.CopyInformation(phantom["pet"])
    sitk.WriteImage(truth_image, str(labels / f"{CASE}.nii.gz"))
    gallery = tmp_path / "gallery"
    build_gallery(phantom["pred"], gallery, gt_dir=labels, progress=False)
    _requests(browser)  # forget earlier requests
    started = time.perf_counter()
    _open_viewer(browser, (gallery / "index.html").as_uri() + f"#view={CASE}")
    print(f"viewer ready from disk in {time.perf_counter() - started:.1f} s")
    share = _gray_share(browser)
    print(f"grey (PET) share of the canvas: {share:.3f}")
    assert share > 0.02
    assert browser.execute_script("return document.querySelector('.viewer .tools').hidden")
    # the drawing layer holds the prediction, voxel for voxel (native order, i fastest)
    nonzero = (
        "const m = arguments[0]; const out = [];"
        "for (let i = 0; i < m.length; i++) if (m[i]) out.push([i, m[i]]); return out;"
    )
    shown = browser.execute_script(nonzero.replace("arguments[0]", "LionViewer.current().mask"))
    assert [i for i, _ in shown] == np.flatnonzero(phantom["predicted"]).tolist()
    truth = browser.execute_script(
        nonzero.replace("arguments[0]", "LionViewer.current().truthVolume.img")
    )
    values = np.zeros(phantom["truth"].size, np.uint8)
    values[[i for i, _ in truth]] = [v for _, v in truth]
    values = values.reshape(phantom["truth"].shape)
    missed, found = phantom["missed"], phantom["truth"] & ~phantom["missed"]
    np.testing.assert_array_equal(values == 2, missed)
    np.testing.assert_array_equal(values == 1, _outline(found))
    assert "Dataset501_LION_FDG" in browser.find_element("id", "model").text
    _assert_offline(browser)


@pytest.fixture
def served(phantom, tmp_path):
    import shutil

    pred = tmp_path / "pred"
    shutil.copytree(phantom["pred"], pred)
    gallery = tmp_path / "gallery"
    result = build_gallery(pred, gallery, progress=False)
    server = make_server(gallery, set(result["order"]), port=0, pred_dir=pred)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield {"pred": pred, "url": url_of(server), "port": server.server_address[1]}
    server.shutdown()
    server.server_close()


def _screen_point(driver, phantom, ijk) -> tuple[float, float]:
    """Where voxel (i, j, k) of the PET is on the page (CSS pixels), from SimpleITK's geometry."""
    lps = phantom["pet"].TransformIndexToPhysicalPoint([int(v) for v in ijk])
    ras = [-lps[0], -lps[1], lps[2]]
    x, y = driver.execute_script(
        "const nv = LionViewer.current().nv; const ras = arguments[0];"
        "nv.scene.crosshairPos = nv.mm2frac(ras); nv.drawScene();"
        "const p = nv.frac2canvasPos(nv.mm2frac(ras)); const r = nv.canvas.getBoundingClientRect();"
        "const s = r.width / nv.canvas.width; return [r.left + p[0] * s, r.top + p[1] * s];",
        ras,
    )
    return x, y


def _mouse(driver, points: list[tuple[float, float]]) -> None:
    """Press at the first point, move through the others, release (a click for one point)."""
    from selenium.webdriver.common.actions.action_builder import ActionBuilder

    actions = ActionBuilder(driver)
    actions.pointer_action.move_to_location(*(round(v) for v in points[0])).pointer_down()
    for p in points[1:]:
        actions.pointer_action.move_to_location(*(round(v) for v in p))
    actions.pointer_action.pause(0.1)  # the page sees the last position before the release
    actions.pointer_action.pointer_up()
    actions.perform()


def _wait_edits(driver, n: int) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    done = (
        "const v = document.querySelector('.viewer');"
        "return v.dataset.state === 'ready' && v.dataset.edits === arguments[0]"
    )
    WebDriverWait(driver, 30).until(lambda d: d.execute_script(done, str(n)))


def _key(driver, key: str) -> None:
    from selenium.webdriver.common.keys import Keys  # noqa: F401

    viewer = driver.find_element("css selector", ".viewer")
    driver.execute_script("arguments[0].focus()", viewer)
    viewer.send_keys(key)


def test_clicks_brush_undo_and_reload_in_the_browser(browser, served, phantom) -> None:
    """A tumor click on the missed lesion adds it, a background click on the false positive
    removes it, a brush stroke adds exactly the voxels painted, undo takes it back, and a
    reload shows the saved corrections; all saved by the loopback server only."""
    case = served["pred"] / CASE
    _requests(browser)
    _open_viewer(browser, served["url"] + f"#view={CASE}")
    assert not browser.execute_script("return document.querySelector('.viewer .tools').hidden")
    suv, missed, fp, before = phantom["suv"], phantom["missed"], phantom["fp"], phantom["predicted"]
    # 1. tumor click on the missed lesion's hottest voxel
    hottest = np.unravel_index(np.where(missed, suv, -np.inf).argmax(), suv.shape)  # z, y, x
    ijk = [int(v) for v in hottest[::-1]]
    _key(browser, "t")
    _mouse(browser, [_screen_point(browser, phantom, ijk)])
    _wait_edits(browser, 1)
    edits = json.loads((case / "corrections.json").read_text())["edits"]
    assert (edits[0]["tumor"], edits[0]["background"]) == ([ijk], [])
    after = _array(case / "tumor_corrected.nii.gz") > 0
    added = after & ~before
    assert not (before & ~after).any() and after[hottest]
    dice = 2 * (added & missed).sum() / (added.sum() + missed.sum())
    print(f"tumor click: {added.sum()} voxels added, Dice with the missed lesion {dice:.3f}")
    assert dice > 0.5
    # 2. background click on the false positive: all of it goes, nothing else
    centre = phantom["fp_centre"]
    _key(browser, "b")
    _mouse(browser, [_screen_point(browser, phantom, centre[::-1])])
    _wait_edits(browser, 2)
    corrected = _array(case / "tumor_corrected.nii.gz") > 0
    np.testing.assert_array_equal(corrected, after & ~fp)
    # 3. a brush stroke of size 1 along i, five voxels in a row of the axial plane
    z0, y0, x0 = centre
    row = [(x0 - 2 + n, y0, z0) for n in range(5)]
    painted = np.zeros_like(corrected)
    for i, j, k in row:
        painted[k, j, i] = True
    assert not (painted & corrected).any()
    _key(browser, "d")
    pen = browser.find_element("css selector", ".viewer input.pen")
    browser.execute_script(
        "arguments[0].value = '1'; arguments[0].dispatchEvent(new Event('change'))", pen
    )
    start, end = (_screen_point(browser, phantom, row[0]), _screen_point(browser, phantom, row[-1]))
    steps = [(start[0] + (end[0] - start[0]) * t / 8, start[1]) for t in range(9)]
    assert abs(end[1] - start[1]) < 0.5  # the row is horizontal on screen (axial tile)
    _mouse(browser, steps)
    _wait_edits(browser, 3)
    stroked = _array(case / "tumor_corrected.nii.gz") > 0
    np.testing.assert_array_equal(stroked, corrected | painted)
    # 4. undo: the mask before the stroke, saved as a new edit
    _key(browser, "z")
    _wait_edits(browser, 4)
    np.testing.assert_array_equal(_array(case / "tumor_corrected.nii.gz") > 0, corrected)
    edits = json.loads((case / "corrections.json").read_text())["edits"]
    assert [e["kind"] for e in edits] == ["clicks", "clicks", "mask", "mask"]
    assert edits[2]["added"] == 5 and edits[3]["removed"] == 5
    # 5. reload: the viewer shows the saved corrected mask, voxel for voxel
    browser.refresh()
    _open_viewer(browser, served["url"] + f"#view={CASE}")
    shown = browser.execute_script(
        "const m = LionViewer.current().mask; const out = [];"
        "for (let i = 0; i < m.length; i++) if (m[i]) out.push(i); return out;"
    )
    assert shown == np.flatnonzero(corrected).tolist()
    assert browser.execute_script("return document.querySelector('.viewer').dataset.corrected")
    _assert_offline(browser, served["port"])


def test_lesion_rows_decide_and_jump_to_the_lesion(browser, served, phantom) -> None:
    """A lesion's reject button records ``<id>:reject`` in reviews.csv; a click on its row opens
    the viewer with the crosshair on the voxel of its centroid (report.json's LPS mm, mapped to
    a voxel here with SimpleITK)."""
    import csv

    from selenium.webdriver.support.ui import WebDriverWait

    report = json.loads((served["pred"] / CASE / "report.json").read_text())
    lesion = report["lesions"][0]
    _requests(browser)
    browser.get(served["url"])
    WebDriverWait(browser, 15).until(
        lambda d: d.execute_script("return document.body.dataset.ready === 'true'")
    )
    row = f'.card[data-case-id="{CASE}"] tr[data-lesion-id="{lesion["lesion_id"]}"]'
    WebDriverWait(browser, 15).until(lambda d: d.execute_script(
        f"return !!document.querySelector('{row}')"))  # fmt: skip
    browser.find_element("css selector", f"{row} button.lesion-reject").click()
    reviews = served["pred"].parent / "gallery" / "reviews.csv"
    WebDriverWait(browser, 15).until(lambda d: reviews.is_file())
    with reviews.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["case_id"], r["lesions"]) for r in rows] == [(CASE, f"{lesion['lesion_id']}:reject")]
    assert browser.find_element("css selector", row).get_attribute("data-decision") == "reject"
    browser.find_element("css selector", f"{row} td").click()
    WebDriverWait(browser, 40).until(lambda d: d.execute_script(
        "const v = document.querySelector('.viewer'); return v && v.dataset.state === 'ready'"
        " && LionViewer.current().nv"))  # fmt: skip
    time.sleep(0.3)  # the jump follows the viewer's loading
    voxel = browser.execute_script("return LionViewer.current().crosshairVoxel()")
    index = phantom["pet"].TransformPhysicalPointToContinuousIndex(lesion["centroid_mm"])
    assert voxel == [round(v) for v in index]
    assert browser.execute_script("return location.hash") == f"#view={CASE}"
    _assert_offline(browser, served["port"])
