"""Where installed models live, how they are looked up by name, and their checksums.

The storage half of :mod:`lion_nnunet.inference.registry`, kept apart so that
:mod:`lion_nnunet.inference.model` can resolve ``-m NAME`` and verify an installed model's
checkpoints without importing the installer (no model loading here). The model record comes
from :mod:`.model_info`, below both: ``model`` imports this module, never the other way round.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from pathlib import Path

from lion_nnunet.errors import LionError
from lion_nnunet.io import sha256_file

from .model_info import ModelInfo

MODEL_HOME_VAR = "LION_MODELS"
RECORD = "lion_model.json"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")

#: SHA-256 by (resolved path, inode, size, mtime ns, ctime ns): each file version is hashed once
#: per process (ctime changes on every write and cannot be set back, unlike mtime).
_SHA256_CACHE: dict[tuple[str, int, int, int, int], str] = {}


def model_home() -> Path:
    """Where installed models live: ``$LION_MODELS``, else ``~/.lion/models``."""
    value = os.environ.get(MODEL_HOME_VAR)
    return Path(value).expanduser() if value else Path.home() / ".lion" / "models"


def _record_path(name: str) -> Path:
    return model_home() / name / RECORD


def installed_model_folder(name: str) -> Path | None:
    """The model folder of an installed model, or None when no model has that name."""
    path = _record_path(name) if NAME_RE.match(name) else None
    if path is None or not path.is_file():
        return None
    record = read_record(path)
    return path.parent / record["model_folder"]


def installed_record(folder: Path) -> dict | None:
    """The install record of a model folder inside the model home, or None."""
    path = Path(folder).parent.parent / RECORD
    if not path.is_file():
        return None
    return read_record(path)


def list_models() -> list[dict]:
    """The records of every installed model, sorted by name."""
    home = model_home()
    if not home.is_dir():
        return []
    return [read_record(p) for p in sorted(home.glob(f"*/{RECORD}"))]


#: Keys every install record has (written by :func:`lion_nnunet.inference.registry.install_model`).
RECORD_KEYS = ("name", "model_folder", "folds", "trainer", "checkpoint", "checkpoint_sha256")


def read_record(path: Path) -> dict:
    """An install record (``lion_model.json``); LionError when it is unreadable or incomplete."""
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise LionError(
            f"{path}: cannot read the install record ({e}); reinstall the model with "
            "`lion models install ... --overwrite`"
        ) from None
    missing = [k for k in RECORD_KEYS if not isinstance(record, dict) or k not in record]
    if missing:
        raise LionError(
            f"{path}: install record lacks {', '.join(missing)}; reinstall the model with "
            "`lion models install ... --overwrite`"
        )
    return record


def cached_sha256(path: Path) -> str:
    """:func:`sha256_file`, computed once per file version in this process.

    ``lion predict`` checks the model twice (command line, then the run); a checkpoint of a few
    hundred MB is hashed once.
    """
    stat = Path(path).stat()
    key = (str(Path(path).resolve()), stat.st_ino, stat.st_size, stat.st_mtime_ns,
           stat.st_ctime_ns)  # fmt: skip
    if key not in _SHA256_CACHE:
        _SHA256_CACHE[key] = sha256_file(path)
    return _SHA256_CACHE[key]


def checkpoint_sha256(model: ModelInfo) -> dict[str, str]:
    """Hex SHA-256 of each checkpoint the model uses, by fold (``{"0": "9f2c...", ...}``)."""
    return {
        fold: cached_sha256(model.folder / f"fold_{fold}" / model.checkpoint)
        for fold in model.folds
    }


#: Files of a model folder besides the checkpoints whose SHA-256 the install records.
MODEL_FILES = ("plans.json", "dataset.json")


def model_file_sha256(folder: Path) -> dict[str, str]:
    """Hex SHA-256 of the folder's :data:`MODEL_FILES` (``{"plans.json": "9f2c...", ...}``)."""
    return {name: cached_sha256(Path(folder) / name) for name in MODEL_FILES}


def file_rows(folder: Path, record: dict) -> list[dict]:
    """Compare plans.json and dataset.json with the SHA-256 sums recorded at install.

    Returns:
        One row per file the record has a sum for (none for a record written before sums of
        these files were recorded): ``file``, ``path``, ``recorded``, ``actual`` (None when the
        file is missing) and ``ok``.
    """
    rows = []
    for name, recorded in (record.get("file_sha256") or {}).items():
        path = Path(folder) / name
        actual = cached_sha256(path) if path.is_file() else None
        rows.append({"file": name, "path": str(path), "recorded": recorded, "actual": actual,
                     "ok": actual == recorded})  # fmt: skip
    return rows


def checksum_rows(folder: Path, record: dict, folds: Sequence[str] | None = None) -> list[dict]:
    """Compare checkpoints with the SHA-256 sums recorded at install.

    Args:
        folder: the installed model folder.
        record: its install record (``lion_model.json``).
        folds: folds to check; None = every fold the record lists.

    Returns:
        One row per fold: ``fold``, ``path``, ``recorded`` and ``actual`` (hex SHA-256; None when
        not recorded / the file is missing) and ``ok``.
    """
    sums = record.get("checkpoint_sha256") or {}
    rows = []
    for fold in sums if folds is None else folds:
        path = Path(folder) / f"fold_{fold}" / record["checkpoint"]
        actual = cached_sha256(path) if path.is_file() else None
        recorded = sums.get(fold)
        rows.append({"fold": fold, "path": str(path), "recorded": recorded, "actual": actual,
                     "ok": recorded is not None and actual == recorded})  # fmt: skip
    return rows


def checksum_problem(row: dict, record: dict) -> str:
    """One sentence for a failed :func:`checksum_rows` or :func:`file_rows` row."""
    name, source = record["name"], record["source"]
    fix = f"reinstall it from {source} (lion models install ... --name {name} --overwrite)"
    if "file" in row:
        if row["actual"] is None:
            return f"{row['path']}: {row['file']} of installed model {name!r} is missing; {fix}"
        return (
            f"{row['path']}: SHA-256 {row['actual']} differs from {row['recorded']} recorded at "
            f"install; {row['file']} changed after `lion models install`; restore the file or "
            f"{fix}"
        )
    if row["recorded"] is None:
        return (
            f"{row['path']}: fold {row['fold']} is not part of installed model {name!r} (no "
            f"SHA-256 in {RECORD}); use the recorded folds or {fix}"
        )
    if row["actual"] is None:
        return f"{row['path']}: checkpoint of installed model {name!r} is missing; {fix}"
    return (
        f"{row['path']}: SHA-256 {row['actual']} differs from {row['recorded']} recorded at "
        f"install; the checkpoint changed after `lion models install`; restore the file or {fix}"
    )


def verify_checkpoints(folder: Path, record: dict, folds: Sequence[str], checkpoint: str) -> None:
    """Refuse an installed model whose used checkpoints, plans.json or dataset.json differ from
    the install record.

    Raises:
        LionError: naming each changed file with its recorded and its current SHA-256.
    """
    name = record["name"]
    if checkpoint != record["checkpoint"]:
        raise LionError(
            f"{folder}: checkpoint {checkpoint!r} of installed model {name!r} was not checked "
            f"at install ({RECORD} records {record['checkpoint']!r}); use that one or install "
            f"the model again with --checkpoint {checkpoint} under another name"
        )
    rows = checksum_rows(folder, record, folds) + file_rows(folder, record)
    problems = [checksum_problem(r, record) for r in rows if not r["ok"]]
    if problems:
        raise LionError("; ".join(problems))
