"""Segmentation losses: multi-class focal loss (Hong et al. 2022 eq. 4), cross-entropy, soft Dice.

All losses take logits (B, C, H, W) and an int64 target (B, H, W) with values in 0..C-1 (or
``ignore_index``) and return a float32 scalar. Logits are cast to float32 before the softmax, so
the losses are safe under bf16/fp16 autocast.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cac_lightning.errors import CACError

__all__ = [
    "CRITERIA",
    "CrossEntropyLoss",
    "DiceFocalLoss",
    "DiceLoss",
    "FocalLoss",
    "build_criterion",
]


def _weight_buffer(module: nn.Module, weight: Sequence[float] | None) -> None:
    w = None if weight is None else torch.as_tensor(list(weight), dtype=torch.float32)
    module.register_buffer("weight", w, persistent=False)


class FocalLoss(nn.Module):
    """Multi-class softmax focal loss (Lin et al. 2020; Hong et al. 2022 eq. 4).

    Per pixel, FL = -alpha * (1 - p_t)**gamma * log(p_t), p_t the softmax probability of the true
    class (log p_t from ``log_softmax`` in float32). The result is the mean over non-ignored
    pixels; with per-class ``weight`` it is the weighted mean sum(w_t * FL) / sum(w_t), like
    ``F.cross_entropy``, so gamma=0, alpha=1 gives exactly the cross-entropy.

    Args:
        alpha: Scale alpha_t (one value for all classes). Default 0.5 (paper).
        gamma: Focusing parameter. Default 3 (paper).
        weight: Optional per-class weights, length C.
        ignore_index: Target value whose pixels are left out. Default -100.

    Shape:
        logits (B, C, H, W), target (B, H, W) int64 -> scalar float32.
    """

    def __init__(
        self,
        alpha: float = 0.5,
        gamma: float = 3.0,
        weight: Sequence[float] | None = None,
        ignore_index: int = -100,
    ) -> None:
        super().__init__()
        self.alpha = float(alpha)
        self.gamma = float(gamma)
        self.ignore_index = int(ignore_index)
        _weight_buffer(self, weight)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Focal loss of ``logits`` (B, C, H, W) against ``target`` (B, H, W)."""
        logp = F.log_softmax(logits.float(), dim=1)
        valid = target != self.ignore_index
        safe = torch.where(valid, target, torch.zeros_like(target))
        logp_t = logp.gather(1, safe.unsqueeze(1)).squeeze(1)
        p_t = logp_t.exp()
        loss = -self.alpha * (1.0 - p_t).clamp_min(0.0).pow(self.gamma) * logp_t
        w = valid.float()
        if self.weight is not None:
            w = w * self.weight.to(logits.device)[safe]
        return (loss * w).sum() / w.sum().clamp_min(torch.finfo(torch.float32).tiny)


