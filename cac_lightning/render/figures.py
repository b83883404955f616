"""matplotlib figures on the Agg canvas, written as PNG atomically.

matplotlib is imported lazily and used through ``Figure`` with the Agg canvas, never
``pyplot``, so no global backend state is touched.
"""

from __future__ import annotations

from pathlib import Path

from cac_lightning.io.atomic import atomic_path

__all__ = ["new_figure", "save_png"]


def new_figure(width: float, height: float, layout: str | None = "constrained"):
    """A matplotlib Figure (inches, 100 dpi) on the Agg canvas; pyplot is never used."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def save_png(fig, path: str | Path, tight: bool = True) -> Path:
    """Write ``fig`` to ``path`` as PNG, atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight" if tight else None)
    return path
