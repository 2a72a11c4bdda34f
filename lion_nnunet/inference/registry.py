"""Installed models by name: ``lion models install PATH --name NAME``, ``list``, ``verify``.

A released model comes as a zip in nnU-Net's ``nnUNetv2_install_pretrained_model_from_zip``
format (paths ``DatasetXXX_NAME/<Trainer>__<Plans>__<configuration>/...``, as nnU-Net's
``nnUNetv2_export_model_to_zip``, the lionz releases and Zenodo uploads ship them) or as a folder
in that layout. Installing picks one model folder (the only one, the one given as the path, or
``--model-folder``), checks it (plans.json, dataset.json, a checkpoint in every ``fold_*`` folder
or every ``--folds`` fold, one trainer class for all folds and importable, label names giving one
tumor class, ``--tracer`` agreeing with dataset.json), then stores that model folder only:

    $LION_MODELS (default ~/.lion/models)/<name>/
        DatasetXXX_NAME/<Trainer>__<Plans>__<configuration>/   the model folder, as shipped
        lion_model.json                                          what was checked and recorded

``lion_model.json`` records the name, tracer, labels, tumor label, organ classes, folds, trainer,
the source and SHA-256 checksums (of the zip, of every checkpoint, of plans.json and dataset.json).
The checkpoints are read with torch's weights-only loader
(:mod:`lion_nnunet.inference.checkpoint_load`), so installing an untrusted zip runs no code from
it. ``lion predict -m NAME`` and :func:`lion_nnunet.load_model` find the model by name and refuse
a checkpoint, plans.json or dataset.json whose SHA-256 differs from the recorded one
(:func:`lion_nnunet.inference.model.check_model_folder`): nnU-Net's own predictor loads
checkpoints with ``weights_only=False``, so it only ever loads the files checked at install.
:func:`verify_model` re-checks every recorded sum. Nothing is ever downloaded.
"""

from __future__ import annotations

import datetime as dt
import secrets
import shutil
import zipfile
from collections.abc import Sequence
from pathlib import Path

from lion_nnunet.errors import LionError
from lion_nnunet.io import write_json
from lion_nnunet.labels import TRACERS

from .installed import (
    NAME_RE,
    RECORD,
    checkpoint_sha256,
    checksum_problem,
    checksum_rows,
    file_rows,
    installed_model_folder,
    model_file_sha256,
    model_home,
    read_record,
    sha256_file,
)
from .model import available_folds, check_model_folder, trainer_not_found
from .model_info import CHECKPOINT, ModelInfo


def _safe_extract(zip_path: Path, dest: Path) -> None:
    try:
        with zipfile.ZipFile(zip_path) as zf:
            for member in zf.namelist():
                target = (dest / member).resolve()
                if not target.is_relative_to(dest.resolve()):
                    raise LionError(
                        f"{zip_path}: entry {member!r} points outside the archive; refusing to "
                        "extract it (a zip-slip archive); get the model from its publisher again"
                    )
            zf.extractall(dest)
    except zipfile.BadZipFile as e:
        raise LionError(
            f"{zip_path}: not a valid zip file ({e}); download it again or give the model folder"
        ) from None


def _model_folders(root: Path) -> list[Path]:
    if (root / "plans.json").is_file() and root.name.count("__") == 2:
        return [root]
    return sorted(p.parent for p in root.rglob("plans.json") if p.parent.name.count("__") == 2)


def _choose_model_folder(root: Path, source: Path, model_folder: str | None) -> Path:
    """The one ``<Trainer>__<Plans>__<configuration>`` folder to install from ``root``."""
    folders = _model_folders(root)
    found = ", ".join(f"{f.parent.name}/{f.name}" for f in folders) or "none"
    if model_folder is not None:
        chosen = [f for f in folders if f.name == model_folder]
        if len(chosen) != 1:
            raise LionError(
                f"{source}: --model-folder {model_folder} matches {len(chosen)} model folders "
                f"with plans.json; found {found}"
            )
        return chosen[0]
    if len(folders) != 1:
        raise LionError(
            f"{source}: expected one <Trainer>__<Plans>__<configuration> folder with plans.json, "
            f"found {found}; pick one with --model-folder <Trainer>__<Plans>__<configuration> "
            "(or give that folder's path)"
        )
    return folders[0]


