"""Drawing: calcium overlays on CT slices and matplotlib figures written as PNG.

Below ``inference/`` (which draws a scan's overlays) and ``evaluation/`` (which draws its
figures), so neither imports the other to draw (docs/architecture.md). numpy only at import
time; matplotlib is imported when a figure is made.
"""

from __future__ import annotations

from cac_lightning.render.figures import new_figure, save_png
from cac_lightning.render.overlay import DISPLAY_WINDOW, grey, render_overlay

__all__ = ["DISPLAY_WINDOW", "grey", "new_figure", "render_overlay", "save_png"]
