"""Organ maps with organs in anatomically impossible places: found, left out, and said.

A model's organ map is passed on to the report (nearest organ of each lesion) and the flag score
(hot organs, hot spots). A map that labels part of the head "kidneys" would make a head lesion's
nearest organ the kidneys. Here each connected part of each organ is placed along the body axis
(the patient's superior direction, LPS z, from the image's direction matrix) and compared with
the median position of every other organ two or more levels away in
:data:`lion_nnunet.labels.BODY_LEVELS` (head 0 ... pelvis 5): a part of the kidneys (level 4)
above the heart's median (level 2), or brain (0) below the liver's (3), is impossible (organs
whose medians are themselves the wrong way round are not used as references: the one in most
such pairs is dropped until the rest agree). Such parts
are left out of the organ map the report and flags use, and the flag score names them
(``misplaced_organs``). The organ map written to disk stays as the model predicted it.

Arrays are numpy (z, y, x) on the PET grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import cc3d
import numpy as np
import SimpleITK as sitk

from lion_nnunet.labels import BODY_LEVELS, LabelSet

#: Two organs this many levels apart (or more) in BODY_LEVELS are checked against each other.
MIN_LEVEL_GAP = 2


@dataclass(frozen=True)
class Misplaced:
    """Parts of one organ in an impossible place: ``ml`` of ``organ`` lying ``where`` ("above"
    or "below") the median position of ``anchor`` along the body axis."""

    organ: str
    ml: float
    where: str
    anchor: str

    def sentence(self) -> str:
        """The flag reason, e.g. "3.2 ml labelled kidneys lies above the heart (...)"."""
        return (
            f"{self.ml:.1f} ml labelled {self.organ.replace('_', ' ')} lies {self.where} the "
            f"{self.anchor.replace('_', ' ')} (anatomically impossible; left out of nearest "
            "organs and organ flags)"
        )


def superior_mm(image: sitk.Image, index_zyx: np.ndarray) -> np.ndarray:
    """Position (mm) along the patient's superior axis (LPS z) of voxel indices (n, 3) (z, y, x)."""
    d = np.array(image.GetDirection(), float).reshape(3, 3)
    step = d[2] * np.array(image.GetSpacing(), float)  # mm of LPS z per index step (x, y, z)
    return float(image.GetOrigin()[2]) + np.asarray(index_zyx, float)[:, ::-1] @ step


def _wrong_way_round(upper: str, lower: str, median: dict[str, float]) -> bool:
    """``upper`` lies two or more levels above ``lower`` but its median is not above it."""
    gap = BODY_LEVELS[lower] - BODY_LEVELS[upper]
    return gap >= MIN_LEVEL_GAP and median[upper] <= median[lower]


def _consistent(median: dict[str, float]) -> dict[str, float]:
    """The organs whose medians agree with BODY_LEVELS pairwise: while a pair is the wrong way
    round, the organ in most such pairs is dropped (a wholly misplaced organ must not make the
    right ones look misplaced)."""
    median = dict(median)
    while True:
        wrong = {name: sum(_wrong_way_round(name, o, median) or _wrong_way_round(o, name, median)
                           for o in median) for name in median}  # fmt: skip
        worst = max(wrong, key=lambda name: wrong[name], default=None)
        if worst is None or wrong[worst] == 0:
            return median
        del median[worst]


def misplaced_organs(
    organs: np.ndarray, label_set: LabelSet, image: sitk.Image
) -> tuple[np.ndarray, list[Misplaced]]:
    """The organ map without parts in impossible places, and those parts (largest first).

    Args:
        organs: organ label map (z, y, x), the label set's organ ids.
        label_set: organ names and ids.
        image: the PET image (SimpleITK) whose grid ``organs`` is on: spacing, origin, direction.

    Returns:
        (organ map with the misplaced parts set to 0, :class:`Misplaced` per organ, anchor and
        side). The map is returned as given when nothing is misplaced.
    """
    organs = np.asarray(organs)
    voxel_ml = float(np.prod(image.GetSpacing())) / 1000.0
    present = {name: label for name, label in zip(label_set.organ_names, label_set.organ_labels,
                                                  strict=True)
               if name in BODY_LEVELS and np.any(organs == label)}  # fmt: skip
    median = {name: float(np.median(superior_mm(image, np.argwhere(organs == label))))
              for name, label in present.items()}  # fmt: skip
    median = _consistent(median)
    found: dict[tuple[str, str, str], float] = {}
    cleaned = organs
    for name, label in present.items():
        level = BODY_LEVELS[name]
        anchors = sorted((abs(BODY_LEVELS[a] - level), a) for a in median
                         if abs(BODY_LEVELS[a] - level) >= MIN_LEVEL_GAP)  # fmt: skip
        if not anchors:
            continue
        parts, n = cc3d.connected_components((organs == label).astype(np.uint8),
                                             connectivity=26, return_N=True)  # fmt: skip
        stats = cc3d.statistics(parts)
        centre = superior_mm(image, np.asarray(stats["centroids"][1 : n + 1]))
        for i in range(1, n + 1):
            for _, anchor in reversed(anchors):  # the farthest level first
                below_anchor = BODY_LEVELS[anchor] < level
                if below_anchor == (centre[i - 1] > median[anchor]):
                    key = (name, "above" if below_anchor else "below", anchor)
                    found[key] = found.get(key, 0.0) + float(stats["voxel_counts"][i]) * voxel_ml
                    if cleaned is organs:
                        cleaned = organs.copy()
                    cleaned[parts == i] = 0
                    break
    out = [Misplaced(o, ml, w, a) for (o, w, a), ml in found.items()]
    return cleaned, sorted(out, key=lambda m: -m.ml)
