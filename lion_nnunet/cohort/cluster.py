"""``--cluster``: where a cohort's cases run, as one spec string, and the Dask client for it.

Specs:
    ``local`` (default): this process, as before, when there is one worker; one worker per GPU
    (dask-cuda's ``LocalCUDACluster``) when the command runs on CUDA, several GPUs are visible
    and dask-cuda is installed; without dask-cuda this process on one GPU (said in a warning).
    ``local:N``: a ``LocalCluster`` of N worker processes (one thread each, the cores shared
    between them; ``local:1`` is one worker process), or N GPU workers with dask-cuda on a
    multi-GPU machine (N > 1 there needs dask-cuda).
    ``tls://HOST:PORT``: an existing Dask scheduler that speaks TLS (its workers must have
    lion-nnunet and see the same files); the certificates come from ``--cluster-config FILE``'s
    ``security:`` section (:data:`SECURITY_KEYS`, ``distributed.security.Security``'s names) or
    dask's own configuration (``distributed.comm.tls.*``).
    ``tcp://HOST:PORT``: the same without TLS: unencrypted, and anyone who reaches the scheduler
    can run code on its workers (said in a warning).
    ``slurm``: a ``dask_jobqueue.SLURMCluster`` from ``--cluster-config FILE`` (dask-jobqueue's
    own YAML schema, ``jobqueue: slurm: ...``), scaled to ``--max-workers`` jobs; its scheduler
    and workers talk TLS with temporary certificates (``Security.temporary()``, written for the
    jobs into ``shared_temp_directory``, default ``~/.lion/dask``) unless the file's
    ``security:`` section gives certificate files or says ``false``.

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
SPEC_HELP = "local, local:N, tls://HOST:PORT, tcp://HOST:PORT or slurm"
GPU_HINT = "pip install 'lion-nnunet[gpu]' (dask-cuda)"
#: Keys of a ``--cluster-config`` file's ``security:`` section (``Security``'s own arguments).
SECURITY_KEYS = ("tls_ca_file", "tls_client_cert", "tls_client_key", "tls_scheduler_cert",
                 "tls_scheduler_key", "tls_worker_cert", "tls_worker_key")  # fmt: skip
#: Where SLURM jobs find the temporary TLS certificates unless the file says
#: ``shared_temp_directory`` (a folder every node sees; home folders usually are).
SHARED_TEMP_DIR = "~/.lion/dask"


def check_spec(spec: str) -> str:
    """``spec`` when it is ``local``, ``local:N`` (N >= 1), ``tls://...``, ``tcp://...`` or
    ``slurm``."""
    if spec in ("local", "slurm") or spec.startswith(("tcp://", "tls://")):
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
        spec: ``local``, ``local:N``, ``tls://HOST:PORT``, ``tcp://HOST:PORT`` or ``slurm``.
        config: YAML file: dask-jobqueue's ``jobqueue: slurm:`` (``slurm``) and a
            ``security:`` section (``slurm``, ``tls://``).
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
        elif self.config is not None and not spec.startswith("tls://"):
            raise LionError(
                f"--cluster-config is for --cluster slurm or tls://HOST:PORT, not --cluster {spec}"
            )
        elif self.config is not None and not Path(self.config).is_file():
            raise LionError(f"--cluster-config {self.config}: file not found")
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


def _read_config(path: Path) -> dict:
    import yaml

    try:
        config = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as e:
        raise LionError(f"--cluster-config {path}: cannot read the YAML ({e})") from None
    return config if isinstance(config, dict) else {}


def security_from_config(path: Path | None, temporary: bool):
    """The ``distributed.security.Security`` of a ``--cluster-config`` file, or None for none.

    The file's ``security:`` section: a mapping of :data:`SECURITY_KEYS` to PEM files, or
    ``false`` (no TLS). Without a section: ``Security.temporary()`` (self-signed, in memory)
    when ``temporary`` (a cluster this process starts), else dask's configuration
    (``distributed.comm.tls.*``, for a scheduler someone else started).
    """
    from distributed.security import Security

    section = _read_config(path).get("security") if path is not None else None
    if section is False:
        return None
    if section is None:
        if not temporary:
            security = Security(require_encryption=True)
            if security.tls_ca_file is None or security.tls_client_cert is None:
                raise LionError(
                    "--cluster tls://...: no TLS certificates; give --cluster-config FILE with a "
                    "security: section (tls_ca_file, tls_client_cert, tls_client_key: PEM files "
                    "signed as the scheduler's) or set dask's distributed.comm.tls.* "
                    "configuration, see docs/cohort.md"
                )
            return security
        try:
            return Security.temporary()
        except ImportError:
            raise LionError(
                "--cluster slurm encrypts the cluster's traffic with temporary TLS certificates, "
                "which needs the cryptography package: pip install cryptography, or give "
                "certificate files in --cluster-config's security: section "
                f"({', '.join(SECURITY_KEYS)})"
            ) from None
    where = f"--cluster-config {path}: security:"
    if not isinstance(section, dict) or not section:
        raise LionError(f"{where} expected false or a mapping of {', '.join(SECURITY_KEYS)}")
    unknown = sorted(set(section) - set(SECURITY_KEYS))
    if unknown:
        raise LionError(f"{where} unknown key(s) {', '.join(unknown)}; expected "
                        f"{', '.join(SECURITY_KEYS)}")  # fmt: skip
    files = {k: str(Path(str(v)).expanduser()) for k, v in section.items()}
    missing = [f"{k} {v}" for k, v in files.items() if not Path(v).is_file()]
    if missing:
        raise LionError(f"{where} file(s) not found: {'; '.join(missing)}")
    return Security(require_encryption=True, **files)


def _load_jobqueue_config(path: Path) -> dict:
    config = _read_config(path)
    slurm = (
        config.get("jobqueue", {}).get("slurm")
        if isinstance(config.get("jobqueue"), dict)
        else None
    )
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
    cluster's arguments; ``kwargs`` add to them. Scheduler and workers talk TLS
    (:func:`security_from_config`: temporary certificates unless the file's ``security:`` gives
    files or says ``false``); temporary ones are written for the jobs into
    ``shared_temp_directory`` (default :data:`SHARED_TEMP_DIR`, readable by this user only).
    """
    from dask_jobqueue import SLURMCluster

    config = _load_jobqueue_config(config_file)
    settings = {k.replace("-", "_"): v for k, v in config["jobqueue"]["slurm"].items()}
    security = security_from_config(config_file, temporary=True)
    if security is None:
        log.warning(
            "--cluster-config %s says security: false: the SLURM cluster's scheduler and workers "
            "talk unencrypted, and anyone who reaches the scheduler can run code on them",
            config_file,
        )  # fmt: skip
    else:
        settings["security"] = security
        shared = Path(settings.get("shared_temp_directory") or SHARED_TEMP_DIR).expanduser()
        shared.mkdir(mode=0o700, parents=True, exist_ok=True)
        settings["shared_temp_directory"] = str(shared)
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
    if runs_here(options, gpus):
        yield None
        return
    import dask
    from distributed import Client

    # a worker that dies is replaced and its case re-run at most MAX_RETRIES times (local
    # and SLURM clusters; an existing scheduler keeps its own setting)
    with dask.config.set({"distributed.scheduler.allowed-failures": MAX_RETRIES,
                          "distributed.worker.daemon": False}):  # fmt: skip
        cluster = None
        if options.spec.startswith(("tcp://", "tls://")):
            tls = options.spec.startswith("tls://")
            security = security_from_config(options.config, temporary=False) if tls else None
            if tls and security is None:
                raise LionError(
                    f"--cluster-config {options.config} says security: false, but --cluster "
                    f"{options.spec} needs TLS certificates; give them in its security: section"
                )
            if not tls:
                log.warning(
                    "--cluster %s: tcp:// is unencrypted, and anyone who reaches the scheduler "
                    "can run code on its workers; use tls:// with certificates (docs/cohort.md)",
                    options.spec,
                )  # fmt: skip
            try:
                client = Client(options.spec, timeout="20s", security=security)
            except (OSError, ValueError) as e:  # ssl errors are OSErrors
                check = "the address and the certificates" if tls else "the address"
                raise LionError(
                    f"--cluster {options.spec}: cannot connect to a Dask scheduler there ({e}); "
                    f"start one (dask scheduler) or check {check}"
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
