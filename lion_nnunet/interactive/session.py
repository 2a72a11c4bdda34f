"""Local refinement of a tumor mask by clicks: one session object, in nnInteractive's style.

nnInteractive's inference session (MIC-DKFZ/nnInteractive) holds the image, the current mask
and the interactions; each interaction updates the mask in place and computes only the region it
can change. :class:`RefinementSession` does the same for LION::

    session = RefinementSession()
    session.set_image(suv, spacing_zyx)          # numpy (z, y, x), SUV; spacing in mm
    session.set_target_buffer(tumor)             # the mask to refine, edited in place
    session.add_point_interaction((z, y, x), include_interaction=True)    # tumor click
    session.add_point_interaction((z, y, x), include_interaction=False)   # background click
    session.mask                                 # the current mask (the same array)
    session.reset_interactions()                 # back to the mask given to set_target_buffer

Coordinates index the arrays as given (z, y, x for SimpleITK's arrays; a click file's (i, j, k)
is (k, j, i) here, see :func:`apply_clicks`). Each click writes only inside its box
(:class:`Edit`); every voxel outside it keeps its value bit for bit, and the voxels it replaced
are kept, so :meth:`~RefinementSession.reset_interactions` restores them box by box.

Two ways a click becomes a mask, chosen by the model:

* **rule-based edit** (every model trained without clicks; what this module does): the rule of
  :mod:`lion_nnunet.interactive.rule_edit` on the SUV, the box is the click's reach (tumor
  click) or the removed component's bounding box (background click);
* **a click model** (``nnUNetTrainer_LION_Clicks``): :meth:`~RefinementSession._propose` is
  where it plugs in; :class:`lion_nnunet.interactive.model_session.ClickModelSession` runs the
  network's sliding window on the click's crop (the encoding's reach plus half a patch) with
  every click so far in its click channels, and returns the crop's extent on the PET grid and
  its tumor mask there. The in-place update, the undo record and the locality stay as they are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from lion_nnunet.errors import LionError
from lion_nnunet.interactive.clickfile import Clicks

from .rule_edit import (
    FRACTION_OF_PEAK,
    PEAK_RADIUS_MM,
    REACH_MM,
    Box,
    Point,
    tumor_click_region,
    tumor_component,
)

#: report.json's ``click_mode`` for a model trained without clicks.
RULE_BASED = "rule-based edit"


@dataclass
class Edit:
    """One click and what it changed.

    Attributes:
        name: "tumor" (include) or "background" (exclude).
        point: the clicked voxel (z, y, x).
        box: the box the click wrote (slices z, y, x); None when it changed nothing.
        added, removed: voxels turned to tumor / to background.
    """

    name: str
    point: Point
    box: Box | None = None
    added: int = 0
    removed: int = 0
    _before: np.ndarray | None = field(default=None, repr=False)


class RefinementSession:
    """One image, its current tumor mask and the clicks given so far (see the module doc).

    Args:
        fraction: a tumor click's threshold as a fraction of the local peak SUV.
        peak_radius_mm: the local peak is the maximum SUV within this distance (mm).
        reach_mm: a tumor click changes only voxels within this distance (mm).

    Examples:
        >>> import numpy as np
        >>> suv = np.ones((20, 20, 20), np.float32); suv[8:11, 8:11, 8:11] = 10.0
        >>> session = RefinementSession()
        >>> session.set_image(suv, (2.0, 2.0, 2.0))
        >>> session.set_target_buffer(np.zeros(suv.shape, np.uint8))
        >>> session.add_point_interaction((9, 9, 9)).added    # the 3x3x3 lesion
        27
        >>> session.add_point_interaction((9, 9, 9), include_interaction=False).removed
        27
        >>> int(session.mask.sum())
        0
    """

    def __init__(
        self,
        fraction: float = FRACTION_OF_PEAK,
        peak_radius_mm: float = PEAK_RADIUS_MM,
        reach_mm: float = REACH_MM,
    ) -> None:
        if not 0 < fraction <= 1:
            raise LionError(f"fraction {fraction:g}: expected a fraction of the peak in (0, 1]")
        if not 0 < peak_radius_mm <= reach_mm:
            raise LionError(f"peak radius {peak_radius_mm:g} mm and reach {reach_mm:g} mm: "
                            "expected 0 < peak radius <= reach")  # fmt: skip
        self.fraction = fraction
        self.peak_radius_mm = peak_radius_mm
        self.reach_mm = reach_mm
        self.suv: np.ndarray | None = None
        self.spacing: tuple[float, float, float] | None = None
        self._mask: np.ndarray | None = None
        self.interactions: list[Edit] = []

    def set_image(self, suv: np.ndarray, spacing: Sequence[float]) -> None:
        """The PET in SUV (3-D array) and its voxel spacing in mm, in the array's axis order."""
        suv = np.asarray(suv)
        if suv.ndim != 3 or len(spacing) != 3:
            raise LionError(f"expected a 3-D image and 3 spacings, got shape {suv.shape} and "
                            f"spacing {tuple(spacing)}")  # fmt: skip
        self.suv = suv
        self.spacing = tuple(float(s) for s in spacing)  # type: ignore[assignment]
        self._mask = None
        self.interactions = []

    def set_target_buffer(self, mask: np.ndarray) -> None:
        """The mask to refine (the prediction; 0/1, the image's shape), edited in place."""
        if self.suv is None:
            raise LionError("set_image first: the session has no image")
        if mask.shape != self.suv.shape:
            raise LionError(f"mask of shape {mask.shape} on an image of shape {self.suv.shape}")
        self._mask = mask
        self.interactions = []

    @property
    def mask(self) -> np.ndarray:
        """The current mask (the array given to :meth:`set_target_buffer`)."""
        if self._mask is None:
            raise LionError("set_target_buffer first: the session has no mask")
        return self._mask

    def add_point_interaction(
        self, coords: Sequence[int], include_interaction: bool = True
    ) -> Edit:
        """A tumor (include) or background (exclude) click at voxel ``coords``; returns its Edit."""
        mask = self.mask
        point = tuple(int(c) for c in coords)
        if len(point) != 3 or not all(0 <= p < n for p, n in zip(point, mask.shape, strict=True)):
            raise LionError(f"click {list(coords)} lies outside the image of shape {mask.shape}")
        edit = Edit("tumor" if include_interaction else "background", point)  # type: ignore[arg-type]
        proposed = self._propose(point, include_interaction)
        if proposed is not None:
            box, new = proposed
            old = mask[box]
            before = old.astype(bool)
            after = new.astype(bool)
            edit.added = int(np.count_nonzero(after & ~before))
            edit.removed = int(np.count_nonzero(before & ~after))
            if edit.added or edit.removed:
                edit.box, edit._before = box, old.copy()
                old[...] = after  # in place, inside the box only
        self.interactions.append(edit)
        return edit

    def _propose(self, point: Point, include: bool) -> tuple[Box, np.ndarray] | None:
        """The click's box and the mask it proposes there (None: nothing to change).

        The rule-based edit. A click model plugs in here (module doc): re-run the sliding-window
        tiles that overlap the click's reach with the click channels and return their box and
        mask.
        """
        mask = self.mask
        if include:
            if mask[point]:
                return None
            box, region = tumor_click_region(self.suv, point, self.spacing, self.fraction,
                                             self.peak_radius_mm, self.reach_mm)  # fmt: skip
            return box, mask[box].astype(bool) | region
        found = tumor_component(mask, point)
        if found is None:
            return None
        box, component = found
        return box, mask[box].astype(bool) & ~component

    def reset_interactions(self) -> None:
        """Undo every click, newest first: the mask is again the one given to the session."""
        for edit in reversed(self.interactions):
            if edit.box is not None:
                self.mask[edit.box] = edit._before
        self.interactions = []


def apply_clicks(session: RefinementSession, clicks: Clicks) -> list[Edit]:
    """Give a click file's clicks to a session, in the protocol's order; returns the edits.

    Clicks are (i, j, k) voxel indices (nibabel's order); the session's arrays are SimpleITK's
    (z, y, x) = (k, j, i). Order: the protocol's click pairs, tumor click 1, background click 1,
    tumor click 2, ... (step n of autoPET IV has the first n of each kind), the rest of the
    longer list after.
    """
    pairs = max(len(clicks.tumor), len(clicks.background))
    edits = []
    for n in range(pairs):
        for name, points in (("tumor", clicks.tumor), ("background", clicks.background)):
            if n < len(points):
                i, j, k = points[n]
                edits.append(session.add_point_interaction((k, j, i), name == "tumor"))
    return edits


def rule_settings(session: RefinementSession) -> dict:
    """The rule's parameters as report.json records them."""
    from .rule_edit import CONNECTIVITY

    return {"fraction_of_peak": session.fraction, "peak_radius_mm": session.peak_radius_mm,
            "reach_mm": session.reach_mm, "connectivity": CONNECTIVITY}  # fmt: skip
