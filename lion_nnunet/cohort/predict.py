"""``lion predict --cluster``: one Dask task per case, the predictor loaded once per worker.

The client checks the model and the resume state exactly as a single-process run does
(:func:`~lion_nnunet.inference.run_loop.predict_cases` with ``plan_only``), so a case done with
other settings stops the run before anything is written. Each task then runs ``predict_cases``
on its one case in a worker, with that worker's cached :class:`LionPredictor` (built on the
worker's first case, keyed by model folder and network settings): the case's outputs are written
atomically, report.json last, exactly as in one process. ``summary.csv`` and ``cohort.csv`` are
written by the client at the end.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

from lion_nnunet.errors import LionError
from lion_nnunet.inference.cases import Case
from lion_nnunet.inference.options import PredictOptions

from .cluster import ClusterOptions, open_client, runs_here, visible_gpus, worker_threads
from .run import CaseOutcome, run_cohort, write_cohort_csv

log = logging.getLogger(__name__)

#: This worker process's predictors, by (model folder, folds, checkpoint, device, TTA, step).
_PREDICTORS: dict[tuple, object] = {}


@dataclass
class PredictJob:
    """One case of a cohort: what a worker needs to predict it."""

    case: Case
    model_folder: str
    out_dir: str
    options: PredictOptions


def worker_predictor(model, options: PredictOptions):
    """This worker's predictor for ``model`` and ``options``, built on first use, then reused."""
    from lion_nnunet.inference.predict import LionPredictor

    o = options
    key = (str(Path(model.folder).resolve()), tuple(model.folds), o.checkpoint, o.device,
           o.use_mirroring, o.tile_step_size)  # fmt: skip
    if key not in _PREDICTORS:
        import torch

        torch.set_num_threads(worker_threads())  # the worker's share of the cores
        _PREDICTORS.clear()  # one model in memory per worker
        _PREDICTORS[key] = LionPredictor(
            model, o.device, o.use_mirroring, o.tile_step_size, o.checkpoint
        )
    return _PREDICTORS[key]


def predict_case(job: PredictJob) -> dict:
    """The task: predict one case with this worker's predictor; raise when its input fails."""
    from lion_nnunet.inference.model import check_model_folder
    from lion_nnunet.inference.run_loop import predict_cases

    o = job.options
    model = check_model_folder(
        job.model_folder, None if o.folds is None else list(o.folds), o.checkpoint, o.tumor_label
    )
    one = dataclasses.replace(o, progress=False, num_parts=1, part_id=0)
    result = predict_cases([job.case], job.model_folder, job.out_dir, one,
                           predictor=worker_predictor(model, o), summary=False)  # fmt: skip
    if result["failed"]:
        raise LionError(result["failed"][job.case.case_id])
    # skipped: found done (a lost worker's try of this run, or another run into the same -o)
    return {"case_id": job.case.case_id, "skipped": bool(result["skipped"])}


def _clear_for_overwrite(out_dir: Path, case_ids: list[str]) -> None:
    """``--overwrite`` on Dask: remove what earlier runs wrote for ``case_ids`` before any task.

    In one process each case's old files are removed just before its new ones are written
    (:func:`~lion_nnunet.inference.outputs.clear_case_outputs`); on Dask the tasks never
    overwrite (a retried task must skip what a lost worker finished), so the client clears first.
    """
    from lion_nnunet.inference.outputs import case_done, clear_case_outputs

    cleared = [c for c in case_ids if case_done(out_dir / c)]
    for case_id in cleared:
        clear_case_outputs(out_dir / case_id)
    if cleared:
        log.info("--overwrite: removed the earlier outputs of %d case(s) in %s", len(cleared),
                 out_dir)  # fmt: skip


def predict_cohort(
    cases: list[Case],
    model_folder: str | Path,
    out_dir: str | Path,
    options: PredictOptions,
    cluster: ClusterOptions,
) -> dict:
    """``predict_cases`` over a Dask cluster; the same answer plus ``cohort_csv``.

    Runs in this process (``predict_cases`` itself) when ``cluster`` is one local worker.

    Returns:
        ``{"out", "predicted", "skipped", "summary", "failed", "cohort_csv"}``; ``failed``: case
        id -> why (its input's error, or the lost worker).
    """
    from lion_nnunet.inference.outputs import write_summary
    from lion_nnunet.inference.run_loop import predict_cases

    gpus = visible_gpus(options.device)
    if runs_here(cluster, gpus):
        return predict_cases(cases, model_folder, out_dir, options)
    out_dir = Path(out_dir)
    plan = predict_cases(cases, model_folder, out_dir, options, plan_only=True)
    mine = list(cases)[options.part_id :: options.num_parts]
    todo = set(plan["todo"])
    if options.overwrite:
        _clear_for_overwrite(out_dir, [c.case_id for c in mine if c.case_id in todo])
    # the client cleared what --overwrite replaces; a re-run task must skip what a lost worker
    # finished, so tasks never overwrite
    task_options = dataclasses.replace(options, overwrite=False)
    jobs = [PredictJob(c, str(model_folder), str(out_dir), task_options)
            for c in mine if c.case_id in todo]  # fmt: skip
    outcomes: dict[str, CaseOutcome] = {
        c.case_id: CaseOutcome(c.case_id, "skipped", attempts=0) for c in mine
    }
    if jobs:
        out_dir.mkdir(parents=True, exist_ok=True)
        with open_client(cluster, gpus) as client:
            ran = run_cohort(client, predict_case, jobs, [j.case.case_id for j in jobs],
                             "predict", options.progress)  # fmt: skip
        for o in ran:  # a retried case found done: its lost worker's try of this run wrote it
            if o.status == "skipped" and o.attempts > 1:
                o.status = "ok"
        outcomes.update({o.case_id: o for o in ran})
    rows = [outcomes[c.case_id] for c in mine]
    cohort_csv = write_cohort_csv(rows, out_dir) if rows else None
    summary = write_summary(out_dir)
    return {
        "out": str(out_dir),
        "predicted": [o.case_id for o in rows if o.status == "ok"],
        "skipped": [o.case_id for o in rows if o.status == "skipped"],
        "summary": str(summary) if summary else None,
        "failed": {o.case_id: o.error for o in rows if o.status == "failed"},
        "cohort_csv": str(cohort_csv) if cohort_csv else None,
    }
