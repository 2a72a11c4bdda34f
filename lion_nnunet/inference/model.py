"""A trained nnU-Net model folder: checks before loading, and a random-weights model for timing.

A model folder is what ``nnUNetv2_train`` writes:
``$nnUNet_results/DatasetXXX_NAME/<Trainer>__<Plans>__<configuration>/`` with ``dataset.json``,
``plans.json`` and ``fold_<f>/checkpoint_final.pth``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from lion_nnunet.errors import LionError
from lion_nnunet.labels import label_set_from_dataset_labels

from .installed import installed_model_folder, installed_record, verify_checkpoints
from .model_info import CHECKPOINT, ModelInfo


def _load_json(path: Path, what: str) -> dict:
    if not path.is_file():
        raise LionError(
            f"{path.parent}: no {path.name}; -m must be a trained nnU-Net model folder "
            f"(<Trainer>__<Plans>__<configuration> with {what})"
        )
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise LionError(f"{path}: not valid JSON ({e}); is the model folder complete?") from None


def available_folds(folder: Path, checkpoint: str = CHECKPOINT) -> list[str]:
    """Folds that have ``checkpoint`` (sorted; "all" last)."""
    found = [p.parent.name[len("fold_") :] for p in folder.glob(f"fold_*/{checkpoint}")]
    return sorted(found, key=lambda f: (f == "all", int(f) if f.isdigit() else 0))


def resolve_model_folder(name_or_path: str | Path) -> Path:
    """The ``<Trainer>__<Plans>__<configuration>`` folder of ``-m``.

    ``-m`` may be that folder, a ``DatasetXXX_NAME`` folder holding exactly one such folder
    (the layout of nnU-Net's model zips and of lionz's model folders), or the name of a model
    installed with ``lion models install`` (see :mod:`lion_nnunet.inference.registry`).
    """
    path = Path(name_or_path)
    if not path.exists() and path.name == str(name_or_path):
        found = installed_model_folder(str(name_or_path))
        if found is not None:
            return found
        raise LionError(
            f"-m {name_or_path}: neither a model folder nor an installed model name; see "
            "`lion models list`, or install one with `lion models install ZIP --name NAME`"
        )
    if path.is_dir() and not (path / "plans.json").is_file():
        inner = sorted(p for p in path.iterdir() if p.is_dir() and p.name.count("__") == 2)
        if len(inner) == 1:
            return inner[0]
        if len(inner) > 1:
            raise LionError(
                f"{path}: holds {len(inner)} model folders ({', '.join(p.name for p in inner)}); "
                "pass -m with the one to use"
            )
    return path


def nnunet_model_folder(dataset: str | int, trainer: str, plans: str, configuration: str) -> Path:
    """The model folder nnUNetv2_predict's ``-d -tr -p -c`` name, found as nnU-Net finds it.

    ``$nnUNet_results/<DatasetXXX_NAME>/<trainer>__<plans>__<configuration>`` (nnU-Net's
    ``get_output_folder``); ``dataset`` is an id (``501``) or a ``Dataset501_NAME`` name. The
    environment is read at call time.
    """
    results = os.environ.get("nnUNet_results")
    if not results:
        raise LionError(
            f"-d {dataset}: nnUNet_results is not set; export nnUNet_results=FOLDER (where "
            "nnUNetv2_train wrote the model) or pass -m MODEL_FOLDER"
        )
    root = Path(results)
    text = str(dataset)
    if text.startswith("Dataset"):
        name = text
    elif text.isdigit():
        found = sorted(p.name for p in root.glob(f"Dataset{int(text):03d}_*") if p.is_dir())
        if len(found) != 1:
            raise LionError(
                f"-d {dataset}: {len(found)} dataset folders Dataset{int(text):03d}_* in "
                f"{root} ({', '.join(found) or 'none'}); expected one"
            )
        name = found[0]
    else:
        raise LionError(f"-d {dataset}: expected a dataset id (501) or name (Dataset501_NAME)")
    folder = root / name / f"{trainer}__{plans}__{configuration}"
    if not folder.is_dir():
        have = sorted(p.name for p in (root / name).glob("*__*__*") if p.is_dir())
        raise LionError(
            f"{folder}: no such model folder (-d {dataset} -tr {trainer} -p {plans} -c "
            f"{configuration}); models of {name}: {', '.join(have) or 'none'}"
        )
    return folder


def trainer_not_found(trainer: str) -> LionError:
    """The error for a checkpoint whose trainer class nnU-Net cannot find."""
    return LionError(
        f"trainer {trainer} not found: the checkpoint names a trainer class that neither nnunetv2 "
        "nor lion-nnunet defines; install/upgrade the package that defines it (lion-nnunet ships "
        "the LION trainers and the lionz authors' nnUNetTrainerDA5_2000epochs; check with "
        f"`lion doctor --trainer {trainer}`), or put its module on nnUNet_extTrainer"
    )


def check_model_folder(
    folder: str | Path,
    folds: list[str] | None = None,
    checkpoint: str = CHECKPOINT,
    tumor_label: int | None = None,
) -> ModelInfo:
    """Validate a model folder before loading it: files, checkpoints, plans vs dataset.json.

    An installed model (one with ``lion_model.json``, see :mod:`lion_nnunet.inference.registry`)
    also has the SHA-256 of every used checkpoint compared with the sum recorded at install.

    Args:
        folder: the ``<Trainer>__<Plans>__<configuration>`` folder, its ``DatasetXXX`` parent,
            or an installed model's name (:func:`resolve_model_folder`).
        folds: folds to ensemble (``["0", "1"]`` or ``["all"]``); None = every fold found (for
            an installed model: every fold it records).
        checkpoint: checkpoint file name inside each ``fold_<f>`` folder.
        tumor_label: the tumor's label id; None = from the dataset.json label names
            (:func:`lion_nnunet.labels.find_tumor_label`).

    Raises:
        LionError: one sentence naming the file and the problem.
    """
    folder = resolve_model_folder(folder)
    if not folder.is_dir():
        raise LionError(f"{folder}: model folder not found; pass -m <Trainer>__<Plans>__<config>")
    dataset_json = _load_json(folder / "dataset.json", "dataset.json, plans.json, fold_*/")
    plans = _load_json(folder / "plans.json", "dataset.json, plans.json, fold_*/")
    found = available_folds(folder, checkpoint)
    record = installed_record(folder)
    if folds is None:
        folds = list(record["folds"]) if record else found
    if not found:
        raise LionError(
            f"{folder}: no fold_*/{checkpoint}; the model has not finished training "
            "(or pass the checkpoint name you have)"
        )
    missing = [f for f in folds if f not in found]
    if missing:
        raise LionError(
            f"{folder}: no {checkpoint} for fold(s) {', '.join(missing)}; "
            f"folds available: {' '.join(found)} (use -f {' '.join(found)})"
        )
    if record:
        verify_checkpoints(folder, record, folds, checkpoint)
    for key in ("labels", "channel_names", "file_ending"):
        if key not in dataset_json:
            raise LionError(f"{folder / 'dataset.json'}: key {key!r} missing; not an nnU-Net model")
    name = folder.name.split("__")
    configuration = name[-1] if len(name) == 3 else "3d_fullres"
    if configuration not in plans.get("configurations", {}):
        raise LionError(
            f"{folder / 'plans.json'}: has no configuration {configuration!r} (folder name says "
            f"so); configurations: {', '.join(plans.get('configurations', {}))}"
        )
    dataset_name = folder.parent.name
    if plans.get("dataset_name") not in (None, dataset_name) and dataset_name.startswith("Dataset"):
        raise LionError(
            f"{folder / 'plans.json'}: dataset_name {plans['dataset_name']!r} does not match the "
            f"model's dataset folder {dataset_name!r}; plans.json and dataset.json come from "
            "different datasets"
        )
    n_channels = len(dataset_json["channel_names"])
    n_norm = len(plans["configurations"][configuration].get("normalization_schemes", []))
    if n_norm and n_norm != n_channels:
        raise LionError(
            f"{folder}: plans.json normalizes {n_norm} channel(s) but dataset.json declares "
            f"{n_channels}; plans.json and dataset.json do not belong together"
        )
    tracer = dataset_json.get("lion", {}).get("tracer", "custom")
    if tumor_label is None and record and record.get("tumor_label_given"):
        tumor_label = record["tumor_label"]  # an installed model keeps the one given at install
    label_set = label_set_from_dataset_labels(
        dataset_json["labels"], tracer, tumor_label, where=str(folder / "dataset.json")
    )
    return ModelInfo(
        folder=folder,
        folds=tuple(str(f) for f in folds),
        dataset_json=dataset_json,
        plans=plans,
        configuration=configuration,
        label_set=label_set,
        num_channels=n_channels,
        file_ending=dataset_json["file_ending"],
        checkpoint=checkpoint,
    )


def make_random_model(
    out_dir: str | Path,
    tracer: str = "fdg",
    patch_size: tuple[int, int, int] = (32, 32, 32),
    spacing: tuple[float, float, float] = (3.0, 2.0364, 2.0364),
    folds: tuple[str, ...] = ("0",),
    seed: int = 0,
    trainer: str = "nnUNetTrainer",
    labels: dict[str, int] | None = None,
    base_features: int | None = None,
    blocks_per_stage: tuple[int, ...] | None = None,
) -> Path:
    """Write a model folder with the LION plans' architecture and random weights (for timing/tests).

    Args:
        out_dir: the ``<Trainer>__<Plans>__3d_fullres`` folder to create; its parent should be
            named ``DatasetXXX_NAME``.
        tracer: label set (dataset.json labels) and plans template.
        patch_size: network patch (z, y, x voxels); small keeps CPU runs short.
        spacing: target spacing (z, y, x mm).
        folds: fold folders to create, each with its own random weights.
        seed: torch seed of fold 0 (fold i uses seed + i).
        trainer: trainer class name stored in the checkpoint (must be findable by nnU-Net).
        labels: dataset.json labels to write instead of the tracer's LION layout (e.g. a
            lionz-style layout with the tumor last); the network gets one output per label.
        base_features: first-stage features (None: the template's, as a trained LION model has;
            8 is ``lion demo``'s network, about 8 times faster on CPU at a 96 x 48 x 48 patch).
        blocks_per_stage: residual blocks per encoder stage (None: the template's ResEnc-M).

    Returns:
        The model folder.
    """
    import torch
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from lion_nnunet import __version__
    from lion_nnunet.labels import get_label_set
    from lion_nnunet.plans.templates import CONFIGURATION, build_plans, rebuild_architecture

    out_dir = Path(out_dir)
    label_set = get_label_set(tracer)
    plans = build_plans(tracer, spacing=spacing, patch_size=patch_size, batch_size=2)
    plans["dataset_name"] = out_dir.parent.name
    if base_features is not None or blocks_per_stage is not None:
        rebuild_architecture(plans["configurations"][CONFIGURATION], None, base_features,
                             blocks_per_stage)  # fmt: skip
    # CTNormalization statistics of SUV (clip 0..20, mean 2, std 3): what a fingerprint would hold
    plans["foreground_intensity_properties_per_channel"] = {
        "0": {
            "max": 40.0,
            "mean": 2.0,
            "median": 1.5,
            "min": 0.0,
            "percentile_00_5": 0.0,
            "percentile_99_5": 20.0,
            "std": 3.0,
        }
    }
    dataset_json = {
        "channel_names": {"0": "PET"},
        "labels": labels or label_set.labels(),
        "numTraining": 0,
        "file_ending": ".nii.gz",
        "lion": {"tracer": tracer, "with_organs": True, "label_set": label_set.to_dict(),
                 "lion_version": __version__, "random_weights": True},
    }  # fmt: skip
    if labels:  # not a LION layout: no LION tracer claims
        dataset_json["lion"] = {"random_weights": True}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "plans.json").write_text(json.dumps(plans, indent=2))
    (out_dir / "dataset.json").write_text(json.dumps(dataset_json, indent=2))
    pm = PlansManager(plans)
    cm = pm.get_configuration(CONFIGURATION)
    for i, fold in enumerate(folds):
        torch.manual_seed(seed + i)
        net = nnUNetTrainer.build_network_architecture(
            pm, cm, 1, len(labels or label_set.labels()), enable_deep_supervision=False
        )
        (out_dir / f"fold_{fold}").mkdir(exist_ok=True)
        torch.save(
            {
                "network_weights": net.state_dict(),
                "init_args": {
                    "plans": plans,
                    "configuration": CONFIGURATION,
                    "fold": fold,
                    "dataset_json": dataset_json,
                },
                "trainer_name": trainer,
                "inference_allowed_mirroring_axes": (0, 1, 2),
            },
            out_dir / f"fold_{fold}" / CHECKPOINT,
        )
    return out_dir
