"""Generator version 4: calcified cartilage, bone texture, osteophytes, sternal wires, clips."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from scipy import ndimage as ndi

from cac_lightning.sources.synthetic import SynthOptions, is_stent_scan, make_scan
from cac_lightning.sources.synthetic.anatomy import (
    STERNUM_SEMI_MM,
    Skeleton,
    coronary_tree,
    sample_anatomy,
    sample_skeleton,
)
from cac_lightning.sources.synthetic.grid import Grid
from cac_lightning.sources.synthetic.phantom import is_sternotomy_scan
from cac_lightning.sources.synthetic.render import render_anatomy

POSITIVE = SynthOptions(zero_fraction=0.0)

# sha256 (first 16 hex digits) of the label maps of make_scan(11, i, 64, POSITIVE), i = 0..5,
# made by generator version 3 (commit e061843). Version 4 adds its findings from a fourth seed
# stream and streaks them from that stream, so these scans keep their coronary labels; scan 1
# gains cartilage, aortic wall calcium and osteophytes, scan 3 also sternal wires and clips.
V3_LABELS = {
    0: "8fb5c7da8e479ab9",
    1: "31e27696c7345ff6",
    2: "188e7019b923a6ce",
    3: "7b12496a2562913b",
    4: "a358f9db6499ff2a",
    5: "c401dc551e9fcd29",
}


@pytest.mark.parametrize("index", sorted(V3_LABELS))
def test_version_4_keeps_the_coronary_labels_of_version_3(index):
    s = make_scan(11, index, 64, POSITIVE)
    assert hashlib.sha256(s.labels.tobytes()).hexdigest()[:16] == V3_LABELS[index]
    if index in (1, 3):  # the findings are really there, so the check means something
        assert {"costal_cartilage", "aortic_wall", "osteophyte"} <= set(s.meta["negatives"])
    if index == 3:
        assert s.meta["findings"]["sternotomy_wire"] > 0
        assert s.meta["findings"]["surgical_clip"] > 0


def test_same_seed_same_bytes_with_every_finding():
    a = make_scan(11, 3, 64, POSITIVE, keep_parts=True)
    b = make_scan(11, 3, 64, POSITIVE, keep_parts=True)
    assert a.hu.tobytes() == b.hu.tobytes() and a.labels.tobytes() == b.labels.tobytes()
    assert a.meta == b.meta
    c = make_scan(12, 3, 64, POSITIVE)
    assert a.hu.shape != c.hu.shape or a.hu.tobytes() != c.hu.tobytes()


def test_calcified_cartilage_crosses_130_hu_and_is_never_labelled():
    """The same scan with and without calcified cartilage (same age draw): the difference
    lies in the anterior chest wall, crosses the threshold and carries label 0."""
    with_c = make_scan(11, 1, 128, SynthOptions(zero_fraction=0.0, cartilage_fraction=1.0),
                       keep_parts=True)  # fmt: skip
    without = make_scan(11, 1, 128, SynthOptions(zero_fraction=0.0, cartilage_fraction=0.0),
                        keep_parts=True)  # fmt: skip
    assert with_c.meta["cartilage"]["mode"] != "none"
    assert without.meta["cartilage"]["mode"] == "none"
    new = (with_c.parts["tissue"] >= 130) & (without.parts["tissue"] < 110)
    assert np.count_nonzero(new) > 50
    assert np.mean(with_c.hu[new] >= 130) > 0.8
    assert not with_c.labels[new].any()
    # anterior: above the heart centre's row (y grows posteriorly)
    rows = np.nonzero(new)[1]
    assert np.median(rows) < with_c.hu.shape[1] * 0.35
    assert np.array_equal(with_c.labels, without.labels)


def test_cartilage_calcification_grows_with_age():
    skels = [sample_skeleton(np.random.default_rng(i), 0.7) for i in range(400)]
    none = np.mean([s.cartilage_mode == "none" for s in skels])
    assert 0.22 < none < 0.38
    calc = [s for s in skels if s.cartilage_mode != "none"]
    assert all(200.0 <= s.cartilage_hu <= 1000.0 for s in calc)
    age = np.array([s.age for s in calc])
    assert np.corrcoef(age, [s.cartilage_extent for s in calc])[0, 1] > 0.5
    assert np.corrcoef(age, [s.cartilage_hu for s in calc])[0, 1] > 0.5
    assert {"rim", "dense"} == {s.cartilage_mode for s in calc}


def _bone_slice(size: int = 256):
    anat = sample_anatomy(np.random.default_rng(5))
    grid = Grid(size, anat.n_slices, anat.fov_mm, 3.0, anat.z0_mm)
    skel = Skeleton(0.2, "none", 0.0, 0.0, False, seed=9)
    vol = render_anatomy(anat, grid, coronary_tree(anat), skel)
    sig = np.sqrt(0.35**2 + grid.px**2 / 12) / grid.px
    return anat, grid, ndi.gaussian_filter(vol, (0, sig, sig))


def test_sternum_has_a_cortex_brighter_than_its_textured_marrow():
    anat, grid, vol = _bone_slice()
    k = grid.nz - 2  # top slices: above the xiphoid
    assert grid.z[k] > anat.shape["xiphoid_z"]
    sx, sy = anat.sternum_centre
    j = int(np.argmin(np.abs(grid.x - (sx + 5.0))))  # beside the midline
    half = STERNUM_SEMI_MM[1] * anat.body_scale
    rows = np.nonzero(np.abs(grid.y - sy) <= half + 1.0)[0]
    profile = vol[k, rows, j]
    centre = vol[k, np.abs(grid.y - sy) <= 1.5][:, np.abs(grid.x - sx - 5.0) <= 4.0]
    assert profile.max() > 450.0  # cortex after blur
    assert 120.0 < float(np.median(centre)) < 320.0  # marrow
    assert profile.max() > np.median(centre) + 200.0
    assert centre.std() > 20.0  # trabecular texture, not a uniform fill


def test_ribs_have_a_cortex_brighter_than_their_marrow():
    """Ribs are oblique to the slices, so a slice often cuts only their cortex: over all rib
    voxels, both dense cortex and textured marrow must be there."""
    anat, grid, vol = _bone_slice()
    spc, spr = anat.shape["spine_c"], anat.shape["spine_r"]
    y, x = grid.y[:, None], grid.x[None, :]
    away = ((x - spc[0]) ** 2 + (y - spc[1]) ** 2) > (max(spr) + 25.0) ** 2  # not the spine
    lateral = (y > anat.sternum_centre[1] + 30.0) & away  # not sternum or costal cartilage
    rib = vol[:, lateral]
    rib = rib[rib >= 130]
    assert rib.size > 1000
    assert np.mean(rib > 450) > 0.15  # cortex
    assert np.mean(rib < 320) > 0.2  # marrow
    marrow = rib[rib < 320]
    assert marrow.std() > 25.0  # textured, not a uniform fill


def test_sternal_wires_and_clips_are_metal_dense_and_unlabelled():
    s = make_scan(11, 3, 128, POSITIVE, keep_parts=True)
    metal = s.parts["negatives"] > 1500
    assert np.count_nonzero(metal) > 10
    assert s.hu[metal].max() >= 2000
    assert not s.labels[metal].any()
    found = (s.parts["negatives"] > s.parts["calcium"]) & (s.hu >= 130)
    assert not s.labels[found].any()
    # and they cast streaks (version-3 streak model, fed by the findings' own stream)
    near = ndi.binary_dilation(metal, iterations=6) & ~ndi.binary_dilation(metal, iterations=2)
    assert np.abs(s.parts["streaks"][near]).max() > 20.0


def test_sternotomies_are_spread_evenly_and_never_on_a_stent_scan():
    wired = [is_sternotomy_scan(i, 0.05) for i in range(400)]
    assert 19 <= sum(wired) <= 21
    assert all(1 <= sum(wired[i : i + 40]) <= 3 for i in range(361))
    assert not any(w and is_stent_scan(i, 0.1) for i, w in enumerate(wired))
    assert not any(is_sternotomy_scan(i, 0.0) for i in range(50))


def test_osteophytes_sit_at_the_vertebra_and_are_unlabelled():
    s = make_scan(11, 1, 128, POSITIVE, keep_parts=True)
    assert s.meta["findings"]["osteophyte"] > 0
    tissue_bone = s.parts["tissue"] >= 300
    spur = (s.parts["negatives"] > 250) & ~tissue_bone
    assert np.count_nonzero(spur) > 0
    assert not s.labels[spur].any()


def test_candidate_regions_find_the_chest_wall_and_skip_labels():
    from cac_lightning.sources.synthetic.candidates import candidate_regions

    s = make_scan(11, 3, 128)
    r = candidate_regions(s.hu, s.labels, s.geometry.pixel_spacing)
    assert r["spine"] > 0 and r["ribs"] > 0 and r["sternum"] > 0
    total = sum(r.values())
    px = s.geometry.pixel_spacing
    expected = np.count_nonzero((s.hu >= 130) & (s.labels == 0)) * px[0] * px[1]
    assert total == pytest.approx(expected)
    everything = np.ones_like(s.labels)  # every candidate labelled: nothing left
    assert sum(candidate_regions(s.hu, everything, px).values()) == 0
