"""U-Net++ of Hong et al. 2022 (section 2.4, Fig. 3c) after Zhou et al. 2018.

Zhou, Rahman Siddiquee, Tajbakhsh, Liang, "UNet++: A Nested U-Net Architecture for Medical Image
Segmentation", DLMIA 2018. Node X^{i,j} (row i, column j, named ``x_{i}_{j}``) is

* j = 0: ConvBlock(maxpool(X^{i-1,0}))  (X^{0,0} takes the input),
* j > 0: ConvBlock(cat[X^{i,0}, ..., X^{i,j-1}, Up(X^{i+1,j-1})]),

for i + j <= depth - 1 (dense nested skips). Deep supervision puts one 1x1 head on each of
X^{0,1}, ..., X^{0,depth-1}; without it there is one head on X^{0,depth-1}.

Output convention: ``forward(x)`` always returns ONE tensor (B, num_classes, H, W): the head on
X^{0,depth-1} (``ds_output="final"``, Zhou's "fast mode") or the mean of all heads
(``ds_output="mean"``, "accurate mode"). ``forward(x, return_heads=True)`` returns every head
stacked (K, B, num_classes, H, W), shallowest first, which the LightningModule uses for the
deep-supervision loss (mean of the head losses).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from cac_lightning.models.blocks import ConvBlock, UpConv, check_channels, check_input
from cac_lightning.vessels import NUM_CLASSES

__all__ = ["UNetPlusPlus"]

DS_OUTPUTS = ("final", "mean")


class UNetPlusPlus(nn.Module):
    """2D U-Net++ with VGG blocks (two conv3x3-BN-ReLU), max-pool down, transposed-conv up.

    Args:
        in_channels: Input channels; 2 in the paper (HU image and HU > 130 mask). Default 2.
        num_classes: Output channels; 5 in the paper (background, LM, LAD, CX, RCA). Default
            :data:`~cac_lightning.vessels.NUM_CLASSES`.
        channels: Channels per row i, top first; default (32, 64, 128, 256, 512) (paper), any
            length >= 2.
        deep_supervision: One 1x1 head on each X^{0,j}, j >= 1 (Zhou et al. 2018). Default False.
        ds_output: With deep supervision, what ``forward`` returns: "final" (head on
            X^{0,depth-1}, default) or "mean" (mean of all heads).

    Shape:
        forward: (B, in_channels, H, W) -> logits (B, num_classes, H, W); H and W must be
        divisible by 2**(len(channels)-1).
    """

    def __init__(
        self,
        in_channels: int = 2,
        num_classes: int = NUM_CLASSES,
        channels: Sequence[int] = (32, 64, 128, 256, 512),
        deep_supervision: bool = False,
        ds_output: str = "final",
    ) -> None:
        super().__init__()
        if ds_output not in DS_OUTPUTS:
            raise ValueError(f"ds_output must be one of {DS_OUTPUTS}, got {ds_output!r}")
        self.channels = check_channels(channels)
        self.depth = len(self.channels)
        self.in_channels = int(in_channels)
        self.num_classes = int(num_classes)
        self.deep_supervision = bool(deep_supervision)
        self.ds_output = ds_output
        ch = self.channels
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2)
        self.nodes = nn.ModuleDict()
        self.ups = nn.ModuleDict()
        for i in range(self.depth):
            self.nodes[f"x_{i}_0"] = ConvBlock(self.in_channels if i == 0 else ch[i - 1], ch[i])
        for i in range(self.depth - 1):
            for j in range(1, self.depth - i):
                self.ups[f"up_{i}_{j}"] = UpConv(ch[i + 1], ch[i])
                self.nodes[f"x_{i}_{j}"] = ConvBlock((j + 1) * ch[i], ch[i])
        n_heads = self.depth - 1 if self.deep_supervision else 1
        self.heads = nn.ModuleList(
            nn.Conv2d(ch[0], self.num_classes, kernel_size=1) for _ in range(n_heads)
        )

    def forward(self, x: torch.Tensor, return_heads: bool = False) -> torch.Tensor:
        """Segment a batch of slices.

        Args:
            x: (B, in_channels, H, W) float input.
            return_heads: Return all heads stacked (K, B, num_classes, H, W), K = depth - 1
                with deep supervision, else 1.

        Returns:
            Logits (B, num_classes, H, W) (see the module docstring), or the stacked heads.
        """
        check_input(x, self.in_channels, self.depth)
        feats: dict[tuple[int, int], torch.Tensor] = {}
        for d in range(self.depth):
            # encoder node of row d, then the anti-diagonal of nodes it makes computable
            inp = x if d == 0 else self.pool(feats[(d - 1, 0)])
            feats[(d, 0)] = self.nodes[f"x_{d}_0"](inp)
            for j in range(1, d + 1):
                i = d - j
                up = self.ups[f"up_{i}_{j}"](feats[(i + 1, j - 1)])
                row = [feats[(i, k)] for k in range(j)]
                feats[(i, j)] = self.nodes[f"x_{i}_{j}"](torch.cat([*row, up], dim=1))
        if self.deep_supervision:
            top = [feats[(0, j)] for j in range(1, self.depth)]
            heads = [head(f) for head, f in zip(self.heads, top, strict=True)]
        else:
            heads = [self.heads[0](feats[(0, self.depth - 1)])]
        if return_heads:
            return torch.stack(heads)
        if self.ds_output == "mean" and len(heads) > 1:
            return torch.stack(heads).mean(dim=0)
        return heads[-1]
