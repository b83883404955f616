"""``ScoringConfig.slice_scaling``: the standard's ``slice_spacing / 3`` or Hong et al. Eq. 1."""

from __future__ import annotations

import numpy as np
import pytest

from cac_lightning.errors import CACError
from cac_lightning.io.volume import Geometry
from cac_lightning.scoring import ScoringConfig, score_scan

LAD = 2


def _scan(spacing_mm: float):
    """One 4 x 5 px (0.5 mm) component of max 450 HU (weight 4) on the middle of 3 slices."""
    hu = np.full((3, 12, 12), 40, np.int16)
    labels = np.zeros(hu.shape, np.uint8)
    hu[1, 3:7, 2:7] = 250
    hu[1, 4, 4] = 450
    labels[1, 3:7, 2:7] = LAD
    g = Geometry(shape=hu.shape, pixel_spacing=(0.5, 0.5), slice_spacing=spacing_mm)
    return hu, labels, g


@pytest.mark.parametrize(
    ("scaling", "spacing_mm", "expected"),
    [
        ("standard", 2.0, 20 * 0.25 * 4 * 2.0 / 3),  # the default: x slice spacing / 3 mm
        ("standard", 3.0, 20 * 0.25 * 4),
        ("none", 2.0, 20 * 0.25 * 4),  # Eq. 1: W x pixels x pixel size, the paper's 2 mm slices
        ("none", 0.5, 20 * 0.25 * 4),
    ],
)
@pytest.mark.parametrize("mode", ["per-slice", "lesion3d"])
def test_agatston_slice_factor(scaling, spacing_mm, expected, mode):
    hu, labels, g = _scan(spacing_mm)
    s = score_scan(hu, labels, g, ScoringConfig(mode=mode, slice_scaling=scaling))
    assert s.vessels["LAD"].agatston == pytest.approx(expected)
    assert s.vessels["LAD"].volume_mm3 == pytest.approx(20 * 0.25 * spacing_mm)  # unaffected
    assert s.settings["slice_scaling"] == scaling


def test_default_is_the_standard_and_unknown_names_fail():
    assert ScoringConfig().slice_scaling == "standard"
    assert ScoringConfig(slice_scaling=" None ").slice_scaling == "none"
    with pytest.raises(CACError, match="slice_scaling 'paper'.*standard, none"):
        ScoringConfig(slice_scaling="paper")
