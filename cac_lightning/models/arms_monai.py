"""MONAI arms: BasicUNet++, DynUNet (nnU-Net's 2D plan), Attention U-Net, SegResNet, SwinUNETR.

MONAI Consortium, "MONAI: Medical Open Network for AI" (Cardoso et al. 2022). Every arm is the
MONAI network with ``spatial_dims=2``, ``out_channels=num_classes`` (logits), wrapped in
:class:`~cac_lightning.models.padding.PaddedNet` to the multiple (and minimum size) it needs:

=========================  ===================================================  =============
arm                        network (paper)                                      multiple
=========================  ===================================================  =============
monai_basicunetplusplus    BasicUNetPlusPlus (Zhou et al. 2018)                 16
monai_dynunet              DynUNet as nnU-Net's 2D plan (Isensee et al. 2021)   prod(strides)
monai_attentionunet        AttentionUnet (Oktay et al. 2018)                    prod(strides)
monai_segresnet            SegResNet (Myronenko 2018)                           2**(down - 1)
monai_swinunetr            SwinUNETR (Hatamizadeh et al. 2022)                  32
=========================  ===================================================  =============

Defaults are the library's except DynUNet's (its constructor has none) and the Attention U-Net's
channels and strides (MONAI's docstring example).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from torch import nn

from cac_lightning.models.padding import PaddedNet

__all__ = [
    "DYNUNET_PLAN",
    "KEYS",
    "basic_unetplusplus",
    "dynunet",
    "attention_unet",
    "segresnet",
    "swinunetr",
]

DYNUNET_PLAN: dict[str, list[int]] = {
    "kernel_size": [3] * 8,
    "strides": [1, 2, 2, 2, 2, 2, 2, 2],
    "filters": [32, 64, 128, 256, 512, 512, 512, 512],
}
"""nnU-Net v2's ``2d`` configuration planned for a 512x512 CT slice (Isensee et al. 2021,
nnU-Net's ExperimentPlanner): 8 stages of two 3x3 conv - instance norm - leaky ReLU (0.01)
blocks, 7 stride-2 downsamplings (512 -> 4), features doubling from 32 and capped at 512.
nnU-Net trains it with deep supervision; here one output."""

KEYS: dict[str, tuple[str, ...]] = {
    "monai_basicunetplusplus": ("features", "act", "norm", "bias", "dropout", "upsample"),
    "monai_dynunet": (
        "kernel_size",
        "strides",
        "upsample_kernel_size",
        "filters",
        "dropout",
        "norm_name",
        "act_name",
        "res_block",
        "trans_bias",
    ),
    "monai_attentionunet": ("channels", "strides", "kernel_size", "up_kernel_size", "dropout"),
    "monai_segresnet": (
        "init_filters",
        "blocks_down",
        "blocks_up",
        "dropout_prob",
        "act",
        "norm",
        "num_groups",
        "upsample_mode",
    ),
    "monai_swinunetr": (
        "feature_size",
        "patch_size",
        "depths",
        "num_heads",
        "window_size",
        "norm_name",
        "drop_rate",
        "attn_drop_rate",
        "dropout_path_rate",
        "use_checkpoint",
        "use_v2",
    ),
}
"""Arm name -> the config keys it takes (besides ``in_channels``)."""


def _stride(value: int | Sequence[int]) -> int:
    """One stage's downsampling factor (an int, or per-axis ints: the largest)."""
    return int(max(value)) if isinstance(value, Sequence) else int(value)


def basic_unetplusplus(in_channels: int, num_classes: int, **kwargs: Any) -> nn.Module:
    """MONAI ``BasicUNetPlusPlus`` (4 poolings: multiple 16) returning its one output.

    Its three intermediate heads (``final_conv_0_1..3``, used only with deep supervision) are
    replaced by parameter-free identities, so every parameter gets a gradient (DDP needs that).
    """
    from monai.networks.nets import BasicUNetPlusPlus

    net = BasicUNetPlusPlus(
        spatial_dims=2, in_channels=in_channels, out_channels=num_classes, **kwargs
    )
    for i in (1, 2, 3):
        setattr(net, f"final_conv_0_{i}", nn.Identity())
    return PaddedNet(net, 16, 32)  # instance norm: 2x2 pixels at the bottleneck


def dynunet(in_channels: int, num_classes: int, **kwargs: Any) -> nn.Module:
    """MONAI ``DynUNet`` with :data:`DYNUNET_PLAN` by default (46.3 M parameters).

    ``upsample_kernel_size`` defaults to ``strides[1:]``. The input is padded to the product of
    the strides (128 by default) and to at least twice that, so that instance norm sees 2x2
    pixels at the bottleneck (a 64x64 slice runs at 256x256).
    """
    from monai.networks.nets import DynUNet

    args = {**DYNUNET_PLAN, **kwargs}
    args.setdefault("upsample_kernel_size", list(args["strides"])[1:])
    multiple = math.prod(_stride(s) for s in args["strides"])
    net = DynUNet(spatial_dims=2, in_channels=in_channels, out_channels=num_classes, **args)
    return PaddedNet(net, multiple, 2 * multiple)


def attention_unet(
    in_channels: int,
    num_classes: int,
    channels: Sequence[int] = (16, 32, 64, 128, 256),
    strides: Sequence[int] = (2, 2, 2, 2),
    **kwargs: Any,
) -> nn.Module:
    """MONAI ``AttentionUnet``: attention-gated skips; ``len(strides) == len(channels) - 1``."""
    from monai.networks.nets import AttentionUnet

    net = AttentionUnet(
        spatial_dims=2,
        in_channels=in_channels,
        out_channels=num_classes,
        channels=tuple(channels),
        strides=tuple(strides),
        **kwargs,
    )
    return PaddedNet(net, math.prod(_stride(s) for s in strides))


def segresnet(
    in_channels: int, num_classes: int, init_filters: int = 8, **kwargs: Any
) -> nn.Module:
    """MONAI ``SegResNet``: residual encoder, light decoder (group norm)."""
    from monai.networks.nets import SegResNet

    net = SegResNet(
        spatial_dims=2,
        in_channels=in_channels,
        out_channels=num_classes,
        init_filters=init_filters,
        **kwargs,
    )
    return PaddedNet(net, 2 ** (len(net.blocks_down) - 1))


def swinunetr(
    in_channels: int, num_classes: int, feature_size: int = 24, **kwargs: Any
) -> nn.Module:
    """MONAI ``SwinUNETR`` (Swin transformer encoder, CNN decoder); ``feature_size`` a multiple
    of 12 (24: MONAI's default)."""
    from monai.networks.nets import SwinUNETR

    net = SwinUNETR(
        in_channels=in_channels,
        out_channels=num_classes,
        feature_size=feature_size,
        spatial_dims=2,
        **kwargs,
    )
    multiple = int(kwargs.get("patch_size", 2)) * 2 ** len(kwargs.get("depths", (2, 2, 2, 2)))
    return PaddedNet(net, multiple, 2 * multiple)  # instance norm: 2x2 at the bottleneck
