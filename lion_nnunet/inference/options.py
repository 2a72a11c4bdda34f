"""One options object for prediction, shared by ``lion predict``, the Python API and executors.

:class:`PredictOptions` holds every setting of a prediction run. ``result_settings()`` is the
part that decides what a case's outputs contain (model folds, TTA, filters, ...), recorded in each
``report.json`` so that a re-run can tell whether an existing output was made the same way.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from lion_nnunet.errors import LionError

from .model import CHECKPOINT
from .pictures import DEFAULT_WINDOW

DEVICES = ("auto", "cpu", "cuda", "mps")
#: MIP display window (SUV shown white .. black) per tracer, fixed so that pictures of different
#: patients compare: FDG 0-10 (liver ~2-3, most lesions within), PSMA 0-15 (kidneys and salivary
#: glands above, lesions within). Other tracers: the FDG window.
MIP_WINDOWS = {"fdg": DEFAULT_WINDOW, "psma": (0.0, 15.0)}


@dataclass(frozen=True)
class PredictOptions:
    """Settings of a prediction run (model loading, network, filters, outputs, run control).

    Attributes:
        folds: folds to ensemble (``("0", "1")`` or ``("all",)``); None = every fold with a
            checkpoint.
        checkpoint: checkpoint file name in each ``fold_<f>`` folder.
        tumor_label: the tumor's label id; None = from the dataset.json label names.
        device: ``auto`` (CUDA, else MPS, else CPU), ``cpu``, ``cuda`` or ``mps``.
        use_mirroring: test-time mirroring (nnU-Net's default; about 8x slower for 3D).
        tile_step_size: sliding-window step as a fraction of the patch (nnU-Net's
            ``-step_size``, 0.5).
        min_volume_ml: drop tumor components smaller than this (ml); 0 keeps all.
        remove_in_organs: drop tumor components inside or touching these organ classes.
        suv_threshold: drop tumor voxels below this SUV; None keeps all.
        save_organs: also write ``organs.nii.gz``.
        dicom_seg: also write ``seg.dcm`` (DICOM input only).
        rotating_mip: also write ``mip_rotating.gif``.
        save_suv: also write ``suv.nii.gz`` for cases converted from DICOM.
        save_probabilities: also write ``tumor_probability.nii.gz`` (the ensemble's tumor
            probability, float32 on the PET grid).
        mip_window: SUV (low, high) shown white .. black in the MIPs; None = the tracer's
            default (:data:`MIP_WINDOWS`).
        num_processes_preprocessing: threads reading and preprocessing upcoming cases
            (nnU-Net's ``-npp``); each holds one case in memory.
        num_processes_segmentation_export: threads resampling predictions back and writing
            outputs while the network runs the next case (nnU-Net's ``-nps``).
        overwrite: replace existing case outputs.
        progress: show a progress bar.
        num_parts: split the cases into this many parts (nnU-Net's ``-num_parts``).
        part_id: the part this run predicts (0-based).

    Examples:
        >>> from lion_nnunet.inference.options import PredictOptions
        >>> options = PredictOptions(folds=("0",), min_volume_ml=0.5)
        >>> options.result_settings()["min_volume_ml"]
        0.5
        >>> PredictOptions(min_volume_ml=-1)
        Traceback (most recent call last):
        ...
        lion_nnunet.errors.LionError: --min-volume-ml -1: expected a volume >= 0 ml
    """

    folds: tuple[str, ...] | None = None
    checkpoint: str = CHECKPOINT
    tumor_label: int | None = None
    device: str = "auto"
    use_mirroring: bool = True
    tile_step_size: float = 0.5
    min_volume_ml: float = 0.0
    remove_in_organs: tuple[str, ...] = ()
    suv_threshold: float | None = None
    save_organs: bool = False
    dicom_seg: bool = False
    rotating_mip: bool = False
    save_suv: bool = False
    save_probabilities: bool = False
    mip_window: tuple[float, float] | None = None
    num_processes_preprocessing: int = 1
    num_processes_segmentation_export: int = 1
    overwrite: bool = False
    progress: bool = True
    num_parts: int = 1
    part_id: int = 0

    def __post_init__(self) -> None:
        if self.folds is not None:
            folds = tuple(str(f) for f in self.folds)
            if len(set(folds)) != len(folds):
                raise LionError(f"-f {' '.join(folds)}: a fold is named twice")
            object.__setattr__(self, "folds", folds)
        object.__setattr__(self, "remove_in_organs", tuple(self.remove_in_organs))
        if self.device not in DEVICES:
            raise LionError(f"--device {self.device!r}; choose {', '.join(DEVICES)}")
        if not self.min_volume_ml >= 0:
            raise LionError(f"--min-volume-ml {self.min_volume_ml:g}: expected a volume >= 0 ml")
        if not 0 < self.tile_step_size <= 1:
            raise LionError(
                f"-step_size {self.tile_step_size:g}: expected a fraction of the patch in (0, 1]"
            )
        if self.suv_threshold is not None and not self.suv_threshold >= 0:
            raise LionError(f"--suv-threshold {self.suv_threshold:g}: expected an SUV >= 0")
        if self.mip_window is not None:
            low, high = (float(v) for v in self.mip_window)
            if not 0 <= low < high:
                raise LionError(f"--mip-window {low:g} {high:g}: expected 0 <= LOW < HIGH (SUV)")
            object.__setattr__(self, "mip_window", (low, high))
        for flag, value in (("-npp", self.num_processes_preprocessing),
                            ("-nps", self.num_processes_segmentation_export)):  # fmt: skip
            if value < 1:
                raise LionError(f"{flag} {value}: expected at least 1 thread")
        if self.num_parts < 1:
            raise LionError(f"--num-parts {self.num_parts}: expected at least 1")
        if not 0 <= self.part_id < self.num_parts:
            raise LionError(
                f"--part-id {self.part_id} must be in 0..{self.num_parts - 1} (--num-parts)"
            )

    def result_settings(self) -> dict:
        """The settings that decide a case's outputs (not where or how fast they are made)."""
        keep = ("checkpoint", "tumor_label", "use_mirroring", "tile_step_size", "min_volume_ml",
                "remove_in_organs", "suv_threshold", "save_organs", "dicom_seg",
                "rotating_mip", "save_suv", "save_probabilities", "mip_window")  # fmt: skip
        values = asdict(self)
        out = {k: values[k] for k in keep}
        out["remove_in_organs"] = list(self.remove_in_organs)
        out["mip_window"] = None if self.mip_window is None else list(self.mip_window)
        return out
