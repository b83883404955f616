"""Slice-by-slice prediction of a calcium label map from a HU volume."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence

import numpy as np
import torch

__all__ = ["predict_labels"]


@torch.no_grad()
def predict_labels(
    net: Callable[[torch.Tensor], torch.Tensor],
    hu: np.ndarray,
    *,
    window: Sequence[float],
    threshold_hu: float = 130.0,
    batch_size: int = 16,
    device: torch.device | str | None = None,
    autocast: bool = False,
) -> np.ndarray:
    """Predict per-voxel classes for every axial slice of ``hu``.

    Args:
        net: maps a (B, 2, H, W) float input (see
            :func:`cac_lightning.data.transforms.make_input`) to (B, 5, H, W) logits.
        hu: (Z, H, W) int16 HU volume (a memmap is fine).
        window: HU window of the image channel, as used in training.
        threshold_hu: calcium threshold; predictions below it are set to background.
        batch_size: slices per forward pass.
        device: where to run ``net`` (default: CPU).
        autocast: run under bf16 autocast (CUDA).

    Returns:
        (Z, H, W) uint8 label map, 0 background, 1 LM, 2 LAD, 3 CX, 4 RCA.
    """
    from cac_lightning.data.transforms import make_input

    device = torch.device(device or "cpu")
    out = np.zeros(hu.shape, dtype=np.uint8)
    ctx = (
        torch.autocast(device.type, dtype=torch.bfloat16) if autocast else contextlib.nullcontext()
    )
    for start in range(0, hu.shape[0], batch_size):
        chunk = np.asarray(hu[start : start + batch_size])
        x = make_input(chunk, window=tuple(window), threshold_hu=threshold_hu).to(device)
        with ctx:
            logits = net(x)
        pred = logits.argmax(1).to(torch.uint8).cpu().numpy()
        pred[chunk < threshold_hu] = 0
        out[start : start + len(chunk)] = pred
    return out
