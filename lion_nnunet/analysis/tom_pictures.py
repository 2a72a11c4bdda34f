"""Pictures of Tumor Occurrence Maps: coronal and sagittal MIP heatmaps with orientation marks."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lion_nnunet.analysis.body_frame import LANDMARK_HEIGHT_MM, FrameGrid
from lion_nnunet.io import atomic_path


def save_tom_png(
    tom_flat: np.ndarray, body_freq_flat: np.ndarray, grid: FrameGrid, path: Path, title: str
) -> Path:
    """Coronal (max over y) and sagittal (max over x) MIPs of a TOM, as one PNG.

    The TOM counts cases with tumor per bin; the white contour is the body outline of at least
    half of the cases, dashed lines the canonical landmark heights. The coronal view is drawn in
    radiological convention (patient's right on the viewer's left), head up; the sagittal view has
    anterior on the left.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tom = tom_flat.reshape(grid.shape_zyx).astype(float)
    body = body_freq_flat.reshape(grid.shape_zyx)
    lo, hi = grid.lo_mm, grid.hi_mm
    views = (
        ("coronal", tom.max(axis=1), body.max(axis=1), (lo[0], hi[0]), "x (mm, patient left ->)"),
        ("sagittal", tom.max(axis=2), body.max(axis=2), (lo[1], hi[1]), "y (mm, posterior ->)"),
    )
    vmax = max(1.0, float(tom.max()))
    fig, axes = plt.subplots(1, 2, figsize=(7.5, 9), width_ratios=[hi[0] - lo[0], hi[1] - lo[1]])
    for ax, (name, mip, outline, (a, b), xlabel) in zip(axes, views, strict=True):
        extent = (a, b, lo[2], hi[2])
        image = ax.imshow(
            np.ma.masked_equal(mip, 0), origin="lower", extent=extent, cmap="inferno",
            vmin=0, vmax=vmax, aspect="equal", interpolation="nearest",
        )  # fmt: skip
        ax.set_facecolor("black")
        if outline.max() >= 0.5:
            ax.contour(outline, levels=[0.5], colors="white", linewidths=0.8, extent=extent)
        for organ, z in LANDMARK_HEIGHT_MM.items():
            ax.axhline(z, color="cyan", linestyle="--", linewidth=0.5, alpha=0.6)
            if name == "coronal":
                ax.text(a + 5, z + 8, organ, color="cyan", fontsize=6)
        ax.set_title(name)
        ax.set_xlabel(xlabel)
    axes[0].set_ylabel("height above soles (canonical mm)")
    fig.colorbar(image, ax=axes, shrink=0.6, label="cases with tumor")
    fig.suptitle(title, fontsize=9)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return Path(path)
