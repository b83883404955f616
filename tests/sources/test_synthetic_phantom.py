"""The synthetic phantom: determinism, labels, anatomy and hard negatives (small grids)."""

from __future__ import annotations

import numpy as np
import pytest

from cac_lightning.errors import InputError
from cac_lightning.scoring import score_scan
from cac_lightning.sources.synthetic import SynthOptions, is_stent_scan, is_zero_scan, make_scan
from cac_lightning.sources.synthetic.anatomy import coronary_tree, sample_anatomy
from cac_lightning.sources.synthetic.grid import Grid, add_gaussian
from cac_lightning.vessels import LABELS

POSITIVE = SynthOptions(zero_fraction=0.0)
ALL_NEGATIVES = SynthOptions(
    zero_fraction=0.0, stent_fraction=1.0, aortic_fraction=1.0, valve_fraction=1.0
)


def test_same_seed_same_scan_other_seed_other_scan():
    a = make_scan(3, 1, 64, POSITIVE)
    b = make_scan(3, 1, 64, POSITIVE)
    c = make_scan(4, 1, 64, POSITIVE)
    assert np.array_equal(a.hu, b.hu) and np.array_equal(a.labels, b.labels)
    assert a.geometry == b.geometry and a.meta == b.meta
    assert a.hu.shape != c.hu.shape or not np.array_equal(a.hu, c.hu)


def test_scan_keeps_its_anatomy_at_any_size():
    small, large = make_scan(0, 2, 48, POSITIVE), make_scan(0, 2, 96, POSITIVE)
    assert small.hu.shape[0] == large.hu.shape[0]
    assert small.hu.shape[1:] == (48, 48) and large.hu.shape[1:] == (96, 96)
    fov_small = small.geometry.pixel_spacing[0] * 48
    fov_large = large.geometry.pixel_spacing[0] * 96
    assert fov_small == pytest.approx(fov_large, abs=1e-3)
    assert small.meta["n_plaques"] == large.meta["n_plaques"]


def test_geometry_and_value_range_match_the_gated_protocol():
    s = make_scan(1, 0, 64)
    g = s.geometry
    assert s.hu.dtype == np.int16 and s.labels.dtype == np.uint8
    assert g.slice_spacing == 3.0 and g.slice_thickness == 3.0
    assert 40 <= g.shape[0] <= 60
    assert 165.0 <= g.pixel_spacing[0] * 64 <= 230.0
    assert s.hu.min() >= -1024 and s.hu.max() <= 3071
    assert s.patient_id == "SYN0000"


@pytest.mark.parametrize("index", [0, 1, 2, 3])
def test_labels_only_on_calcium_voxels(index):
    s = make_scan(5, index, 64, POSITIVE)
    assert s.labels.max() <= 4
    assert np.all(s.hu[s.labels > 0] >= 130)
    assert np.count_nonzero(s.labels) > 0


def test_dense_plaque_voxels_are_all_labelled():
    """No plaque hides in bone: the heart keeps clear of ribs, sternum and spine."""
    for i in range(14):  # without the fit, scan 12 of seed 6 has a plaque inside a rib
        s = make_scan(6, i, 64, POSITIVE, keep_parts=True)
        dense = (s.parts["calcium"] > 50) & (s.hu >= 130)
        assert dense.any()
        assert np.all(s.labels[dense] > 0)


def test_stents_are_spread_evenly():
    """Every run of 20 scans holds one to three of the 10 % stent scans, so a shuffled cohort's
    training split cannot end up without one; stents also land on calcium-positive scans."""
    stents = [is_stent_scan(i, 0.1) for i in range(200)]
    assert sum(stents) == 20
    assert all(1 <= sum(stents[i : i + 20]) <= 3 for i in range(181))
    assert any(s and not is_zero_scan(i, 0.2) for i, s in enumerate(stents))
    assert not any(is_stent_scan(i, 0.0) for i in range(50))
    assert all(is_stent_scan(i, 1.0) for i in range(50))


def test_zero_calcium_scans_are_empty_and_score_zero():
    assert [i for i in range(10) if is_zero_scan(i, 0.2)] == [4, 9]
    assert sum(is_zero_scan(i, 0.3) for i in range(100)) == 30
    s = make_scan(0, 4, 64, SynthOptions(zero_fraction=0.2))
    assert s.meta["zero"] and s.meta["n_plaques"] == 0
    assert not s.labels.any()
    assert score_scan(s.hu, s.labels, s.geometry, kvp=120).vessels["total"].agatston == 0.0
    # bone still crosses the threshold: the 130 HU mask alone is not calcium
    assert np.count_nonzero(s.hu >= 130) > 100