class CrossEntropyLoss(nn.Module):
    """Cross-entropy on float32 logits (``F.cross_entropy``).

    Args:
        weight: Optional per-class weights, length C.
        ignore_index: Target value whose pixels are left out. Default -100.
        label_smoothing: Default 0.
    """

    def __init__(
        self,
        weight: Sequence[float] | None = None,
        ignore_index: int = -100,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__()
        self.ignore_index = int(ignore_index)
        self.label_smoothing = float(label_smoothing)
        _weight_buffer(self, weight)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy of ``logits`` (B, C, H, W) against ``target`` (B, H, W)."""
        weight = None if self.weight is None else self.weight.to(logits.device)
        return F.cross_entropy(
            logits.float(),
            target,
            weight=weight,
            ignore_index=self.ignore_index,
            label_smoothing=self.label_smoothing,
        )


class DiceLoss(nn.Module):
    """Soft multi-class Dice loss, 1 - mean_c Dice_c, over the calcium classes by default.

    Dice_c = (2 * sum(p_c * y_c) + smooth) / (sum(p_c) + sum(y_c) + smooth), the sums taken over
    the whole batch (batch Dice: most slices hold no calcium, per-slice Dice would be unstable),
    p the float32 softmax and y the one-hot target; ignored pixels are left out. With ``weight``
    the class mean is weighted.

    Args:
        include_background: Also average class 0. Default False.
        smooth: Added to numerator and denominator. Default 1e-5.
        weight: Optional per-class weights, length C (entries of left-out classes unused).
        ignore_index: Target value whose pixels are left out. Default -100.
    """

    def __init__(
        self,
        include_background: bool = False,
        smooth: float = 1e-5,
        weight: Sequence[float] | None = None,
        ignore_index: int = -100,
    ) -> None:
        super().__init__()
        self.include_background = bool(include_background)
        self.smooth = float(smooth)
        self.ignore_index = int(ignore_index)
        _weight_buffer(self, weight)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Dice loss of ``logits`` (B, C, H, W) against ``target`` (B, H, W)."""
        n_classes = logits.shape[1]
        prob = F.softmax(logits.float(), dim=1)
        valid = (target != self.ignore_index).unsqueeze(1).float()
        safe = torch.where(target != self.ignore_index, target, torch.zeros_like(target))
        onehot = F.one_hot(safe, n_classes).permute(0, 3, 1, 2).float() * valid
        prob = prob * valid
        dims = (0, 2, 3)
        inter = (prob * onehot).sum(dims)
        denom = prob.sum(dims) + onehot.sum(dims)
        dice = (2.0 * inter + self.smooth) / (denom + self.smooth)
        start = 0 if self.include_background else 1
        dice = dice[start:]
        if self.weight is None:
            return 1.0 - dice.mean()
        w = self.weight.to(logits.device)[start:]
        return 1.0 - (dice * w).sum() / w.sum()


class DiceFocalLoss(nn.Module):
    """Weighted sum ``lambda_dice * Dice + lambda_focal * Focal``.

    Args:
        lambda_dice: Weight of the Dice loss. Default 1.
        lambda_focal: Weight of the focal loss. Default 1.
        alpha: Focal alpha. Default 0.5 (paper).
        gamma: Focal gamma. Default 3 (paper).
        weight: Optional per-class weights, passed to both.
        ignore_index: Passed to both. Default -100.
        include_background: Dice over class 0 too. Default False.
        smooth: Dice smoothing. Default 1e-5.
    """

    def __init__(
        self,
        lambda_dice: float = 1.0,
        lambda_focal: float = 1.0,
        alpha: float = 0.5,
        gamma: float = 3.0,
        weight: Sequence[float] | None = None,
        ignore_index: int = -100,
        include_background: bool = False,
        smooth: float = 1e-5,
    ) -> None:
        super().__init__()
        self.lambda_dice = float(lambda_dice)
        self.lambda_focal = float(lambda_focal)
        self.dice = DiceLoss(include_background, smooth, weight, ignore_index)
        self.focal = FocalLoss(alpha, gamma, weight, ignore_index)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Weighted sum of the Dice and focal losses."""
        return self.lambda_dice * self.dice(logits, target) + self.lambda_focal * self.focal(
            logits, target
        )


CRITERIA: dict[str, type[nn.Module]] = {
    "focal": FocalLoss,
    "ce": CrossEntropyLoss,
    "dice": DiceLoss,
    "dice_focal": DiceFocalLoss,
}


def build_criterion(name: str, **kwargs: Any) -> nn.Module:
    """Build a loss by name.

    Args:
        name: "focal" (alpha 0.5, gamma 3: Hong et al. 2022), "ce", "dice" or "dice_focal".
        **kwargs: Constructor arguments of the loss class.

    Returns:
        The loss module: ``loss(logits (B, C, H, W), target (B, H, W))`` -> float32 scalar.

    Raises:
        CACError: Unknown name (the message lists the valid names).
    """
    if name not in CRITERIA:
        raise CACError(f"unknown criterion {name!r}; valid names: {', '.join(CRITERIA)}")
    return CRITERIA[name](**kwargs)
