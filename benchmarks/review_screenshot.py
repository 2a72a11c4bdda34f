"""Make docs/images/review_gallery.png and review_viewer.png: ``lion review`` on phantoms.

    python benchmarks/review_screenshot.py                # writes both pictures in docs/images/
    python benchmarks/review_screenshot.py --keep work/   # and keeps the cohort and gallery

Eight FDG phantoms (seed 0) written as ``lion predict`` writes its output, the true lesions as
the prediction except one case whose "tumor" is the bladder and the brain, and one case
(:data:`CORRECTED`) whose largest lesion is left out of the prediction and then added back by a
tumor click through the review server's correction code (as ``lion review --serve`` does);
``lion review --gt`` ranks them worst Dice first; headless Chromium (Debian's chromium +
chromedriver, via Selenium; WebGL in software, SwiftShader) takes the pictures: the gallery, and
the slice viewer of the corrected case served as ``lion review --serve`` serves it, crosshair on
the added lesion. Needs no model and no network.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PICTURE = ROOT / "docs" / "images" / "review_gallery.png"
VIEWER_PICTURE = ROOT / "docs" / "images" / "review_viewer.png"
OUTLIER = "SYNFDG_0002"
CORRECTED = "SYNFDG_0005"
BROWSER_ARGS = ("--headless=new", "--no-sandbox", "--hide-scrollbars", "--use-angle=swiftshader",
                "--enable-unsafe-swiftshader", "--force-device-scale-factor=1")  # fmt: skip


def _chromium(size: tuple[int, int]):
    """Debian's headless Chromium (software WebGL) at ``size`` pixels, through selenium."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in (*BROWSER_ARGS, f"--window-size={size[0]},{size[1]}"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def screenshot(index: Path, out: Path, size: tuple[int, int] = (1400, 1000)) -> Path:
    """Save a PNG of ``index`` as headless Chromium shows it at ``size`` pixels."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver = _chromium(size)
    try:
        driver.get(index.as_uri())
        WebDriverWait(driver, 20).until(lambda d: d.execute_script(
            "return document.body.dataset.ready === 'true' && [...document.images].slice(0, 2)"
            ".every(i => i.complete && i.naturalWidth > 0)"))  # fmt: skip
        out.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(out))
    finally:
        driver.quit()
    return out


def viewer_screenshot(url: str, lesion_id: int, out: Path, size=(1400, 900)) -> Path:
    """Save a PNG of the served page at ``url`` with the viewer open at ``#view=`` and the
    crosshair on lesion ``lesion_id`` (a click on its row of the lesion table)."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver = _chromium(size)
    try:
        driver.get(url)
        ready = "const v = document.querySelector('.viewer'); return v && v.dataset.state"
        WebDriverWait(driver, 60).until(lambda d: d.execute_script(ready) in ("ready", "error"))
        if driver.execute_script(ready) != "ready":
            raise RuntimeError(driver.find_element("css selector", ".viewer-status").text)
        row = f'.card.corrected tr[data-lesion-id="{lesion_id}"] td'
        WebDriverWait(driver, 20).until(lambda d: d.execute_script(
            f"return !!document.querySelector('{row}')"))  # fmt: skip
        driver.execute_script(f"document.querySelector('{row}').click()")
        driver.execute_script(
            "document.querySelector('.viewer button[data-mode=tumor]').click();"
            "document.querySelector('.card.corrected').scrollIntoView({block: 'start'});"
        )
        out.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(out))
    finally:
        driver.quit()
    return out


def correct_one_case(work: Path) -> int:
    """Leave CORRECTED's largest lesion out of its prediction, then add it back with a tumor
    click at its hottest voxel (the server's own correction code); the lesion's id after it."""
    import cc3d
    import numpy as np
    import SimpleITK as sitk

    from lion_nnunet.inference.outputs import write_case_outputs, write_summary
    from lion_nnunet.io import read_float_image
    from lion_nnunet.labels import get_label_set
    from lion_nnunet.review.corrections import CorrectionStore
    from lion_nnunet.synthetic.review_cohort import organ_map

    study = work / "cohort" / "studies" / CORRECTED / "study_01"
    pet, suv = read_float_image(study / "SUV.nii.gz", "PET")
    truth = sitk.GetArrayFromImage(sitk.ReadImage(str(study / "SEG.nii.gz"))) > 0
    lesions = cc3d.connected_components(truth.astype(np.uint8), connectivity=18)
    missed = lesions == int(np.argmax(np.bincount(lesions.ravel())[1:])) + 1
    organs = organ_map(work / "cohort" / "organs" / CORRECTED / "study_01", pet, "fdg")
    write_case_outputs(work / "pred" / CORRECTED, CORRECTED, pet, suv, truth & ~missed, organs,
                       get_label_set("fdg"), model="phantom lesions (no model)",
                       save_suv=True)  # fmt: skip
    write_summary(work / "pred")
    hottest = np.unravel_index(np.where(missed, suv, -np.inf).argmax(), suv.shape)
    click = [int(v) for v in hottest[::-1]]  # (i, j, k)
    CorrectionStore(work / "pred", None).save_clicks(CORRECTED, {"tumor": [click]}, "phantom")
    report = json.loads((work / "pred" / CORRECTED / "report_corrected.json").read_text())
    return next(les["lesion_id"] for les in report["lesions"] if les["suv_max_voxel"] == click)


def main(argv: list[str] | None = None) -> int:
    from lion_nnunet.cli import main as lion
    from lion_nnunet.review.server import make_server, url_of
    from lion_nnunet.synthetic.phantoms import make_cohort
    from lion_nnunet.synthetic.review_cohort import write_labels, write_predictions

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keep", type=Path, default=None, help="work folder to keep")
    parser.add_argument("-o", "--output", type=Path, default=PICTURE, help="the gallery's PNG")
    parser.add_argument("--viewer-output", type=Path, default=VIEWER_PICTURE,
                        help="the slice viewer's PNG")  # fmt: skip
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        make_cohort(work / "cohort", "fdg", 8, seed=0, progress=False, overwrite=True)
        write_predictions(work / "cohort", work / "pred", "fdg",
                          {OUTLIER: ["urinary_bladder", "brain"]})  # fmt: skip
        write_labels(work / "cohort", work / "labelsTs")
        code = lion(["review", "--pred", str(work / "pred"), "--gt", str(work / "labelsTs"),
                     "-o", str(work / "gallery"), "--overwrite", "--no-pbar"])  # fmt: skip
        if code:
            return code
        print(screenshot(work / "gallery" / "index.html", args.output))
        lesion = correct_one_case(work)
        code = lion(["review", "--pred", str(work / "pred"), "--gt", str(work / "labelsTs"),
                     "-o", str(work / "gallery"), "--overwrite", "--no-pbar"])  # fmt: skip
        if code:
            return code
        from lion_nnunet.review.cases import case_folders

        ids = {folder.name for folder in case_folders(work / "pred")}
        server = make_server(work / "gallery", ids, port=0, pred_dir=work / "pred")
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            url = f"{url_of(server)}#view={CORRECTED}"
            print(viewer_screenshot(url, lesion, args.viewer_output))
        finally:
            server.shutdown()
            server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
