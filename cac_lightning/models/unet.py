"""U-Net baseline of Hong et al. 2022 (section 2.4): the U-Net++ without its nested nodes.

Hong et al. trained "the U-Net with the same structure but without the dense skip connection
(x^{0,1-3}, x^{1,1-2} and x^{2,1})" for comparison. Nodes are named as in Fig. 3c: encoder
``x_{i}_0`` and decoder ``x_{i}_{depth-1-i}``; each decoder node sees its encoder node and the
up-sampled node below (the plain U-Net skip, Ronneberger et al. 2015).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from cac_lightning.models.blocks import ConvBlock, UpConv, check_channels, check_input
from cac_lightning.vessels import NUM_CLASSES

__all__ = ["UNet"]


class UNet(nn.Module):
    """2D U-Net with VGG blocks (two conv3x3-BN-ReLU), max-pool down, transposed-conv up.

    Args:
        in_channels: Input channels; 2 in the paper (HU image and HU > 130 mask). Default 2.
        num_classes: Output channels; 5 in the paper (background, LM, LAD, CX, RCA). Default
            :data:`~cac_lightning.vessels.NUM_CLASSES`.
        channels: Channels per row, top first; default (32, 64, 128, 256, 512) (paper), any
            length >= 2 (e.g. (8, 16, 32, 64) for a small CPU variant).

    Shape:
        forward: (B, in_channels, H, W) -> logits (B, num_classes, H, W); H and W must be
        divisible by 2**(len(channels)-1).
    """

    deep_supervision = False

    def __init__(
        self,
        in_channels: int = 2,
        num_classes: int = NUM_CLASSES,
        channels: Sequence[int] = (32, 64, 128, 256, 512),
    ) -> None:
        super().__init__()
        self.channels = check_channels(channels)
        self.depth = len(self.channels)
        self.in_channels = int(in_channels)
        self.num_classes = int(num_classes)
        ch, top = self.channels, self.depth - 1
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2)
        self.nodes = nn.ModuleDict()
        self.ups = nn.ModuleDict()
        for i in range(self.depth):
            self.nodes[f"x_{i}_0"] = ConvBlock(self.in_channels if i == 0 else ch[i - 1], ch[i])
        for j in range(1, self.depth):
            i = top - j
            self.ups[f"up_{i}_{j}"] = UpConv(ch[i + 1], ch[i])
            self.nodes[f"x_{i}_{j}"] = ConvBlock(2 * ch[i], ch[i])
        self.head = nn.Conv2d(ch[0], self.num_classes, kernel_size=1)

    def forward(self, x: torch.Tensor, return_heads: bool = False) -> torch.Tensor:
        """Segment a batch of slices.

        Args:
            x: (B, in_channels, H, W) float input.
            return_heads: Return the stacked heads (1, B, num_classes, H, W) instead, the
                interface shared with :class:`~cac_lightning.models.unetplusplus.UNetPlusPlus`.

        Returns:
            Logits (B, num_classes, H, W), or (1, B, num_classes, H, W) with ``return_heads``.
        """
        check_input(x, self.in_channels, self.depth)
        skips = []
        for i in range(self.depth):
            if i:
                x = self.pool(x)
            x = self.nodes[f"x_{i}_0"](x)
            skips.append(x)
        for j in range(1, self.depth):
            i = self.depth - 1 - j
            up = self.ups[f"up_{i}_{j}"](x)
            x = self.nodes[f"x_{i}_{j}"](torch.cat([skips[i], up], dim=1))
        out = self.head(x)
        return out.unsqueeze(0) if return_heads else out
