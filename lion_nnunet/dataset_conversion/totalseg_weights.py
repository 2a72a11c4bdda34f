"""Which TotalSegmentator weights ``lion organs`` needs, where TotalSegmentator looks, and a check.

TotalSegmentator downloads a task's weights on first use into its weights folder: the folder
``TOTALSEG_WEIGHTS_PATH`` names, else ``<TOTALSEG_HOME_DIR or ~/.totalsegmentator>/nnunet/results``
(``totalsegmentator.config.get_weights_dir``). Each weight set is one folder there, named in
``totalsegmentator.map_tasks_config.TASK_ID_WEIGHTS_CONFIGS`` (e.g.
``Dataset291_TotalSegmentator_part1_organs_1559subj``), which is what each release zip unpacks to.

``lion organs`` downloads nothing: before any study starts, :func:`check_weights` looks for every
folder its calls would make TotalSegmentator download and refuses with one sentence naming the
missing ones, the folder searched and how to copy them in. ``lion organs --weights DIR`` points
TotalSegmentator at ``DIR`` (as ``TOTALSEG_WEIGHTS_PATH``) for the run.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from lion_nnunet.errors import LionError

WEIGHTS_VAR = "TOTALSEG_WEIGHTS_PATH"
#: TotalSegmentator's 6 mm ``total`` model: its rough segmentation crops the CT whenever a call has
#: a ``roi_subset`` or its task a ``crop`` (python_api.totalsegmentator, CT tasks, default speed).
CROP_MODEL_TASK_ID = 298
RELEASES = "https://github.com/wasserth/TotalSegmentator/releases"
#: Environment variables TotalSegmentator's API sets for its own nnU-Net run (setup_nnunet).
_SET_BY_TOTALSEG = ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")


def weights_folder(weights: str | Path | None = None) -> Path:
    """The folder TotalSegmentator reads weights from: ``weights`` when given, else its own."""
    if weights is not None:
        return Path(weights).expanduser().resolve()
    from totalsegmentator.config import get_weights_dir

    return Path(get_weights_dir())


def required_task_ids(calls: Sequence[dict]) -> list[int]:
    """TotalSegmentator's weight ids (e.g. 291-295 for ``total``) that ``calls`` would download.

    Args:
        calls: ``{"task", "roi_subset"}`` per call, as :func:`totalseg_run.totalseg_calls` makes.
    """
    from totalsegmentator.python_api import get_task_config

    ids: list[int] = []
    todo = [(c["task"], bool(c.get("roi_subset"))) for c in calls]
    while todo:
        task, subset = todo.pop(0)
        config = get_task_config(task, quiet=True)
        task_ids = config["task_id"]
        ids += task_ids if isinstance(task_ids, list) else [task_ids]
        if subset or config.get("crop") is not None or config.get("cascade"):
            if config.get("crop_model") is None:
                ids.append(CROP_MODEL_TASK_ID)
            else:  # the crop comes from a run of another task
                todo.append((config["crop_model"], False))
    return sorted(set(ids))


def missing_weights(calls: Sequence[dict], folder: Path) -> dict[int, str]:
    """``{task id: folder name}`` of the weights ``calls`` need that ``folder`` lacks.

    A weight set counts as present when its folder exists and is not empty (TotalSegmentator's own
    test is the folder's existence; an empty one would fail later, inside a study).
    """
    from totalsegmentator.map_tasks_config import TASK_ID_WEIGHTS_CONFIGS

    missing = {}
    for task_id in required_task_ids(calls):
        info = TASK_ID_WEIGHTS_CONFIGS[task_id]
        name = str(Path(info.get("rel_path") or "") / info["foldername"])
        path = folder / name
        if not (path.is_dir() and any(path.iterdir())):
            missing[task_id] = name
    return missing


def check_weights(calls: Sequence[dict], weights: str | Path | None = None) -> Path:
    """Return the weights folder when it holds every weight set ``calls`` need, else refuse.

    Raises:
        LionError: one sentence naming the missing weight sets, the folder searched and how to
            copy them in (``--weights DIR`` or ``totalseg_import_weights``).
    """
    folder = weights_folder(weights)
    missing = missing_weights(calls, folder)
    if missing:
        listed = ", ".join(f"{name} (task {task_id})" for task_id, name in missing.items())
        raise LionError(
            f"{folder}: TotalSegmentator weights missing for {listed}; lion organs downloads "
            f"nothing, so unzip each weight set from {RELEASES} into that folder (or run "
            "totalseg_import_weights -i <zip> once per zip), or pass --weights DIR for a folder "
            "that holds them"
        )
    return folder


@contextlib.contextmanager
def totalseg_environment(folder: Path) -> Iterator[None]:
    """Point TotalSegmentator at ``folder`` while inside; restore the environment after.

    TotalSegmentator's API also overwrites ``nnUNet_raw/preprocessed/results`` with its weights
    folder; those are restored too, so LION's own nnU-Net folders survive an in-process run.
    """
    names = (WEIGHTS_VAR, *_SET_BY_TOTALSEG)
    saved = {name: os.environ.get(name) for name in names}
    os.environ[WEIGHTS_VAR] = str(folder)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
