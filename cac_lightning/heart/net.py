"""HeartNet: a small 3D U-Net that segments heart + pericardium on a coarse (~6 mm) grid.

Four resolution levels (6, 12, 24, 48 mm voxels at the 6 mm input), two 3x3x3 convolutions per
level with instance normalisation and ReLU, max-pool down, transposed convolution up, skip
connections by concatenation (Ronneberger et al. 2015; Cicek et al. 2016, "3D U-Net").
The receptive field (~350 mm) sees the heart with the lungs, diaphragm and chest wall around it,
which is what tells it apart from liver and muscle of the same CT number.

Input is HU windowed to [0, 1] by :func:`cac_lightning.heart.locator.to_coarse` (window
:data:`~cac_lightning.heart.locator.WINDOW_HU`); spatial sizes must be multiples of
``2 ** (levels - 1)`` (the locator pads).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["HeartNet"]


class _Conv3d(nn.Conv3d):
    """Conv3d fed channels-last-3d tensors (the layout oneDNN prefers). Note: for a single
    small volume torch still picks its native slow_conv3d kernel on CPU whatever the layout;
    a batch of 2 or more takes oneDNN, several times faster (training uses batch 4)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.contiguous(memory_format=torch.channels_last_3d))


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        _Conv3d(c_in, c_out, 3, padding=1, bias=False),
        nn.InstanceNorm3d(c_out, affine=True),
        nn.ReLU(inplace=True),
        _Conv3d(c_out, c_out, 3, padding=1, bias=False),
        nn.InstanceNorm3d(c_out, affine=True),
        nn.ReLU(inplace=True),
    )


class HeartNet(nn.Module):
    """3D U-Net returning heart logits.

    Args:
        channels: feature channels per level, finest first (the shipped weights: the
            default ``(4, 8, 16, 32)``, 88 k parameters).

    Shapes:
        input ``(B, 1, Z, Y, X)`` float in [0, 1], each of Z, Y, X a multiple of
        :attr:`multiple`; output ``(B, 1, Z, Y, X)`` logits.
    """

    def __init__(self, channels: tuple[int, ...] = (4, 8, 16, 32)) -> None:
        super().__init__()
        self.channels = tuple(int(c) for c in channels)
        cs = self.channels
        self.down = nn.ModuleList([_block(1 if i == 0 else cs[i - 1], c) for i, c in enumerate(cs)])
        self.pool = nn.MaxPool3d(2)
        self.up = nn.ModuleList(
            [nn.ConvTranspose3d(cs[i + 1], cs[i], 2, stride=2) for i in range(len(cs) - 1)]
        )
        self.dec = nn.ModuleList([_block(2 * cs[i], cs[i]) for i in range(len(cs) - 1)])
        self.head = _Conv3d(cs[0], 1, 1)

    @property
    def multiple(self) -> int:
        """Spatial sizes must be multiples of this."""
        return 2 ** (len(self.channels) - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 5 or x.shape[1] != 1 or any(s % self.multiple for s in x.shape[2:]):
            raise ValueError(
                f"HeartNet expects (B, 1, Z, Y, X) with Z, Y, X multiples of {self.multiple}, "
                f"got {tuple(x.shape)}"
            )
        skips = []
        for i, block in enumerate(self.down):
            x = block(x)
            if i < len(self.down) - 1:
                skips.append(x)
                x = self.pool(x)
        for i in reversed(range(len(self.up))):
            x = self.dec[i](torch.cat([self.up[i](x), skips[i]], dim=1))
        return self.head(x)
