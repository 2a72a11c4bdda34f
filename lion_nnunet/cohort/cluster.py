"""``--cluster``: where a cohort's cases run, as one spec string, and the Dask client for it.

Specs:
    ``local`` (default): this process, as before, when there is one worker; one worker per GPU
    (dask-cuda's ``LocalCUDACluster``) when the command runs on CUDA, several GPUs are visible
    and dask-cuda is installed; without dask-cuda this process on one GPU (said in a warning).
    ``local:N``: a ``LocalCluster`` of N worker processes (one thread each, the cores shared
    between them; ``local:1`` is one worker process), or N GPU workers with dask-cuda on a
    multi-GPU machine (N > 1 there needs dask-cuda).
    ``tcp://HOST:PORT``: an existing Dask scheduler (its workers must have lion-nnunet and see
    the same files).
    ``slurm``: a ``dask_jobqueue.SLURMCluster`` from ``--cluster-config FILE`` (dask-jobqueue's
    own YAML schema, ``jobqueue: slurm: ...``), scaled to ``--max-workers`` jobs.

Workers are separate processes: they inherit this process's environment (``nnUNet_*``,
``PYTHONPATH``), and a worker that dies has its running case re-run on another worker at most
:data:`MAX_RETRIES` times (the scheduler's ``allowed-failures``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from lion_nnunet.errors import LionError
from lion_nnunet.progress import default_processes

log = logging.getLogger(__name__)

#: Re-runs of a case whose worker died (killed, out of memory) before it is recorded as failed.
MAX_RETRIES = 2
SPEC_HELP = "local, local:N, tcp://HOST:PORT or slurm"
GPU_HINT = "pip install 'lion-nnunet[gpu]' (dask-cuda)"


def check_spec(spec: str) -> str:
    """``spec`` when it is ``local``, ``local:N`` (N >= 1), ``tcp://...`` or ``slurm``."""
    if spec in ("local", "slurm") or spec.startswith("tcp://"):
        return spec
    match = re.fullmatch(r"local:(\d+)", spec)
    if not match or int(match.group(1)) < 1:
        raise LionError(f"--cluster {spec}: expected local:N with N >= 1 workers"
                        if spec.startswith("local:") else
                        f"--cluster {spec}: expected {SPEC_HELP}")  # fmt: skip
    return spec


@dataclass(frozen=True)
class ClusterOptions:
    """Where the cases run.

    Attributes:
        spec: ``local``, ``local:N``, ``tcp://HOST:PORT`` or ``slurm``.
        config: dask-jobqueue YAML file (``slurm`` only).
        max_workers: SLURM jobs to scale to (one worker each).
        dashboard: start the Dask dashboard of local clusters (needs bokeh); its address is
            printed.

    Examples:
        >>> ClusterOptions("local:2").local_workers
        2
        >>> ClusterOptions("local").single_process(gpus=0)
        True
        >>> ClusterOptions("local:0")
        Traceback (most recent call last):
        ...
        lion_nnunet.errors.LionError: --cluster local:0: expected local:N with N >= 1 workers
    """

    spec: str = "local"
    config: Path | None = None
    max_workers: int = 1
    dashboard: bool = True

    def __post_init__(self) -> None:
        spec = self.spec.strip()
        object.__setattr__(self, "spec", spec)
        if spec == "slurm":
            if self.config is None:
                raise LionError(
                    "--cluster slurm needs --cluster-config FILE (dask-jobqueue's YAML: "
                    "jobqueue: slurm: queue, cores, memory, walltime, ...); see docs/cohort.md"
                )
            if not Path(self.config).is_file():
                raise LionError(f"--cluster-config {self.config}: file not found")
        elif self.config is not None:
            raise LionError(f"--cluster-config is for --cluster slurm, not --cluster {spec}")
        if self.max_workers < 1:
            raise LionError(f"--max-workers {self.max_workers}: expected at least 1")
        check_spec(spec)

    @property
    def local_workers(self) -> int | None:
        """N of ``local:N`` (1 for ``local``), None for a scheduler or SLURM."""
        if self.spec == "local":
            return 1
        if self.spec.startswith("local:"):
            return int(self.spec.split(":", 1)[1])
        return None

    def single_process(self, gpus: int) -> bool:
        """True when the cases run in this process (today's path): ``local`` and <= 1 GPU, or
        ``local`` on several GPUs without dask-cuda (then on one GPU).

        ``local:1`` is one worker process on Dask (the predictor in a worker, ``cohort.csv``).
        """
        return self.spec == "local" and (gpus <= 1 or not has_dask_cuda())


def has_dask_cuda() -> bool:
    """True when dask-cuda (one Dask worker per GPU) can be imported."""
    try:
        import dask_cuda  # noqa: F401
    except ImportError:
        return False
    return True


def runs_here(options: ClusterOptions, gpus: int) -> bool:
    """:meth:`ClusterOptions.single_process`, saying in a warning when several GPUs are visible
    and only one is used (the default ``local`` without dask-cuda)."""
    here = options.single_process(gpus)
    if here and gpus > 1:
        log.warning(
            "%d GPUs are visible and dask-cuda is not installed: the cases run in this process "
            "on one GPU (cuda:0); %s to run one worker per GPU", gpus, GPU_HINT,
        )  # fmt: skip
    return here


