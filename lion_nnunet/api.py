"""Python API for pipelines that embed LION: load a model once, segment many images.

:func:`load_model` takes an installed model's name (``lion models install``) or a model folder
and builds nnU-Net's predictor once; :meth:`LionModel.segment` takes a SimpleITK image or a numpy
array (z, y, x) with spacing/origin/direction (x, y, z order, as SimpleITK) and returns the tumor
mask and the organ label map as SimpleITK images on the input grid, plus the report dict that
``lion predict`` writes as report.json. Errors are the CLI's
(:class:`lion_nnunet.errors.LionError`). The input must be PET in SUV.

Examples:
    These need a model installed with ``lion models install``, so the doctest run skips them;
    ``tests/test_models.py`` makes the same calls on trained models.

    >>> import lion_nnunet  # doctest: +SKIP
    >>> model = lion_nnunet.load_model("fdg", device="cpu")  # doctest: +SKIP
    >>> result = model.segment(sitk.ReadImage("study/SUV.nii.gz"))  # doctest: +SKIP
    >>> result.report["tmtv_ml"], result.tumor.GetSize()  # doctest: +SKIP
    >>> result = model.segment(suv_zyx, spacing=(2.0, 2.0, 3.0))  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from lion_nnunet.errors import LionError

__all__ = ["LionModel", "Segmentation", "load_model"]


@dataclass
class Segmentation:
    """What :meth:`LionModel.segment` returns.

    Attributes:
        tumor: uint8 0/1 SimpleITK image on the input grid.
        organs: uint8 organ label map (the model's organ ids, 0 elsewhere) on the input grid.
        report: the report dict (TMTV ml, TLG, SUVmax/mean/peak, lesions...), as report.json.
    """

    tumor: sitk.Image
    organs: sitk.Image
    report: dict


class LionModel:
    """A loaded model; reuse it for every image (the network is built once).

    Args:
        name_or_path: installed model name or model folder (see ``lion predict -m``).
        device: ``auto``, ``cpu``, ``cuda`` or ``mps``.
        folds: folds to ensemble; None = every fold with a checkpoint.
        use_mirroring: test-time mirroring (nnU-Net's default; slower).
        tumor_label: the tumor's id when the dataset.json label names do not say it.
        checkpoint: checkpoint file name.
    """

    def __init__(
        self,
        name_or_path: str | Path,
        device: str = "auto",
        folds: Sequence[str] | None = None,
        use_mirroring: bool = True,
        tumor_label: int | None = None,
        checkpoint: str = "checkpoint_final.pth",
    ) -> None:
        from lion_nnunet.inference.model import check_model_folder
        from lion_nnunet.inference.predict import LionPredictor

        folds = None if folds is None else [str(f) for f in folds]
        self.info = check_model_folder(name_or_path, folds, checkpoint, tumor_label)
        self.label_set = self.info.label_set
        self._predictor = LionPredictor(self.info, device, use_mirroring, checkpoint=checkpoint)

    def segment(
        self,
        image: sitk.Image | np.ndarray,
        spacing: Sequence[float] | None = None,
        origin: Sequence[float] | None = None,
        direction: Sequence[float] | None = None,
        case_id: str = "image",
        suv_threshold: float | None = None,
        min_volume_ml: float = 0.0,
    ) -> Segmentation:
        """Segment one PET image (SUV).

        Args:
            image: SimpleITK image, or numpy array (z, y, x) with ``spacing`` (x, y, z mm).
            spacing, origin, direction: geometry of a numpy ``image`` (SimpleITK order x, y, z);
                origin defaults to 0, direction to identity. Ignored for a SimpleITK image.
            case_id: name in the report.
            suv_threshold: drop tumor voxels below this SUV.
            min_volume_ml: drop tumor components smaller than this (ml).
        """
        from lion_nnunet import __version__
        from lion_nnunet.inference.postprocess import split_label_map
        from lion_nnunet.inference.report import case_report

        pet = _as_image(image, spacing, origin, direction)
        suv = sitk.GetArrayFromImage(pet).astype(np.float32)
        props = {
            "sitk_stuff": {"spacing": pet.GetSpacing(), "origin": pet.GetOrigin(),
                           "direction": pet.GetDirection()},
            "spacing": [abs(s) for s in pet.GetSpacing()[::-1]],
        }  # fmt: skip
        label_map = self._predictor.predict_label_map(suv[None], props)
        spacing_zyx = tuple(float(s) for s in pet.GetSpacing()[::-1])
        tumor, organs = split_label_map(
            label_map, self.label_set, spacing_zyx, min_volume_ml, (), suv, suv_threshold
        )
        names = {label: name for name, label in self.label_set.labels().items()}
        report = case_report(
            case_id, suv, tumor, pet, organs if organs.any() else None, names, self.info.name,
            list(self.info.folds), {"tumor_label": self.label_set.tumor_label,
                                    "suv_threshold": suv_threshold},
        )  # fmt: skip
        report.setdefault("lion_version", __version__)
        return Segmentation(_on_grid(tumor, pet), _on_grid(organs, pet), report)


def load_model(
    name_or_path: str | Path,
    device: str = "auto",
    folds: Sequence[str] | None = None,
    use_mirroring: bool = True,
    tumor_label: int | None = None,
    checkpoint: str = "checkpoint_final.pth",
) -> LionModel:
    """Load a model once (installed name or folder); see :class:`LionModel`."""
    return LionModel(name_or_path, device, folds, use_mirroring, tumor_label, checkpoint)


def _as_image(image, spacing, origin, direction) -> sitk.Image:
    if isinstance(image, sitk.Image):
        if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
            raise LionError(
                f"image: expected a 3D single-channel PET, got {image.GetDimension()}D with "
                f"{image.GetNumberOfComponentsPerPixel()} component(s)"
            )
        return sitk.Cast(image, sitk.sitkFloat32)
    array = np.asarray(image)
    if array.ndim != 3:
        raise LionError(f"image: expected a 3D array (z, y, x), got shape {array.shape}")
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
