"""Write the review gallery: ``GALLERY/index.html`` plus ``GALLERY/images/<case>/*.png``.

Each case also gets ``images/<case>/volumes.js`` (its PET, mask, organs and, with ground truth,
the truth overlay: :mod:`.volumes`) for the slice viewer, NiiVue, which is copied to
``GALLERY/vendor/niivue.umd.js`` with its license (``vendor/LICENSE-niivue.txt``) from the
package (vendored at a pinned version by ``static/vendor/niivue/refresh.sh``). The page loads
NiiVue and a case's volumes only when that case's viewer opens.

The page is one file with its CSS, script and data inline (no CDN, no web font, nothing fetched):
copy the folder anywhere and open index.html offline. The cases are a JSON blob that
``static/gallery.js`` renders into one card per case (``data-case-id``, ``data-flag-score``),
in review order (:func:`lion_nnunet.review.cases.review_order`). Pictures are copied next to the
page and loaded lazily, and each case's lesion table is cut at
:data:`~lion_nnunet.review.cases.MAX_LESIONS` rows, so 1,000 cases stay a page of a few MB.
Decisions already in ``GALLERY/reviews.csv`` are built into the page; rebuilding a gallery
(``overwrite``) replaces index.html and images/ and keeps reviews.csv.
"""

from __future__ import annotations

import html
import json
import logging
import secrets
import shutil
from datetime import datetime, timezone
from importlib.resources import files
from pathlib import Path
from urllib.parse import quote

from lion_nnunet import __version__
from lion_nnunet.errors import LionError
from lion_nnunet.io import atomic_path
from lion_nnunet.progress import track

from .cases import add_dice, read_cases, review_order
from .reviews import read_reviews
from .volumes import SCRIPT, case_volumes, volumes_script

log = logging.getLogger(__name__)