def test_positive_scans_score_above_zero():
    for i in range(4):
        s = make_scan(2, i, 64, POSITIVE)
        assert score_scan(s.hu, s.labels, s.geometry, kvp=120).vessels["total"].agatston > 0


def test_hard_negatives_exceed_130_hu_and_stay_unlabelled():
    s = make_scan(0, 0, 96, ALL_NEGATIVES, keep_parts=True)
    assert {"stent", "aortic_wall"} <= set(s.meta["negatives"])
    assert {"aortic_valve", "mitral_annulus"} & set(s.meta["negatives"])
    neg = s.parts["negatives"] > s.parts["calcium"]
    dense = neg & (s.hu >= 130) & (s.parts["negatives"] > 200)
    assert np.count_nonzero(dense) > 20
    assert not s.labels[dense].any()
    assert s.hu[dense].max() > 600  # metal stent
    bone = (s.parts["tissue"] >= 130) & (s.hu >= 130)
    assert np.count_nonzero(bone) > 1000 and not s.labels[bone].any()


def test_coronary_tree_is_anatomically_placed():
    """In LPS, x smaller = patient right, y smaller = anterior, z larger = superior."""
    for k in range(20):
        anat = sample_anatomy(np.random.default_rng(k))
        tree = coronary_tree(anat)
        hc = anat.heart_centre
        mean = {name: v.points.mean(axis=0) for name, v in tree.items()}
        assert mean["RCA"][0] < hc[0] < mean["LAD"][0]  # RCA right, LAD left of the heart centre
        assert mean["LAD"][1] < mean["CX"][1]  # LAD anterior of CX
        assert mean["CX"][0] > hc[0]  # CX on the left
        assert 8.0 < tree["LM"].length < 20.0  # LM is short
        assert tree["LM"].points[:, 2].min() > hc[2] + 20  # LM at the heart base (superior)
        assert tree["LAD"].points[-1, 2] < tree["LAD"].points[0, 2] - 40  # LAD runs to the apex


def test_labelled_vessels_sit_in_their_region():
    found = 0
    for i in range(12):
        s = make_scan(0, i, 64, POSITIVE)
        present = {v for v in ("LAD", "RCA", "CX") if (s.labels == LABELS[v]).any()}
        if {"LAD", "RCA"} <= present:
            cent = {}
            for v in present:
                zyx = np.argwhere(s.labels == LABELS[v]).mean(axis=0)
                cent[v] = s.geometry.index_to_mm(zyx)
            assert cent["RCA"][0] < cent["LAD"][0]  # RCA on the patient's right of LAD
            if "CX" in cent:
                assert cent["CX"][1] > cent["LAD"][1]  # CX posterior of LAD
            found += 1
    assert found >= 2


def test_gaussian_bead_is_the_exact_partial_volume_blur():
    grid = Grid(n=64, nz=9, fov_mm=32.0, slice_mm=3.0, z0_mm=-12.0)
    out = np.zeros(grid.shape, dtype=np.float32)
    cov = np.diag([0.5**2, 0.5**2, 0.5**2])
    psf = np.array([0.25**2, 0.25**2, 1.0])
    centre = np.array([grid.x[32], grid.y[32], grid.z[4]], dtype=np.float64)
    add_gaussian(out, grid, centre, cov, 1000.0, psf)
    # peak = A sqrt(det C / det(C + P)) = 1000 * (0.25 / 0.3125) * sqrt(0.25 / 1.25)
    assert out.max() == pytest.approx(1000 * 0.8 * np.sqrt(0.2), rel=1e-4)
    assert out[4, 32, 32] == out.max()
    # one slice (3 mm) away: exp(-9 / (2 * 1.25))
    assert out[5, 32, 32] / out[4, 32, 32] == pytest.approx(np.exp(-3.6), rel=1e-3)


def test_bad_options_are_input_errors():
    with pytest.raises(InputError, match="zero_fraction"):
        SynthOptions(zero_fraction=1.5)
    with pytest.raises(InputError, match="unknown synthetic option"):
        SynthOptions.from_dict({"zero_fractoin": 0.1})
    with pytest.raises(InputError, match="size"):
        make_scan(0, 0, 8)
