"""A case's prompt (what a reader gave: its click file) and the edit it makes of the prediction.

The one seam between prediction and interaction is the case record: ``Case.prompt`` (a
:class:`Prompt`, None without clicks), given by ``lion predict --clicks``
(:func:`lion_nnunet.interactive.click_inputs.attach_click_files`). The run loop
(:mod:`lion_nnunet.inference.run_loop`) then calls :meth:`Prompt.read` on the loaded PET, and
:meth:`CaseClicks.edit` on the filtered tumor mask: the clicks are applied after the filters
(``--min-volume-ml``, ``--suv-threshold``, ``--remove-in-organ``), as a click is the reader's
word. A model trained without clicks gets the rule-based edit (:mod:`.rule_edit`); a click
model (``nnUNetTrainer_LION_Clicks``) instead takes the clicks into its input channels
(:meth:`CaseClicks.model_input`, before the network runs), and its mask is filtered as any
prediction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .clickfile import Clicks, read_clicks, to_simple
from .model_input import CLICK_MODEL, click_channels
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

    def model_input(self, tensor, props: dict, predictor, encoding: str):
        """A click model's input: the preprocessed image ``tensor`` (c, z, y, x) and the two
        click channels on its grid (:mod:`.model_input`); ``predictor`` is nnU-Net's."""
        import torch

        managers = (predictor.plans_manager, predictor.configuration_manager)
        channels = click_channels(self.clicks, props, *managers, tensor.shape[1:], encoding)
        return torch.cat([tensor, torch.from_numpy(channels).to(tensor.dtype)])

    def model_record(self, encoding: str) -> dict:
        """report.json's keys for clicks given to a click model."""
        return {"click_mode": CLICK_MODEL,
                "clicks": {"file": str(self.prompt.click_file), **to_simple(self.clicks),
                           "encoding": encoding}}  # fmt: skip
