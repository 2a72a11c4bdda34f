"""Tumor-focused patch sampling through nnU-Net's own dataset classes.

nnU-Net forces a share of each batch (``oversample_foreground_percent``) to contain foreground; it
picks the foreground *class* uniformly among the classes present in the case. With organ classes
in every case, most "foreground" patches would then centre on an organ. These dataset subclasses
narrow a case's ``class_locations`` to the tumor class with probability ``TUMOR_PROBABILITY``
(when the case has tumor voxels), so forced-foreground patches centre on tumor that often, and on
a uniformly chosen class (tumor or organ) otherwise. Nothing else about loading changes.
"""

from __future__ import annotations

import numpy as np
from nnunetv2.training.dataloading.nnunet_dataset import (
    nnUNetBaseDataset,
    nnUNetDatasetBlosc2,
    nnUNetDatasetNumpy,
)

from lion_nnunet.labels import TUMOR_LABEL

#: Share of forced-foreground patches centred on tumor (cases with tumor only).
TUMOR_PROBABILITY = 0.7


class _TumorFocus:
    def load_case(self, identifier: str):
        data, seg, seg_prev, properties = super().load_case(identifier)  # type: ignore[misc]
        locations = properties.get("class_locations") or {}
        tumor = locations.get(TUMOR_LABEL)
        if tumor is not None and len(tumor) > 0 and np.random.uniform() < TUMOR_PROBABILITY:
            properties = {**properties, "class_locations": {TUMOR_LABEL: tumor}}
        return data, seg, seg_prev, properties


class TumorFocusedDatasetBlosc2(_TumorFocus, nnUNetDatasetBlosc2):
    """nnU-Net's blosc2 dataset (default since 2.6) with tumor-focused class locations."""


class TumorFocusedDatasetNumpy(_TumorFocus, nnUNetDatasetNumpy):
    """nnU-Net's numpy dataset with tumor-focused class locations."""


def tumor_focused(base: type[nnUNetBaseDataset]) -> type[nnUNetBaseDataset]:
    """The tumor-focused subclass of one of nnU-Net's dataset classes."""
    for cls in (TumorFocusedDatasetBlosc2, TumorFocusedDatasetNumpy):
        if issubclass(cls, base):
            return cls
    return base
