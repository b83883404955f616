"""Pad a library network's input to the size it needs and crop its logits back.

Library networks need sides that are a multiple of their total stride (2**depth), and some need
a minimum size (instance norm needs at least 2x2 pixels at the bottleneck: DynUNet,
BasicUNetPlusPlus, SwinUNETR; a small scan window would otherwise fail).
:class:`PaddedNet` wraps such a network so that ``forward`` takes any (H, W) the data pipeline
gives and returns ONE logits tensor of that same (H, W) (a network that returns a list of
outputs, as MONAI's BasicUNetPlusPlus does, gives its last).

The pad value is 0 in both channels, which is air in the input of
:func:`~cac_lightning.models.inputs.make_input`: the image channel maps the window's lower end
(-1024 HU, the HU of air, with the default window) and everything below it to 0, and the mask
channel is 0 below the calcium threshold. The padding is split between the two sides, as the
Predictor pads HU slices with air to :attr:`PaddedNet.multiple` before building the input.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["PAD_VALUE", "PaddedNet"]

PAD_VALUE = 0.0
"""The input value padding adds: air in both channels of ``make_input`` (see module doc)."""


def _padded_side(size: int, multiple: int, min_size: int) -> int:
    """The smallest side >= ``size`` and >= ``min_size`` that is a multiple of ``multiple``."""
    side = max(size, min_size)
    return -(-side // multiple) * multiple


class PaddedNet(nn.Module):
    """A network whose input is padded to its multiple (and minimum size) and whose logits are
    cropped back to the input's (H, W).

    Args:
        net: maps (B, C, H', W') with H', W' multiples of ``multiple`` (and >= ``min_size``) to
            logits (B, K, H', W'), or a list of them whose last is the output. Stored as the
            child ``net``: its state-dict keys are ``net.<the library's keys>``.
        multiple: the side multiple ``net`` needs.
        min_size: the smallest side ``net`` takes (0: none).

    Shape:
        forward: (B, C, H, W) for any H, W -> logits (B, K, H, W).
    """

    def __init__(self, net: nn.Module, multiple: int, min_size: int = 0) -> None:
        super().__init__()
        if multiple < 1 or min_size < 0:
            raise ValueError(f"multiple must be >= 1 and min_size >= 0, got {multiple}, {min_size}")
        self.net = net
        self.multiple = int(multiple)
        self.min_size = int(min_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = int(x.shape[-2]), int(x.shape[-1])
        ph = _padded_side(h, self.multiple, self.min_size) - h
        pw = _padded_side(w, self.multiple, self.min_size) - w
        top, left = ph // 2, pw // 2
        if ph or pw:
            x = F.pad(x, (left, pw - left, top, ph - top), value=PAD_VALUE)
        out = self.net(x)
        if isinstance(out, (list, tuple)):
            out = out[-1]
        return out[..., top : top + h, left : left + w] if ph or pw else out

    def extra_repr(self) -> str:
        return f"multiple={self.multiple}, min_size={self.min_size}"
