"""The refinement session with a click model: each click re-runs the network around it.

:class:`ClickModelSession` is :class:`~lion_nnunet.interactive.session.RefinementSession` with
its ``_propose`` step given to a click model (``nnUNetTrainer_LION_Clicks``): the in-place
update, the undo record and the locality stay the session's. For a click at voxel (z, y, x):

1. the click joins the session's clicks and is moved to nnU-Net's preprocessed grid
   (:func:`~lion_nnunet.interactive.model_input.to_network_grid`);
2. the region it can change is its encoding's reach (``reach_voxels``: 40 mm for distance
   maps) plus half a patch on each side: every sliding-window tile whose input the click
   changes lies inside it. The network runs nnU-Net's sliding window on that crop alone, with
   every click so far in the click channels;
3. the crop's logits go back to the PET grid over the crop's extent (nnU-Net's resampling of
   probabilities, then the transpose back), and the tumor class there is the proposed mask.

So a click costs the crop's tiles, not the whole image's. Within the crop the tiles are laid
out afresh, so near its border the logits can differ slightly from a whole re-prediction's
(the Gaussian-weighted tiles meet elsewhere); outside the crop nothing is touched.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lion_nnunet.errors import LionError

from .clickfile import Clicks
from .encoding import encode_clicks, reach_voxels
from .model_input import network_click_points, to_network_grid
from .session import Box, Point, RefinementSession


class ClickModelSession(RefinementSession):
    """A refinement session whose clicks go into a click model (see the module doc).

    Args:
        predictor: a :class:`~lion_nnunet.inference.predict.LionPredictor` of a click model
            (one fold: the first of the predictor's folds is used).
    """

    def __init__(self, predictor) -> None:
        super().__init__()
        if predictor.click_encoding is None:
            raise LionError(f"{predictor.model.folder}: not a click model (trained without click "
                            "channels); use RefinementSession (the rule-based edit)")  # fmt: skip
        self.predictor = predictor
        self.encoding: str = predictor.click_encoding
        self.clicks = Clicks()

    def set_image(self, suv: np.ndarray, spacing: Sequence[float]) -> None:
        """The PET in SUV (z, y, x) and its spacing (mm); preprocessed once, as nnU-Net does."""
        super().set_image(suv, spacing)
        props = {"spacing": [float(s) for s in spacing]}
        self._input, self._props = self.predictor.preprocess(
            np.asarray(suv, np.float32)[None], props
        )
        self.clicks = Clicks()

    def reset_interactions(self) -> None:
        super().reset_interactions()
        self.clicks = Clicks()

    def _propose(self, point: Point, include: bool) -> tuple[Box, np.ndarray] | None:
        import torch

        p = self.predictor.predictor
        self.clicks = self.clicks.added("tumor" if include else "background", point[::-1])
        forward = p.plans_manager.transpose_forward
        shape = tuple(self._input.shape[1:])
        centre = to_network_grid(point, self._props, forward, shape)
        reach = reach_voxels(self.encoding, p.configuration_manager.spacing)
        crop = tuple(
            slice(max(c - r - n // 2, 0), min(c + r + n // 2 + 1, s))
            for c, r, n, s in zip(centre, reach, p.configuration_manager.patch_size, shape,
                                  strict=True)
        )  # fmt: skip
        tumor, background = network_click_points(self.clicks, self._props, forward, shape)
        channels = encode_clicks(tumor, background, shape, p.configuration_manager.spacing,
                                 self.encoding)  # fmt: skip
        data = torch.cat([self._input, torch.from_numpy(channels)])[(slice(None), *crop)]
        with torch.inference_mode():
            p.network.load_state_dict(p.list_of_parameters[0])
            logits = p.predict_sliding_window_return_logits(data).float().cpu().numpy()
        box, labels = self._to_pet_grid(logits, crop)
        tumor_label = self.predictor.model.label_set.tumor_label
        return box, labels == tumor_label

    def _to_pet_grid(self, logits: np.ndarray, crop: tuple[slice, ...]) -> tuple[Box, np.ndarray]:
        """The crop's label map on the PET grid (z, y, x) and the box it covers there."""
        p = self.predictor.predictor
        props = self._props
        old = props["shape_after_cropping_and_before_resampling"]
        new = self._input.shape[1:]
        start = [b[0] for b in props["bbox_used_for_cropping"]]
        lo = [int(np.floor(s.start * o / n)) for s, o, n in zip(crop, old, new, strict=True)]
        hi = [min(int(np.ceil(s.stop * o / n)), o) for s, o, n in zip(crop, old, new, strict=True)]
        size = [h - low for low, h in zip(lo, hi, strict=True)]
        spacing_t = [props["spacing"][a] for a in p.plans_manager.transpose_forward]
        if list(logits.shape[1:]) != size:
            logits = p.configuration_manager.resampling_fn_probabilities(
                logits, size, p.configuration_manager.spacing, spacing_t
            )
        labels = np.argmax(logits, axis=0)  # LION's labels are classes, not regions
        transposed_box = [slice(b + low, b + h) for b, low, h in zip(start, lo, hi, strict=True)]
        back = p.plans_manager.transpose_backward
        box = tuple(transposed_box[a] for a in back)
        return box, labels.transpose(back)  # type: ignore[return-value]
