"""Legible overlay panels: reference | prediction, cropped around calcium at native resolution.

A panel is an RGB array drawn with matplotlib (Agg canvas, no pyplot): the two label maps
over the same grey slice, a vessel colour legend, the display window in HU and the pixel
size, so an image in W&B or a run folder explains itself.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cac_lightning.render.figures import new_figure
from cac_lightning.render.overlay import DISPLAY_WINDOW, render_overlay
from cac_lightning.vessels import VESSEL_COLORS, VESSELS

__all__ = ["calcium_crop", "overlay_panel", "worst_slice"]


def worst_slice(ref: np.ndarray, pred: np.ndarray) -> int:
    """Index of the slice where reference and prediction disagree on most calcium voxels.

    With no disagreement, the slice with the most reference calcium (0 when there is none).

    Args:
        ref, pred: (z, y, x) label maps.
    """
    ref, pred = np.asarray(ref), np.asarray(pred)
    diff = ((ref != pred) & ((ref > 0) | (pred > 0))).sum(axis=(1, 2))
    if diff.max() > 0:
        return int(diff.argmax())
    return int((ref > 0).sum(axis=(1, 2)).argmax())


def calcium_crop(
    mask: np.ndarray, pixel_spacing: Sequence[float], size_mm: float = 40.0
) -> tuple[slice, slice]:
    """A square window of ``size_mm`` (at least the calcium's extent) around the calcium.

    Args:
        mask: (H, W) bool, calcium of either map; empty -> centre of the slice.
        pixel_spacing: (row, column) mm.
        size_mm: side of the window in mm.
    """
    h, w = mask.shape
    ys, xs = np.nonzero(mask)
    if len(ys):
        cy, cx = (ys.min() + ys.max()) / 2, (xs.min() + xs.max()) / 2
        extent = (ys.max() - ys.min() + 1, xs.max() - xs.min() + 1)
    else:
        cy, cx, extent = h / 2, w / 2, (0, 0)
    half_y = max(int(round(size_mm / pixel_spacing[0] / 2)), extent[0] // 2 + 4)
    half_x = max(int(round(size_mm / pixel_spacing[1] / 2)), extent[1] // 2 + 4)
    y0 = int(np.clip(round(cy) - half_y, 0, max(h - 2 * half_y, 0)))
    x0 = int(np.clip(round(cx) - half_x, 0, max(w - 2 * half_x, 0)))
    return slice(y0, min(y0 + 2 * half_y, h)), slice(x0, min(x0 + 2 * half_x, w))


def overlay_panel(
    hu: np.ndarray,
    ref: np.ndarray,
    pred: np.ndarray,
    pixel_spacing: Sequence[float],
    *,
    window: Sequence[float] = DISPLAY_WINDOW,
    size_mm: float = 40.0,
    title: str = "",
    width_in: float = 6.4,
) -> np.ndarray:
    """Reference | prediction over one HU slice, cropped around calcium, with a legend.

    Args:
        hu: (H, W) HU slice at native resolution.
        ref, pred: (H, W) label maps (0 background, 1..4 vessels).
        pixel_spacing: (row, column) mm, stated in the caption.
        window: display window (low, high) HU, stated in the caption.
        size_mm: side of the crop in mm.
        title: first caption line (scan id and slice; never patient data).
        width_in: figure width in inches at 100 dpi.

    Returns:
        (h, w, 3) uint8 RGB image.
    """
    from matplotlib.patches import Patch

    ys, xs = calcium_crop((np.asarray(ref) > 0) | (np.asarray(pred) > 0), pixel_spacing, size_mm)
    fig = new_figure(width_in, width_in * 0.56)
    axes = fig.subplots(1, 2)
    for ax, labels, name in zip(axes, (ref, pred), ("reference", "prediction"), strict=True):
        ax.imshow(
            render_overlay(hu[ys, xs], np.asarray(labels)[ys, xs], window), interpolation="nearest"
        )
        ax.set_title(name, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    handles = [Patch(color=np.asarray(VESSEL_COLORS[v]) / 255.0, label=v) for v in VESSELS]
    fig.legend(
        handles=handles, loc="outside lower center", ncol=len(VESSELS), fontsize=8, frameon=False
    )
    side = (ys.stop - ys.start) * float(pixel_spacing[0])
    caption = (
        f"window {window[0]:g}..{window[1]:g} HU · pixel {pixel_spacing[1]:.2f} mm · "
        f"crop {side:.0f} mm"
    )
    fig.suptitle(f"{title}\n{caption}" if title else caption, fontsize=8)
    fig.canvas.draw()
    rgba = np.asarray(fig.canvas.buffer_rgba())
    return np.ascontiguousarray(rgba[..., :3])
