"""`lion organs`: run TotalSegmentator on every study's CT with exactly the tasks a label set needs.

For each study ``STUDIES/<patient>/<study>/`` (found by its ``SUV.nii.gz`` or ``SEG.nii.gz``, as
``lion convert autopet`` finds it) the CT is ``CT.nii.gz`` when present (the CT at its own
resolution), else ``CTres.nii.gz`` (autoPET's CT on the PET grid). Each task of the label set
(:meth:`lion_nnunet.labels.LabelSet.tasks`: ``total`` for FDG, ``total`` + ``head_glands_cavities``
for PSMA) is run through TotalSegmentator's Python API as a multi-label output (``ml=True``, the
TotalSegmentator v2 ids labels.py declares), ``total`` with ``roi_subset`` = the classes the label
set uses. Output: ``ORGANS/<patient>/<study>/<task>.nii.gz`` on the CT grid, the tree
``lion convert autopet --organs ORGANS`` reads.

Each file is written under a hidden temporary name and renamed when TotalSegmentator returns,
so a re-run skips finished tasks and redoes interrupted ones. Nothing is downloaded: the
TotalSegmentator weights the tasks need must be in TotalSegmentator's weights folder or in the
folder ``weights`` names, checked before any study starts
(:mod:`lion_nnunet.dataset_conversion.totalseg_weights`); LION ships none.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from lion_nnunet.cohort.cluster import ClusterOptions, visible_gpus
from lion_nnunet.cohort.run import map_cases
from lion_nnunet.dataset_conversion.totalseg_weights import check_weights, totalseg_environment
from lion_nnunet.errors import LionError
from lion_nnunet.labels import LabelSet

log = logging.getLogger(__name__)

CT_FILES = ("CT.nii.gz", "CTres.nii.gz")
STUDY_MARKERS = ("SUV.nii.gz", "SEG.nii.gz")
INSTALL_HINT = (
    "lion organs runs TotalSegmentator, which is not installed: "
    "pip install 'lion-nnunet[organs]' (or pip install TotalSegmentator)"
)


def _api():
    """TotalSegmentator's Python API function, or a LionError saying how to install it."""
    try:
        from totalsegmentator.python_api import totalsegmentator
    except ImportError:
        raise LionError(INSTALL_HINT) from None
    return totalsegmentator


@dataclass
class OrganJob:
    """One study: its CT, its output folder, and the TotalSegmentator calls it needs."""

    study: str
    ct: str | None
    out_dir: str
    calls: list[dict] = field(default_factory=list)  # {"task", "roi_subset"} per task
    device: str = "gpu"
    overwrite: bool = False
    weights: str = ""  # TotalSegmentator's weights folder (TOTALSEG_WEIGHTS_PATH for the calls)


def totalseg_calls(label_set: LabelSet) -> list[dict]:
    """The TotalSegmentator calls a label set needs: one per task, ``ml=True``.

    ``total`` is limited to the classes the label set uses (``roi_subset``; TotalSegmentator
    keeps their v2 ids); other tasks have no ``roi_subset`` and are run whole.
    """
    calls = []
    for task in label_set.tasks():
        names = sorted({name for t, name in label_set.totalseg_lookup() if t == task})
        calls.append({"task": task, "roi_subset": names if task == "total" else None})
    return calls


def totalseg_device(device: str) -> str:
    """LION's ``--device`` (auto, cpu, cuda, cuda:N) as TotalSegmentator's (gpu, cpu, gpu:N)."""
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        return "cpu"
    if device == "cuda":
        return "gpu"
    if device.startswith("cuda:") and device[5:].isdigit():
        return f"gpu:{device[5:]}"
    raise LionError(f"--device {device!r}; choose auto, cpu, cuda or cuda:N")


def find_studies(input_dir: Path) -> list[Path]:
    """Study folders under ``input_dir`` (those holding SUV.nii.gz or SEG.nii.gz)."""
    return sorted({p.parent for m in STUDY_MARKERS for p in input_dir.rglob(m)})


