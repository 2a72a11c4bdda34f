"""Fingerprints of what decides a workflow step's result, so a changed input re-runs the step.

A step's command line does not say everything: ``nnUNetv2_train -tr nnUNetTrainer_X`` gives a
different model when the class ``nnUNetTrainer_X`` changes its schedule, when the plans change or
when the preprocessed cases change. :class:`lion_nnunet.workflow.Workflow` stores a step's
fingerprint beside its command and re-runs the step when either differs. Every function here
returns a SHA-256 hex digest and reads only small files (JSON, CSV) and file names and sizes,
never image voxels, so fingerprinting a cohort takes milliseconds.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Iterable
from pathlib import Path

from lion_nnunet.errors import LionError


def digest(*parts: str | bytes) -> str:
    """SHA-256 hex digest of the parts, each length-prefixed so that ("ab", "c") != ("a", "bc")."""
    h = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        h.update(f"{len(data)}:".encode())
        h.update(data)
    return h.hexdigest()


def class_source_digest(cls: type) -> str:
    """Digest of the source of ``cls`` and of every base class it inherits from.

    A changed class attribute (e.g. ``lion_num_epochs``) or overridden hook in the class or in any
    base (LION's or nnU-Net's own trainer) changes the digest.
    """
    parts = []
    for klass in cls.__mro__:
        if klass is object:
            continue
        try:
            source = inspect.getsource(klass)
        except (OSError, TypeError):  # built in or defined where no source exists
            source = f"<no source: {klass.__module__}.{klass.__qualname__}>"
        parts += [f"{klass.__module__}.{klass.__qualname__}", source]
    return digest(*parts)


def trainer_digest(name: str) -> str:
    """Digest of the source of the nnU-Net trainer class ``name`` (found as nnUNetv2_train does).

    Raises:
        LionError: no trainer class of that name is visible to nnU-Net.
    """
    from lion_nnunet.trainers.discovery import find_trainer

    cls = find_trainer(name)
    if cls is None:
        raise LionError(
            f"trainer {name!r}: not found in nnU-Net's trainer folders or nnUNet_extTrainer; "
            "check the name (lion doctor lists the LION trainers)"
        )
    return class_source_digest(cls)


def files_digest(files: Iterable[Path], root: Path) -> str:
    """Digest of the files' paths relative to ``root`` and their sizes in bytes (not contents)."""
    rows = sorted(f"{p.relative_to(root).as_posix()}\t{p.stat().st_size}" for p in files)
    return digest(*rows)


def file_digest(path: Path) -> str:
    """Digest of one file's bytes; ``missing:<path>`` when it does not exist."""
    from lion_nnunet.io import sha256_file

    path = Path(path)
    if not path.is_file():
        return f"missing:{path}"
    return sha256_file(path)


def folder_digest(folder: Path, ignore_suffixes: tuple[str, ...] = ()) -> str:
    """Digest of every file under ``folder`` by relative path and size; ``missing:`` if absent.

    ``ignore_suffixes``: files ending so are left out (e.g. ``.npy``, the copies nnU-Net unpacks
    from ``.npz`` cases into the same folder when training starts).
    """
    folder = Path(folder)
    if not folder.is_dir():
        return f"missing:{folder}"
    files = (p for p in folder.rglob("*") if p.is_file() and not p.name.endswith(ignore_suffixes))
    return files_digest(files, folder)


def _data_identifier(plans_file: Path, configuration: str) -> str:
    """The preprocessed data folder's name from the plans (nnU-Net's default when unreadable)."""
    default = f"{plans_file.stem}_{configuration}"
    try:
        config = json.loads(plans_file.read_text())["configurations"][configuration]
        return str(config.get("data_identifier", default))
    except (OSError, json.JSONDecodeError, KeyError, TypeError):
        return default  # the plans file's bytes are in the digest, so a change still shows


def training_digest(preprocessed: Path, trainer: str, plans: str, configuration: str) -> str:
    """What decides an ``nnUNetv2_train`` result besides its command line.

    Args:
        preprocessed: the dataset's folder in ``nnUNet_preprocessed``.
        trainer: trainer class name (its source and its bases' source count).
        plans: plans identifier (``<plans>.json`` in ``preprocessed``; its content counts).
        configuration: e.g. ``3d_fullres``; its preprocessed data folder (names and sizes of the
            case files, not the ``.npy`` copies training unpacks there) counts.

    Also counted: ``dataset.json`` and ``splits_final.json`` (content).
    """
    preprocessed = Path(preprocessed)
    plans_file = preprocessed / f"{plans}.json"
    data_folder = preprocessed / _data_identifier(plans_file, configuration)
    return digest(
        "trainer",
        trainer_digest(trainer),
        "plans",
        file_digest(plans_file),
        "dataset.json",
        file_digest(preprocessed / "dataset.json"),
        "splits",
        file_digest(preprocessed / "splits_final.json"),
        "data",
        folder_digest(data_folder, ignore_suffixes=(".npy",)),
    )
