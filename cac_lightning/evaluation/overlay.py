"""Calcium overlays: a CT slice in grey with calcium coloured by vessel."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cac_lightning.vessels import VESSEL_COLORS, VESSELS

__all__ = ["DISPLAY_WINDOW", "VESSEL_COLORS", "render_overlay", "side_by_side"]

# Mediastinal display window (HU) for overlays.
DISPLAY_WINDOW = (-250.0, 650.0)


def render_overlay(
    hu: np.ndarray,
    labels: np.ndarray,
    window: Sequence[float] = DISPLAY_WINDOW,
    alpha: float = 0.85,
) -> np.ndarray:
    """Blend a label map over a grey HU slice.

    Args:
        hu: (H, W) HU slice.
        labels: (H, W) label values 0..4.
        window: display window (low, high) in HU.
        alpha: opacity of the vessel colours.

    Returns:
        (H, W, 3) uint8 RGB image.
    """
    lo, hi = float(window[0]), float(window[1])
    grey = np.clip((np.asarray(hu, np.float32) - lo) / (hi - lo), 0.0, 1.0) * 255.0
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    for value, name in enumerate(VESSELS, start=1):
        m = labels == value
        if m.any():
            rgb[m] = (1 - alpha) * rgb[m] + alpha * np.asarray(VESSEL_COLORS[name], np.float32)
    return rgb.astype(np.uint8)


def side_by_side(*images: np.ndarray, gap: int = 4) -> np.ndarray:
    """Join (H, W, 3) images left to right with a white gap."""
    h = max(im.shape[0] for im in images)
    parts = []
    for i, im in enumerate(images):
        pad = np.zeros((h, im.shape[1], 3), np.uint8)
        pad[: im.shape[0]] = im
        parts.append(pad)
        if i < len(images) - 1:
            parts.append(np.full((h, gap, 3), 255, np.uint8))
    return np.concatenate(parts, axis=1)
