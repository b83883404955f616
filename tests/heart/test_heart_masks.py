"""The locator's target matches what the phantom paints."""

from __future__ import annotations

import numpy as np
import pytest

from cac_lightning.heart.masks import heart_mask
from cac_lightning.sources.synthetic.anatomy import coronary_tree, sample_anatomy
from cac_lightning.sources.synthetic.grid import Grid
from cac_lightning.sources.synthetic.render import render_anatomy


@pytest.mark.parametrize("seed", [3, 11])
def test_heart_mask_is_the_rendered_heart(seed: int) -> None:
    anat = sample_anatomy(np.random.default_rng(seed))
    grid = Grid(64, 40, 256.0, 4.0, -80.0)  # a coarse whole-chest grid, not the scan's own
    hu = render_anatomy(anat, grid, coronary_tree(anat))
    mask = heart_mask(anat, grid)
    ml = mask.sum() * grid.px**2 * grid.slice_mm / 1000
    assert 300 < ml < 2500
    inside = hu[mask]
    # Heart, blood, coronary grooves and pericardial fat: soft tissue or fat, never lung or bone.
    assert np.mean((inside > -200) & (inside < 120)) > 0.98
    assert np.mean(inside > 0) > 0.6  # mostly myocardium and blood (~40 HU), not fat
    # Just outside the mask there is lung: the mask is where the heart is, not a blob elsewhere.
    from scipy import ndimage as ndi

    shell = ndi.binary_dilation(mask, iterations=3) & ~mask
    assert np.mean(hu[shell] < -500) > 0.2


def test_heart_mask_off_grid_is_empty() -> None:
    anat = sample_anatomy(np.random.default_rng(0))
    grid = Grid(16, 4, 64.0, 4.0, 400.0)  # 40 cm above the heart
    assert not heart_mask(anat, grid).any()
