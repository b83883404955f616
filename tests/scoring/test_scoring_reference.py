"""score_scan against a slow, obvious loop over vessels, slices and ndimage components."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from cac_lightning.scoring import ScoringConfig, score_scan
from cac_lightning.vessels import VESSELS
from cac_lightning.volume import Geometry

C = 0.8  # mass factor


def weight(max_hu: float) -> int:
    return 1 if max_hu < 200 else 2 if max_hu < 300 else 3 if max_hu < 400 else 4


def reference(hu, labels, g: Geometry, mode: str, min_area: float = 1.0):
    """{vessel: (agatston, volume, mass, lesions)} by plain loops."""
    pa, dz = g.pixel_area_mm2, g.slice_spacing
    out = {}
    for k, name in enumerate(VESSELS, start=1):
        mask = (labels == k) & (hu >= 130)
        kept = np.zeros_like(mask)
        agat = vol = mass = 0.0
        if mode == "per-slice":
            regions = []
            for z in range(mask.shape[0]):
                lab, n = ndimage.label(mask[z], structure=np.ones((3, 3)))
                regions += [(z, lab == i) for i in range(1, n + 1)]
        else:
            lab, n = ndimage.label(mask, structure=ndimage.generate_binary_structure(3, 1))
            regions = [(slice(None), lab == i) for i in range(1, n + 1)]
        for z, px in regions:
            values = hu[z][px].astype(float)
            area = px.sum() * pa
            if area < min_area - 1e-9:
                continue
            kept[z] |= px
            agat += area * weight(values.max()) * dz / 3
            vol += px.sum() * pa * dz
            mass += C * values.mean() * px.sum() * pa * dz / 1000
        # lesions: per-slice groups kept components overlapping between slices
        if mode == "per-slice":
            st = np.zeros((3, 3, 3), bool)
            st[1] = True
            st[0, 1, 1] = st[2, 1, 1] = True
            n_les = ndimage.label(kept, structure=st)[1]
        else:
            n_les = ndimage.label(kept, structure=ndimage.generate_binary_structure(3, 1))[1]
        out[name] = (agat, vol, mass, n_les)
    return out


def random_scan(seed: int):
    rng = np.random.default_rng(seed)
    shape = (7, 28, 30)
    hu = rng.integers(-100, 160, shape).astype(np.int16)
    blobs = rng.random(shape) < 0.25
    blobs = ndimage.binary_dilation(rng.random(shape) < 0.02, iterations=1) | blobs
    hu[blobs] = rng.integers(100, 700, int(blobs.sum()))
    labels = np.zeros(shape, np.uint8)
    for _ in range(12):  # overlapping boxes of random vessels
        z, y, x = (int(rng.integers(0, s - 3)) for s in shape)
        labels[z : z + 3, y : y + 8, x : x + 8] = rng.integers(1, 5)
    g = Geometry(shape, (0.6, 0.7), float(rng.choice([1.5, 2.5, 3.0])))
    return hu, labels, g


@pytest.mark.parametrize("mode", ["per-slice", "lesion3d"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_loop_reference(seed, mode):
    hu, labels, g = random_scan(seed)
    got = score_scan(hu, labels, g, ScoringConfig(mode=mode, mass_factor=C))
    ref = reference(hu, labels, g, mode)
    assert sum(r[3] for r in ref.values()) > 5  # the case is not trivial
    for name in VESSELS:
        agat, vol, mass, n_les = ref[name]
        v = got.vessels[name]
        assert v.agatston == pytest.approx(agat, rel=1e-9, abs=1e-9), name
        assert v.volume_mm3 == pytest.approx(vol, rel=1e-9, abs=1e-9), name
        assert v.mass_mg == pytest.approx(mass, rel=1e-9, abs=1e-9), name
        assert v.lesions == n_les, name
    assert got.total.agatston == pytest.approx(sum(r[0] for r in ref.values()))
    assert sum(les.agatston for les in got.lesions) == pytest.approx(got.total.agatston)
    assert sum(les.n_voxels for les in got.lesions) * g.voxel_volume_mm3 == pytest.approx(
        got.total.volume_mm3
    )
