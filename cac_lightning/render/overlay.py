"""Calcium overlays: a CT slice in grey with calcium coloured by vessel, and the display window."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cac_lightning.vessels import VESSEL_COLORS, VESSELS

__all__ = ["DISPLAY_WINDOW", "grey", "render_overlay"]

DISPLAY_WINDOW: tuple[float, float] = (-250.0, 650.0)
"""The (low, high) HU window every CT picture is shown in: overlays, panels, projections and
the synthetic-data figures (mediastinal: fat, blood, muscle and calcium stay apart)."""


def grey(hu: np.ndarray, window: Sequence[float] = DISPLAY_WINDOW) -> np.ndarray:
    """HU mapped linearly from ``window`` (low, high) onto grey levels 0..255, clipped.

    Returns:
        float32 array of ``hu``'s shape; ``.astype(np.uint8)`` for an image.
    """
    lo, hi = float(window[0]), float(window[1])
    return np.clip((np.asarray(hu, np.float32) - lo) / (hi - lo), 0.0, 1.0) * 255.0


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
    rgb = np.repeat(grey(hu, window)[..., None], 3, axis=-1)
    for value, name in enumerate(VESSELS, start=1):
        m = labels == value
        if m.any():
            rgb[m] = (1 - alpha) * rgb[m] + alpha * np.asarray(VESSEL_COLORS[name], np.float32)
    return rgb.astype(np.uint8)
