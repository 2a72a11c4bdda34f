"""``lion predict``'s inputs and network: the cases of ``-i``, and nnU-Net's predictor loaded once.

:func:`discover_cases` finds the cases of a folder, CSV, file or DICOM root.
:class:`LionPredictor` predicts them through
:class:`nnunetv2.inference.predict_from_raw_data.nnUNetPredictor` (sliding window, Gaussian
weighting, fold ensemble, optional mirroring), with the same preprocessing and resampling back to
the original grid as ``nnUNetv2_predict``, so the label maps are identical to the stock command's.
The fold loop is run here (:meth:`LionPredictor.predict_ensemble`), so each fold's own tumor mask
and the ensemble's tumor probability come at no extra network cost: they give each lesion's
``confidence`` and ``fold_agreement`` in report.json. The model is built once and reused for
every case; the network's logits (at network spacing: the running sum and one fold's) exist for
one case at a time. The loop over cases (resume, read-ahead and writer threads, outputs) is
:mod:`lion_nnunet.inference.run_loop`. Arrays are numpy (z, y, x) as SimpleITK returns them.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk

from lion_nnunet import wording
from lion_nnunet.case_ids import case_id_of_name, study_case_id, study_case_ids
from lion_nnunet.errors import LionError
from lion_nnunet.logs import captured

from .cases import Case, find_pet_series
from .model import trainer_not_found
from .model_info import CHECKPOINT, ModelInfo
from .options import DEVICES
from .plausibility import read_pet

log = logging.getLogger(__name__)

IMAGE_ENDINGS = (".nii.gz", ".nii", ".mha", ".nrrd")


def _strip_ending(name: str) -> str | None:
    for ending in IMAGE_ENDINGS:
        if name.endswith(ending):
            return name[: -len(ending)]
    return None


def _cases_from_folder(folder: Path, num_channels: int) -> list[Case]:
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    images = [(p, _strip_ending(p.name)) for p in files]
    images = [(p, stem) for p, stem in images if stem is not None]
    nnunet = [(p, stem) for p, stem in images if stem.endswith("_0000")]
    if nnunet:  # nnU-Net layout: <case>_0000.nii.gz (+ _0001 ... for more channels)
        cases = []
        for p, stem in nnunet:
            case_id = stem[:-5]
            ending = p.name[len(stem) :]
            chans = [folder / f"{case_id}_{c:04d}{ending}" for c in range(num_channels)]
            missing = [c.name for c in chans if not c.is_file()]
            if missing:
                raise LionError(
                    f"{folder}: case {case_id} lacks {', '.join(missing)}; the model takes "
                    f"{num_channels} channel(s) (_0000 .. _{num_channels - 1:04d})"
                )
            extra = folder / f"{case_id}_{num_channels:04d}{ending}"
            if extra.is_file():
                raise LionError(
                    f"{folder}: case {case_id} has channel {extra.name}, but the model takes "
                    f"{num_channels} channel(s); pass a model trained on the same channels"
                )
            cases.append(Case(case_id_of_name(case_id), chans, source=str(chans[0])))
        return cases
    suv = sorted(folder.rglob("SUV.nii.gz"))
    if suv:  # autoPET layout: <patient>/<study>/SUV.nii.gz, ids as lion convert names them
        ids = study_case_ids(folder.resolve(), [p.parent.resolve() for p in suv])
        cases = [Case(ids[p.parent.resolve()][0], [p], source=str(p)) for p in suv]
        return _single_channel(cases, num_channels, folder)
    if images:
        cases = [Case(case_id_of_name(stem), [p], source=str(p)) for p, stem in images]
        return _single_channel(cases, num_channels, folder)
    lionz = cases_from_lionz_subjects(folder)
    if lionz:
        return _single_channel(lionz, num_channels, folder)
    series = find_pet_series(folder)
    if series:
        return _single_channel(series, num_channels, folder)
    raise LionError(
        f"{folder}: no PET found (expected <case>_0000.nii.gz files, autoPET SUV.nii.gz studies, "
        "NIfTI files, lionz subject folders <subject>/PT_*.nii.gz or a DICOM PET series)"
    )


#: File-name prefixes of the PET image in a lionz subject folder (lionz accepts both).
LIONZ_PET_PREFIXES = ("PT_", "PT-")


def cases_from_lionz_subjects(folder: Path) -> list[Case]:
    """lionz's input layout: one folder per subject holding ``PT_*.nii(.gz)`` (plus CT_*, ignored).

    Case id = the subject folder's name (sanitised by :mod:`lion_nnunet.case_ids`), as lionz
    names its outputs. A subject folder with no
    ``PT_`` NIfTI but a DICOM PET series is read from DICOM (converted to SUV). Returns [] when
    no subject folder has a ``PT_`` NIfTI (then the folder is not in lionz's layout). The PET
    NIfTI must be in SUV, as every LION input.
    """
    subjects = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    found: dict[Path, list[Path]] = {}
    for subject in subjects:
        pets = sorted(
            p
            for p in subject.iterdir()
            if p.is_file()
            and p.name.startswith(LIONZ_PET_PREFIXES)
            and p.name.endswith((".nii", ".nii.gz"))
        )
        if len(pets) > 1:
            raise LionError(
                f"{subject}: {len(pets)} PET files ({', '.join(p.name for p in pets)}); lionz's "
                "layout has one PT_*.nii.gz per subject folder"
            )
        found[subject] = pets
    if not any(found.values()):
        return []
    cases = []
    for subject, pets in found.items():
        if pets:
            cases.append(Case(case_id_of_name(subject.name), pets, source=str(pets[0])))
            continue
        series = find_pet_series(subject)
        subject_id = case_id_of_name(subject.name)
        for k, case in enumerate(series):
            case.case_id = subject_id if len(series) == 1 else f"{subject_id}_{k + 1}"
        cases += series
    return cases


def _single_channel(cases: list[Case], num_channels: int, where: Path) -> list[Case]:
    if num_channels != 1:
        raise LionError(
            f"{where}: one PET image per case, but the model takes {num_channels} channels; "
            "give <case>_0000 .. files in nnU-Net layout"
        )
    return cases


def _cases_from_csv(path: Path, num_channels: int) -> list[Case]:
    try:
        table = pd.read_csv(path)
    except Exception as e:  # pandas raises many types
        raise LionError(f"{path}: cannot read the CSV ({e})") from None
    if "case_id" not in table.columns or "pet" not in table.columns:
        raise LionError(
            f"{path}: columns {wording.names(table.columns)}; expected case_id and pet (PET file "
            "in SUV, relative to the CSV's folder or absolute)"
        )
    _single_channel([], num_channels, path)
    cases = []
    for row in table.itertuples(index=False):
        pet = Path(str(row.pet))
        pet = pet if pet.is_absolute() else path.parent / pet
        if not pet.is_file():
            raise LionError(f"{path}: case {row.case_id}: PET file {pet} not found")
        cases.append(Case(case_id_of_name(str(row.case_id)), [pet], source=str(pet)))
    return cases


def discover_cases(input_path: str | Path, num_channels: int = 1) -> list[Case]:
    """Cases of ``-i``: a folder, a CSV (case_id, pet), a single image file or a DICOM root.

    Folders: nnU-Net layout (``<case>_0000.nii.gz``), autoPET studies (``**/SUV.nii.gz``,
    case id as ``lion convert`` names it: ``<patient>``, or ``<patient>_<study>`` for a patient
    with several studies), plain image files (case id = file stem), lionz subject folders
    (``<subject>/PT_*.nii.gz`` or DICOM, case id = subject; :func:`cases_from_lionz_subjects`),
    or DICOM (every PET series found, converted to SUV). Case ids follow
    :mod:`lion_nnunet.case_ids` (sanitised).
    """
    path = Path(input_path)
    if not path.exists():
        raise LionError(f"{path}: input not found")
    if path.is_file() and path.suffix.lower() == ".csv":
        cases = _cases_from_csv(path, num_channels)
    elif path.is_file() and _strip_ending(path.name) is not None:
        stem = _strip_ending(path.name)
        case_id = case_id_of_name(stem[:-5] if stem.endswith("_0000") else stem)
        if path.name == "SUV.nii.gz":  # autoPET study: the id lion convert gives it
            case_id = study_case_id(path.parent)[0]
        cases = _single_channel([Case(case_id, [path], source=str(path))], num_channels, path)
    elif path.is_dir():
        cases = _cases_from_folder(path, num_channels)
    else:
        raise LionError(f"{path}: not a folder, CSV or image file ({', '.join(IMAGE_ENDINGS)})")
    sources: dict[str, list[str]] = {}
    for c in cases:
        sources.setdefault(c.case_id, []).append(c.source)
    dupes = {i: found for i, found in sorted(sources.items()) if len(found) > 1}
    if dupes:
        listed = "; ".join(f"{i} from {' and '.join(found)}" for i, found in dupes.items())
        raise LionError(
            f"{path}: case ids repeat ({listed}); rename the inputs so that each gives its own id"
        )
    return cases


def _mps_available() -> bool:
    import torch

    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def resolve_device(device: str):
    """``cpu``, ``cuda``, ``mps`` (Apple GPU) or ``auto`` (CUDA, else MPS, else CPU)."""
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "mps" if _mps_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise LionError("--device cuda, but torch sees no CUDA GPU; use --device cpu or auto")
    if device == "mps" and not _mps_available():
        raise LionError(
            "--device mps, but this torch has no usable MPS (Apple GPU) backend; "
            "use --device cpu or auto"
        )
    if device not in DEVICES[1:]:
        raise LionError(f"--device {device!r}; choose {', '.join(DEVICES)}")
    return torch.device(device)


def nnunet_properties(image: sitk.Image) -> dict:
    """The properties nnU-Net's SimpleITK reader returns for ``image`` (spacing z, y, x in mm)."""
    return {
        "sitk_stuff": {"spacing": image.GetSpacing(), "origin": image.GetOrigin(),
                       "direction": image.GetDirection()},
        "spacing": [abs(s) for s in image.GetSpacing()[::-1]],
    }  # fmt: skip


@dataclass
class EnsemblePrediction:
    """One case's prediction on the input grid, numpy (z, y, x).

    Attributes:
        label_map: nnU-Net's label map of the fold ensemble (uint8).
        tumor_probability: the ensemble's softmax probability of the tumor class (float32, 0..1),
            or None where it cannot be put on the PET grid (a model whose reader is not
            SimpleITK's).
        fold_tumors: each fold's own tumor mask (bool), in fold order; empty for one fold.
    """

    label_map: np.ndarray
    tumor_probability: np.ndarray | None = None
    fold_tumors: list[np.ndarray] = field(default_factory=list)


class LionPredictor:
    """nnU-Net's predictor for one model folder, built once and reused for every case.

    Args:
        model: checked model folder (:func:`check_model_folder`).
        device: ``"cpu"``, ``"cuda"`` or ``"auto"``.
        use_mirroring: test-time mirroring (nnU-Net's default; 8x slower on CPU for 3D).
        tile_step_size: sliding-window step as a fraction of the patch (nnU-Net: 0.5).
        checkpoint: checkpoint file name in each fold folder.
    """

    def __init__(
        self,
        model: ModelInfo,
        device: str = "auto",
        use_mirroring: bool = True,
        tile_step_size: float = 0.5,
        checkpoint: str = CHECKPOINT,
    ) -> None:
        from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

        from lion_nnunet.trainers.discovery import quick_lion_lookup, register_ext_trainer_folder

        register_ext_trainer_folder()  # LION trainers findable by name
        self.model = model
        torch_device = resolve_device(device)
        with captured("nnunetv2"):  # nnU-Net's device notes and trainer search: to the log
            self.predictor = nnUNetPredictor(
                tile_step_size=tile_step_size,
                use_gaussian=True,
                use_mirroring=use_mirroring,
                perform_everything_on_device=torch_device.type == "cuda",
                device=torch_device,
                verbose=False,
                verbose_preprocessing=False,
                allow_tqdm=False,
            )
        folds = [f if f == "all" else int(f) for f in model.folds]
        try:
            with captured("nnunetv2"), quick_lion_lookup():
                self.predictor.initialize_from_trained_model_folder(
                    str(model.folder), tuple(folds), checkpoint
                )
        except RuntimeError as e:  # e.g. state dict does not fit the plans' architecture
            first = str(e).strip().splitlines()[0]
            missing = re.match(r"Could not find requested nnunet trainer (\S+)", first)
            if missing:
                raise trainer_not_found(missing.group(1)) from None
            raise LionError(
                f"{model.folder}: cannot load the checkpoint into the network of plans.json "
                f"({first}); plans.json and the checkpoints do not belong together"
            ) from None
        self.reader = self.predictor.plans_manager.image_reader_writer_class()

    @property
    def click_encoding(self) -> str | None:
        """The click encoding of a click model (``nnUNetTrainer_LION_Clicks``), else None."""
        from lion_nnunet.trainers.click_network import click_network

        network = click_network(self.predictor.network)
        return None if network is None else network.click_encoding

    def load(self, case: Case) -> tuple[np.ndarray, dict, sitk.Image, np.ndarray]:
        """(nnU-Net input (c, z, y, x), its properties, PET image, PET SUV voxels (z, y, x)).

        Every file is read whole (:mod:`lion_nnunet.io`: truncated, empty, 4-D or NaN images
        are refused naming the file) and the PET's values must look like SUV
        (:func:`check_pet_values`, shared with the API and the converters). For nnU-Net's
        SimpleITK reader (every LION model) the files are read by our reader, which gives
        nnU-Net the same voxels and geometry; another reader still reads them itself, after
        the whole-file check.
        """
        from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO

        from lion_nnunet.io import check_image_file, geometry_mismatch, read_float_image

        if case.loader is not None:  # DICOM -> SUV; read_suv_series checked the values
            image = case.loader()
            suv = sitk.GetArrayFromImage(image).astype(np.float32)
            return suv[None], nnunet_properties(image), image, suv
        if isinstance(self.reader, SimpleITKIO):
            image, suv, _ = read_pet(case.files[0])
            channels = [suv]
            for k, path in enumerate(case.files[1:], start=1):
                other, voxels = read_float_image(path, f"channel {k}")
                problem = geometry_mismatch(image, other)
                if problem:
                    raise LionError(f"{path}: {problem} of channel 0; channels share one grid")
                channels.append(voxels)
            return np.stack(channels), nnunet_properties(image), image, suv
        for k, path in enumerate(case.files):
            check_image_file(path, "PET" if k == 0 else f"channel {k}")
        try:
            data, props = self.reader.read_images([str(f) for f in case.files])
        except Exception as e:  # nnU-Net readers raise RuntimeError and others
            raise LionError(f"{case.source}: cannot read the input image ({e})") from None
        if data.shape[0] != self.model.num_channels:
            raise LionError(
                f"{case.source}: {data.shape[0]} channel(s), the model takes "
                f"{self.model.num_channels}"
            )
        image, suv, _ = read_pet(case.files[0])
        return data, props, image, suv

    def predict_label_map(self, data: np.ndarray, props: dict) -> np.ndarray:
        """nnU-Net label map (z, y, x, uint8) on the input grid (preprocess + predict)."""
        return self.predict_prepared(*self.preprocess(data, props))

    def preprocess(self, data: np.ndarray, props: dict) -> tuple:
        """nnU-Net's preprocessing of one case (crop, resample, normalize): (tensor, properties).

        The same call nnU-Net's ``predict_single_npy_array`` and file iterators make; separate
        so the next case can be prepared in a thread while the network runs. It runs in the
        ``-npp`` reader threads, so it must not swap ``sys.stdout`` (process-wide, and not
        thread-safe); with ``verbose=False`` nnU-Net's preprocessor prints nothing.
        """
        import torch

        p = self.predictor
        pre = p.configuration_manager.preprocessor_class(verbose=False)
        out, _, props = pre.run_case_npy(
            data, None, props, p.plans_manager, p.configuration_manager, p.dataset_json
        )
        return torch.from_numpy(out), props

    def predict_prepared(self, data, props: dict) -> np.ndarray:
        """Network (folds ensemble, sliding window) + resampling back: label map (z, y, x)."""
        from nnunetv2.inference.export_prediction import (
            convert_predicted_logits_to_segmentation_with_correct_shape,
        )

        p = self.predictor
        # main thread only (the one place that swaps sys.stdout while readers run): nnU-Net's
        # note when the device runs out of memory goes to stderr, never into --json's stdout
        with contextlib.redirect_stdout(sys.stderr):
            logits = p.predict_logits_from_preprocessed_data(data).cpu()
            return convert_predicted_logits_to_segmentation_with_correct_shape(
                logits, p.plans_manager, p.configuration_manager, p.label_manager, props,
                return_probabilities=False,
            )  # fmt: skip

    def predict_ensemble(self, data, props: dict) -> EnsemblePrediction:
        """:meth:`predict_prepared` plus each fold's tumor mask and the ensemble's probability.

        The same network work as nnU-Net's ``predict_logits_from_preprocessed_data``, whose loop
        this repeats (each fold's weights loaded, sliding window, logits summed in fold order on
        the CPU, divided by the fold count), so the ensemble's logits are the same numbers. Each
        fold's logits are first turned into that fold's own label map by nnU-Net's
        ``convert_predicted_logits_to_segmentation_with_correct_shape`` (what ``nnUNetv2_predict
        -f <fold>`` writes; only with two or more folds, a resampling per fold, no network). The
        ensemble goes through the same function with ``return_probabilities=True`` (as
        ``nnUNetv2_predict --save_probabilities``): label map argmax of the softmax, the
        tumor channel kept as float32 on the input grid. Peak memory: about three copies of
        the class probabilities on the input grid.
        """
        import torch
        from nnunetv2.configuration import default_num_processes
        from nnunetv2.inference.export_prediction import (
            convert_predicted_logits_to_segmentation_with_correct_shape as to_input_grid,
        )
        from torch._dynamo import OptimizedModule

        p = self.predictor
        tumor_label = self.model.label_set.tumor_label
        managers = (p.plans_manager, p.configuration_manager, p.label_manager)
        network = p.network._orig_mod if isinstance(p.network, OptimizedModule) else p.network
        n_folds = len(p.list_of_parameters)
        threads = torch.get_num_threads()
        torch.set_num_threads(min(default_num_processes, threads))
        summed, fold_tumors = None, []
        try:
            # as predict_prepared; inference mode as nnU-Net's own loop
            with contextlib.redirect_stdout(sys.stderr), torch.inference_mode():
                for params in p.list_of_parameters:
                    network.load_state_dict(params)
                    logits = p.predict_sliding_window_return_logits(data).to("cpu")
                    if n_folds > 1:
                        fold_map = to_input_grid(logits, *managers, props)
                        fold_tumors.append(np.asarray(fold_map) == tumor_label)
                    if summed is None:
                        summed = logits
                    else:
                        summed += logits
                if n_folds > 1:
                    summed /= n_folds
                label_map, probabilities = to_input_grid(
                    summed, *managers, props, return_probabilities=True
                )
        finally:
            torch.set_num_threads(threads)
        tumor_probability = np.asarray(probabilities[tumor_label], dtype=np.float32)
        return EnsemblePrediction(np.asarray(label_map), tumor_probability, fold_tumors)

    def prepare(self, case: Case) -> tuple:
        """Read and preprocess a case: (tensor, properties, PET image, SUV (z, y, x))."""
        data, props, image, suv = self.load(case)
        tensor, props = self.preprocess(data, props)
        return tensor, props, image, suv
