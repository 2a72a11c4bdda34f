"""Which tumor mask and report of a ``lion predict`` case folder a command reads: the prediction,
or the reader's correction beside it (``--use-corrected``).

The writer is :mod:`lion_nnunet.review.corrections` (``lion review --serve``); this module only
reads, so every command (lion evaluate, compare, response, review, the cohort summary) can use it
without importing the server. File names and the journal of an interrupted correction are
described there.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from pathlib import Path

from lion_nnunet.errors import LionError
from lion_nnunet.io import sha256_file

log = logging.getLogger(__name__)

PREDICTION = "tumor.nii.gz"
CORRECTED = "tumor_corrected.nii.gz"
CORRECTED_REPORT = "report_corrected.json"
CORRECTIONS = "corrections.json"
JOURNAL = ".corrections.journal.json"


def finish_interrupted(case_dir: Path, interrupted: bool = True) -> None:
    """Complete the renames of a correction whose process was killed after its journal
    (``interrupted=False``: the writer's own, normal completion)."""
    journal = Path(case_dir) / JOURNAL
    if not journal.is_file():
        return
    try:
        renames = json.loads(journal.read_text())["renames"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise LionError(
            f"{journal}: unreadable correction journal ({e}); remove it and the "
            f"{CORRECTIONS} set of files of this case to start again"
        ) from None
    for final, part in renames:
        if Path(final).name != final or Path(part).name != part:
            raise LionError(f"{journal}: names outside the case folder ({final}, {part})")
        with contextlib.suppress(FileNotFoundError):  # renamed already (by another reader)
            # os.replace, not Path.replace: a test replaces it to kill a write between renames
            os.replace(Path(case_dir) / part, Path(case_dir) / final)  # noqa: PTH105
    journal.unlink(missing_ok=True)
    if interrupted:
        log.warning("%s: completed a correction that was interrupted", case_dir)


def read_corrections(case_dir: str | Path) -> dict | None:
    """corrections.json of a case folder, or None when it was never corrected."""
    case_dir = Path(case_dir)
    finish_interrupted(case_dir)
    path = case_dir / CORRECTIONS
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise LionError(f"{path}: unreadable ({e})") from None
    if not isinstance(data, dict) or not isinstance(data.get("edits"), list):
        raise LionError(f"{path}: expected an object with an 'edits' list")
    return data


def corrected_mask(case_dir: str | Path) -> Path | None:
    """``<case>/tumor_corrected.nii.gz`` when the case was corrected, else None.

    Warns when tumor.nii.gz changed since the correction (the case was predicted again): the
    correction is still used, as the reader made it.
    """
    case_dir = Path(case_dir)
    data = read_corrections(case_dir)
    if data is None:
        return None
    path = case_dir / CORRECTED
    if not path.is_file():
        raise LionError(f"{case_dir / CORRECTIONS} exists but {path.name} does not; remove "
                        f"{CORRECTIONS} to use the prediction")  # fmt: skip
    prediction = case_dir / PREDICTION
    if prediction.is_file() and data.get("prediction_sha256") not in (
        None,
        sha256_file(prediction),
    ):
        log.warning("%s: %s changed after the correction was made; the correction is used",
                    case_dir, PREDICTION)  # fmt: skip
    return path


def case_mask(case_dir: str | Path, use_corrected: bool) -> tuple[Path, bool]:
    """The tumor mask of a ``lion predict`` case folder and whether it is the corrected one."""
    case_dir = Path(case_dir)
    if use_corrected:
        path = corrected_mask(case_dir)
        if path is not None:
            return path, True
    return case_dir / PREDICTION, False


def case_report_path(case_dir: str | Path, use_corrected: bool) -> tuple[Path, bool]:
    """report.json, or report_corrected.json of a corrected case with ``use_corrected``."""
    case_dir = Path(case_dir)
    if use_corrected and corrected_mask(case_dir) is not None:
        return case_dir / CORRECTED_REPORT, True
    return case_dir / "report.json", False
