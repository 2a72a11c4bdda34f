"""A case's prompt (what a reader gave: its click file) and the edit it makes of the prediction.

The one seam between prediction and interaction is the case record: ``Case.prompt`` (a
:class:`Prompt`, None without clicks), given by ``lion predict --clicks``
(:func:`lion_nnunet.interactive.click_inputs.attach_click_files`). The run loop
(:mod:`lion_nnunet.inference.run_loop`) then calls :meth:`Prompt.read` on the loaded PET, and
:meth:`CaseClicks.edit` on the filtered tumor mask: the clicks are applied after the filters
(``--min-volume-ml``, ``--suv-threshold``, ``--remove-in-organ``), as a click is the reader's
word. Every model today is trained without clicks, so the edit is the rule-based one
(:mod:`.rule_edit`); a click model would instead take the prompt into its input channels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .clickfile import Clicks, read_clicks, to_simple
from .session import RULE_BASED, RefinementSession, apply_clicks, rule_settings


@dataclass(frozen=True)
class Prompt:
    """What a reader gave for one case: its click file (voxel or mm points, either form)."""

    click_file: Path

    def read(self, image: sitk.Image) -> CaseClicks:
        """The clicks as voxels of ``image`` (the loaded PET); LionError naming a bad point."""
        return CaseClicks(self, read_clicks(self.click_file, image=image))


@dataclass(frozen=True)
class CaseClicks:
    """One case's clicks, read against its PET."""

    prompt: Prompt
    clicks: Clicks

    def edit(
        self, tumor: np.ndarray, suv: np.ndarray, spacing_zyx: Sequence[float]
    ) -> tuple[np.ndarray, dict]:
        """The rule-based edit of ``tumor`` (z, y, x; edited in place) and report.json's keys."""
        session = RefinementSession()
        session.set_image(suv, spacing_zyx)
        session.set_target_buffer(tumor)
        edits = apply_clicks(session, self.clicks)
        effects = [
            {"name": e.name, "point": [int(v) for v in e.point[::-1]],
             "voxels_added": e.added, "voxels_removed": e.removed}
            for e in edits
        ]  # fmt: skip
        record = {
            "click_mode": RULE_BASED,
            "clicks": {"file": str(self.prompt.click_file), **to_simple(self.clicks),
                       "rule": rule_settings(session), "effects": effects},
        }  # fmt: skip
        return session.mask, record
