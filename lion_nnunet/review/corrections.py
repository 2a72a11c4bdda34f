"""Corrected tumor masks beside a prediction, never over it; the one reader every command uses.

A correction of case ``PRED/<case>/`` (from ``lion review --serve``, :class:`CorrectionStore`)
writes, next to ``tumor.nii.gz`` and ``report.json`` which stay as ``lion predict`` wrote them:

* ``tumor_corrected.nii.gz``: the corrected mask, uint8 0/1 on the prediction's grid;
* ``lesions_corrected.nii.gz``: its lesions, voxel value = ``lesion_id`` of the report below,
  with ``lesions_corrected.ctbl``, their 3D Slicer colour table
  (:mod:`lion_nnunet.inference.lesion_files`);
* ``report_corrected.json``: report.json's keys (TMTV, lesions, flag score...) for that mask,
  with ``corrected: true``; ``report.json`` of the prediction is kept;
* ``mip_coronal_corrected.png`` and ``mip_sagittal_corrected.png``: the MIPs of the corrected
  mask with its lesion numbers (as lion predict draws them; ``lion review --use-corrected``
  shows them);
* ``seg_corrected.dcm``, where the prediction has a ``seg.dcm`` (``lion predict --dicom-seg``):
  the corrected mask as a DICOM-SEG of the same PET series (:mod:`lion_nnunet.inference.dicom_seg`);
  when the series cannot be found again (its folder moved), a warning, ``dicom_seg_error`` in
  corrections.json, and no (stale) seg_corrected.dcm;
* ``corrections.json``: ``case_id``, ``prediction`` and its ``prediction_sha256``, ``model``
  (report.json's), ``mask_sha256`` (of tumor_corrected.nii.gz) and ``edits``, in order: each
  with ``n``, ``kind`` (``mask`` or ``clicks``), ``time`` (UTC), ``reviewer``, the clicks given
  (``tumor``, ``background``, voxel indices (i, j, k)) and ``method`` for clicks (``click
  model``, with ``model``, ``fold``, ``encoding`` and the ``earlier_clicks`` it read, or
  ``rule-based edit``, with its ``rule``, and ``fallback``: why a click model was not used),
  the voxels ``added`` and ``removed``, and the ``tmtv_ml`` and ``lesion_count`` after it.

Atomic as a set: the new files are first written under temporary names, then a journal listing
the renames is written (atomically), then the renames are made, corrections.json last, and the
journal removed. A process killed before the journal leaves the old files; one killed after it
leaves a journal that the next reader or writer completes (:func:`finish_interrupted`), so the
files are the old set or the new set, never a mix. One case's corrections are made one at a time
(an exclusive ``flock`` on ``<case>/.corrections.lock``, across threads and processes), so two
browser tabs on one case cannot interleave half-written files.

The reader of ``--use-corrected`` (lion evaluate, compare, response, review, the cohort
summary) is :mod:`lion_nnunet.inference.corrected` (:func:`case_mask`, re-exported here).
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import json
import logging
import os
import secrets
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from lion_nnunet.errors import LionError
from lion_nnunet.inference.corrected import (  # the reader every command uses
    CORRECTED,
    CORRECTED_REPORT,
    CORRECTIONS,
    JOURNAL,
    PREDICTION,
    case_mask,
    finish_interrupted,
    read_corrections,
)
from lion_nnunet.inference.dicom_seg import CORRECTED_SEG
from lion_nnunet.io import (
    array_to_image,
    geometry_mismatch,
    read_float_image,
    read_image,
    sha256_file,
    write_json,
)

log = logging.getLogger(__name__)

LESIONS_CORRECTED = "lesions_corrected.nii.gz"
COLOR_TABLE_CORRECTED = "lesions_corrected.ctbl"
LOCK = ".corrections.lock"
#: Content types of ``POST /api/cases/<case>/mask``: a NIfTI file, or raw voxels (see
#: :func:`mask_from_body`).
NIFTI_TYPES = ("application/x-nifti", "application/nifti")
RAW_TYPES = ("application/gzip", "application/octet-stream")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# ------------------------------------------------------------------ writing (the server)


@contextlib.contextmanager
def case_lock(case_dir: Path) -> Iterator[None]:
    """One correction of a case at a time: an exclusive flock on ``<case>/.corrections.lock``."""
    with (Path(case_dir) / LOCK).open("a") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _part_name(name: str) -> str:
    return f".{name}.{secrets.token_hex(6)}.part{''.join(Path(name).suffixes)}"


def commit_files(case_dir: Path, writers: list[tuple[str, Callable[[Path], None]]]) -> None:
    """Write files of ``case_dir`` as one set (module docstring); ``writers`` in rename order,
    each ``(final name, function writing the given temporary path)``."""
    case_dir = Path(case_dir)
    staged = []
    try:
        for name, write in writers:
            part = _part_name(name)
            write(case_dir / part)
            staged.append((name, part))
        write_json({"renames": staged}, case_dir / JOURNAL)
    except BaseException:
        for _, part in staged:
            (case_dir / part).unlink(missing_ok=True)
        raise
    finish_interrupted(case_dir, interrupted=False)


def mask_from_body(body: bytes, content_type: str, reference: sitk.Image, where: str) -> np.ndarray:
    """A whole mask from a request body, as a bool array (z, y, x) on ``reference``'s grid.

    Two forms (``Content-Type``):

    * ``application/x-nifti``: a NIfTI file (``.nii`` or ``.nii.gz`` bytes) whose grid (size,
      spacing, origin, direction) is the prediction's;
    * ``application/gzip`` (or ``application/octet-stream``): gzip'd uint8 voxels, one byte per
      voxel in the NIfTI file's own order (i fastest, then j, then k: the bytes of a SimpleITK
      array (z, y, x) in C order), exactly nx * ny * nz of them.

    Voxel values must be 0 or 1.
    """
    size = reference.GetSize()
    if content_type in NIFTI_TYPES:
        suffix = ".nii.gz" if body[:2] == b"\x1f\x8b" else ".nii"
        tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"lion-mask-{secrets.token_hex(8)}{suffix}"
        try:
            tmp.write_bytes(body)
            try:
                image = read_image(tmp, "mask")
            except LionError as e:
                raise LionError(f"{where}: not a readable NIfTI mask ({e})") from None
        finally:
            tmp.unlink(missing_ok=True)
        diff = geometry_mismatch(reference, image)
        if diff:
            raise LionError(f"{where}: the mask's grid differs from the prediction's ({diff})")
        array = sitk.GetArrayFromImage(image)
    elif content_type in RAW_TYPES:
        try:
            raw = gzip.decompress(body)
        except (OSError, EOFError) as e:
            raise LionError(f"{where}: body is not gzip data ({e})") from None
        expected = int(np.prod(size))
        if len(raw) != expected:
            raise LionError(
                f"{where}: {len(raw)} voxels; expected {expected} = {' x '.join(map(str, size))} "
                "(i, j, k) uint8 voxels, i fastest"
            )
        array = np.frombuffer(raw, np.uint8).reshape(size[::-1])
    else:
        raise LionError(
            f"{where}: Content-Type {content_type or 'missing'!r}; expected one of "
            f"{', '.join(NIFTI_TYPES + RAW_TYPES)}"
        )
    values = np.unique(array)
    if not set(values.tolist()) <= {0, 1}:
        raise LionError(f"{where}: voxel values {values[:8].tolist()}; expected 0 and 1 only")
    return array > 0


class CorrectionStore:
    """Corrections of the cases of one prediction folder (used by :mod:`.server`).

    Args:
        pred_dir: ``lion predict``'s output folder.
        book: the gallery's reviews.csv (:class:`~lion_nnunet.review.reviews.ReviewBook`): a
            corrected case's row gets decision ``corrected``, and the gallery's summary.csv and
            lesions.csv are rewritten with the correction (``--use-corrected``).
        pet_dir: where the PET (SUV) of each case is, ``<case>_0000.nii.gz`` or
            ``<case>.nii.gz``; without it the case folder's ``suv.nii.gz`` or the report's
            ``input`` (a NIfTI) is used.
    """

    def __init__(self, pred_dir: str | Path, book, pet_dir: str | Path | None = None) -> None:
        from .cases import case_folders
        from .click_methods import ClickModels

        self.pred_dir = Path(pred_dir)
        self.book = book
        self.pet_dir = Path(pet_dir) if pet_dir is not None else None
        self.click_models = ClickModels()  # each click model loaded once per server
        self.folders: dict[str, Path] = {}
        for folder in case_folders(self.pred_dir):
            report = json.loads((folder / "report.json").read_text())
            self.folders[str(report.get("case_id") or folder.name)] = folder

    def click_methods_line(self) -> str:
        """Which method each case's clicks get, in one line
        (:func:`~lion_nnunet.review.click_methods.methods_line`)."""
        from .click_methods import methods_line

        return methods_line({case_id: json.loads((folder / "report.json").read_text())
                             for case_id, folder in self.folders.items()})  # fmt: skip

    def _pet(self, case_id: str, folder: Path, report: dict) -> tuple[sitk.Image, np.ndarray]:
        from .volumes import find_case_pet, pet_candidates

        path = find_case_pet(folder, case_id, report, self.pet_dir)
        if path is not None:
            return read_float_image(path, "PET")
        candidates = pet_candidates(folder, case_id, report, self.pet_dir)
        raise LionError(
            f"{case_id}: no PET to measure the corrected mask with (looked for "
            f"{', '.join(map(str, candidates))}); serve with "
            "lion review --pet FOLDER (the imagesTs the case was predicted from)"
        )

    def current_mask(self, case_id: str) -> tuple[bytes, bool, tuple[int, int, int]]:
        """The case's mask as ``POST .../mask`` takes it: gzip'd uint8 voxels, i fastest
        (:func:`mask_from_body`), whether it is the corrected one, and its size (i, j, k)."""
        folder = self.folders[case_id]
        with case_lock(folder):
            path, corrected = case_mask(folder, use_corrected=True)
            image = read_image(path, "tumor mask")
            voxels = (sitk.GetArrayFromImage(image) > 0).astype(np.uint8)
        return gzip.compress(voxels.tobytes(), 6), corrected, image.GetSize()

    def _inputs(self, case_id: str):
        folder = self.folders[case_id]
        report = json.loads((folder / "report.json").read_text())
        pet_image, suv = self._pet(case_id, folder, report)
        current, _ = case_mask(folder, use_corrected=True)
        mask_image = read_image(current, "tumor mask")
        diff = geometry_mismatch(pet_image, mask_image)
        if diff:
            raise LionError(f"{current}: grid differs from the case's PET ({diff})")
        return folder, report, pet_image, suv, sitk.GetArrayFromImage(mask_image) > 0

    def save_mask(self, case_id: str, body: bytes, content_type: str, reviewer: str = "") -> dict:
        """Replace the case's corrected mask with the whole mask in ``body``
        (:func:`mask_from_body`)."""
        folder = self.folders[case_id]
        with case_lock(folder):
            folder, report, pet_image, suv, before = self._inputs(case_id)
            mask = mask_from_body(body, content_type, pet_image, f"mask of {case_id}")
            return self._save(case_id, folder, report, pet_image, suv, before, mask,
                              {"kind": "mask"}, reviewer)  # fmt: skip

    def save_clicks(self, case_id: str, data: object, reviewer: str = "") -> dict:
        """Refine the case's current mask with tumor and background clicks, as ``lion predict
        --clicks`` would: with the click model the case was predicted with when it is one, else
        with the rule-based edit (:func:`~lion_nnunet.review.click_methods.case_method`; a click
        model whose folder is gone or whose checkpoint changed falls back to the rule-based edit,
        and the answer and corrections.json say why, as ``fallback``). The answer and the edit
        record name the ``method``.

        A reader's clicks on a case come one request after another, and a click model reads
        every click so far (its click channels), as in one session: the new clicks are given
        after the clicks of the case's earlier click edits (corrections.json, in order) that the
        current mask still agrees with, a tumor click on a voxel that is tumor, a background
        click on one that is background. So an earlier click is forgotten when the mask was made
        to disagree with it since: undone (the page's undo saves the mask as it was), painted
        over, or not followed by the model, which a reader answers by clicking again. Only the
        new clicks change the mask, each within its own crop
        (:class:`~lion_nnunet.interactive.model_session.ClickModelSession`); the earlier ones
        are already in it. The rule-based edit reads only the new clicks.
        """
        from lion_nnunet.interactive.clickfile import parse_clicks

        from .click_methods import case_method

        folder = self.folders[case_id]
        with case_lock(folder):
            folder, report, pet_image, suv, before = self._inputs(case_id)
            clicks = parse_clicks(data, f"clicks of {case_id}", image=pet_image)
            if not len(clicks):
                raise LionError(f"clicks of {case_id}: no tumor or background click given")
            method = case_method(report)
            if method.fallback:
                log.warning("%s: %s", case_id, method.fallback)
            mask = before.astype(np.uint8)  # the session edits it in place
            spacing = pet_image.GetSpacing()[::-1]  # arrays (z, y, x)
            if method.model is not None:
                earlier = _agreed_clicks(read_corrections(folder) or {}, before)
                edit = self._model_clicks(method, suv, spacing, mask, earlier, clicks)
            else:
                edit = _rule_clicks(suv, spacing, mask, clicks)
            edit.update({"tumor": [list(p) for p in clicks.tumor],
                         "background": [list(p) for p in clicks.background]})  # fmt: skip
            if method.fallback:
                edit["fallback"] = method.fallback
            answer = self._save(case_id, folder, report, pet_image, suv, before, mask > 0, edit,
                                reviewer)  # fmt: skip
            return {**answer, "method": method.describe(),
                    **({"fallback": method.fallback} if method.fallback else {})}  # fmt: skip

    def _model_clicks(self, method, suv, spacing, mask, earlier, clicks) -> dict:
        """``clicks`` through ``method``'s click model after the ``earlier`` ones; the edit's
        record."""
        from lion_nnunet.interactive.session import apply_clicks

        with self.click_models.session(method) as session:
            session.set_image(suv, spacing)
            session.set_target_buffer(mask)
            session.clicks = earlier  # in its channels, not applied again
            apply_clicks(session, clicks)
        given = {"tumor": [list(p) for p in earlier.tumor],
                 "background": [list(p) for p in earlier.background]}  # fmt: skip
        return {"kind": "clicks", "method": method.name, "model": str(method.model.folder),
                "fold": method.model.folds[0], "encoding": session.encoding,
                "earlier_clicks": given}  # fmt: skip

    def _save(self, case_id, folder, report, pet_image, suv, before, mask, edit, reviewer) -> dict:
        from lion_nnunet.inference.lesion_files import color_table
        from lion_nnunet.inference.outputs import measure_case
        from lion_nnunet.inference.report import lesion_map

        for stale in folder.glob(".*.part*"):  # of a correction killed before its journal
            if stale.name.startswith(
                tuple(
                    f".{n}."
                    for n in (
                        CORRECTED,
                        LESIONS_CORRECTED,
                        COLOR_TABLE_CORRECTED,
                        CORRECTED_REPORT,
                        CORRECTED_SEG,
                        "mip_coronal_corrected.png",
                        "mip_sagittal_corrected.png",
                        CORRECTIONS,
                    )
                )
            ):
                stale.unlink(missing_ok=True)
        previous = read_corrections(folder) or {}
        label_set, organs = _organs(folder)
        new_report = measure_case(
            case_id, pet_image, suv, mask, organs, label_set, model=report.get("model"),
            folds=report.get("folds"), extra={"corrected": True, "prediction": PREDICTION,
                                             "corrections": CORRECTIONS},
        )  # fmt: skip
        edits = list(previous.get("edits") or [])
        edits.append({
            "n": len(edits) + 1, **edit, "time": _now(), "reviewer": reviewer[:200],
            "added": int((mask & ~before).sum()), "removed": int((before & ~mask).sum()),
            "tmtv_ml": new_report["tmtv_ml"], "lesion_count": new_report["lesion_count"],
        })  # fmt: skip
        mask_u8 = mask.astype(np.uint8)
        lesions = lesion_map(mask_u8)
        prediction = folder / PREDICTION
        record = {
            "case_id": case_id,
            "prediction": PREDICTION,
            "prediction_sha256": sha256_file(prediction) if prediction.is_file() else None,
            "model": report.get("model"),
            "corrected_mask": CORRECTED,
            "report": CORRECTED_REPORT,
            "mask_sha256": None,
            "edits": edits,
        }
        new_report["outputs"] = [CORRECTED, LESIONS_CORRECTED, COLOR_TABLE_CORRECTED,
                                 CORRECTED_REPORT, CORRECTIONS]  # fmt: skip
        seg = _seg_writer(folder, report, mask_u8, record)
        if seg is not None:
            new_report["outputs"].insert(-1, CORRECTED_SEG)
            new_report["dicom_seg"] = CORRECTED_SEG

        def write_mask(path: Path) -> None:
            sitk.WriteImage(array_to_image(mask_u8, pet_image), str(path), useCompression=True)
            record["mask_sha256"] = sha256_file(path)

        def write_lesions(path: Path) -> None:
            image = array_to_image(lesions, pet_image)
            sitk.WriteImage(image, str(path), useCompression=True)

        pictures = _picture_writers(case_id, report, new_report, pet_image, suv, mask_u8, lesions,
                                    organs)  # fmt: skip
        new_report["outputs"][-1:-1] = [name for name, _ in pictures]
        commit_files(folder, [
            *pictures,
            (CORRECTED, write_mask),
            (LESIONS_CORRECTED, write_lesions),
            (COLOR_TABLE_CORRECTED, lambda p: p.write_text(color_table(int(lesions.max())))),
            (CORRECTED_REPORT, lambda p: p.write_text(json.dumps(new_report, indent=2) + "\n")),
            *([(CORRECTED_SEG, seg)] if seg is not None else []),
            (CORRECTIONS, lambda p: p.write_text(json.dumps(record, indent=2) + "\n")),
        ])  # fmt: skip
        if self.book is not None:
            from lion_nnunet.inference.outputs import write_summary

            self.book.mark(case_id, "corrected", reviewer)
            # the gallery's cohort tables (lion review wrote them) follow the correction
            write_summary(self.pred_dir, use_corrected=True, to=self.book.path.parent)
        log.info("%s: corrected (%s), TMTV %s ml", case_id, edit["kind"], new_report["tmtv_ml"])
        return {"case_id": case_id, "tmtv_ml": new_report["tmtv_ml"],
                "lesion_count": new_report["lesion_count"], "edits": len(edits),
                "flag_score": new_report.get("flag_score"),
                "files": new_report["outputs"]}  # fmt: skip


def _picture_writers(case_id, report, new_report, pet_image, suv, mask, lesions, organs):
    """(name, writer) of the corrected mask's two MIPs, lesion numbers on them."""
    from lion_nnunet.inference.outputs import SINGLE_VIEWS
    from lion_nnunet.inference.pictures import DEFAULT_WINDOW, lps_arrays, save_single_mip_png

    if organs is not None and not np.any(organs):
        organs = None
    arrays, spacing = lps_arrays(pet_image, suv, mask, organs, lesions)
    pet_lps, mask_lps, organs_lps, lesions_lps = arrays
    window = tuple(report.get("mip_window_suv") or DEFAULT_WINDOW)
    title = (f"{case_id}, corrected: TMTV {new_report['tmtv_ml']:.1f} ml, "
             f"{new_report['lesion_count']} lesion(s)")  # fmt: skip

    def writer(axis):
        return lambda path: save_single_mip_png(pet_lps, mask_lps, organs_lps, spacing, axis,
                                                path, title=title, window=window,
                                                lesions=lesions_lps)  # fmt: skip

    return [(name.replace(".png", "_corrected.png"), writer(axis)) for axis, name in SINGLE_VIEWS]


def _seg_writer(folder: Path, report: dict, mask: np.ndarray, record: dict):
    """The writer of seg_corrected.dcm for a case with a seg.dcm, else None (module docstring);
    a stale seg_corrected.dcm goes when the PET series cannot be found again."""
    from lion_nnunet.inference.dicom_seg import seg_source_files, write_dicom_seg

    if not (folder / "seg.dcm").is_file():
        return None
    try:  # the series folder lion predict -i DICOM_ROOT read (report.json's input)
        files = seg_source_files(folder / "seg.dcm", str(report.get("input") or ""))
    except (LionError, OSError, AttributeError, IndexError) as e:
        log.warning("%s: no %s written: %s", folder.name, CORRECTED_SEG, e)
        record["dicom_seg_error"] = str(e)
        (folder / CORRECTED_SEG).unlink(missing_ok=True)
        return None
    record["dicom_seg"] = CORRECTED_SEG
    return lambda path: write_dicom_seg(mask, files, path, series_number=901, corrected=True)


def _organs(folder: Path):
    """The case's label set and saved organ map (organs.nii.gz, from --save-organs) or None."""
    from lion_nnunet.labels import get_label_set

    tracer = "fdg"
    names = folder / "organs.json"
    if names.is_file():
        with contextlib.suppress(OSError, ValueError, AttributeError):
            tracer = json.loads(names.read_text()).get("tracer") or tracer
    label_set = get_label_set(tracer)
    path = folder / "organs.nii.gz"
    organs = sitk.GetArrayFromImage(read_image(path, "organs")) if path.is_file() else None
    return label_set, organs


def _rule_clicks(suv: np.ndarray, spacing, mask: np.ndarray, clicks) -> dict:
    """The rule-based edit of ``mask`` (z, y, x, uint8; in place) by ``clicks``; its record."""
    from lion_nnunet.interactive.session import (
        RULE_BASED,
        RefinementSession,
        apply_clicks,
        rule_settings,
    )

    session = RefinementSession()
    session.set_image(suv, spacing)
    session.set_target_buffer(mask)
    apply_clicks(session, clicks)
    return {"kind": "clicks", "method": RULE_BASED, "rule": rule_settings(session)}


def _agreed_clicks(record: dict, mask: np.ndarray):
    """The clicks of corrections.json's click edits, in order, that ``mask`` (z, y, x) agrees
    with: tumor clicks on tumor voxels, background clicks on background voxels."""
    from lion_nnunet.interactive.clickfile import Clicks

    clicks = Clicks()
    for edit in record.get("edits") or []:
        if edit.get("kind") != "clicks":
            continue
        for name, tumor in (("tumor", True), ("background", False)):
            for i, j, k in edit.get(name) or []:
                inside = all(0 <= p < n for p, n in zip((k, j, i), mask.shape, strict=True))
                if inside and bool(mask[k, j, i]) == tumor:
                    clicks = clicks.added(name, (int(i), int(j), int(k)))
    return clicks
