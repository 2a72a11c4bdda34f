"""Make docs/images/review_gallery.png: ``lion review`` on phantoms, photographed in Chromium.

    python benchmarks/review_screenshot.py                # writes docs/images/review_gallery.png
    python benchmarks/review_screenshot.py --keep work/   # and keeps the cohort and gallery

Eight FDG phantoms (seed 0) written as ``lion predict`` writes its output, the true lesions as
the prediction except one case whose "tumor" is the bladder and the brain; ``lion review --gt``
ranks them worst Dice first; headless Chromium (Debian's chromium + chromedriver, via Selenium)
takes the picture. Needs no model and no network.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PICTURE = ROOT / "docs" / "images" / "review_gallery.png"
OUTLIER = "SYNFDG_0002"


def screenshot(index: Path, out: Path, size: tuple[int, int] = (1400, 1000)) -> Path:
    """Save a PNG of ``index`` as headless Chromium shows it at ``size`` pixels."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                f"--window-size={size[0]},{size[1]}"):  # fmt: skip
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
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


def main(argv: list[str] | None = None) -> int:
    from lion_nnunet.cli import main as lion
    from lion_nnunet.synthetic.phantoms import make_cohort
    from lion_nnunet.synthetic.review_cohort import write_labels, write_predictions

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keep", type=Path, default=None, help="work folder to keep")
    parser.add_argument("-o", "--output", type=Path, default=PICTURE, help="the PNG to write")
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
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
