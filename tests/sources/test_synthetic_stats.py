"""Cohort statistics (``cac-synth --stats``) on hand-made volumes and on the COCA sample."""

from __future__ import annotations

import numpy as np
import pytest

from cac_lightning.sources.synthetic.stats import CohortStats, coca_stats, format_stats, scan_stats
from cac_lightning.volume import Geometry


def _phantom():
    """4 slices of 40 x 40 at 0.5 mm: two LAD lesions, one RCA lesion over 2 slices, bone."""
    rng = np.random.default_rng(0)
    hu = (40 + rng.normal(0, 10, size=(4, 40, 40))).astype(np.int16)
    labels = np.zeros(hu.shape, dtype=np.uint8)
    hu[1, 5:7, 5:8] = 300  # LAD lesion A: 6 px = 1.5 mm^2, peak 300
    hu[1, 5, 5] = 410
    labels[1, 5:7, 5:8] = 2
    hu[1, 20:22, 20:22] = 200  # LAD lesion B: 4 px = 1.0 mm^2
    labels[1, 20:22, 20:22] = 2
    hu[2:4, 30:33, 10:12] = 180  # RCA: one 3D lesion, two per-slice lesions of 6 px
    labels[2:4, 30:33, 10:12] = 4
    hu[0, 30:40, 30:40] = 500  # bone on slice 0 only: 100 px = 25 mm^2
    return hu, labels, Geometry(shape=hu.shape, pixel_spacing=(0.5, 0.5), slice_spacing=3.0)


def test_scan_stats_hand_computed():
    hu, labels, g = _phantom()
    s = scan_stats(hu, labels, g)
    assert s["lesions"] == {"LM": 0, "LAD": 2, "CX": 0, "RCA": 1}
    assert sorted(s["area_mm2"]) == [1.0, 1.5, 1.5, 1.5]
    assert sorted(s["peak_hu"]) == [180, 180, 200, 410]
    assert s["bone_fraction"] == 0.25
    assert s["bone_area_cm2"][0] == pytest.approx(0.25)


def test_format_stats_one_column_per_source():
    hu, labels, g = _phantom()
    a, b = CohortStats("alpha"), CohortStats("beta")
    a.add(scan_stats(hu, labels, g))
    b.add(scan_stats(hu, labels, g))
    b.add(scan_stats(hu, np.zeros_like(labels), g))
    lines = format_stats([a, b]).splitlines()
    assert lines[0].split() == ["alpha", "beta"]
    assert lines[1].split()[-2:] == ["1", "2"]
    lad = next(line for line in lines if line.startswith("lesions/scan LAD"))
    assert "2.00, 2" in lad and "1.00, 2" in lad


def test_coca_sample_statistics(coca_root):
    s = coca_stats(coca_root)
    assert s.n_scans == 3
    # 30 non-empty expert ROIs; their XML Area/Max: largest 35.17 mm^2, highest 934 HU
    assert len(s.area_mm2) == 30
    assert max(s.peak_hu) == 934
    assert max(s.area_mm2) == pytest.approx(35.17, abs=0.05)
    assert min(s.bone_fraction) > 0.9
    assert all(10.0 < sd < 30.0 for sd in s.noise_sd)
