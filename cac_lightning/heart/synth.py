"""Synthetic training cases for the heart locator: phantom chests at random fields of view.

Each case is one anatomy of :func:`~cac_lightning.sources.synthetic.anatomy.sample_anatomy`
rendered by :func:`~cac_lightning.sources.synthetic.render.render_anatomy` on a moderately
coarse grid (2.4-3.4 mm pixels, so hundreds of cases are cheap), in one of two settings:

- gated cardiac (half the cases): the phantom's own 165-230 mm field of view (x 0.9-1.15),
  2.5-3 mm slices over about the phantom's z range (the heart often cut at top or bottom);
- whole chest (the other half): 300-460 mm field of view, 2.5-5 mm slices over 220-340 mm in
  z with the heart centre anywhere in the lower 25-70 % of it.

Then: the 3 mm slice profile, in-plane blur, Gaussian noise (8-35 HU), a global HU gain and
offset, with probability 0.5 an off-centre in-plane crop to 65-100 % of each side (the heart
may end up near an edge), and with probability 0.4 the circular reconstruction field (corners
set to -2048 HU, as many scanners store them). The target is :func:`~cac_lightning.heart.masks.
heart_mask` on the same grid, cropped alike. Everything is drawn from
``SeedSequence([seed, index, 0x4EA7])``, so a case depends only on ``(seed, index)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from cac_lightning.heart.masks import heart_mask
from cac_lightning.sources.synthetic.anatomy import SLICE_MM, coronary_tree, sample_anatomy
from cac_lightning.sources.synthetic.artefacts import slice_profile
from cac_lightning.sources.synthetic.grid import Grid
from cac_lightning.sources.synthetic.render import render_anatomy

__all__ = ["HeartCase", "make_case"]

_STREAM = 0x4EA7  # keeps these draws apart from the calcium cohort's (seed, index) streams


@dataclass
class HeartCase:
    """One synthetic training or validation case.

    Attributes:
        hu: float32 (Z, H, W) CT numbers.
        mask: bool (Z, H, W) heart + pericardium.
        spacing_zyx: voxel spacing (slice, row, column) in mm.
        whole_chest: True for the large field-of-view setting.
    """

    hu: np.ndarray
    mask: np.ndarray
    spacing_zyx: tuple[float, float, float]
    whole_chest: bool


def make_case(seed: int, index: int, px_mm: tuple[float, float] = (2.4, 3.4)) -> HeartCase:
    """Render case ``index`` of the heart-locator set with ``seed``.

    Args:
        seed: set seed.
        index: case number; the case depends only on ``(seed, index)``.
        px_mm: (low, high) pixel spacing range of the render (mm).
    """
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(index), _STREAM]))
    anat = sample_anatomy(rng)
    tree = coronary_tree(anat)
    px = float(rng.uniform(*px_mm))
    whole = bool(rng.uniform() < 0.5)
    if whole:
        fov = float(rng.uniform(300.0, 460.0))
        slice_mm = float(rng.uniform(2.5, 5.0))
        z_ext = float(rng.uniform(220.0, 340.0))
        z0 = -float(rng.uniform(0.25, 0.7)) * z_ext
    else:
        fov = anat.fov_mm * float(rng.uniform(0.9, 1.15))
        slice_mm = float(rng.choice([2.5, 3.0, 3.0, 3.0]))
        z_ext = anat.n_slices * SLICE_MM * float(rng.uniform(0.85, 1.1))
        z0 = anat.z0_mm + float(rng.uniform(-12.0, 12.0))
    n = max(int(round(fov / px)), 16)
    nz = max(int(round(z_ext / slice_mm)), 8)
    grid = Grid(n, nz, n * px, slice_mm, z0)
    hu = slice_profile(render_anatomy(anat, grid, tree))
    hu = ndi.gaussian_filter(hu, (0, 0.5, 0.5), mode="nearest", truncate=2.0)
    hu += rng.standard_normal(hu.shape, dtype=np.float32) * np.float32(rng.uniform(8.0, 35.0))
    hu = hu * np.float32(rng.uniform(0.96, 1.04)) + np.float32(rng.normal(0.0, 10.0))
    mask = heart_mask(anat, grid)
    if rng.uniform() < 0.5:  # off-centre crop
        sl = []
        for size in (n, n):
            keep = max(int(size * rng.uniform(0.65, 1.0)), 16)
            start = int(rng.integers(0, size - keep + 1))
            sl.append(slice(start, start + keep))
        hu, mask = hu[:, sl[0], sl[1]], mask[:, sl[0], sl[1]]
    elif rng.uniform() < 0.8:  # circular reconstruction field (0.4 of all cases)
        r = (np.arange(n) + 0.5 - n / 2) / (n / 2)
        hu[:, r[:, None] ** 2 + r[None, :] ** 2 > 1.0] = -2048.0
    return HeartCase(
        np.ascontiguousarray(hu, dtype=np.float32),
        np.ascontiguousarray(mask),
        (slice_mm, px, px),
        whole,
    )
