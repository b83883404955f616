"""Image formation of the synthetic scans: slice profile, cardiac motion, streaks, plaque shape."""

from __future__ import annotations

import numpy as np
import pytest

from cac_lightning.sources.synthetic import SynthOptions, make_scan
from cac_lightning.sources.synthetic.anatomy import coronary_tree, sample_anatomy
from cac_lightning.sources.synthetic.artefacts import (
    STREAK_MAX_HU,
    add_motion,
    slice_profile,
    streaks,
)
from cac_lightning.sources.synthetic.grid import Grid, add_gaussian
from cac_lightning.sources.synthetic.plaques import Beads, sample_plaques


def test_slice_profile_averages_neighbours_and_keeps_the_mean():
    vol = np.zeros((5, 2, 2), np.float32)
    vol[2] = 8.0
    out = slice_profile(vol)
    assert out[:, 0, 0].tolist() == [0.0, 1.0, 6.0, 1.0, 0.0]
    flat = np.full((4, 3, 3), 40.0, np.float32)
    assert np.array_equal(slice_profile(flat), flat)  # a uniform tissue stays what it is


def test_motion_smears_an_object_and_keeps_its_mass():
    grid = Grid(96, 5, 48.0, 3.0, -6.0)
    cov = np.diag([0.4, 0.4, 1.0]) ** 2
    bead = Beads("plaque", "RCA", np.zeros((1, 3)), cov[None], np.array([800.0]))
    psf = np.array([0.1, 0.1, 0.5])
    still, moved = (np.zeros(grid.shape, np.float32) for _ in range(2))
    (ob,) = add_motion([bead], 1.0, np.random.default_rng(0))
    add_gaussian(still, grid, bead.centres[0], bead.covs[0], bead.amps[0], psf)
    add_gaussian(moved, grid, ob.centres[0], ob.covs[0], ob.amps[0], psf)
    assert moved.sum() == pytest.approx(still.sum(), rel=1e-3)
    assert moved.max() < 0.8 * still.max()  # dimmer ...
    assert np.count_nonzero(moved > 10) > np.count_nonzero(still > 10)  # ... and wider
    (same,) = add_motion([bead], 0.0, np.random.default_rng(0))
    assert same is bead  # a still scan leaves objects as they are


def test_streaks_radiate_from_dense_objects_only():
    grid = Grid(128, 3, 64.0, 3.0, -3.0)
    dense = np.zeros(grid.shape, np.float32)
    dense[1, 60:66, 60:66] = 2000.0  # a metal-like object on the middle slice
    out = streaks(dense, grid, np.random.default_rng(0))
    assert not out[0].any() and not out[2].any()  # slices without a dense object
    ring = np.hypot(*(np.mgrid[0:128, 0:128] - 62.5))  # pixels from the object's centre
    near = (ring > 8) & (ring < 30)  # 4-15 mm away
    assert out[1][near].std() > 5.0  # streaks there
    assert np.abs(out[1]).max() <= 2.5 * STREAK_MAX_HU
    faint = np.zeros(grid.shape, np.float32)
    faint[1, 60:66, 60:66] = 300.0  # ordinary plaque density: no streaks
    assert not streaks(faint, grid, np.random.default_rng(0)).any()


def test_irregular_plaques_keep_the_other_draws():
    """The texture generator shapes plaques without moving the scan's other draws."""
    anat = sample_anatomy(np.random.default_rng(3))
    tree = coronary_tree(anat)
    smooth_rng, rough_rng = np.random.default_rng(7), np.random.default_rng(7)
    smooth = sample_plaques(smooth_rng, tree, 0.8)
    rough = sample_plaques(rough_rng, tree, 0.8, texture=np.random.default_rng(1))
    assert smooth_rng.uniform() == rough_rng.uniform()
    assert [p.vessel for p in smooth] == [p.vessel for p in rough]
    assert any(not np.allclose(a.centres, b.centres) for a, b in zip(smooth, rough, strict=True))


def test_stent_scans_carry_streaks_and_stay_unlabelled_there():
    s = make_scan(0, 0, 96, SynthOptions(zero_fraction=0.0, stent_fraction=1.0), keep_parts=True)
    st = s.parts["streaks"]
    assert np.abs(st).max() > 20.0
    assert 0.0 <= s.meta["motion"] <= 1.0
    metal = s.parts["negatives"] > s.parts["calcium"]
    assert not s.labels[metal & (s.hu >= 130)].any()