def _check_fold_checkpoints(
    folder: Path, where: str, folds: Sequence[str] | None, checkpoint: str
) -> list[str]:
    """The folds to install (``folds``, else all ``fold_*``), each holding ``checkpoint``."""
    present = [p.name[len("fold_") :] for p in folder.glob("fold_*") if p.is_dir()]
    wanted = list(dict.fromkeys(str(f) for f in folds)) if folds else present
    if not wanted:
        raise LionError(
            f"{where}: no fold_* folders; a trained nnU-Net model has fold_<f>/{checkpoint}"
        )
    missing = [f for f in wanted if not (folder / f"fold_{f}" / checkpoint).is_file()]
    if missing:
        have = available_folds(folder, checkpoint)
        raise LionError(
            f"{where}: fold(s) {', '.join(missing)} have no {checkpoint} "
            f"({', '.join(f'fold_{f}/{checkpoint}' for f in missing)} missing); finish training "
            f"them, pass --folds with the folds that have one ({' '.join(have) or 'none'}), or "
            "--checkpoint with the file name they have"
        )
    return sorted(wanted, key=lambda f: (f == "all", int(f) if f.isdigit() else 0))


def _checkpoint_trainer(path: Path, trust: bool = False) -> str:
    from .checkpoint_load import load_checkpoint

    ckpt = load_checkpoint(path, trust)
    if not isinstance(ckpt, dict) or "trainer_name" not in ckpt or "network_weights" not in ckpt:
        raise LionError(f"{path}: not an nnU-Net v2 checkpoint (no trainer_name/network_weights)")
    return str(ckpt["trainer_name"])


def check_trainers(model: ModelInfo, checkpoint: str = CHECKPOINT, trust: bool = False) -> str:
    """The trainer class the checkpoints name; LionError when they differ or nnU-Net lacks it.

    Each checkpoint is read without running code from it
    (:func:`~lion_nnunet.inference.checkpoint_load.load_checkpoint`) unless ``trust``.
    """
    by_fold = {f: _checkpoint_trainer(model.folder / f"fold_{f}" / checkpoint, trust)
               for f in model.folds}  # fmt: skip
    if len(set(by_fold.values())) != 1:
        named = ", ".join(f"fold {f}: {t}" for f, t in by_fold.items())
        raise LionError(
            f"{model.folder}: the folds were trained by different trainers ({named}); an "
            "ensemble needs one trainer; install the folds of one trainer with --folds"
        )
    trainer = next(iter(by_fold.values()))
    _require_trainer(trainer)
    return trainer


def _require_trainer(trainer: str) -> None:
    from lion_nnunet.trainers.discovery import find_trainer, register_ext_trainer_folder

    register_ext_trainer_folder()
    if find_trainer(trainer) is None:
        raise trainer_not_found(trainer)


def _copy_model_folder(folder: Path, dest: Path, folds: list[str], move: bool) -> None:
    """Copy (or move, for an extracted zip) one model folder, without the fold folders not kept."""
    others = [p.name for p in folder.glob("fold_*") if p.name[len("fold_") :] not in folds]
    if move:
        dest.parent.mkdir(parents=True)
        folder.rename(dest)
        for name in others:
            if (dest / name).is_dir():
                shutil.rmtree(dest / name)
            else:
                (dest / name).unlink()
    else:
        shutil.copytree(folder, dest, ignore=lambda d, names: others if Path(d) == folder else [])


def _new_staging_dir(home: Path, name: str) -> Path:
    """An empty folder in ``home``, created with the umask (mkdtemp would make it 0700)."""
    while True:
        path = home / f".{name}.{secrets.token_hex(6)}.part"
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue


def _named_in_zip(message: str, unpacked: dict[Path, str]) -> str:
    """``message`` with each extracted (temporary) folder's path written as ``ZIP: ENTRY``, the
    file the user gave and the entry in it, e.g. ``model.zip: Dataset501_X/T__P__C/fold_0/...``."""
    for folder, entry in unpacked.items():
        for path in dict.fromkeys((str(folder), str(folder.resolve()))):
            message = message.replace(path, entry)
    return message


