"""Loss pieces for the LION trainers, built the way nnU-Net builds its own losses.

nnU-Net's soft Dice (``MemoryEfficientSoftDiceLoss``) is the plain mean over the foreground
classes. With nine organ classes beside the tumor, the tumor then gets a tenth of the Dice
gradient, and on the project's synthetic benchmark the organ-context model learned organs long
before tumor. :class:`ClassWeightedSoftDiceLoss` is the same Dice with a weighted mean over the
classes (tumor weight ``w``, organs 1): ``w = 0`` for organs gives "Dice over the tumor only".
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss
from nnunetv2.utilities.ddp_allgather import AllGatherGrad


class ClassWeightedSoftDiceLoss(MemoryEfficientSoftDiceLoss):
    """nnU-Net's memory-efficient soft Dice with a weighted mean over classes.

    Args:
        class_weights: one weight per class the Dice sees (the foreground classes when
            ``do_bg=False``, in label order); the loss is ``-sum(w_c * dice_c) / sum(w_c)``.
        The other arguments are :class:`MemoryEfficientSoftDiceLoss`'s.

    Examples:
        >>> import torch
        >>> loss = ClassWeightedSoftDiceLoss([1.0, 0.0], do_bg=False, batch_dice=True, ddp=False)
        >>> target = torch.ones(1, 1, 4, 4, 4)  # every voxel is class 1
        >>> right = torch.nn.functional.one_hot(target[:, 0].long(), 3).movedim(-1, 1).float()
        >>> round(float(loss(right, target)), 4)  # class 1 perfect; class 2 weighs nothing
        -1.0
        >>> wrong = right[:, [0, 2, 1]]  # class 2 predicted where class 1 is
        >>> round(float(loss(wrong, target)), 4)  # class 1 Dice (0 + 1) / (64 + 0 + 1)
        -0.0154
    """

    def __init__(
        self,
        class_weights: Sequence[float],
        apply_nonlin=None,
        batch_dice: bool = False,
        do_bg: bool = True,
        smooth: float = 1.0,
        ddp: bool = True,
    ) -> None:
        super().__init__(apply_nonlin, batch_dice, do_bg, smooth, ddp)
        weights = torch.as_tensor(list(class_weights), dtype=torch.float32)
        if weights.ndim != 1 or (weights < 0).any() or float(weights.sum()) <= 0:
            raise ValueError(
                f"class_weights must be non-negative with a positive sum, got {list(class_weights)}"
            )
        self.register_buffer("class_weights", weights)

    def forward(self, x: torch.Tensor, y: torch.Tensor, loss_mask=None) -> torch.Tensor:
        if self.apply_nonlin is not None:
            x = self.apply_nonlin(x)
        axes = tuple(range(2, x.ndim))
        with torch.no_grad():
            if x.ndim != y.ndim:
                y = y.view((y.shape[0], 1, *y.shape[1:]))
            if x.shape == y.shape:
                y_onehot = y.to(torch.float32)
            else:
                y_onehot = torch.zeros(x.shape, device=x.device, dtype=torch.float32)
                y_onehot.scatter_(1, y.long(), 1)
            if not self.do_bg:
                y_onehot = y_onehot[:, 1:]
            mask = 1 if loss_mask is None else loss_mask
            sum_gt = (y_onehot * mask).sum(axes, dtype=torch.float32)
        if not self.do_bg:
            x = x[:, 1:]
        intersect = (x * y_onehot * mask).sum(axes, dtype=torch.float32)
        sum_pred = (x * mask).sum(axes, dtype=torch.float32)
        if self.batch_dice:
            if self.ddp:
                intersect = AllGatherGrad.apply(intersect).sum(0, dtype=torch.float32)
                sum_pred = AllGatherGrad.apply(sum_pred).sum(0, dtype=torch.float32)
                sum_gt = AllGatherGrad.apply(sum_gt).sum(0, dtype=torch.float32)
            intersect, sum_pred, sum_gt = (t.sum(0, dtype=torch.float32) for t in
                                           (intersect, sum_pred, sum_gt))  # fmt: skip
        dc = (2 * intersect + self.smooth) / (sum_gt + sum_pred + float(self.smooth)).clamp_min(
            1e-8
        )
        if dc.shape[-1] != self.class_weights.numel():
            raise ValueError(
                f"ClassWeightedSoftDiceLoss: {dc.shape[-1]} classes but "
                f"{self.class_weights.numel()} class weights"
            )
        w = self.class_weights.to(dc.device)
        return -(dc * w).sum(-1).div(w.sum()).mean()


def deep_supervision(loss: torch.nn.Module, num_scales: int, ddp: bool = False) -> torch.nn.Module:
    """Wrap a loss for deep supervision with nnU-Net's weights (1, 1/2, 1/4, ..., last 0)."""
    weights = np.array([1 / (2**i) for i in range(num_scales)])
    # nnU-Net sets a tiny weight instead of 0 under DDP (unused-parameter errors otherwise)
    weights[-1] = 1e-6 if ddp else 0
    return DeepSupervisionWrapper(loss, weights / weights.sum())