INDEX = "index.html"
IMAGES = "images"
REVIEWS = "reviews.csv"
EVALUATION = "evaluation"
VENDOR = "vendor"
#: The vendored viewer (package file -> gallery file).
VIEWER_FILES = {"niivue.umd.js": "niivue.umd.js", "LICENSE": "LICENSE-niivue.txt"}
#: What each picture shows (its tooltip and alt text).
VIEW_NAMES = {"mip_coronal.png": "coronal", "mip_sagittal.png": "sagittal",
              "mip.png": "coronal + sagittal", "mip_coronal_corrected.png": "coronal, corrected",
              "mip_sagittal_corrected.png": "sagittal, corrected"}  # fmt: skip

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
{css}</style>
</head>
<body>
<header>
<h1>{title}</h1>
<span id="shown"></span>
<label>sort <select id="sort">
<option value="rank">{order}</option>
<option value="flag">flag score, highest first</option>
<option value="dice">Dice, worst first</option>
<option value="tmtv">TMTV, largest first</option>
<option value="lesions">lesion count, most first</option>
<option value="case">case id</option>
</select></label>
<label>filter <input id="filter" type="search" placeholder="case id or reason"></label>
<label>flag &ge; <input id="min-flag" type="number" step="any" style="width:5em"></label>
<label>show <select id="decision-filter">
<option value="all">all</option><option value="undecided">undecided</option>
<option value="accept">accepted</option><option value="reject">rejected</option>
</select></label>
<label>reviewer <input id="reviewer" size="10"></label>
<button id="export" type="button">Export CSV</button>
<span id="status"></span>
<span id="model"></span>
</header>
<main id="cards"></main>
<script type="application/json" id="gallery-data">{data}</script>
<script>
{viewer_js}</script>
<script>
{js}</script>
</body>
</html>
"""


def _static(name: str) -> str:
    return (files("lion_nnunet.review") / "static" / name).read_text(encoding="utf-8")


def _copy_viewer(out: Path) -> None:
    """Copy the vendored NiiVue and its license to ``out/vendor/`` (replacing older copies)."""
    source = files("lion_nnunet.review") / "static" / "vendor" / "niivue"
    (out / VENDOR).mkdir(parents=True, exist_ok=True)
    for name, target in VIEWER_FILES.items():
        with atomic_path(out / VENDOR / target) as tmp:
            tmp.write_bytes((source / name).read_bytes())


def _script_json(data: object) -> str:
    """JSON safe inside a <script> element (no ``</script>`` or ``<!--`` can close it)."""
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _copy_case_files(
    cases: list[dict],
    root: Path,
    progress: bool,
    pred_dir: Path,
    pet_dir: Path | None,
    gt_dir: Path | None,
    use_corrected: bool,
) -> None:
    """Copy each case's PNGs into ``root/<folder>/`` (the page's ``images/<folder>/``) and write
    its viewer data there (``volumes.js``); set ``pictures`` to their URLs relative to the page
    and ``volumes`` to the script's URL (None when the case has no PET to show)."""
    from lion_nnunet.inference.corrected import case_mask

    without = []
    for case in track(cases, "gallery pictures", enabled=progress):
        folder = pred_dir / case["folder"]
        mask, _ = case_mask(folder, use_corrected)
        volumes = None
        if mask.is_file():
            volumes = case_volumes(folder, case["case_id"], mask, pet_dir, gt_dir)
        case["volumes"] = None
        if volumes is not None:
            (root / case["folder"]).mkdir(parents=True, exist_ok=True)
            (root / case["folder"] / SCRIPT).write_text(volumes_script(case["case_id"], volumes))
            case["volumes"] = f"{IMAGES}/{quote(case['folder'])}/{SCRIPT}"
        else:
            without.append(case["case_id"])
        shown = []
        for path in case["pictures"]:
            target = root / case["folder"] / path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
            shown.append({"src": f"{IMAGES}/{quote(case['folder'])}/{quote(path.name)}",
                          "view": VIEW_NAMES[path.name]})  # fmt: skip
        case["pictures"] = shown
    if without:
        log.warning("%d case(s) without a slice viewer, no PET found (%s%s): give the PET "
                    "folder with lion review --pet", len(without), ", ".join(without[:3]),
                    ", ..." if len(without) > 3 else "")  # fmt: skip


#: Lesion fields in the page, one array per lesion (shorter than one object each).
LESION_COLUMNS = (
    "id",
    "volume_ml",
    "suv_max",
    "confidence",
    "fold_agreement",
    "organ",
    "organ_mm",
    "centroid_mm",
)


def _page_case(case: dict) -> dict:
    out = {k: v for k, v in case.items() if k not in ("folder", "lesions")}
    out["lesions"] = [[les[k] for k in LESION_COLUMNS] for les in case["lesions"]]
    return out


def render_page(cases: list[dict], title: str, by_dice: bool, reviews: dict[str, dict],
                source: str = "") -> str:  # fmt: skip
    """The HTML text of a gallery of ``cases`` (records of :mod:`.cases`, pictures as URLs)."""
    data = {
        "gallery_id": secrets.token_hex(8),
        "title": title,
        "source": source,
        "has_gt": by_dice,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "lion_version": __version__,
        "models": sorted({c["model"] for c in cases if c.get("model")}),
        "viewer": f"{VENDOR}/{VIEWER_FILES['niivue.umd.js']}",
        "lesion_columns": LESION_COLUMNS,
        "cases": [_page_case(c) for c in cases],
        "reviews": reviews,
    }
    order = "review order: worst Dice first" if by_dice else "review order: flag score"
    return PAGE.format(title=html.escape(title), order=order, css=_static("gallery.css"),
                       js=_static("gallery.js"), viewer_js=_static("viewer.js"),
                       data=_script_json(data))  # fmt: skip


