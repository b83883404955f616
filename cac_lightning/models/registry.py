"""Network registry: the arms, one constructor shape for every architecture.

``build_net(name, ...)`` returns an ``nn.Module`` whose ``forward(x)`` maps (B, in_channels, H, W)
to ONE logits tensor (B, num_classes, H, W). :data:`NETS` maps each name to its :class:`Arm`:

* ``paper``: ``unet``, ``unetplusplus``, the networks of Hong et al. 2022 (section 2.4), written
  in torch (``models/unet.py``, ``models/unetplusplus.py``); H and W multiples of
  2**(len(channels) - 1), which the data pipeline and the Predictor give.
* ``smp`` (``models/arms_smp.py``): ``smp_unet``, ``smp_unetplusplus``, ``smp_fpn``,
  ``smp_deeplabv3plus`` on any segmentation-models-pytorch encoder (default resnet34), random
  weights or a local ``encoder_weights_path`` (never a download).
* ``monai`` (``models/arms_monai.py``): ``monai_basicunetplusplus``, ``monai_dynunet`` (nnU-Net's
  2D plan), ``monai_attentionunet``, ``monai_segresnet``, ``monai_swinunetr``.

Library arms take any H, W: :class:`~cac_lightning.models.padding.PaddedNet` pads their input
with air to the size they need and crops the logits back. Each arm has a config
``conf/model/net/<name>.yaml``. nnU-Net itself (its own planning, training and inference) is an
arm outside this registry: ``cac-export-nnunet`` / ``cac-import-nnunet`` (docs/nnunet.md).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from torch import nn

import cac_lightning.models.arms_monai as arms_monai
import cac_lightning.models.arms_smp as arms_smp
from cac_lightning.errors import CACError, ConfigError
from cac_lightning.models.unet import UNet
from cac_lightning.models.unetplusplus import UNetPlusPlus
from cac_lightning.vessels import NUM_CLASSES

__all__ = [
    "NETS",
    "PAPER_CHANNELS",
    "Arm",
    "build_net",
    "count_parameters",
    "describe_arms",
    "stored_net",
]

# Hong et al. 2022, section 2.4: 32, 64, 128, 256, 512 channels from top to bottom (i = 0..4).
PAPER_CHANNELS: tuple[int, ...] = (32, 64, 128, 256, 512)


@dataclass(frozen=True)
class Arm:
    """One architecture of the registry.

    Attributes:
        family: "paper" (ours), "smp" (segmentation-models-pytorch) or "monai".
        build: ``build(in_channels, num_classes, **kwargs) -> nn.Module``.
        description: one line: what the network is.
        keys: the config keys it takes besides ``name``, ``in_channels`` and ``num_classes``.
        init_keys: those of ``keys`` that only initialise the weights; a checkpoint does not
            store them (:func:`stored_net`), so it rebuilds the network without them.
    """

    family: str
    build: Callable[..., nn.Module]
    description: str
    keys: tuple[str, ...] = ()
    init_keys: tuple[str, ...] = ()


def _unet(in_channels: int, num_classes: int, channels=None) -> nn.Module:
    return UNet(in_channels, num_classes, channels or PAPER_CHANNELS)


def _unetplusplus(in_channels: int, num_classes: int, channels=None, **kwargs) -> nn.Module:
    return UNetPlusPlus(in_channels, num_classes, channels or PAPER_CHANNELS, **kwargs)


def _smp(name: str, description: str) -> Arm:
    build = partial(arms_smp.build_smp, name)
    return Arm("smp", build, description, arms_smp.KEYS[name], arms_smp.INIT_KEYS)


def _monai(name: str, build: Callable[..., nn.Module], description: str) -> Arm:
    return Arm("monai", build, description, arms_monai.KEYS[name])


NETS: dict[str, Arm] = {
    "unet": Arm(
        "paper", _unet, "U-Net, conv-BN-ReLU x2 blocks (the paper's ablation)", ("channels",)
    ),
    "unetplusplus": Arm(
        "paper",
        _unetplusplus,
        "U-Net++ with nested skips (Hong et al. 2022)",
        ("channels", "deep_supervision", "ds_output"),
    ),
    "smp_unet": _smp("smp_unet", "U-Net decoder on an smp encoder (resnet34)"),
    "smp_unetplusplus": _smp("smp_unetplusplus", "U-Net++ decoder on an smp encoder (resnet34)"),
    "smp_fpn": _smp("smp_fpn", "Feature Pyramid Network on an smp encoder (resnet34)"),
    "smp_deeplabv3plus": _smp(
        "smp_deeplabv3plus", "DeepLabV3+, atrous spatial pyramid, on an smp encoder (resnet34)"
    ),
    "monai_basicunetplusplus": _monai(
        "monai_basicunetplusplus",
        arms_monai.basic_unetplusplus,
        "MONAI BasicUNet++: U-Net++ with instance norm, leaky ReLU",
    ),
    "monai_dynunet": _monai(
        "monai_dynunet", arms_monai.dynunet, "MONAI DynUNet as nnU-Net's 2D plan for 512x512 slices"
    ),
    "monai_attentionunet": _monai(
        "monai_attentionunet",
        arms_monai.attention_unet,
        "MONAI Attention U-Net: attention-gated skips",
    ),
    "monai_segresnet": _monai(
        "monai_segresnet", arms_monai.segresnet, "MONAI SegResNet: residual encoder, group norm"
    ),
    "monai_swinunetr": _monai(
        "monai_swinunetr",
        arms_monai.swinunetr,
        "MONAI SwinUNETR: Swin transformer encoder, CNN decoder",
    ),
}
"""Arm name -> :class:`Arm`."""


def _arm(name: str) -> Arm:
    if name not in NETS:
        raise CACError(f"unknown network {name!r}; valid names: {', '.join(NETS)}")
    return NETS[name]


def build_net(
    name: str,
    *,
    in_channels: int = 2,
    num_classes: int = NUM_CLASSES,
    channels: Sequence[int] | None = None,
    deep_supervision: bool = False,
    **kwargs: Any,
) -> nn.Module:
    """Build a segmentation network by name.

    Args:
        name: One of :data:`NETS`.
        in_channels: Input channels. Default 2 (HU image + HU > 130 mask, Hong et al. 2022).
        num_classes: Output channels. Default :data:`~cac_lightning.vessels.NUM_CLASSES`
            (background, LM, LAD, CX, RCA).
        channels: Channels per row for "unet"/"unetplusplus" (None -> (32, 64, 128, 256, 512),
            the paper) and "monai_attentionunet"; the other arms have their own keys
            (``decoder_channels``, ``filters``, ``features``, ``init_filters``, ...).
        deep_supervision: 1x1 heads on X^{0,1..depth-1} ("unetplusplus" only).
        **kwargs: The arm's other keys (:attr:`Arm.keys`), e.g. ``ds_output`` for
            "unetplusplus", ``encoder_name`` / ``encoder_weights_path`` for the smp arms.

    Returns:
        The network; ``forward(x (B, in_channels, H, W))`` -> logits (B, num_classes, H, W).

    Raises:
        CACError: Unknown name (the message lists the valid names), smp not importable, or an
            ``encoder_weights_path`` that cannot be loaded.
        ConfigError: (a ValueError) A key the arm does not take (the message lists those it
            takes), deep supervision on an arm without it, or ``encoder_weights`` given.
        ValueError: Invalid values for the architecture.
    """
    arm = _arm(name)
    given = dict(kwargs)
    if channels is not None:
        given["channels"] = tuple(int(c) for c in channels)
    if deep_supervision:
        if "deep_supervision" not in arm.keys:
            raise ConfigError(f"{name} has no deep supervision heads: use name 'unetplusplus'")
        given["deep_supervision"] = True
    refused = sorted(set(given) - set(arm.keys))
    if refused:
        takes = ", ".join(("in_channels", *arm.keys))
        raise ConfigError(f"{name} does not take {', '.join(refused)}; it takes {takes}")
    return arm.build(int(in_channels), int(num_classes), **given)


def stored_net(net: Mapping[str, Any]) -> dict[str, Any]:
    """The network description a checkpoint stores: ``net`` (``{"name": ..., **kwargs}``)
    without its arm's init-only keys (e.g. ``encoder_weights_path``), so that the checkpoint
    rebuilds the network when that file is gone. Unknown names pass through unchanged."""
    arm = NETS.get(str(net.get("name")))
    drop = arm.init_keys if arm else ()
    return {k: v for k, v in net.items() if k not in drop}


def describe_arms() -> str:
    """The arms as a table, one line each: name, family, description (``cac-train --help``)."""
    width = max(len(name) for name in NETS)
    return "\n".join(f"{n:<{width}}  {a.family:<5}  {a.description}" for n, a in NETS.items())


def count_parameters(module: nn.Module, trainable_only: bool = True) -> int:
    """Number of parameters of a module.

    Args:
        module: Any ``nn.Module``.
        trainable_only: Count only parameters with ``requires_grad``. Default True.

    Returns:
        The parameter count.
    """
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
