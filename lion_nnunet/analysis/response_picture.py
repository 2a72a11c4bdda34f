"""response.png: baseline and follow-up coronal PET MIPs side by side, lesions coloured by match.

The follow-up is drawn after alignment onto the baseline grid, so a lesion sits at the same place
in both panels. Matched lesions share a colour; new follow-up lesions are red and labelled "new";
disappeared baseline lesions are outlined (dashed) in both panels. Lesions carry their ids
(b1.. baseline, f1.. follow-up), the liver reference sphere is a yellow circle, the title gives
the SUV window, and a table under the panels lists each lesion's SULpeak and its follow-up
site. Arrays are numpy (z, y, x).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lion_nnunet.analysis.percist import LIVER_RADIUS_MM
from lion_nnunet.inference.options import MIP_WINDOWS
from lion_nnunet.inference.pictures import CORONAL_AXIS, draw_mip, mask_mip
from lion_nnunet.io import atomic_path

#: Match colours (no red: red means new).
PALETTE = ("#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#17becf", "#bcbd22", "#e377c2",
           "#8c564b", "#7f7f7f", "#006d2c")  # fmt: skip
NEW_COLOUR = "#d62728"


def _fill(ax, mask2d: np.ndarray, colour: str, aspect: float, alpha: float = 0.7) -> None:
    from matplotlib.colors import to_rgba

    overlay = np.zeros((*mask2d.shape, 4), dtype=np.float32)
    overlay[mask2d] = to_rgba(colour, alpha)
    ax.imshow(overlay, aspect=aspect, interpolation="nearest")


def _outline(ax, mask2d: np.ndarray, colour: str) -> None:
    if mask2d.any():
        ax.contour(mask2d.astype(float), levels=[0.5], colors=[colour], linewidths=1.2,
                   linestyles="dashed")  # fmt: skip


def _label(ax, mask2d: np.ndarray, text: str, colour: str) -> None:
    rows, cols = np.nonzero(mask2d)
    if len(rows):
        ax.annotate(text, (cols.mean(), rows.min()), xytext=(0, 6), textcoords="offset points",
                    color=colour, fontsize=8, ha="center", va="bottom",
                    fontweight="bold")  # fmt: skip


def _liver_circle(ax, image, centre_mm, spacing, transform=None) -> None:
    """The liver reference sphere (3 cm) as an ellipse on a coronal MIP (rows flipped)."""
    from matplotlib.patches import Ellipse

    if centre_mm is None:
        return
    point = centre_mm if transform is None else transform.TransformPoint(centre_mm)
    x, _, z = image.TransformPhysicalPointToContinuousIndex(tuple(float(c) for c in point))
    nz = image.GetSize()[2]
    width, height = 2 * LIVER_RADIUS_MM / spacing[2], 2 * LIVER_RADIUS_MM / spacing[0]
    ax.add_patch(Ellipse((x, nz - 1 - z), width, height, fill=False, color="#ffd700", lw=1.2))


def _lesion_table(data: dict) -> str:
    """One line per baseline lesion (SULpeak, follow-up site, status) and per new lesion."""
    lines = ["lesion  SULpeak  follow-up site  status"]
    for r in data["baseline"]["lesions"][:8]:
        site = r.get("followup_site_sul_peak")
        site = "-" if site is None else f"{site:.2f}"
        to = " -> f" + ",".join(map(str, r["matched_to"])) if r["matched_to"] else ""
        lines.append(f"b{r['id']:<5} {r['sul_peak']:7.2f}  {site:>14}  {r['status']}{to}")
    for r in [r for r in data["followup"]["lesions"] if r["status"] == "new"][:4]:
        lines.append(f"f{r['id']:<5} {r['sul_peak']:7.2f}  {'':>14}  new")
    return "\n".join(lines)


def _peak_text(value) -> str:
    return "none" if value is None else f"{value:.2f}"


def panel_titles(data: dict) -> tuple[str, str]:
    """The two panels' titles: TMTV, lesion count, the SULpeak PERCIST compared (at follow-up
    the hottest lesion or baseline site, so an empty mask over uptake left does not read 0) and
    the liver SULmean."""
    b, f, percist = data["baseline"], data["followup"], data["percist"]
    return (
        f"baseline: TMTV {b['tmtv_ml']:.1f} ml, {b['lesion_count']} lesion(s)\n"
        f"SULpeak {_peak_text(percist['sul_peak_baseline'])}, liver {b['liver_sul_mean']:.2f}",
        f"follow-up (aligned): TMTV {f['tmtv_ml']:.1f} ml, {f['lesion_count']} lesion(s)\n"
        f"SULpeak (lesions and sites) {_peak_text(percist['sul_peak_followup'])}, "
        f"liver {f['liver_sul_mean']:.2f}",
    )


def save_response_png(result, path: str | Path, dpi: int = 120) -> Path:
    """Write the side-by-side picture of a ``response.ResponseResult`` (atomic PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    data, base = result.data, result.baseline
    spacing = tuple(float(s) for s in base.image.GetSpacing()[::-1])
    aspect = spacing[0] / spacing[2]
    # the tracer's fixed window (lion predict's MIPs use the same), shared by both panels
    window = MIP_WINDOWS.get(data.get("tracer", "fdg"), MIP_WINDOWS["fdg"])
    fig, axes = plt.subplots(1, 2, figsize=(8, 9.5))
    b, f = data["baseline"], data["followup"]
    titles = panel_titles(data)
    draw_mip(axes[0], base.suv, spacing, CORONAL_AXIS, window=window, title=titles[0])
    draw_mip(axes[1], result.followup_suv_on_baseline, spacing, CORONAL_AXIS, window=window,
             title=titles[1])  # fmt: skip

    def proj(labels: np.ndarray, ids) -> np.ndarray:
        return mask_mip(np.isin(labels, list(ids)), CORONAL_AXIS)[::-1]

    groups: list[tuple[set, set]] = []
    for row in b["lesions"]:
        if row["status"] != "matched":
            continue
        group = next((g for g in groups if row["id"] in g[0]), None)
        if group is None:
            groups.append(({row["id"]}, set(row["matched_to"])))
        else:
            group[1].update(row["matched_to"])
    for k, (bs, fs) in enumerate(groups):
        colour = PALETTE[k % len(PALETTE)]
        _fill(axes[0], proj(result.baseline_labels, bs), colour, aspect)
        _fill(axes[1], proj(result.followup_labels_on_baseline, fs), colour, aspect)
    for row in b["lesions"]:
        if row["status"] == "disappeared":
            for ax in axes:
                _outline(ax, proj(result.baseline_labels, [row["id"]]), "black")
    for row in f["lesions"]:
        mask2d = proj(result.followup_labels_on_baseline, [row["id"]])
        if row["status"] == "new":
            _fill(axes[1], mask2d, NEW_COLOUR, aspect, alpha=0.85)
            _label(axes[1], mask2d, f"f{row['id']} new", NEW_COLOUR)
        else:
            _label(axes[1], mask2d, f"f{row['id']}", "black")
    for row in b["lesions"]:
        _label(axes[0], proj(result.baseline_labels, [row["id"]]), f"b{row['id']}", "black")
    _liver_circle(axes[0], base.image, b.get("liver_centre_mm"), spacing)
    _liver_circle(axes[1], base.image, f.get("liver_centre_mm"), spacing,
                  result.alignment.transform.GetInverse())  # fmt: skip
    handles = [
        Patch(color=PALETTE[0], label="matched (same colour = same lesion)"),
        Patch(color=NEW_COLOUR, label="new"),
        Line2D([], [], color="black", linestyle="--", label="disappeared (outline)"),
        Line2D([], [], color="#ffd700", label="liver reference sphere"),
    ]
    percist = data["percist"]
    fig.suptitle(
        f"{data['patient_id'] or ''}  PERCIST {percist['category']}  |  "
        f"TMTV {data['tmtv']['category']}\ncoronal MIPs, SUV window {window[0]:g}-{window[1]:g} "
        "(both panels)",
        fontsize=11, fontweight="bold",
    )  # fmt: skip
    fig.legend(handles=handles, loc="lower center", ncol=4, fontsize=8, frameon=False,
               bbox_to_anchor=(0.5, 0.12))  # fmt: skip
    fig.text(0.02, 0.01, _lesion_table(data), family="monospace", fontsize=7, va="bottom")
    fig.tight_layout(rect=(0, 0.15, 1, 0.95))
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    plt.close(fig)
    return path
