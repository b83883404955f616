"""Inference outputs beside the scores: overlay PNGs.

DICOM Segmentation objects are written by :mod:`cac_lightning.io.seg` (re-exported here).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from cac_lightning.io.seg import write_seg
from cac_lightning.render.figures import new_figure, save_png
from cac_lightning.render.overlay import render_overlay
from cac_lightning.vessels import VESSEL_COLORS, VESSELS
from cac_lightning.volume import Volume

__all__ = ["write_overlays", "write_seg"]

log = logging.getLogger(__name__)

REGION_COLOR = "yellow"
"""Outline colour of the heart region in the overlays."""


def _figure(width_px: int, height_px: int):
    return new_figure(width_px / 100, height_px / 100, layout=None)


def _legend(ax, scores: dict | None = None, region: bool = False) -> None:
    from matplotlib.patches import Patch

    handles = []
    if region:
        handles.append(Patch(facecolor="none", edgecolor=REGION_COLOR, label="heart region"))
    for v in VESSELS:
        label = v if scores is None else f"{v}: {scores[v]['agatston']:.1f}"
        handles.append(Patch(color=np.asarray(VESSEL_COLORS[v]) / 255, label=label))
    ax.legend(handles=handles, loc="lower right", fontsize=8, framealpha=0.8)


def _save(fig, path: Path) -> None:
    save_png(fig, path, tight=False)


def write_overlays(
    out_dir: Path,
    vol: Volume,
    labels: np.ndarray,
    report: dict,
    region: np.ndarray | None = None,
) -> list[Path]:
    """One PNG per calcified slice and a summary PNG (calcium projected over the scan).

    Args:
        out_dir: folder for the PNGs (created).
        vol: the scan.
        labels: (z, y, x) predicted calcium labels.
        report: the scan's report (:func:`cac_lightning.io.results.scan_report`).
        region: (z, y, x) bool heart region, drawn as a yellow outline.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    h, w = labels.shape[1:]
    for z in np.flatnonzero((labels > 0).any(axis=(1, 2))):
        fig = _figure(640, 640 * h // w + 40)
        ax = fig.add_axes((0, 0, 1, 0.94))
        ax.imshow(render_overlay(vol.hu[z], labels[z]))
        if region is not None and region[z].any():
            ax.contour(region[z], [0.5], colors=[REGION_COLOR], linewidths=0.8)
        ax.set_axis_off()
        fig.suptitle(f"{vol.scan_id}  slice {z}", fontsize=10)
        _legend(ax, region=region is not None)
        path = out_dir / f"slice_{int(z):03d}.png"
        _save(fig, path)
        written.append(path)
    # Summary: maximum-intensity projection of the scan with all calcium projected on top.
    mip = vol.hu.max(axis=0)
    proj = np.zeros((h, w), np.uint8)
    for value in range(1, len(VESSELS) + 1):
        proj[(labels == value).any(axis=0)] = value
    fig = _figure(720, 720 * h // w + 60)
    ax = fig.add_axes((0, 0, 1, 0.92))
    ax.imshow(render_overlay(mip, proj))
    if region is not None and region.any():
        ax.contour(region.any(axis=0), [0.5], colors=[REGION_COLOR], linewidths=0.8)
    ax.set_axis_off()
    total = report["scores"]["total"]["agatston"]
    fig.suptitle(
        f"{vol.scan_id}: Agatston {total:.1f} ({report['risk_category']}, {report['cac_drs']})",
        fontsize=11,
    )
    _legend(ax, report["scores"], region=region is not None)
    path = out_dir / "summary.png"
    _save(fig, path)
    written.append(path)
    return written
