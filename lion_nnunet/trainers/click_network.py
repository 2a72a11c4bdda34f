"""The click model's network: nnU-Net's network from the plans with two more input channels.

:class:`ClickInputNetwork` wraps the network nnU-Net builds from the plans for the image
channels plus :data:`~lion_nnunet.interactive.encoding.CLICK_NAMES` (tumor, background). Given
the image channels alone, it appends zero click channels: no clicks. So everything that feeds a
model its image channels, as dataset.json declares them, works unchanged with a click model:
stock ``nnUNetv2_predict``, nnU-Net's validation at the end of training, ``lion predict``
without ``--clicks``, the input-channel checks (dataset.json still declares the PET alone).
``lion predict --clicks`` and the refinement session give it the click channels themselves.

nnU-Net builds the network through the trainer's ``build_network_architecture`` both in
training and at prediction, so checkpoints hold this wrapper's weights (keys ``network.*``).
"""

from __future__ import annotations

import torch
from torch import nn

from lion_nnunet.interactive.encoding import CLICK_NAMES


class ClickInputNetwork(nn.Module):
    """``network`` (built for ``image_channels`` + 2 inputs) that takes the image alone too.

    Args:
        network: nnU-Net's network from the plans, with ``image_channels + 2`` input channels.
        image_channels: the channels dataset.json declares (1 for LION: the PET).
        encoding: the click encoding the model was trained with
            (:mod:`lion_nnunet.interactive.encoding`); prediction encodes clicks the same way.
    """

    def __init__(self, network: nn.Module, image_channels: int, encoding: str) -> None:
        super().__init__()
        self.network = network
        self.image_channels = image_channels
        self.click_channels = len(CLICK_NAMES)
        self.click_encoding = encoding

    @property
    def decoder(self) -> nn.Module:
        """The wrapped network's decoder (nnU-Net switches deep supervision there)."""
        return self.network.decoder

    def forward(self, x: torch.Tensor):
        channels = x.shape[1]
        if channels == self.image_channels:  # no clicks: zero click channels
            zeros = x.new_zeros((x.shape[0], self.click_channels, *x.shape[2:]))
            x = torch.cat([x, zeros], dim=1)
        elif channels != self.image_channels + self.click_channels:
            raise ValueError(
                f"click model: input has {channels} channels; expected {self.image_channels} "
                f"(image) or {self.image_channels + self.click_channels} (image + clicks)"
            )
        return self.network(x)


def click_network(network: nn.Module) -> ClickInputNetwork | None:
    """The click wrapper of a (possibly compiled or DDP-wrapped) network, None for a plain one."""
    for attribute in ("module", "_orig_mod"):
        network = getattr(network, attribute, network)
    network = getattr(network, "_orig_mod", network)
    return network if isinstance(network, ClickInputNetwork) else None
