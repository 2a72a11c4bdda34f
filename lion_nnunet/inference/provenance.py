"""What made a case's outputs, recorded in its report.json, and the rule for resuming a run.

A prediction depends on the model (its checkpoints, identified by SHA-256), the folds, the
network settings (test-time mirroring, sliding-window step) and every filter; the report records
them as ``settings`` (:func:`run_settings`) beside the model's path, installed name, device and
software versions. A re-run into the same output folder skips a done case only when its
recorded ``settings`` equal this run's and its input files are the ones it was made from (same
size and modification time, :func:`files_identity`); a case made with other settings or from a
changed input stops the run with the difference named (:func:`check_resume`), unless
``--overwrite``. The device and the
software versions are recorded, not compared (they change numbers only at float precision).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from lion_nnunet.errors import LionError

from .model_info import ModelInfo
from .outputs import REPORT, case_done

#: Cases named in a refusal message before "and N more".
MAX_NAMED = 3


def installed_name(model: ModelInfo) -> str | None:
    """The name a model was installed under (``lion models install``), or None."""
    from .installed import installed_record

    return (installed_record(model.folder) or {}).get("name")


def run_settings(result_settings: Mapping, model: ModelInfo, sums: Mapping[str, str]) -> dict:
    """The settings that decide a case's outputs: the model's identity plus ``result_settings``.

    Args:
        result_settings: :meth:`PredictOptions.result_settings` with defaults resolved
            (``tumor_label``, ``mip_window``).
        model: the checked model folder.
        sums: ``{fold: SHA-256}`` of the checkpoints
            (:func:`lion_nnunet.inference.installed.checkpoint_sha256`).
    """
    from .report import fold_value

    return {
        "model": model.name,
        "checkpoint_sha256": dict(sums),
        "folds": [fold_value(f) for f in model.folds],
        **result_settings,
    }


def settings_differences(recorded: Mapping | None, current: Mapping) -> list[str]:
    """``["min_volume_ml 0.0 -> 5.0", ...]`` for every setting that differs (sorted by name)."""
    if recorded is None:
        return ["settings (not recorded: written by an earlier lion-nnunet)"]
    keys = sorted(set(recorded) | set(current))
    return [
        f"{k} {_show(recorded.get(k))} -> {_show(current.get(k))}"
        for k in keys
        if _canonical(recorded.get(k)) != _canonical(current.get(k))
    ]


def _canonical(value):
    """JSON round trip: tuples and lists, ints and floats compare as the file stores them."""
    return json.loads(json.dumps(value))


def _show(value) -> str:
    if isinstance(value, dict) and all(isinstance(v, str) and len(v) == 64 for v in value.values()):
        return "{" + ", ".join(f"{k}: {v[:12]}" for k, v in value.items()) + "}"
    return json.dumps(value)


def recorded_settings(case_dir: Path) -> dict | None:
    """The ``settings`` of a done case's report.json (None when absent or unreadable)."""
    try:
        return json.loads((Path(case_dir) / REPORT).read_text()).get("settings")
    except (OSError, json.JSONDecodeError):
        return None


def files_identity(files: Sequence[Path]) -> dict:
    """What identifies a case's input files without reading them: count, bytes, newest mtime.

    A PET re-exported or replaced under the same name changes its size or modification time
    (as ``make`` decides what to rebuild); the report records this as ``input_identity``.
    """
    stats = [Path(f).stat() for f in files]
    return {
        "files": len(stats),
        "bytes": sum(st.st_size for st in stats),
        "mtime_ns": max((st.st_mtime_ns for st in stats), default=0),
    }


def recorded_identity(case_dir: Path) -> dict | None:
    """The ``input_identity`` of a done case's report.json (None when absent or unreadable)."""
    try:
        return json.loads((Path(case_dir) / REPORT).read_text()).get("input_identity")
    except (OSError, json.JSONDecodeError):
        return None


def check_resume(
    out_dir: Path,
    case_ids: Sequence[str],
    settings: Mapping,
    overwrite: bool,
    identities: Mapping[str, dict] | None = None,
) -> list[str]:
    """The done cases to skip; raise when a done case was made with other settings.

    Args:
        out_dir: the run's output folder (``out/<case_id>/report.json``).
        case_ids: this run's cases.
        settings: :func:`run_settings` of this run.
        overwrite: redo every case (nothing is skipped or refused).
        identities: ``{case_id: files_identity(...)}`` of this run's inputs; a done case whose
            recorded identity differs was made from another version of its input.

    Raises:
        LionError: naming the cases and the settings that differ, before anything is written.
    """
    if overwrite:
        return []
    done = [c for c in case_ids if case_done(Path(out_dir) / c)]
    clashes = {}
    for case_id in done:
        diff = settings_differences(recorded_settings(Path(out_dir) / case_id), settings)
        current = (identities or {}).get(case_id)
        recorded = recorded_identity(Path(out_dir) / case_id)
        if current is not None and recorded is not None and recorded != current:
            diff.append(
                f"input changed since ({recorded['bytes']} -> {current['bytes']} bytes, "
                "modification time differs)"
                if recorded.get("bytes") != current["bytes"]
                else "input changed since (modification time differs)"
            )
        if diff:
            clashes[case_id] = diff
    if clashes:
        named = list(clashes)[:MAX_NAMED]
        more = f" and {len(clashes) - MAX_NAMED} more" if len(clashes) > MAX_NAMED else ""
        first = clashes[named[0]]
        raise LionError(
            f"{out_dir}: case(s) {', '.join(named)}{more} were made with other settings or inputs "
            f"({'; '.join(first)}); pass --overwrite to redo them with this run's settings, or "
            "write to another -o"
        )
    return done
