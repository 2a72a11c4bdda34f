"""One task per case on Dask: failures recorded, lost workers retried, ``cohort.csv`` at the end.

A task runs the command's own per-case function in a worker process. A case that raises is
recorded as ``failed`` with the first line of its error, and the cohort goes on; a worker that
dies (killed, out of memory) has its case re-run by the scheduler on another worker (at most
:data:`~lion_nnunet.cohort.cluster.MAX_RETRIES` times), which is safe because every per-case
function writes its files through temporary names and skips or clears what exists. The run ends
with ``<out>/cohort.csv``: ``case_id,status,attempts,seconds,worker,error`` (status
``ok|failed|skipped``), one row per case in input order.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from lion_nnunet.io import write_csv
from lion_nnunet.progress import parallel_map

from .cluster import ClusterOptions, open_client, runs_here

log = logging.getLogger(__name__)

COHORT_CSV = "cohort.csv"
COLUMNS = ("case_id", "status", "attempts", "seconds", "worker", "error")


@dataclass
class CaseOutcome:
    """What became of one case: ``status`` ok|failed|skipped, ``attempts`` (0 when skipped)."""

    case_id: str
    status: str
    attempts: int = 1
    seconds: float = 0.0
    worker: str = ""
    error: str = ""
    result: Any = None


def default_status(result: Any) -> tuple[str, str]:
    """(status, error) of a per-case function's result: ``{"error": ...}`` failed,
    ``{"skipped": True}`` skipped, anything else ok."""
    if isinstance(result, dict):
        if result.get("error"):
            return "failed", str(result["error"])
        if result.get("skipped"):
            return "skipped", ""
    return "ok", ""


def _first_line(e: BaseException) -> str:
    """A LionError's sentence, else the exception's type and first line."""
    from lion_nnunet.errors import LionError

    text = str(e).strip()
    if isinstance(e, LionError) and text:
        return text.splitlines()[0]
    return f"{type(e).__name__}: {text.splitlines()[0]}" if text else type(e).__name__


def run_task(func: Callable[[Any], Any], item: Any) -> dict:
    """The Dask task: ``func(item)`` timed, an exception turned into a record (never raised).

    A raised error is returned, not raised, so that Dask does not retry a case whose input is
    bad; only a lost worker makes the scheduler run a case again.
    """
    from distributed import get_worker

    t0 = time.perf_counter()
    try:
        out = {"result": func(item), "error": ""}
    except Exception as e:  # any error of one case is that case's, the cohort goes on
        out = {"result": None, "error": _first_line(e)}
    try:
        worker = str(get_worker().name)
    except ValueError:  # pragma: no cover - not in a worker
        worker = "local"
    return {**out, "seconds": round(time.perf_counter() - t0, 3), "worker": worker}


def _attempts(client, keys: list[str]) -> dict[str, int]:
    """1 + the times each task's worker died while running it (the scheduler's count)."""

    def suspicious(dask_scheduler, keys):
        return {k: dask_scheduler.tasks[k].suspicious if k in dask_scheduler.tasks else 0
                for k in keys}  # fmt: skip

    try:
        counts = client.run_on_scheduler(suspicious, keys=keys)
    except Exception:  # an old or remote scheduler: the count is unknown, say 1
        log.debug("cannot read retry counts from the scheduler", exc_info=True)
        counts = {}
    return {k: 1 + int(counts.get(k, 0)) for k in keys}


def run_cohort(
    client,
    func: Callable[[Any], Any],
    items: Sequence[Any],
    case_ids: Sequence[str],
    desc: str,
    progress: bool = True,
    status_of: Callable[[Any], tuple[str, str]] = default_status,
) -> list[CaseOutcome]:
    """Run ``func`` on every item as one Dask task each; outcomes in input order.

    Args:
        client: a ``distributed.Client``.
        func: the per-case function (module level, picklable); its result's status comes from
            ``status_of``.
        items: one argument of ``func`` per case.
        case_ids: the cases' ids, as ``items``.
        desc: progress bar label.
        progress: show one bar (done, failed, ETA).
        status_of: (status, error) of a result.
    """
    from distributed import as_completed
    from distributed.client import FutureCancelledError

    run_id = uuid.uuid4().hex[:8]  # keys unique on a scheduler shared by several runs
    futures = {}
    for i, (case_id, item) in enumerate(zip(case_ids, items, strict=True)):
        key = f"lion-{desc.split()[0]}-{run_id}-{i}-{case_id}"
        futures[client.submit(run_task, func, item, key=key, pure=False)] = i
    outcomes: list[CaseOutcome | None] = [None] * len(items)
    failed = 0
    bar = tqdm(total=len(items), desc=desc, disable=not progress, unit="case",
               dynamic_ncols=True)  # fmt: skip
    try:
        for future in as_completed(futures):
            i = futures[future]
            attempts = _attempts(client, [future.key])[future.key]
            try:
                done = future.result()
            except (Exception, FutureCancelledError) as e:  # KilledWorker: retries used up
                outcome = CaseOutcome(case_ids[i], "failed", attempts, error=_first_line(e))
            else:
                status, error = status_of(done["result"])
                if done["error"]:
                    status, error = "failed", done["error"]
                outcome = CaseOutcome(case_ids[i], status, attempts, done["seconds"],
                                      done["worker"], error, done["result"])  # fmt: skip
            if outcome.status == "failed":
                failed += 1
                # the command says it once, in its summary of the failures
                log.info("case %s failed: %s", outcome.case_id, outcome.error)
            outcomes[i] = outcome
            future.release()
            bar.set_postfix(failed=failed, refresh=False)
            bar.update(1)
    finally:
        bar.close()
    return outcomes  # type: ignore[return-value]


def write_cohort_csv(outcomes: Sequence[CaseOutcome], out_dir: Path) -> Path:
    """``<out_dir>/cohort.csv``, one row per case (columns :data:`COLUMNS`)."""
    rows = [{c: getattr(o, c) for c in COLUMNS} for o in outcomes]
    return write_csv(pd.DataFrame(rows, columns=list(COLUMNS)), Path(out_dir) / COHORT_CSV)


def map_cases(
    func: Callable[[Any], Any],
    items: Sequence[Any],
    case_ids: Sequence[str],
    cluster: ClusterOptions | None,
    num_processes: int,
    desc: str,
    progress: bool,
    out_dir: Path,
    on_failure: Callable[[str, str], Any],
    gpus: int = 0,
    status_of: Callable[[Any], tuple[str, str]] = default_status,
) -> list[Any]:
    """``parallel_map`` of a command, on the ``--cluster`` when one is given; results in order.

    Without a cluster (or ``local`` with one worker) this is today's
    :func:`~lion_nnunet.progress.parallel_map`. On Dask every case is a task, ``cohort.csv`` is
    written into ``out_dir`` and a failed case's result is ``on_failure(case_id, error)`` (the
    form of the command's own error results), so the command reports it as it always has.
    """
    if cluster is None or runs_here(cluster, gpus):
        return parallel_map(func, items, num_processes, desc, progress)
    with open_client(cluster, gpus) as client:
        outcomes = run_cohort(client, func, items, case_ids, desc, progress, status_of)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    write_cohort_csv(outcomes, out_dir)
    return [
        o.result if o.result is not None and status_of(o.result)[0] == o.status
        else on_failure(o.case_id, o.error)
        for o in outcomes
    ]  # fmt: skip
