"""Progress bars and a parallel map over cases, shared by every command that loops over cases."""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")
R = TypeVar("R")


def default_processes() -> int:
    """Worker processes to use when the user does not say: the cores available to us."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def track(
    items: Iterable[T], desc: str, total: int | None = None, enabled: bool = True
) -> Iterator[T]:
    """Iterate with a tqdm progress bar (on stderr) unless ``enabled`` is False."""
    return iter(
        tqdm(items, desc=desc, total=total, disable=not enabled, unit="case", dynamic_ncols=True)
    )


def parallel_map(
    func: Callable[[T], R],
    items: Sequence[T],
    num_processes: int,
    desc: str,
    progress: bool = True,
) -> list[R]:
    """Apply ``func`` to every item, in ``num_processes`` spawned workers, results in input order.

    ``func`` must be a module-level function (it is pickled). With ``num_processes <= 1`` it runs
    in this process, which keeps tracebacks simple and is what tests use. The first exception
    raised by a worker is re-raised here after the other running items finish.
    """
    if num_processes <= 1 or len(items) <= 1:
        return [func(item) for item in track(items, desc, len(items), progress)]
    results: list[R | None] = [None] * len(items)
    ctx = mp.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(num_processes, len(items)), mp_context=ctx) as pool:
        futures = {pool.submit(func, item): i for i, item in enumerate(items)}
        bar = tqdm(
            total=len(items), desc=desc, disable=not progress, unit="case", dynamic_ncols=True
        )
        try:
            for fut in as_completed(futures):
                results[futures[fut]] = fut.result()
                bar.update(1)
        except BaseException:
            for f in futures:
                f.cancel()
            raise
        finally:
            bar.close()
    return results  # type: ignore[return-value]
