"""segmentation-models-pytorch arms: U-Net, U-Net++, FPN and DeepLabV3+ on any smp encoder.

Iakubovskii, "Segmentation Models Pytorch" (github.com/qubvel-org/segmentation_models.pytorch).
The architectures: Ronneberger et al. 2015 (U-Net), Zhou et al. 2018 (U-Net++), Lin et al. 2017
(FPN), Chen et al. 2018 (DeepLabV3+). Every arm is an smp model with ``classes=num_classes`` and
no activation (logits), wrapped in :class:`~cac_lightning.models.padding.PaddedNet` to a
multiple of ``2**encoder_depth``.

Weights: nothing is ever downloaded. ``encoder_weights`` must be None (smp would fetch
"imagenet" at run time); ``encoder_weights_path`` loads a local state dict into the encoder
instead (:func:`load_encoder_weights`): the encoder's own, or an ImageNet classifier's whose
first convolution takes 3 channels (adapted to ``in_channels`` as smp does). It only
initialises the weights: a checkpoint does not record it and rebuilds without the file.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cac_lightning.errors import CACError, ConfigError, InputError
from cac_lightning.models.padding import PaddedNet

__all__ = ["CLASSES", "COMMON_KEYS", "INIT_KEYS", "KEYS", "build_smp", "load_encoder_weights"]

CLASSES: dict[str, str] = {
    "smp_unet": "Unet",
    "smp_unetplusplus": "UnetPlusPlus",
    "smp_fpn": "FPN",
    "smp_deeplabv3plus": "DeepLabV3Plus",
}
"""Arm name -> smp class."""

INIT_KEYS = ("encoder_weights_path",)
"""Keys that only initialise the weights (a checkpoint does not need them)."""

COMMON_KEYS = ("encoder_name", "encoder_depth", "encoder_weights", *INIT_KEYS)
"""Keys every smp arm takes (``activation`` and ``aux_params`` are left out: the arms return
logits, one tensor)."""

_UNET_DECODER = (
    "decoder_channels",
    "decoder_use_norm",
    "decoder_attention_type",
    "decoder_interpolation",
)
KEYS: dict[str, tuple[str, ...]] = {
    "smp_unet": (*COMMON_KEYS, *_UNET_DECODER),
    "smp_unetplusplus": (*COMMON_KEYS, *_UNET_DECODER),
    "smp_fpn": (
        *COMMON_KEYS,
        "decoder_pyramid_channels",
        "decoder_segmentation_channels",
        "decoder_merge_policy",
        "decoder_dropout",
        "decoder_interpolation",
        "upsampling",
    ),
    "smp_deeplabv3plus": (
        *COMMON_KEYS,
        "encoder_output_stride",
        "decoder_channels",
        "decoder_atrous_rates",
        "decoder_aspp_separable",
        "decoder_aspp_dropout",
        "upsampling",
    ),
}
"""Arm name -> the config keys it takes (besides ``in_channels``)."""

DEFAULT_ENCODER = "resnet34"
DEFAULT_DEPTH = 5


def _import_smp() -> Any:
    try:
        import segmentation_models_pytorch as smp
    except Exception as exc:  # ImportError, or a broken torchvision raising anything
        raise CACError(
            "segmentation-models-pytorch (a dependency of cac-lightning) is not importable: "
            f"pip install segmentation-models-pytorch ({type(exc).__name__}: {exc})"
        ) from exc
    return smp


def build_smp(
    name: str,
    in_channels: int,
    num_classes: int,
    encoder_weights: str | None = None,
    encoder_weights_path: str | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Build smp arm ``name`` (a key of :data:`CLASSES`).

    Args:
        name: the arm, e.g. "smp_fpn".
        in_channels: input channels.
        num_classes: output channels (logits).
        encoder_weights: must be None (no downloads).
        encoder_weights_path: a local state-dict file loaded into the encoder; None: random.
        **kwargs: the smp class's arguments (:data:`KEYS`); ``encoder_name`` defaults to
            "resnet34", ``encoder_depth`` to 5.

    Returns:
        :class:`~cac_lightning.models.padding.PaddedNet` around the smp model.

    Raises:
        ConfigError: ``encoder_weights`` given.
        InputError: ``encoder_weights_path`` missing, unreadable or not fitting the encoder.
    """
    if encoder_weights is not None:
        raise ConfigError(
            f"{name}: encoder_weights={encoder_weights!r} would download weights at run time, "
            "which cac-lightning never does; set encoder_weights: null and give "
            "encoder_weights_path=/local/file.pth (a state dict of the encoder)"
        )
    smp = _import_smp()
    kwargs.setdefault("encoder_name", DEFAULT_ENCODER)
    kwargs.setdefault("encoder_depth", DEFAULT_DEPTH)
    model = getattr(smp, CLASSES[name])(
        in_channels=in_channels, classes=num_classes, encoder_weights=None, **kwargs
    )
    if encoder_weights_path is not None:
        load_encoder_weights(model.encoder, encoder_weights_path)
    return PaddedNet(model, 2 ** int(kwargs["encoder_depth"]))


def _first_conv(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """A conv weight (out, c, k, k) for ``in_channels`` inputs, smp's rule for pretrained
    weights: 1 channel sums them; otherwise channel i takes channel i mod c, scaled by
    c / in_channels."""
    if in_channels == 1:
        return weight.sum(1, keepdim=True)
    idx = torch.arange(in_channels) % weight.shape[1]
    return weight[:, idx] * (weight.shape[1] / in_channels)


def load_encoder_weights(encoder: nn.Module, path: str | Path) -> None:
    """Load the state dict in ``path`` into ``encoder`` (in place).

    A 4-D weight whose input channels differ (an ImageNet first convolution for 3 channels) is
    adapted by :func:`_first_conv`; a classifier head the encoder drops (``fc.*`` of a ResNet)
    is ignored by smp's own ``load_state_dict``.

    Args:
        encoder: the smp model's ``encoder``.
        path: a file saved with ``torch.save(state_dict)``, read weights-only.

    Raises:
        InputError: a missing or unreadable file, or weights that do not fit the encoder.
    """
    from cac_lightning.models.checkpoint import load

    label = "encoder_weights_path="
    state = load(path, label)
    if not isinstance(state, Mapping) or not all(
        isinstance(v, torch.Tensor) for v in state.values()
    ):
        raise InputError(f"{label}{path}: not a state dict (a mapping of names to tensors)")
    own = encoder.state_dict()
    state = dict(state)
    for key, value in state.items():
        mine = own.get(key)
        if (
            mine is not None
            and value.ndim == 4
            and mine.ndim == 4
            and value.shape[1] != mine.shape[1]
            and (value.shape[0], *value.shape[2:]) == (mine.shape[0], *mine.shape[2:])
        ):
            state[key] = _first_conv(value, mine.shape[1])
    try:
        encoder.load_state_dict(state)
    except RuntimeError as err:
        lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
        raise InputError(
            f"{label}{path}: does not fit encoder {type(encoder).__name__} "
            f"({' '.join(lines[1:2]) or lines[0]})"
        ) from None
