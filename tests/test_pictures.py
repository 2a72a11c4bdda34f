"""PET MIP PNGs: projections, head up, tumor drawn in red where it is."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lion_nnunet.inference.pictures import mask_mip, mip, save_mip_png


def test_mip_axes_and_nan() -> None:
    a = np.zeros((4, 3, 2), np.float32)
    a[1, 2, 0] = 5.0
    a[3, 0, 1] = np.nan
    cor = mip(a, axis=1)
    assert cor.shape == (4, 2) and cor[1, 0] == 5.0 and cor[3, 1] == 0.0
    assert mip(a, axis=2).shape == (4, 3)
    assert mask_mip(a == 5.0, axis=2)[1, 2]


def test_save_mip_png_draws_tumor_head_up(tmp_path: Path) -> None:
    import matplotlib.image as mpimg

    pet = np.ones((60, 20, 20), np.float32)
    tumor = np.zeros(pet.shape, np.uint8)
    tumor[50:56, 8:12, 8:12] = 1  # near the head (high z)
    organs = np.zeros(pet.shape, np.uint8)
    organs[5:15, 5:15, 5:15] = 3
    path = save_mip_png(pet, tumor, organs, (3.0, 2.0, 2.0), tmp_path / "m.png", title="case")
    rgba = mpimg.imread(str(path))
    assert rgba.shape[0] > 200 and rgba.shape[1] > 100
    above_legend = rgba[: int(0.96 * rgba.shape[0])]  # the red legend patch sits in the bottom 4 %
    red = (above_legend[..., 0] > 0.8) & (above_legend[..., 1] < 0.3) & (above_legend[..., 2] < 0.3)
    rows = np.nonzero(red.any(axis=1))[0]
    plot_rows = np.nonzero((above_legend[..., :3].sum(axis=-1) < 2.9).any(axis=1))[0]
    # the tumor is near the top of the drawn body (head up), not near the bottom
    assert rows.size and rows.mean() < plot_rows.min() + 0.4 * (plot_rows.max() - plot_rows.min())
    assert not list(tmp_path.glob(".*part*"))  # atomic write left no temp file
