"""The tumor mask as a DICOM Segmentation (highdicom) referencing the source PET instances.

One binary segment "Tumor" (SNOMED CT: Morphologically abnormal structure / Neoplasm), one frame
per PET slice, each frame derived from the PET instance at the same position, so PACS viewers
and 3D Slicer place it on the PET series. The mask is numpy (z, y, x) on the SUV image that
:func:`lion_nnunet.inference.suv.read_suv_series` built from the same files (slices ordered
along the slice normal, rows = y, columns = x).

A reader's correction (``lion review --serve``, :mod:`lion_nnunet.review.corrections`) of a case
that has ``seg.dcm`` gets ``seg_corrected.dcm`` beside it (``corrected=True``; the PET series'
files found again by :func:`seg_source_files`): the corrected mask as a new SEG series of the
same PET series, its segment marked SEMIAUTOMATIC (a model's mask edited by a person) and its
series described as corrected; ``seg.dcm`` stays.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lion_nnunet import __version__
from lion_nnunet.errors import LionError
from lion_nnunet.io import atomic_path


def _sorted_sources(files: list[Path]) -> list:
    import pydicom

    from .suv import _position_along_normal

    datasets = [pydicom.dcmread(f) for f in files]
    order = np.argsort(
        [_position_along_normal(d, Path(f)) for d, f in zip(datasets, files, strict=True)]
    )
    return [datasets[i] for i in order]


#: The SEG of a reader's correction, beside the prediction's ``seg.dcm``.
CORRECTED_SEG = "seg_corrected.dcm"


def write_dicom_seg(
    tumor: np.ndarray,
    source_files: list[Path],
    path: str | Path,
    series_number: int = 900,
    corrected: bool = False,
) -> Path:
    """Write ``tumor`` (z, y, x, 0/1) as a DICOM-SEG referencing the PET series ``source_files``.

    Args:
        tumor: binary mask on the grid of the PET series (slices ordered along the normal).
        source_files: the PET series' files.
        path: output ``.dcm`` (written atomically).
        series_number: SeriesNumber of the new SEG series.
        corrected: the mask is a reader's correction of the model's: segment algorithm type
            SEMIAUTOMATIC (else AUTOMATIC), series description "... (corrected by a reader)".
    """
    import highdicom as hd
    from pydicom.sr.codedict import codes

    sources = _sorted_sources(list(source_files))
    mask = (np.asarray(tumor) > 0).astype(np.uint8)
    if mask.shape != (len(sources), int(sources[0].Rows), int(sources[0].Columns)):
        raise LionError(
            f"{path}: tumor mask shape {mask.shape} does not match the PET series "
            f"({len(sources)} slices of {sources[0].Rows} x {sources[0].Columns})"
        )
    algorithm = hd.AlgorithmIdentificationSequence(
        name="LION nnU-Net", version=__version__, family=codes.cid7162.ArtificialIntelligence
    )
    segment = hd.seg.SegmentDescription(
        segment_number=1,
        segment_label="Tumor",
        segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
        segmented_property_type=codes.SCT.Neoplasm,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.SEMIAUTOMATIC
        if corrected
        else hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=algorithm,
    )
    seg = hd.seg.Segmentation(
        source_images=sources,
        pixel_array=mask,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[segment],
        series_instance_uid=hd.UID(),
        series_number=series_number,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="lion-nnunet",
        manufacturer_model_name="LION PET tumor segmentation",
        software_versions=__version__,
        device_serial_number="0",
        series_description="LION tumor segmentation"
        + (" (corrected by a reader)" if corrected else ""),
        omit_empty_frames=bool(mask.any()),
    )
    with atomic_path(path) as tmp:
        seg.save_as(tmp)
    return Path(path)


def read_dicom_seg(path: str | Path, source_files: list[Path]) -> np.ndarray:
    """Read a LION DICOM-SEG back as a (z, y, x) uint8 mask in the source series' slice order."""
    import highdicom as hd

    seg = hd.seg.segread(str(path))
    uids = [d.SOPInstanceUID for d in _sorted_sources(list(source_files))]
    pixels = seg.get_pixels_by_source_instance(
        source_sop_instance_uids=uids, segment_numbers=[1], combine_segments=True
    )
    return np.asarray(pixels).astype(np.uint8)


def seg_source_files(seg_path: str | Path, folder: str | Path) -> list[Path]:
    """The files under ``folder`` of the PET series that the SEG ``seg_path`` references.

    Raises:
        LionError: ``folder`` is gone or no longer holds that series.
    """
    import pydicom

    from .dicom_index import index_dicom

    header = pydicom.dcmread(seg_path, stop_before_pixels=True)
    uid = str(header.ReferencedSeriesSequence[0].SeriesInstanceUID)
    if not Path(folder).is_dir():
        raise LionError(f"{folder}: the PET series of {seg_path} is no longer there")
    for studies in index_dicom(folder).values():
        for series_list in studies.values():
            for series in series_list:
                if series.uid == uid:
                    return list(series.files)
    raise LionError(f"{folder}: no PET series {uid} (the one {seg_path} references)")
