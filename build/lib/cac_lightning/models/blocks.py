"""Building blocks shared by the U-Net and U-Net++ of Hong et al. 2022 (section 2.4, Fig. 3c).

Every convolution block X^{i,j} is two modules of conv3x3 -> BatchNorm -> ReLU (VGG style, as
in Zhou et al. 2018 "UNet++: A Nested U-Net Architecture for Medical Image Segmentation").
Down-sampling is 2x2 max pooling; up-sampling is a learned 2x2 transposed convolution with
stride 2 (Zhou et al.'s reference implementation uses ``Conv2DTranspose``), which also maps the
deeper row's channels to the target row's channels. Convolutions before a BatchNorm carry no
bias (the BatchNorm shift replaces it).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["ConvBlock", "UpConv", "check_channels", "check_input"]


class ConvBlock(nn.Sequential):
    """Two (conv3x3 -> BatchNorm -> ReLU) modules; keeps the spatial size.

    Args:
        in_channels: Input channels.
        out_channels: Output channels of both convolutions.

    Shape:
        (B, in_channels, H, W) -> (B, out_channels, H, W).
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class UpConv(nn.ConvTranspose2d):
    """2x2 transposed convolution with stride 2: doubles H and W.

    Shape:
        (B, in_channels, H, W) -> (B, out_channels, 2H, 2W).
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(in_channels, out_channels, kernel_size=2, stride=2)


def check_channels(channels: Sequence[int]) -> tuple[int, ...]:
    """Validate a per-row channel tuple (top row first).

    Args:
        channels: Channels of rows i = 0..depth-1, e.g. (32, 64, 128, 256, 512) (paper).

    Returns:
        The channels as a tuple of ints.

    Raises:
        ValueError: Fewer than two rows or a non-positive entry.
    """
    out = tuple(int(c) for c in channels)
    if len(out) < 2 or any(c < 1 for c in out):
        raise ValueError(f"channels must hold >= 2 positive ints (one per depth), got {channels!r}")
    return out


def check_input(x: torch.Tensor, in_channels: int, depth: int) -> None:
    """Fail fast on an input the network cannot take.

    Args:
        x: Input batch (B, in_channels, H, W).
        in_channels: Expected channel count.
        depth: Number of rows; H and W must be divisible by 2**(depth-1).

    Raises:
        ValueError: Wrong rank or channel count, or H / W not divisible.
    """
    if x.ndim != 4 or x.shape[1] != in_channels:
        raise ValueError(f"expected input (B, {in_channels}, H, W), got {tuple(x.shape)}")
    factor = 2 ** (depth - 1)
    h, w = int(x.shape[-2]), int(x.shape[-1])
    if h % factor or w % factor:
        ok_h = -(-h // factor) * factor
        ok_w = -(-w // factor) * factor
        raise ValueError(
            f"input height and width must be divisible by {factor} (2**(depth-1), depth {depth}); "
            f"got {h}x{w}: pad to {ok_h}x{ok_w}"
        )
