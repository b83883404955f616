"""The learned heart locator's target: heart plus pericardium of a synthetic anatomy.

The target is exactly what :func:`~cac_lightning.sources.synthetic.render.render_anatomy` paints
as the heart and its epicardial/pericardial fat (the outline ``q <= 1`` with its random lobes,
grown by the fat layer), on any :class:`~cac_lightning.sources.synthetic.grid.Grid`: a gated
field of view, a whole chest, a coarse 4 mm grid. Great vessels beyond the aortic root, the
descending aorta and the mediastinal fat around them are not part of it.
"""

from __future__ import annotations

import numpy as np

from cac_lightning.sources.synthetic.anatomy import Anatomy
from cac_lightning.sources.synthetic.grid import Grid
from cac_lightning.sources.synthetic.render import heart_with_fat

__all__ = ["heart_mask"]


def heart_mask(anat: Anatomy, grid: Grid) -> np.ndarray:
    """Exact heart + pericardium mask of ``anat`` on ``grid``.

    Args:
        anat: a synthetic anatomy (:func:`~cac_lightning.sources.synthetic.anatomy.sample_anatomy`).
        grid: any grid in the anatomy's scan-local frame.

    Returns:
        bool array (nz, n, n); all False when the heart lies off the grid.
    """
    return heart_with_fat(grid, anat)