def _run_study(job: OrganJob) -> dict:
    """Run the study's missing tasks; return {"study", "ran": [...]} or {"study", "error"}."""
    if job.ct is None:
        return {"study": job.study, "error": (
            f"{job.study}: no CT ({' or '.join(CT_FILES)}); TotalSegmentator segments organs "
            "on the CT of the study"
        )}  # fmt: skip
    api = _api()
    out_dir = Path(job.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ran = []
    for call in job.calls:
        target = out_dir / f"{call['task']}.nii.gz"
        if target.is_file() and not job.overwrite:
            continue
        tmp = out_dir / f".{call['task']}.part.nii.gz"
        try:
            with totalseg_environment(Path(job.weights)):
                api(
                    input=Path(job.ct), output=tmp, ml=True, task=call["task"],
                    roi_subset=call["roi_subset"], device=job.device, quiet=True,
                )  # fmt: skip
            if not tmp.is_file():
                raise LionError(f"TotalSegmentator wrote no {tmp.name}")
            tmp.replace(target)
        except Exception as e:  # TotalSegmentator raises many types (weights, CUDA, input)
            tmp.unlink(missing_ok=True)
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            return {"study": job.study, "ran": ran, "error": (
                f"{job.ct}: TotalSegmentator task {call['task']!r} failed ({first})"
            )}  # fmt: skip
        ran.append(call["task"])
    return {"study": job.study, "ran": ran}


def run_organs(
    input_dir: str | Path,
    output_dir: str | Path,
    label_set: LabelSet,
    device: str = "auto",
    num_processes: int = 1,
    overwrite: bool = False,
    progress: bool = True,
    weights: str | Path | None = None,
    cluster: ClusterOptions | None = None,
) -> dict:
    """Segment the organs of every study; return ``{"studies", "ran", "skipped", "out"}``.

    Args:
        input_dir: studies in the autoPET layout (``<patient>/<study>/CT.nii.gz`` or
            ``CTres.nii.gz``).
        output_dir: organ tree to write (``<patient>/<study>/<task>.nii.gz``).
        label_set: decides the tasks and classes.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        num_processes: studies segmented at the same time (each TotalSegmentator run uses the
            whole GPU; 1 is right for one GPU).
        overwrite: rerun tasks whose output exists.
        progress: show a progress bar.
        weights: folder holding TotalSegmentator's weight sets (``Dataset291_...`` folders, as
            the release zips unpack); default: TotalSegmentator's own weights folder
            (``TOTALSEG_WEIGHTS_PATH``, else ``TOTALSEG_HOME_DIR``/nnunet/results).
        cluster: ``--cluster``: studies as Dask tasks (one worker per GPU with ``local`` on a
            multi-GPU machine), ``cohort.csv`` in ``output_dir``; None: ``num_processes``.

    Raises:
        LionError: TotalSegmentator or weights it needs are missing (before any study starts),
            no study is found, or studies failed (every other study is written; a re-run
            resumes).
    """
    input_dir, output_dir = Path(input_dir), Path(output_dir)
    _api()  # a clear error before any work when TotalSegmentator is not installed
    if not input_dir.is_dir():
        raise LionError(f"{input_dir}: input folder not found")
    studies = find_studies(input_dir)
    if not studies:
        raise LionError(
            f"{input_dir}: no studies found (expected <patient>/<study>/ with SUV.nii.gz or "
            "SEG.nii.gz and CT.nii.gz or CTres.nii.gz)"
        )
    ts_device = totalseg_device(device)
    calls = totalseg_calls(label_set)
    folder = check_weights(calls, weights)
    jobs = []
    for study in studies:
        ct = next((study / f for f in CT_FILES if (study / f).is_file()), None)
        rel = study.relative_to(input_dir) if study != input_dir else Path(study.name)
        jobs.append(OrganJob(str(study), str(ct) if ct else None, str(output_dir / rel), calls,
                             ts_device, overwrite, str(folder)))  # fmt: skip
    ids = [str(Path(j.study).relative_to(input_dir)) if Path(j.study) != input_dir
           else Path(j.study).name for j in jobs]  # fmt: skip
    results = map_cases(
        _run_study, jobs, ids, cluster, num_processes, "organs", progress, output_dir,
        on_failure=lambda study, error: {"study": study, "error": f"{study}: {error}"},
        gpus=visible_gpus(ts_device),
    )  # fmt: skip
    errors = [r["error"] for r in results if "error" in r]
    ran = sum(bool(r.get("ran")) for r in results)
    skipped = sum(not r.get("ran") and "error" not in r for r in results)
    if skipped:
        log.info("%d study(ies) already had every task: skipped", skipped)
    if errors:
        listed = "\n  - ".join(errors)
        raise LionError(
            f"{len(errors)} of {len(jobs)} study(ies) failed; the others are written and a "
            f"re-run resumes:\n  - {listed}"
        )
    return {"studies": len(jobs), "ran": ran, "skipped": skipped, "out": str(output_dir),
            "tasks": [c["task"] for c in calls], "weights": str(folder)}  # fmt: skip
