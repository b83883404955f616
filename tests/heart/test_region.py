"""The heart region: chest geometry on synthetic and real scans, the gate, the CLI outputs."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from cac_lightning.errors import InputError
from cac_lightning.heart.geometry import chest_masks
from cac_lightning.heart.region import NoHeartError, find_heart
from cac_lightning.volume import Volume


@pytest.fixture(scope="module")
def synth_scans():
    from cac_lightning.sources.synthetic.phantom import make_scan

    return [make_scan(3, i, size=128) for i in range(4)]


def test_geometry_keeps_every_synthetic_lesion_and_drops_the_spine(synth_scans):
    for scan in synth_scans:
        masks = chest_masks(scan.hu, scan.geometry.spacing_zyx)
        calcium = scan.labels > 0
        assert masks.region[calcium].all()
        # dense bone (spine, ribs, sternum) is outside the region
        bone = (scan.hu >= 400) & masks.bone
        assert bone.any() and not (masks.region & bone).any()
        assert masks.lungs.sum() > 0 and not (masks.region & masks.lungs).all()


def test_no_lungs_means_no_heart():
    hu = np.random.default_rng(0).normal(40, 10, (6, 64, 64)).astype(np.int16)
    with pytest.raises(NoHeartError, match="no heart found"):
        find_heart(hu, (3.0, 0.7, 0.7), method="geometry")
    assert find_heart(hu, (3.0, 0.7, 0.7), method="off") is None


def test_bad_settings_are_input_errors():
    hu = np.zeros((2, 8, 8), np.int16)
    with pytest.raises(InputError, match="choose one of"):
        find_heart(hu, (1, 1, 1), method="lungs")
    with pytest.raises(InputError, match="margin"):
        find_heart(hu, (1, 1, 1), method="geometry", margin_mm=-1)


def test_predictor_gates_calcium_outside_the_region(synth_scans):
    """An always-LAD network calls every candidate calcium; the gate keeps the heart's only."""
    import torch

    from cac_lightning.inference import Predictor

    class AlwaysLad(torch.nn.Module):
        depth = 1

        def forward(self, x):
            logits = torch.zeros(x.shape[0], 5, *x.shape[2:])
            logits[:, 2] = 5.0
            return logits

    scan = synth_scans[0]
    vol = Volume(hu=scan.hu, geometry=scan.geometry, kvp=120.0)
    predictor = Predictor(AlwaysLad(), {})
    predictor.set_heart("off")
    everywhere = predictor.predict(vol) > 0
    predictor.set_heart("geometry")
    region = predictor.heart_region(vol)
    gated = predictor.predict(vol, region=region) > 0
    assert np.array_equal(gated, everywhere & region.mask)
    outside = everywhere & ~region.mask
    assert (scan.hu[outside] >= 130).all() and outside.sum() > gated.sum() > 0  # bone dropped
    assert not ((scan.labels > 0) & ~gated).any()  # no true calcium lost


def test_real_scans_region_holds_every_expert_lesion(coca_root):
    """Every expert 2D lesion of the three COCA sample scans lies inside the geometry region
    (no tuning on them: the thresholds are anatomical constants, see heart/geometry.py)."""
    from cac_lightning.io import read_volume
    from cac_lightning.sources.coca import _series_dir, find_release
    from cac_lightning.sources.coca_labels import rasterise_rois
    from cac_lightning.sources.coca_xml import parse_coca_xml

    release = find_release(coca_root)
    found = total = 0
    for xml in sorted((release / "calcium_xml").glob("*.xml")):
        vol = read_volume(_series_dir(release / "patient" / xml.stem))
        labels = rasterise_rois(parse_coca_xml(xml), vol.hu, vol.geometry)[0]
        region = find_heart(vol.hu, vol.geometry.spacing_zyx, method="geometry")
        assert 300 < region.volume_ml < 5000
        for z in range(len(labels)):
            comp, n = ndi.label(labels[z] > 0, structure=np.ones((3, 3)))
            for i in range(1, n + 1):
                total += 1
                found += bool(region.mask[z][comp == i].all())
    assert total >= 25 and found == total


def test_non_gated_whole_chest_region_drops_bone_and_keeps_calcium():
    """A 300-460 mm whole-chest scan with 5 mm slices (the generator's non-gated variant): the
    region keeps every coronary calcium voxel and no dense bone (spine, ribs, sternum)."""
    from cac_lightning.sources.synthetic.phantom import NON_GATED, SynthOptions, make_scan

    scan = make_scan(4, 1, size=128, options=SynthOptions(**NON_GATED))
    assert scan.geometry.slice_spacing == 5.0 and scan.meta["fov_mm"] >= 300
    masks = chest_masks(scan.hu, scan.geometry.spacing_zyx)
    assert masks.region[scan.labels > 0].all()
    dense_bone = (scan.hu >= 400) & masks.bone
    assert dense_bone.sum() > 100 and not (masks.region & dense_bone).any()
