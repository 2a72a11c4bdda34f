"""Where installed models live and how they are looked up by name (no model loading here).

The storage half of :mod:`lion_nnunet.inference.registry`, kept apart so that
:mod:`lion_nnunet.inference.model` can resolve ``-m NAME`` without importing the installer.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

MODEL_HOME_VAR = "LION_MODELS"
RECORD = "lion_model.json"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


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
    record = json.loads(path.read_text())
    return path.parent / record["model_folder"]


def installed_record(folder: Path) -> dict | None:
    """The install record of a model folder inside the model home, or None."""
    path = Path(folder).parent.parent / RECORD
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def list_models() -> list[dict]:
    """The records of every installed model, sorted by name."""
    home = model_home()
    if not home.is_dir():
        return []
    return [json.loads(p.read_text()) for p in sorted(home.glob(f"*/{RECORD}"))]


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()
