"""A click model's input: the clicks moved to nnU-Net's preprocessed grid and encoded there.

nnU-Net's preprocessing (``DefaultPreprocessor.run_case_npy``) transposes the image
(``transpose_forward``), crops it to its nonzero box (``bbox_used_for_cropping``) and resamples
it to the plans' spacing. A clicked voxel (z, y, x) of the PET follows the same three steps:
transposed, shifted by the box's start, and mapped to the resampled voxel that holds its centre
(``floor((c + 0.5) * new / old)`` per axis, kept inside the grid). A click on a voxel the crop
removed (PET zero there) is moved to the nearest kept voxel. The clicks are then encoded on that
grid with the preprocessed spacing (:mod:`lion_nnunet.interactive.encoding`), the encoding the
model was trained with.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .clickfile import Clicks
from .encoding import encode_clicks

#: report.json's ``click_mode`` for a model trained with click channels.
CLICK_MODEL = "click model"


def to_network_grid(point_zyx: Sequence[int], props: dict, transpose_forward: Sequence[int],
                    shape: Sequence[int]) -> tuple[int, int, int]:  # fmt: skip
    """A voxel (z, y, x) of the input image as a voxel of the preprocessed grid of ``shape``.

    Examples:
        >>> props = {"bbox_used_for_cropping": [[2, 10], [0, 4], [1, 5]],
        ...          "shape_after_cropping_and_before_resampling": (8, 4, 4)}
        >>> to_network_grid((5, 3, 1), props, (0, 1, 2), (16, 4, 4))  # z halved in spacing
        (7, 3, 0)
    """
    transposed = [int(point_zyx[a]) for a in transpose_forward]
    box = props["bbox_used_for_cropping"]
    old = props["shape_after_cropping_and_before_resampling"]
    out = []
    for p, (start, _), n_old, n_new in zip(transposed, box, old, shape, strict=True):
        c = min(max(p - start, 0), n_old - 1)
        out.append(min(max(int(np.floor((c + 0.5) * n_new / n_old)), 0), n_new - 1))
    return tuple(out)  # type: ignore[return-value]


def network_click_points(clicks: Clicks, props: dict, transpose_forward: Sequence[int],
                         shape: Sequence[int]) -> tuple[list, list]:  # fmt: skip
    """A click file's (i, j, k) clicks as (tumor, background) voxels of the preprocessed grid."""

    def moved(points):
        return [to_network_grid((k, j, i), props, transpose_forward, shape) for i, j, k in points]

    return moved(clicks.tumor), moved(clicks.background)


def click_channels(clicks: Clicks, props: dict, plans_manager, configuration_manager,
                   shape: Sequence[int], encoding: str) -> np.ndarray:  # fmt: skip
    """The two click channels (2, *shape) of the preprocessed grid, float32."""
    tumor, background = network_click_points(clicks, props, plans_manager.transpose_forward,
                                             shape)  # fmt: skip
    return encode_clicks(tumor, background, shape, configuration_manager.spacing, encoding)
