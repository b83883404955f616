"""Network registry: one constructor shape for every architecture.

``build_net(name, ...)`` returns an ``nn.Module`` whose ``forward(x)`` maps (B, in_channels, H, W)
to ONE logits tensor (B, num_classes, H, W). Names:

* ``unet``, ``unetplusplus``: the networks of Hong et al. 2022 (section 2.4), written in torch.
* ``smp_unet``, ``smp_unetplusplus``: segmentation-models-pytorch (optional extra ``[smp]``),
  any ``encoder_name`` (default "resnet34"), ``encoder_weights=None`` by default (no downloads).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from torch import nn

from cac_lightning.errors import CACError
from cac_lightning.models.unet import UNet
from cac_lightning.models.unetplusplus import UNetPlusPlus
from cac_lightning.vessels import NUM_CLASSES

__all__ = ["NETS", "PAPER_CHANNELS", "build_net", "count_parameters"]

# Hong et al. 2022, section 2.4: 32, 64, 128, 256, 512 channels from top to bottom (i = 0..4).
PAPER_CHANNELS: tuple[int, ...] = (32, 64, 128, 256, 512)


def _unet(in_channels, num_classes, channels, deep_supervision, **kwargs) -> nn.Module:
    if deep_supervision:
        raise ValueError(
            "deep supervision needs the nested nodes X^{0,1..}: use name 'unetplusplus'"
        )
    return UNet(in_channels, num_classes, channels or PAPER_CHANNELS, **kwargs)


def _unetplusplus(in_channels, num_classes, channels, deep_supervision, **kwargs) -> nn.Module:
    return UNetPlusPlus(
        in_channels, num_classes, channels or PAPER_CHANNELS, deep_supervision, **kwargs
    )


def _import_smp() -> Any:
    try:
        import segmentation_models_pytorch as smp
    except Exception as exc:  # ImportError, or a broken torchvision raising anything
        raise CACError(
            "segmentation-models-pytorch is not installed/importable: "
            f"pip install 'cac-lightning[smp]' ({type(exc).__name__}: {exc})"
        ) from exc
    return smp


def _smp(arch: str) -> Callable[..., nn.Module]:
    def build(in_channels, num_classes, channels, deep_supervision, **kwargs) -> nn.Module:
        if deep_supervision:
            raise ValueError(f"smp_{arch.lower()} has no deep supervision heads")
        if channels is not None:
            raise ValueError(
                f"smp_{arch.lower()} takes encoder_name / encoder_depth / decoder_channels, "
                "not channels"
            )
        smp = _import_smp()
        kwargs.setdefault("encoder_name", "resnet34")
        kwargs.setdefault("encoder_weights", None)
        cls = getattr(smp, arch)
        return cls(in_channels=in_channels, classes=num_classes, **kwargs)

    return build


NETS: dict[str, Callable[..., nn.Module]] = {
    "unet": _unet,
    "unetplusplus": _unetplusplus,
    "smp_unet": _smp("Unet"),
    "smp_unetplusplus": _smp("UnetPlusPlus"),
}


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
        name: One of :data:`NETS` ("unet", "unetplusplus", "smp_unet", "smp_unetplusplus").
        in_channels: Input channels. Default 2 (HU image + HU > 130 mask, Hong et al. 2022).
        num_classes: Output channels. Default :data:`~cac_lightning.vessels.NUM_CLASSES`
            (background, LM, LAD, CX, RCA).
        channels: Channels per row for "unet"/"unetplusplus"; None -> (32, 64, 128, 256, 512)
            (paper). Not accepted by the smp nets (use ``decoder_channels``).
        deep_supervision: 1x1 heads on X^{0,1..depth-1} ("unetplusplus" only).
        **kwargs: Passed to the architecture (``ds_output`` for "unetplusplus"; ``encoder_name``,
            ``encoder_weights``, ``encoder_depth``, ``decoder_channels``, ... for smp).

    Returns:
        The network; ``forward(x (B, in_channels, H, W))`` -> logits (B, num_classes, H, W).

    Raises:
        CACError: Unknown name (the message lists the valid names) or smp not importable.
        ValueError: Invalid arguments for the architecture.
    """
    if name not in NETS:
        raise CACError(f"unknown network {name!r}; valid names: {', '.join(NETS)}")
    return NETS[name](
        int(in_channels),
        int(num_classes),
        None if channels is None else tuple(channels),
        bool(deep_supervision),
        **kwargs,
    )


def count_parameters(module: nn.Module, trainable_only: bool = True) -> int:
    """Number of parameters of a module.

    Args:
        module: Any ``nn.Module``.
        trainable_only: Count only parameters with ``requires_grad``. Default True.

    Returns:
        The parameter count.
    """
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
