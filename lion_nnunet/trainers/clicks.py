"""The click trainers: the LION recipe plus two click input channels (issue 25).

``nnUNetTrainer_LION_Clicks`` is :class:`~lion_nnunet.trainers.lion.nnUNetTrainer_LION` with
two hooks changed:

* ``build_network_architecture``: nnU-Net's network from the plans for the image channels plus
  a tumor-click and a background-click channel, wrapped so that the image alone means "no
  clicks" (:mod:`lion_nnunet.trainers.click_network`); nnU-Net calls the same hook at
  prediction, so stock ``nnUNetv2_predict`` runs the model as an automatic one;
* ``train_step`` / ``validation_step``: each patch of the batch gets clicks drawn from its own
  ground truth after augmentation (:func:`lion_nnunet.interactive.patch_clicks.patch_clicks`:
  the autoPET IV robot user's logic on the tumor label, no clicks for a quarter of the
  patches), encoded (:mod:`lion_nnunet.interactive.encoding`) and appended to the PET.

The loss, the sampling and the organ classes (auxiliary outputs) are LION's, unchanged.
``lion_click_encoding`` is recorded in the network, so prediction encodes clicks the way the
model was trained: Gaussian blobs for ``nnUNetTrainer_LION_Clicks`` (ahead of distance maps on
the demo phantoms, ``benchmarks/results/clicks/``). ``_demo`` variants run the demo's CPU schedule
(:class:`~lion_nnunet.trainers.cpu_demo.nnUNetTrainer_LION_tumorDice_demo`).
"""

from __future__ import annotations

import numpy as np
import torch

from lion_nnunet.interactive.encoding import encode_clicks
from lion_nnunet.interactive.patch_clicks import NO_CLICK_PROBABILITY, patch_clicks
from lion_nnunet.labels import TUMOR_LABEL
from lion_nnunet.trainers.click_network import ClickInputNetwork
from lion_nnunet.trainers.cpu_demo import nnUNetTrainer_LION_tumorDice_demo
from lion_nnunet.trainers.lion import nnUNetTrainer_LION


class nnUNetTrainer_LION_Clicks(nnUNetTrainer_LION):
    """LION with tumor and background clicks as two extra input channels."""

    #: How clicks become channels: "edt" or "gauss" (:mod:`lion_nnunet.interactive.encoding`).
    #: Gaussian blobs, picked by measurement (``benchmarks/results/clicks/``, docs/interactive.md).
    lion_click_encoding: str = "gauss"
    #: Share of training patches given no clicks (the automatic model).
    lion_no_click_probability: float = NO_CLICK_PROBABILITY

    @classmethod
    def build_network_architecture(
        cls,
        plans_manager,
        configuration_manager,
        num_input_channels: int,
        num_output_channels: int,
        enable_deep_supervision: bool = True,
    ) -> torch.nn.Module:
        network = super().build_network_architecture(
            plans_manager, configuration_manager, num_input_channels + 2, num_output_channels,
            enable_deep_supervision,
        )  # fmt: skip
        return ClickInputNetwork(network, num_input_channels, cls.lion_click_encoding)

    def _with_clicks(self, batch: dict) -> dict:
        """The batch with each patch's click channels appended to its data."""
        data, target = batch["data"], batch["target"]
        full = target[0] if isinstance(target, list) else target
        tumor = (full[:, 0] == TUMOR_LABEL).cpu().numpy()
        image = data[:, 0].cpu().numpy()
        spacing = self.configuration_manager.spacing
        rng = np.random.default_rng(np.random.randint(2**31))  # LION_SEED seeds np.random
        channels = []
        for k in range(data.shape[0]):
            t, b = patch_clicks(tumor[k], image[k], rng, self.lion_no_click_probability)
            channels.append(encode_clicks(t, b, image[k].shape, spacing, self.lion_click_encoding))
        clicks = torch.from_numpy(np.stack(channels)).to(data.dtype)
        return {**batch, "data": torch.cat([data, clicks], dim=1)}

    def train_step(self, batch: dict) -> dict:
        return super().train_step(self._with_clicks(batch))

    def validation_step(self, batch: dict) -> dict:
        return super().validation_step(self._with_clicks(batch))


class nnUNetTrainer_LION_Clicks_demo(nnUNetTrainer_LION_Clicks, nnUNetTrainer_LION_tumorDice_demo):
    """The click trainer on ``lion demo``'s CPU set-up (AdamW, tumor-only Dice, every patch with
    foreground) with the schedule it was measured with: 20 epochs x 50 iterations and nnU-Net's
    augmentation (the demo's own trainer moved to 28 epochs without augmentation later); clicks
    as Gaussian blobs (the encoding the comparison in ``benchmarks/clicks.py`` chose; named
    ``_ClicksGauss_demo`` in its stored run)."""

    lion_click_encoding = "gauss"
    lion_num_epochs = 20
    lion_augmentation = True


class nnUNetTrainer_LION_ClicksEdt_demo(nnUNetTrainer_LION_Clicks_demo):
    """The demo click trainer with clicks as Euclidean distance maps: the other arm of the
    encoding comparison (``benchmarks/clicks.py``; named ``_Clicks_demo`` in its stored run)."""

    lion_click_encoding = "edt"


class nnUNetTrainer_LION_Clicks_1ep_4it(nnUNetTrainer_LION_ClicksEdt_demo):
    """Tests and docs: the demo click trainer, 1 epoch x 4 iterations, distance maps (whose reach,
    a 0.5 level at 20 mm, tests/test_click_trainer.py checks by hand)."""

    lion_num_epochs, lion_iterations_per_epoch, lion_val_iterations_per_epoch = 1, 4, 1
