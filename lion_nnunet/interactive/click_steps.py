"""``lion predict --click-steps STEPS``: every step of the protocol in one run, one model load.

``STEPS`` is what ``lion clicks steps`` writes: ``STEPS/step0/`` .. ``STEPS/stepN/``, each holding
every case's ``<case_id>_clicks.json`` (step n: the first n tumor and n background clicks). Each
step is predicted exactly as ``lion predict --clicks STEPS/step<n>`` predicts it, into
``OUT/step<n>/<case_id>/`` (same files, report.json with that step's clicks, the same resume
rules), by one :class:`~lion_nnunet.inference.predict.LionPredictor` shared by all steps; each
step's ``tumor.nii.gz`` is also copied to ``OUT/steps/<case_id>_pred<n>.nii.gz``, the folder
``lion evaluate --interactive`` reads (:mod:`.steps`).

Everything is checked before anything is predicted: the step folders (``step0`` first, no gap),
every case's click file at every step, and the resume state of every step folder (a step done
with other settings stops the run, as ``lion predict`` does), so a bad input stops the run with
one sentence and nothing written. Steps already done with the same settings are skipped; the
model is loaded only when a step has a case to predict.
"""

from __future__ import annotations

import logging
import re
import shutil
from collections.abc import Sequence
from pathlib import Path

from lion_nnunet.errors import LionError
from lion_nnunet.inference.cases import Case
from lion_nnunet.inference.model import check_model_folder
from lion_nnunet.inference.options import PredictOptions
from lion_nnunet.io import atomic_path

from .cases import clicks_name
from .click_inputs import attach_click_files

log = logging.getLogger(__name__)

#: The flat folder of step predictions under ``-o`` (``<case_id>_pred<n>.nii.gz``).
FLAT = "steps"
_STEP = re.compile(r"step(0|[1-9]\d*)")


def step_folders(steps_dir: str | Path) -> list[Path]:
    """``STEPS/step0`` .. ``STEPS/stepN`` in order.

    Raises:
        LionError: ``steps_dir`` missing, no ``step<n>`` folder, or steps that do not run
            0, 1, ..., N without a gap.
    """
    root = Path(steps_dir)
    if not root.is_dir():
        raise LionError(f"--click-steps {root}: no such folder (lion clicks steps writes one)")
    found = {
        int(match.group(1)): p
        for p in root.iterdir()
        if p.is_dir() and (match := _STEP.fullmatch(p.name))
    }
    if not found:
        raise LionError(
            f"--click-steps {root}: no step0/ .. stepN/ folders of click files (lion clicks "
            "steps CLICKS -o STEPS writes them)"
        )
    missing = sorted(set(range(max(found) + 1)) - set(found))
    if missing:
        shown = ", ".join(f"step{n}" for n in missing)
        raise LionError(
            f"--click-steps {root}: steps run up to step{max(found)} but {shown} is missing; "
            "the steps must be step0, step1, ... without a gap"
        )
    return [found[n] for n in range(len(found))]


def _drop_later_steps(flat: Path, case_ids: Sequence[str], steps: int) -> None:
    """Remove ``<case_id>_pred<m>.nii.gz`` for m >= ``steps`` (an earlier run with more steps):
    ``lion evaluate --interactive`` would read them as this run's."""
    for case_id in case_ids:
        pattern = re.compile(rf"{re.escape(case_id)}_pred(\d+)\.nii\.gz")
        for path in flat.glob(f"{case_id}_pred*.nii.gz"):
            match = pattern.fullmatch(path.name)
            if match and int(match.group(1)) >= steps:
                log.info("%s: removed, a step beyond this run's step%d", path, steps - 1)
                path.unlink()


def predict_click_steps(
    cases: Sequence[Case],
    model_folder: str | Path,
    out_dir: str | Path,
    steps_dir: str | Path,
    options: PredictOptions | None = None,
) -> dict:
    """Predict every step of ``steps_dir`` with one predictor; write the outputs (module doc).

    Args:
        cases: from :func:`lion_nnunet.inference.predict.discover_cases` (without prompts).
        model_folder: a model folder or an installed model's name.
        out_dir: output folder: ``step<n>/<case_id>/`` per step, ``steps/`` for the evaluation.
        steps_dir: ``step0/`` .. ``stepN/`` of ``<case_id>_clicks.json`` (``lion clicks steps``).
        options: every setting of the run (:class:`PredictOptions`); None = the defaults.

    Returns:
        ``{"out", "steps_dir", "steps", "predicted", "skipped", "failed"}``: ``steps`` the
        number of steps, ``predicted`` and ``skipped`` ``"step<n>/<case_id>"`` names, ``failed``
        such a name -> why (that case and step have no output; the others were written).

    Raises:
        LionError: a bad step folder or click file, or a step done with other settings
            (before anything is written).
    """
    from lion_nnunet.inference.predict import LionPredictor
    from lion_nnunet.inference.run_loop import predict_cases

    o = options or PredictOptions()
    out = Path(out_dir)
    folders = step_folders(steps_dir)
    for folder in folders:  # name the step folder, not the --clicks it stands for
        missing = [c.case_id for c in cases if not (folder / clicks_name(c.case_id)).is_file()]
        if missing:
            more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
            raise LionError(
                f"--click-steps {folder}: no click file for {len(missing)} case(s): "
                f"{', '.join(missing[:3])}{more} (<case_id>_clicks.json); every step needs "
                "every case's file (lion clicks steps writes them all)"
            )
    steps = [attach_click_files(cases, folder) for folder in folders]  # every file checked
    plans = [predict_cases(s, model_folder, out / f"step{n}", o, plan_only=True)
             for n, s in enumerate(steps)]  # fmt: skip
    predictor = None
    if any(plan["todo"] for plan in plans):
        folds = None if o.folds is None else list(o.folds)
        model = check_model_folder(model_folder, folds, o.checkpoint, o.tumor_label)
        predictor = LionPredictor(model, o.device, o.use_mirroring, o.tile_step_size,
                                  o.checkpoint)  # fmt: skip
    predicted, skipped, failed = [], [], {}
    for n, step_cases in enumerate(steps):
        if plans[n]["todo"]:
            log.info("step %d of %d", n, len(steps) - 1)
        result = predict_cases(step_cases, model_folder, out / f"step{n}", o, predictor=predictor)
        predicted += [f"step{n}/{c}" for c in result["predicted"]]
        skipped += [f"step{n}/{c}" for c in result["skipped"]]
        failed.update({f"step{n}/{c}": why for c, why in result["failed"].items()})
        for case_id in [*result["predicted"], *result["skipped"]]:
            tumor = out / f"step{n}" / case_id / "tumor.nii.gz"
            with atomic_path(out / FLAT / f"{case_id}_pred{n}.nii.gz") as tmp:
                shutil.copyfile(tumor, tmp)
    mine = [c.case_id for c in list(cases)[o.part_id :: o.num_parts]]
    _drop_later_steps(out / FLAT, mine, len(steps))
    return {"out": str(out), "steps_dir": str(out / FLAT), "steps": len(steps),
            "predicted": predicted, "skipped": skipped, "failed": failed}  # fmt: skip
