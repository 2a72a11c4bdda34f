"""Installed models by name: ``lion models install PATH --name NAME``, ``lion models list``.

A released model comes as a zip in nnU-Net's ``nnUNetv2_install_pretrained_model_from_zip``
format (paths ``DatasetXXX_NAME/<Trainer>__<Plans>__<configuration>/...``, as nnU-Net's
``nnUNetv2_export_model_to_zip``, the lionz releases and Zenodo uploads ship them) or as a folder
in that layout. Installing checks it (plans.json, dataset.json, a checkpoint per fold, the trainer
class importable, label names giving one tumor class), then stores it under the model home:

    $LION_MODELS (default ~/.lion/models)/<name>/
        DatasetXXX_NAME/<Trainer>__<Plans>__<configuration>/   the model folder, as shipped
        lion_model.json                                          what was checked and recorded

``lion_model.json`` records the name, tracer, labels, tumor label, organ classes, folds, trainer,
the source and SHA-256 checksums (of the zip, and of every checkpoint). ``lion predict -m NAME``
and :func:`lion_nnunet.load_model` find the model by name. Nothing is ever downloaded.
"""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
import zipfile
from pathlib import Path

from lion_nnunet.errors import LionError
from lion_nnunet.io import write_json
from lion_nnunet.labels import TRACERS

from .installed import NAME_RE, RECORD, model_home, sha256_file
from .model import CHECKPOINT, ModelInfo, check_model_folder, trainer_not_found


def _safe_extract(zip_path: Path, dest: Path) -> None:
    try:
        with zipfile.ZipFile(zip_path) as zf:
            for member in zf.namelist():
                target = (dest / member).resolve()
                if not target.is_relative_to(dest.resolve()):
                    raise LionError(f"{zip_path}: entry {member!r} points outside the archive")
            zf.extractall(dest)
    except zipfile.BadZipFile as e:
        raise LionError(f"{zip_path}: not a valid zip file ({e})") from None


def _model_folders(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.rglob("plans.json") if p.parent.name.count("__") == 2)


def _checkpoint_trainer(path: Path) -> str:
    import torch

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # torch raises many types for a broken file
        raise LionError(f"{path}: cannot read the checkpoint ({type(e).__name__}: {e})") from None
    if "trainer_name" not in ckpt or "network_weights" not in ckpt:
        raise LionError(f"{path}: not an nnU-Net v2 checkpoint (no trainer_name/network_weights)")
    return str(ckpt["trainer_name"])


def check_trainers(model: ModelInfo, checkpoint: str = CHECKPOINT) -> str:
    """The trainer class the checkpoints name; LionError when nnU-Net cannot find it."""
    from lion_nnunet.trainers.discovery import find_trainer, register_ext_trainer_folder

    names = {_checkpoint_trainer(model.folder / f"fold_{f}" / checkpoint) for f in model.folds}
    if len(names) != 1:
        raise LionError(f"{model.folder}: the folds were trained by different trainers {names}")
    trainer = names.pop()
    register_ext_trainer_folder()
    if find_trainer(trainer) is None:
        raise trainer_not_found(trainer)
    return trainer


def install_model(
    source: str | Path,
    name: str,
    tracer: str | None = None,
    tumor_label: int | None = None,
    checkpoint: str = CHECKPOINT,
    overwrite: bool = False,
) -> dict:
    """Check a released model (zip or folder) and install it under ``model_home()/name``.

    Args:
        source: nnU-Net model zip, a ``DatasetXXX_NAME`` folder or a model folder.
        name: the name ``lion predict -m NAME`` will use (letters, digits, ``_.-``).
        tracer: ``fdg`` or ``psma``; recorded (LION models carry it in dataset.json, and the two
            must then agree).
        tumor_label: the tumor's label id when the label names do not say it.
        checkpoint: checkpoint file name in each fold folder.
        overwrite: replace an installed model of the same name.

    Returns:
        The install record (also written to ``lion_model.json``).
    """
    source = Path(source)
    if not NAME_RE.match(name):
        raise LionError(f"--name {name!r}: use letters, digits, '_', '.' and '-' only")
    if tracer is not None and tracer not in TRACERS:
        raise LionError(f"--tracer {tracer!r}; choose from {', '.join(TRACERS)}")
    if not source.exists():
        raise LionError(f"{source}: not found; give a model zip or folder")
    home = model_home()
    final = home / name
    if final.exists() and not overwrite:
        raise LionError(f"model {name!r} is installed ({final}); use --overwrite to replace it")
    home.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=home))
    try:
        if source.is_file():
            _safe_extract(source, staging)
            archive_sha = sha256_file(source)
        else:
            base = source if source.name.count("__") != 2 else source.parent
            shutil.copytree(base, staging / base.name)
            archive_sha = None
        folders = _model_folders(staging)
        if len(folders) != 1:
            found = ", ".join(str(f.relative_to(staging)) for f in folders) or "none"
            raise LionError(
                f"{source}: expected one <Trainer>__<Plans>__<configuration> folder with "
                f"plans.json, found {found}"
            )
        model = check_model_folder(folders[0], None, checkpoint, tumor_label)
        declared = model.dataset_json.get("lion", {}).get("tracer")
        if tracer and declared in TRACERS and declared != tracer:
            raise LionError(
                f"{source}: --tracer {tracer}, but its dataset.json says it is a {declared} model"
            )
        trainer = check_trainers(model, checkpoint)
        ls = model.label_set
        record = {
            "name": name,
            "tracer": tracer or (declared if declared in TRACERS else None),
            "tumor_label": ls.tumor_label,
            "tumor_label_given": tumor_label is not None,
            "organs": dict(zip(ls.organ_names, ls.organ_labels, strict=True)),
            "labels": model.dataset_json["labels"],
            "folds": list(model.folds),
            "trainer": trainer,
            "configuration": model.configuration,
            "model_folder": str(folders[0].relative_to(staging)),
            "source": str(source.resolve()),
            "sha256": archive_sha,
            "checkpoint_sha256": {
                f: sha256_file(model.folder / f"fold_{f}" / checkpoint) for f in model.folds
            },
            "checkpoint": checkpoint,
            "installed": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        }
        write_json(record, staging / RECORD)
        if final.exists():
            shutil.rmtree(final)
        staging.rename(final)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return record