def build_gallery(
    pred_dir: str | Path,
    out_dir: str | Path,
    gt_dir: str | Path | None = None,
    overwrite: bool = False,
    progress: bool = True,
    use_corrected: bool = True,
    pet_dir: str | Path | None = None,
) -> dict:
    """Write ``out_dir/index.html`` reviewing every finished case of ``pred_dir``.

    Args:
        pred_dir: ``lion predict``'s output folder (``<case_id>/report.json`` and pictures).
        out_dir: gallery folder; created; its reviews.csv is read and kept.
        gt_dir: optional ground-truth label maps ``<case_id>.nii.gz`` (labelsTs): cards then go
            worst Dice first, and ``out_dir/evaluation/`` holds ``lion evaluate``'s tables.
        overwrite: rebuild an existing gallery (index.html, images/ and, with ``gt_dir``,
            evaluation/ are replaced; reviews.csv is kept). Without it an existing index.html,
            images/ or (with ``gt_dir``) evaluation/ in ``out_dir`` is refused.
        progress: show a progress bar while pictures are copied.
        use_corrected: a case corrected in ``lion review --serve`` is shown and ranked by its
            report_corrected.json (and, with ``gt_dir``, its Dice) and marked "corrected".
        pet_dir: the PET (SUV) images ``<case>_0000.nii.gz`` the viewer shows where a case
            folder has no ``suv.nii.gz`` (see :func:`~lion_nnunet.review.volumes.find_case_pet`).

    Returns:
        ``{"index": path, "cases": n, "order": [case ids], "reviews": path,
        "corrected": [case ids shown corrected]}``.
    """
    pred_dir, out = Path(pred_dir), Path(out_dir)
    cases = read_cases(
        pred_dir, use_corrected
    )  # refuses an empty or unreadable folder before anything is written
    if (out / INDEX).exists() and not overwrite:
        raise LionError(
            f"{out / INDEX} exists; use --overwrite to rebuild the gallery (its {REVIEWS} is kept)"
        )
    # a gallery replaces images/ (and evaluation/ with --gt) whole: never someone else's
    replaced = [IMAGES] + ([EVALUATION] if gt_dir is not None else [])
    taken = [out / name for name in replaced if (out / name).exists()]
    if taken and not overwrite:
        raise LionError(
            f"{taken[0]} exists but {out} holds no gallery ({INDEX}); the gallery would replace "
            f"it, so give another -o, or use --overwrite to replace it"
        )
    if out.resolve() == pred_dir.resolve():
        raise LionError(f"{out}: the gallery folder is the prediction folder; give another -o")
    reviews = read_reviews(out / REVIEWS)
    if gt_dir is not None:
        add_dice(cases, pred_dir, gt_dir, out / EVALUATION, progress, use_corrected)
    cases = review_order(cases, by_dice=gt_dir is not None)
    # pictures go to a new folder that replaces images/ only once all are copied, so a failed
    # rebuild leaves the earlier gallery whole (and pictures of cases no longer there go)
    staging = out / f".{IMAGES}.part-{secrets.token_hex(4)}"
    try:
        staging.mkdir(parents=True)
        _copy_case_files(cases, staging, progress, pred_dir,
                       Path(pet_dir) if pet_dir is not None else None,
                       Path(gt_dir) if gt_dir is not None else None, use_corrected)  # fmt: skip
        title = f"lion review: {pred_dir.resolve().name} ({len(cases)} cases)"
        page = render_page(cases, title, gt_dir is not None, reviews, str(pred_dir))
        old = out / f".{IMAGES}.old-{secrets.token_hex(4)}"
        if (out / IMAGES).is_dir():
            (out / IMAGES).rename(old)
        staging.rename(out / IMAGES)
        _copy_viewer(out)
        with atomic_path(out / INDEX) as tmp:
            tmp.write_text(page, encoding="utf-8")
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("%s: %d cases", out / INDEX, len(cases))
    return {"index": str(out / INDEX), "cases": len(cases),
            "order": [c["case_id"] for c in cases], "reviews": str(out / REVIEWS),
            "corrected": [c["case_id"] for c in cases if c["corrected"]]}  # fmt: skip
