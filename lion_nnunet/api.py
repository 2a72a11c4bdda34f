"""Python API for pipelines that embed LION: load a model once, segment many images.

:func:`load_model` takes an installed model's name (``lion models install``) or a model folder
and builds nnU-Net's predictor once; :meth:`LionModel.segment` takes a PET file, a SimpleITK
image or a numpy array (z, y, x) with spacing/origin/direction (x, y, z order, as SimpleITK) and
returns the tumor mask and the organ label map as SimpleITK images on the input grid, plus the
report dict that ``lion predict`` writes as report.json. Errors are the CLI's
(:class:`lion_nnunet.errors.LionError`). The input must be PET in SUV; it is checked by the
functions ``lion predict`` uses (:func:`lion_nnunet.io.read_float_image` for a file,
:func:`lion_nnunet.inference.plausibility.check_pet_values` for the values). Settings are a
:class:`~lion_nnunet.inference.options.PredictOptions`, as for ``lion predict``.

Examples:
    These need a model installed with ``lion models install``, so the doctest run skips them;
    ``tests/test_models.py`` makes the same calls on trained models.

    >>> import lion_nnunet  # doctest: +SKIP
    >>> model = lion_nnunet.load_model("fdg", device="cpu")  # doctest: +SKIP
    >>> result = model.segment("study/SUV.nii.gz")  # doctest: +SKIP
    >>> result.report["tmtv_ml"], result.tumor.GetSize()  # doctest: +SKIP
    >>> result = model.segment(suv_zyx, spacing=(2.0, 2.0, 3.0))  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from lion_nnunet.errors import LionError
from lion_nnunet.inference.model import CHECKPOINT
from lion_nnunet.inference.options import PredictOptions

__all__ = ["LionModel", "Segmentation", "load_model"]


@dataclass
class Segmentation:
    """What :meth:`LionModel.segment` returns.

    Attributes:
        tumor: uint8 0/1 SimpleITK image on the input grid.
        organs: uint8 organ label map (the model's organ ids, 0 elsewhere) on the input grid.
        report: the report dict (TMTV ml, TLG, SUVmax/mean/peak, lesions...), as report.json.
        warnings: what the input checks warned about (negative SUVs, a label-map-like or
            kBq/ml-like image; :mod:`lion_nnunet.inference.plausibility`), also logged.
    """

    tumor: sitk.Image
    organs: sitk.Image
    report: dict
    warnings: list[str] = field(default_factory=list)


class LionModel:
    """A loaded model; reuse it for every image (the network is built once).

    Args:
        name_or_path: installed model name or model folder (see ``lion predict -m``).
        device: ``auto``, ``cpu``, ``cuda`` or ``mps``.
        folds: folds to ensemble; None = every fold with a checkpoint.
        use_mirroring: test-time mirroring (nnU-Net's default; slower).
        tumor_label: the tumor's id when the dataset.json label names do not say it.
        checkpoint: checkpoint file name.
        options: every setting at once, as ``lion predict`` takes them
            (:class:`~lion_nnunet.inference.options.PredictOptions`: also ``tile_step_size`` and
            the default filters of :meth:`segment`); give either this or the arguments above.
    """

    def __init__(
        self,
        name_or_path: str | Path,
        device: str = "auto",
        folds: Sequence[str] | None = None,
        use_mirroring: bool = True,
        tumor_label: int | None = None,
        checkpoint: str = CHECKPOINT,
        options: PredictOptions | None = None,
    ) -> None:
        from lion_nnunet.inference.model import check_model_folder
        from lion_nnunet.inference.predict import LionPredictor

        given = (device, folds, use_mirroring, tumor_label, checkpoint)
        if options is not None and given != ("auto", None, True, None, CHECKPOINT):
            raise LionError(
                "load_model: settings given both as options= and as arguments (device, folds, "
                "use_mirroring, tumor_label, checkpoint); give them in one place"
            )
        if options is None:
            options = PredictOptions(
                folds=None if folds is None else tuple(str(f) for f in folds),
                checkpoint=checkpoint, tumor_label=tumor_label, device=device,
                use_mirroring=use_mirroring,
            )  # fmt: skip
        self.options = options
        o = options
        folds = None if o.folds is None else list(o.folds)
        self.info = check_model_folder(name_or_path, folds, o.checkpoint, o.tumor_label)
        self.label_set = self.info.label_set
        for name in o.remove_in_organs:
            self.label_set.label_of(name)  # unknown organ: a clear error now, not per image
        self._predictor = LionPredictor(
            self.info, o.device, o.use_mirroring, o.tile_step_size, o.checkpoint
        )

    def segment(
        self,
        image: sitk.Image | np.ndarray | str | Path,
        spacing: Sequence[float] | None = None,
        origin: Sequence[float] | None = None,
        direction: Sequence[float] | None = None,
        case_id: str = "image",
        suv_threshold: float | None = None,
        min_volume_ml: float | None = None,
    ) -> Segmentation:
        """Segment one PET image (SUV), checked as ``lion predict`` checks its inputs.

        The values must look like SUV (:func:`~lion_nnunet.inference.plausibility.check_pet_values`,
        the function ``lion predict`` and the converters call): NaN/inf, a CT in HU (values
        below -1), an empty image or a maximum above 500 (Bq/ml) raise a LionError; negative,
        label-map-like or kBq/ml-like values are warned about (``Segmentation.warnings``).

        Args:
            image: a PET file (read whole by the reader ``lion predict`` uses: a truncated,
                empty or 4-D file raises a LionError naming it), a SimpleITK image, or a numpy
                array (z, y, x) with ``spacing`` (x, y, z mm).
            spacing, origin, direction: geometry of a numpy ``image`` (SimpleITK order x, y, z);
                origin defaults to 0, direction to identity. Ignored for a SimpleITK image.
            case_id: name in the report and in the messages.
            suv_threshold: drop tumor voxels below this SUV; None = the model's options
                (``PredictOptions.suv_threshold``, default: keep all).
            min_volume_ml: drop tumor components smaller than this (ml); None = the model's
                options (default 0: keep all).
        """
        from lion_nnunet import __version__
        from lion_nnunet.inference.anatomy import misplaced_organs
        from lion_nnunet.inference.flags import flag_case
        from lion_nnunet.inference.plausibility import check_pet_values, read_pet
        from lion_nnunet.inference.postprocess import split_label_map
        from lion_nnunet.inference.predict import nnunet_properties
        from lion_nnunet.inference.report import case_report

        o = replace(
            self.options,
            suv_threshold=self.options.suv_threshold if suv_threshold is None else suv_threshold,
            min_volume_ml=self.options.min_volume_ml if min_volume_ml is None else min_volume_ml,
        )  # checks the values as lion predict's flags are checked
        if isinstance(image, str | Path):
            pet, suv, warnings = read_pet(image)
        else:
            pet = _as_image(image, spacing, origin, direction, case_id)
            suv = sitk.GetArrayFromImage(pet).astype(np.float32)
            warnings = check_pet_values(suv, case_id)
        prediction = self._predictor.predict_ensemble(
            *self._predictor.preprocess(suv[None], nnunet_properties(pet))
        )
        spacing_zyx = tuple(float(s) for s in pet.GetSpacing()[::-1])
        tumor, organs = split_label_map(
            prediction.label_map, self.label_set, spacing_zyx, o.min_volume_ml,
            o.remove_in_organs, suv, o.suv_threshold,
        )  # fmt: skip
        names = {label: name for name, label in self.label_set.labels().items()}
        checked, misplaced = (misplaced_organs(organs, self.label_set, pet) if organs.any()
                              else (None, None))  # fmt: skip
        report = case_report(
            case_id, suv, tumor, pet, checked, names, self.info.name,
            list(self.info.folds), {"tumor_label": self.label_set.tumor_label,
                                    "suv_threshold": o.suv_threshold},
            tumor_probability=prediction.tumor_probability, fold_tumors=prediction.fold_tumors,
        )  # fmt: skip
        flags = flag_case(report, suv, tumor, spacing_zyx, checked, self.label_set, misplaced)
        report.update(flag_score=flags.score, flag_reasons=flags.reasons, flag_terms=flags.values)
        report.setdefault("lion_version", __version__)
        return Segmentation(_on_grid(tumor, pet), _on_grid(organs, pet), report, warnings)


def load_model(
    name_or_path: str | Path,
    device: str = "auto",
    folds: Sequence[str] | None = None,
    use_mirroring: bool = True,
    tumor_label: int | None = None,
    checkpoint: str = CHECKPOINT,
    options: PredictOptions | None = None,
) -> LionModel:
    """Load a model once (installed name or folder); see :class:`LionModel`."""
    return LionModel(name_or_path, device, folds, use_mirroring, tumor_label, checkpoint, options)


def _as_image(image, spacing, origin, direction, name: str) -> sitk.Image:
    if isinstance(image, sitk.Image):
        if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
            raise LionError(
                f"{name}: expected a 3D single-channel PET, got {image.GetDimension()}D with "
                f"{image.GetNumberOfComponentsPerPixel()} component(s) (a 4-D image is a "
                "dynamic PET: give one 3-D frame)"
            )
        return sitk.Cast(image, sitk.sitkFloat32)
    array = np.asarray(image)
    if array.ndim != 3:
        raise LionError(f"{name}: expected a 3D array (z, y, x), got shape {array.shape}")
    if spacing is None:
        raise LionError("image is a numpy array: give spacing=(x, y, z) in mm")
    if len(spacing) != 3 or min(spacing) <= 0:
        raise LionError(f"spacing {tuple(spacing)}: expected three positive values (x, y, z) mm")
    pet = sitk.GetImageFromArray(array.astype(np.float32))
    pet.SetSpacing(tuple(float(s) for s in spacing))
    if origin is not None:
        pet.SetOrigin(tuple(float(o) for o in origin))
    if direction is not None:
        pet.SetDirection(tuple(float(d) for d in direction))
    return pet


def _on_grid(array: np.ndarray, reference: sitk.Image) -> sitk.Image:
    out = sitk.GetImageFromArray(np.asarray(array, dtype=np.uint8))
    out.CopyInformation(reference)
    return out