def visible_gpus(device: str) -> int:
    """CUDA GPUs a command on ``device`` would use (0 for ``cpu``/``mps`` or without CUDA)."""
    if device not in ("auto", "cuda", "gpu") and not device.startswith("cuda"):
        return 0
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return 0
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _load_jobqueue_config(path: Path) -> dict:
    import yaml

    try:
        config = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as e:
        raise LionError(f"--cluster-config {path}: cannot read the YAML ({e})") from None
    slurm = (config or {}).get("jobqueue", {}).get("slurm") if isinstance(config, dict) else None
    if not isinstance(slurm, dict):
        raise LionError(
            f"--cluster-config {path}: no 'jobqueue: slurm:' section; write dask-jobqueue's "
            "schema (jobqueue: slurm: queue, cores, memory, walltime, job_extra_directives, "
            "job_script_prologue), see docs/cohort.md"
        )
    return config


def slurm_cluster(config_file: Path, **kwargs):
    """A ``dask_jobqueue.SLURMCluster`` from a dask-jobqueue YAML file; starts no job.

    The file's ``jobqueue: slurm:`` settings (dask-jobqueue's names, ``-`` or ``_``) become the
    cluster's arguments; ``kwargs`` add to them.
    """
    from dask_jobqueue import SLURMCluster

    config = _load_jobqueue_config(config_file)
    settings = {k.replace("-", "_"): v for k, v in config["jobqueue"]["slurm"].items()}
    try:
        return SLURMCluster(**{**settings, **kwargs})
    except (TypeError, ValueError) as e:
        raise LionError(
            f"--cluster-config {config_file}: dask-jobqueue refuses it ({e}); fix the "
            "jobqueue: slurm: section"
        ) from None


def _worker_env(workers: int) -> dict[str, str]:
    """Each of ``workers`` processes gets its share of the cores for torch/BLAS threads."""
    threads = str(max(1, default_processes() // workers))
    return {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads,
            "LION_WORKER_THREADS": threads}  # fmt: skip


def _local_cluster(workers: int, gpus: int, dashboard: bool):
    from distributed import LocalCluster

    address = ":0" if dashboard and _has_bokeh() else None
    if gpus > 1 and (workers > 1 or has_dask_cuda()):
        try:
            from dask_cuda import LocalCUDACluster
        except ImportError:
            raise LionError(
                f"--cluster local:{workers}: {gpus} GPUs are visible and one worker per GPU "
                f"needs dask-cuda, which is not installed: {GPU_HINT}, or pass --cluster local "
                "to run on one GPU in this process"
            ) from None
        log.warning("%d GPUs are visible: one Dask worker per GPU (dask-cuda), %d in all", gpus,
                    min(workers, gpus))  # fmt: skip
        return LocalCUDACluster(
            n_workers=min(workers, gpus), threads_per_worker=1, dashboard_address=address
        )
    return LocalCluster(
        n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=address,
        env=_worker_env(workers),
    )  # fmt: skip


def _has_bokeh() -> bool:
    try:
        import bokeh  # noqa: F401
    except ImportError:
        return False
    return True


@contextlib.contextmanager
def open_client(options: ClusterOptions, gpus: int = 0) -> Iterator[object | None]:
    """The Dask client for ``options`` (None: run in this process); closes what it started.

    Args:
        options: the ``--cluster`` settings.
        gpus: CUDA GPUs the command would use (:func:`visible_gpus`); ``local`` starts one
            worker per GPU when there are several.
    """
    if options.single_process(gpus):
        yield None
        return
    import dask
    from distributed import Client

    # a worker that dies is replaced and its case re-run at most MAX_RETRIES times (local
    # and SLURM clusters; an existing scheduler keeps its own setting)
    with dask.config.set({"distributed.scheduler.allowed-failures": MAX_RETRIES,
                          "distributed.worker.daemon": False}):  # fmt: skip
        cluster = None
        if options.spec.startswith("tcp://"):
            try:
                client = Client(options.spec, timeout="20s")
            except OSError as e:
                raise LionError(
                    f"--cluster {options.spec}: no Dask scheduler answers there ({e}); start "
                    "one (dask scheduler) or check the address"
                ) from None
        else:
            if options.spec == "slurm":
                cluster = slurm_cluster(Path(options.config))
                cluster.scale(jobs=options.max_workers)
            else:
                workers = options.local_workers or 1
                cluster = _local_cluster(workers if options.spec != "local" else gpus, gpus,
                                         options.dashboard)  # fmt: skip
            client = Client(cluster)
        try:
            if options.dashboard and (cluster is None or _has_bokeh()):
                log.warning("Dask dashboard: %s", client.dashboard_link)
            yield client
        finally:
            client.close()
            if cluster is not None:
                cluster.close()


def worker_threads() -> int:
    """Torch threads for this worker (set by the local cluster; all cores elsewhere)."""
    return int(os.environ.get("LION_WORKER_THREADS", "0")) or default_processes()
