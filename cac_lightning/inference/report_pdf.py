"""The one-page report as an A4 PDF, drawn by matplotlib (``cac-score --report``).

The same :class:`~cac_lightning.inference.report.ReportContent` as the HTML page: headline,
per-vessel table, MESA lines, legend, key slices with the heart region outlined, warnings and
footer. matplotlib's PDF backend embeds the fonts, so the file prints as it looks.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from cac_lightning.inference.outputs import REGION_COLOR
from cac_lightning.inference.report import (
    CATEGORY_TEXT,
    DISCLAIMER,
    KEY_SLICE_TEXT,
    ReportContent,
)
from cac_lightning.io.atomic import atomic_path
from cac_lightning.render.figures import new_figure
from cac_lightning.render.overlay import render_overlay
from cac_lightning.vessels import VESSEL_COLORS, VESSELS

__all__ = ["A4_INCHES", "write_report_pdf"]

A4_INCHES = (8.27, 11.69)
MARGIN = 0.06  # of the page width / height
COLUMNS = 3  # key slices per row


def _wrap(text: str, size: float) -> str:
    """``text`` wrapped to the page width at a font ``size`` (points)."""
    chars = int((1 - 2 * MARGIN) * A4_INCHES[0] * 72 / (0.5 * size))
    return textwrap.fill(text, chars)


def _lines(fig, y: float, lines, size: float, **kw) -> float:
    """Draw wrapped ``lines`` from ``y`` (figure fraction) down; return the next free ``y``."""
    for line in lines:
        text = _wrap(line, size)
        fig.text(MARGIN, y, text, fontsize=size, va="top", **kw)
        y -= (text.count("\n") + 1) * size * 1.35 / 72 / A4_INCHES[1]
    return y - 0.006


def _table(fig, y: float, content: ReportContent) -> float:
    height = 0.022 * (len(content.rows) + 1)
    ax = fig.add_axes((MARGIN, y - height, 0.62, height))
    ax.set_axis_off()
    cells = [
        [name, f"{a:.1f}", f"{v:.1f}", f"{m:.1f}", str(n)] for name, a, v, m, n in content.rows
    ]
    table = ax.table(
        cellText=cells,
        colLabels=["Vessel", "Agatston", "Volume (mm³)", "Mass (mg)", "Lesions"],
        loc="upper left",
        cellLoc="right",
        bbox=(0, 0, 1, 1),
    )
    table.auto_set_font_size(False)
    table.set_fontsize(9)
    for (row, col), cell in table.get_celld().items():
        cell.set_edgecolor("#bbbbbb")
        if row == 0 or content.rows[row - 1][0] == "Total":
            cell.set_text_props(fontweight="bold")
        if col == 0 and row > 0 and content.rows[row - 1][0] in VESSEL_COLORS:
            rgb = [c / 255 for c in VESSEL_COLORS[content.rows[row - 1][0]]]
            cell.set_facecolor((*rgb, 0.35))
    return y - height - 0.012


def _legend(fig, y: float, with_region: bool) -> float:
    x = MARGIN
    items = [(v, [c / 255 for c in VESSEL_COLORS[v]], None) for v in VESSELS]
    if with_region:
        items.append(("heart region", "none", REGION_COLOR))
    for name, face, edge in items:
        fig.patches.append(
            _swatch(fig, x, y - 0.009, face, edge or "#444444"),
        )
        fig.text(x + 0.018, y, name, fontsize=8.5, va="top")
        x += 0.03 + 0.0085 * len(name)
    return y - 0.022


def _swatch(fig, x: float, y: float, face, edge):
    from matplotlib.patches import Rectangle

    return Rectangle(
        (x, y), 0.012, 0.008, transform=fig.transFigure, facecolor=face, edgecolor=edge, lw=1.2
    )


def _slices(fig, y: float, content: ReportContent) -> float:
    width = (1 - 2 * MARGIN - (COLUMNS - 1) * 0.015) / COLUMNS
    side = width * A4_INCHES[0] / A4_INCHES[1]  # square pictures, height in figure fraction
    for i, (hu, lab, reg, caption) in enumerate(content.figures):
        row, col = divmod(i, COLUMNS)
        top = y - row * (side + 0.03)
        ax = fig.add_axes((MARGIN + col * (width + 0.015), top - side, width, side))
        ax.imshow(render_overlay(hu, lab), interpolation="nearest")
        if reg is not None and reg.any() and not reg.all():
            ax.contour(reg, [0.5], colors=[REGION_COLOR], linewidths=0.8)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(caption, fontsize=7.5, pad=2)
    rows = -(-len(content.figures) // COLUMNS)
    return y - rows * (side + 0.03)


def write_report_pdf(path: Path, content: ReportContent) -> Path:
    """Write ``content`` as a one-page A4 PDF (atomically).

    Args:
        path: the ``.pdf`` file to write.
        content: what the report says (:func:`cac_lightning.inference.report.report_content`).

    Returns:
        ``path``.
    """
    fig = new_figure(*A4_INCHES, layout=None)
    y = 1 - MARGIN * 0.6
    fig.text(MARGIN, y, "Coronary artery calcium score", fontsize=16, va="top", weight="bold")
    y -= 0.03
    y = _lines(fig, y, [f"Scan {content.scan_id} · {DISCLAIMER}"], 8.5, color="#555555")
    if content.patient:
        patient = " · ".join(f"{k}: {v}" for k, v in content.patient.items())
        y = _lines(fig, y, [patient], 8.5, color="#555555")
    y = _lines(fig, y - 0.004, [content.headline], 13, weight="bold")
    y = _table(fig, y, content)
    y = _lines(fig, y, content.mesa, 9.5)
    y = _lines(fig, y, [CATEGORY_TEXT, KEY_SLICE_TEXT], 7.5, color="#555555")
    y = _legend(fig, y, content.with_region)
    y = _slices(fig, y - 0.012, content)
    if content.warnings:
        y = _lines(fig, y, ["Warnings"], 9, weight="bold", color="#8a4b00")
        y = _lines(fig, y, [f"• {w}" for w in content.warnings], 8, color="#8a4b00")
    _lines(fig, max(y, 0.08), content.footer, 7, color="#666666")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="pdf", metadata={"Title": f"CAC report {content.scan_id}"})
    return path
