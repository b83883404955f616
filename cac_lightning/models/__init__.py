"""Networks (the registry of arms: U-Net, U-Net++ of Hong et al. 2022, smp and MONAI nets),
losses and the LightningModule.

``CACSegModule`` imports Lightning; it is loaded on first access so that importing the registry
or the losses stays light.
"""

from __future__ import annotations

from typing import Any

from cac_lightning.models.losses import CRITERIA, build_criterion
from cac_lightning.models.registry import NETS, PAPER_CHANNELS, Arm, build_net, count_parameters
from cac_lightning.models.unet import UNet
from cac_lightning.models.unetplusplus import UNetPlusPlus

__all__ = [
    "CRITERIA",
    "NETS",
    "PAPER_CHANNELS",
    "Arm",
    "CACSegModule",
    "UNet",
    "UNetPlusPlus",
    "build_criterion",
    "build_net",
    "count_parameters",
]


def __getattr__(name: str) -> Any:
    if name == "CACSegModule":
        from cac_lightning.models.module import CACSegModule

        return CACSegModule
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