def install_model(
    source: str | Path,
    name: str,
    tracer: str | None = None,
    tumor_label: int | None = None,
    checkpoint: str = CHECKPOINT,
    overwrite: bool = False,
    folds: Sequence[str] | None = None,
    model_folder: str | None = None,
    trust_checkpoint: bool = False,
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
        folds: folds to install (``["0", "1"]``); None = every ``fold_*`` folder. Each must hold
            ``checkpoint``; other fold folders are not installed.
        model_folder: the ``<Trainer>__<Plans>__<configuration>`` folder name to install when
            ``source`` holds several; only that one is copied.
        trust_checkpoint: read the checkpoints with ``weights_only=False`` (their pickle may run
            code); by default they are read with torch's weights-only loader and a checkpoint
            holding anything beyond an nnU-Net checkpoint's weights and record is refused.

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
    staging = _new_staging_dir(home, name)
    unpacked: dict[Path, str] = {}  # extracted folder -> "ZIP: ENTRY", for error messages
    try:
        if source.is_file():
            root = staging / ".extracted"
            _safe_extract(source, root)
            archive_sha = sha256_file(source)
        else:
            root, archive_sha = source, None
        chosen = _choose_model_folder(root, source, model_folder)
        relative = Path(chosen.parent.name) / chosen.name
        dest = staging / relative
        if root != source:
            entry = f"{source}: {chosen.relative_to(root).as_posix()}"
            unpacked = {chosen: entry, dest: entry}
        keep = _check_fold_checkpoints(chosen, unpacked.get(chosen, str(chosen)), folds,
                                       checkpoint)  # fmt: skip
        _copy_model_folder(chosen, dest, keep, move=root != source)
        if root != source:
            shutil.rmtree(root)
        model = check_model_folder(dest, keep, checkpoint, tumor_label)
        declared = model.dataset_json.get("lion", {}).get("tracer")
        if tracer and declared in TRACERS and declared != tracer:
            raise LionError(
                f"{source}: --tracer {tracer}, but its dataset.json says it is a {declared} "
                f"model; drop --tracer or use --tracer {declared}"
            )
        sums = checkpoint_sha256(model)
        trainer = check_trainers(model, checkpoint, trust_checkpoint)
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
            "model_folder": relative.as_posix(),
            "source": str(source.resolve()),
            "sha256": archive_sha,
            "checkpoint_sha256": sums,
            "file_sha256": model_file_sha256(dest),
            "checkpoint": checkpoint,
            "trust_checkpoint": trust_checkpoint,
            "installed": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        }
        write_json(record, staging / RECORD)
        if final.exists():
            shutil.rmtree(final)
        staging.rename(final)
    except LionError as e:
        if not unpacked:
            raise
        raise LionError(_named_in_zip(str(e), unpacked)) from None
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return record


def verify_model(name: str) -> dict:
    """Re-check an installed model: every recorded SHA-256 (checkpoints, plans.json,
    dataset.json) and its trainer class.

    Args:
        name: the installed model's name (``lion models list``).

    Returns:
        ``{"name", "model_folder", "checkpoints": [{"fold", "path", "recorded", "actual",
        "ok"}], "files": [{"file", "path", "recorded", "actual", "ok"}] (plans.json,
        dataset.json), "trainer", "trainer_found", "problems": [sentences], "ok"}``.
    """
    folder = installed_model_folder(name)
    if folder is None:
        raise LionError(
            f"{name!r}: no installed model of that name in {model_home()}; see `lion models list`"
        )
    record = read_record(model_home() / name / RECORD)
    rows = checksum_rows(folder, record)
    files = file_rows(folder, record)
    problems = [checksum_problem(r, record) for r in rows + files if not r["ok"]]
    if not rows:
        problems.append(
            f"{folder.parent.parent / RECORD}: records no checkpoint SHA-256; reinstall"
        )
    try:
        _require_trainer(record["trainer"])
        trainer_found = True
    except LionError as e:
        trainer_found = False
        problems.append(str(e))
    return {"name": name, "model_folder": str(folder), "checkpoints": rows, "files": files,
            "trainer": record["trainer"], "trainer_found": trainer_found, "problems": problems,
            "ok": not problems}  # fmt: skip
