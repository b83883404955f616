"""The Predictor: padding, resampling to the training spacing, per-scan threshold, warnings."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cac_lightning.errors import InputError
from cac_lightning.inference import Predictor
from cac_lightning.models import CACSegModule
from cac_lightning.scoring import ScoringConfig, score_scan
from cac_lightning.volume import Geometry, Volume

GEOMETRY = {
    "spacing_mm": 0.8,
    "fov_mm": None,
    "pixel_spacing_mm": [0.7, 0.9],
    "slice_thickness_mm": [2.5, 3.0],
    "fov_range_mm": [180.0, 260.0],
    "kvp": [120],
}


class MaskToLAD(torch.nn.Module):
    """LAD wherever the input's >= threshold channel is on; records the input shapes."""

    def __init__(self, depth: int = 5):
        super().__init__()
        self.depth = depth  # the Predictor pads to 2**(depth-1)
        self.shapes: list[tuple[int, ...]] = []

    def forward(self, x):
        self.shapes.append(tuple(x.shape))
        logits = torch.zeros(x.shape[0], 5, *x.shape[2:], device=x.device)
        logits[:, 2] = x[:, 1] * 10.0 - 5.0
        return logits


def _volume(shape, spacing, kvp=120.0, seed=0):
    rng = np.random.default_rng(seed)
    hu = rng.normal(40, 10, shape).astype(np.int16)
    g = Geometry(shape=shape, pixel_spacing=(spacing, spacing), slice_spacing=3.0)
    return Volume(hu=hu, geometry=g, kvp=kvp, scan_id="syn")


def test_pads_500x500_and_crops_back(tmp_path, make_lad_ckpt):
    """A slice size that is no multiple of 16 is padded with air and cropped back."""
    ckpt = make_lad_ckpt(tmp_path / "m.ckpt", channels=(4, 8, 16, 32, 64))
    pred = Predictor.from_checkpoint(ckpt, device="cpu")
    assert pred.multiple == 16
    vol = _volume((2, 500, 500), 0.4)
    vol.hu[1, 100:104, 497:500] = 400  # calcium touching the right edge
    labels = pred.predict(vol)
    assert labels.shape == (2, 500, 500) and labels.dtype == np.uint8
    np.testing.assert_array_equal(labels, (vol.hu >= 130).astype(np.uint8) * 2)
    assert any(w.startswith("the checkpoint records no training") for w in pred.warnings(vol))


def test_resamples_to_training_spacing_and_back():
    """A model trained at 0.8 mm sees a 0.4 mm scan at 0.8 mm; labels come back native."""
    net = MaskToLAD()
    pred = Predictor(net, {"data_geometry": GEOMETRY}, batch_size=2)
    fine = _volume((3, 128, 128), 0.4)
    fine.hu[1, 40:50, 60:70] = 420  # 4 mm x 4 mm lesion
    fine.hu[2, 90:92, 20:22] = 300  # 0.8 mm x 0.8 mm speck
    labels = pred.predict(fine)
    assert labels.shape == fine.hu.shape
    assert net.shapes[0][-2:] == (64, 64)  # 128 px * 0.4 mm / 0.8 mm, already a multiple of 16
    # calcium boundaries come from the native voxels: never outside HU >= 130
    assert not labels[fine.hu < 130].any()
    np.testing.assert_array_equal(labels[1, 40:50, 60:70], 2)
    # the same anatomy on the training grid gives the same score (physical units)
    coarse = Volume(
        hu=fine.hu.reshape(3, 64, 2, 64, 2).mean(axis=(2, 4)).round().astype(np.int16),
        geometry=Geometry(shape=(3, 64, 64), pixel_spacing=(0.8, 0.8), slice_spacing=3.0),
        kvp=120.0,
    )
    s_fine = score_scan(fine.hu, labels, fine.geometry, kvp=120.0).vessels["LAD"].agatston
    c_labels = pred.predict(coarse)
    s_coarse = score_scan(coarse.hu, c_labels, coarse.geometry, kvp=120.0).vessels["LAD"].agatston
    assert net.shapes[-1][-2:] == (64, 64)  # not resampled: already at 0.8 mm
    assert s_fine == pytest.approx(64.0)  # 16 mm², weight 4
    assert s_coarse == pytest.approx(s_fine, rel=0.1)


class AlwaysLAD(torch.nn.Module):
    """LAD at every pixel: the logits of a candidates-only loss off the candidates."""

    depth = 5

    def forward(self, x):
        logits = torch.zeros(x.shape[0], 5, *x.shape[2:], device=x.device)
        logits[:, 2] = 5.0
        return logits


def test_labels_only_where_the_training_grid_has_candidates():
    """Native noise spikes that average below the threshold on the training grid are not
    labelled, whatever the logits say there; a plaque's native rim next to its training-grid
    candidates is kept (one training-grid pixel of margin)."""
    pred = Predictor(AlwaysLAD(), {"data_geometry": GEOMETRY}, batch_size=2)
    vol = _volume((1, 128, 128), 0.2)  # trained at 0.8 mm: 4x4 native voxels a pixel
    vol.hu[:] = 40
    vol.hu[0, 40:56, 40:56] = 420  # 3.2 mm plaque: candidates on both grids
    vol.hu[0, 38:40, 40:56] = 150  # its native rim, below 130 on the 0.8 mm grid
    vol.hu[0, 100, 100] = 200  # isolated noise spikes: ~50 HU on the 0.8 mm grid
    vol.hu[0, 20, 90] = 180
    labels = pred.predict(vol)
    assert (labels[0, 40:56, 40:56] == 2).all()
    assert (labels[0, 38:40, 40:56] == 2).all()
    assert labels[0, 100, 100] == 0 and labels[0, 20, 90] == 0
    # on its own grid the native gate alone decides (no resampling, nothing to judge)
    same = _volume((1, 32, 32), 0.8)
    same.hu[0, 5, 5] = 200
    assert pred.predict(same)[0, 5, 5] == 2


def test_training_field_of_view_is_cut_around_the_body():
    """A 0.8 mm model trained on 64 mm windows sees 80 px of a 0.4 mm scan, around the body
    centre; calcium outside the window is background, inside it is kept."""
    net = MaskToLAD()
    pred = Predictor(net, {"data_geometry": {**GEOMETRY, "fov_mm": 64.0}}, batch_size=4)
    vol = _volume((2, 256, 256), 0.4)  # 102 mm field of view
    vol.hu[:] = -1000  # air, with a body centred at row 139.5, column 134.5
    vol.hu[:, 40:240, 20:250] = 40
    vol.hu[0, 135:145, 130:140] = 420  # inside the 160 px window (rows 60-219, cols 55-214)
    vol.hu[0, 42:47, 25:30] = 420  # inside the body, outside the window
    labels = pred.predict(vol)
    assert net.shapes[0][-2:] == (80, 80)  # 160 px * 0.4 / 0.8
    assert (labels[0, 135:145, 130:140] == 2).all()
    assert not labels[0, 42:47, 25:30].any()
    # a scan no wider than the window (a cached training-grid scan) is predicted whole
    small = _volume((1, 80, 80), 0.8)
    small.hu[0, 0:3, 0:3] = 420
    assert (pred.predict(small)[0, 0:3, 0:3] == 2).all()
    # the training window is in-domain: no field-of-view warning for it or wider scans
    assert not any("field of view" in w for w in pred.warnings(small))
    assert any("field of view" in w for w in pred.warnings(_volume((1, 64, 64), 0.8)))


def test_without_recorded_spacing_predicts_natively():
    net = MaskToLAD(depth=3)
    pred = Predictor(net, {})
    vol = _volume((1, 30, 30), 0.4)
    pred.predict(vol)
    assert net.shapes[0][-2:] == (32, 32)  # only padded to the multiple of 4


def test_kvp_threshold_in_mask_and_gate():
    """At 135 kVp the threshold is 119 HU: a 125 HU lesion is calcium there, not at 120 kVp."""
    net = MaskToLAD(depth=2)
    pred = Predictor(net, {"scoring": {"threshold_hu": None}})
    vol = _volume((1, 16, 16), 0.5, kvp=135.0)
    vol.hu[0, 4:8, 4:8] = 125
    assert pred.threshold_for(vol) == pytest.approx(119.0)
    assert pred.predict(vol)[0, 4:8, 4:8].tolist() == [[2] * 4] * 4
    vol.kvp = 120.0
    assert pred.threshold_for(vol) == pytest.approx(130.0)
    assert not pred.predict(vol).any()
    # a scoring override wins over the kVp rule
    assert pred.threshold_for(vol, ScoringConfig(threshold_hu=100.0)) == 100.0


def test_domain_warnings_name_what_is_outside():
    pred = Predictor(MaskToLAD(), {"data_geometry": GEOMETRY})
    assert pred.warnings(_volume((2, 300, 300), 0.8)) == []  # 240 mm FOV, 0.8 mm, 3 mm, 120
    odd = _volume((2, 512, 512), 0.4, kvp=100.0)  # 204.8 mm FOV: inside
    odd.extra["ecg_gated"] = False
    assert pred.warnings(odd) == [
        "pixel spacing 0.4 mm is outside the training range 0.7-0.9 mm",
        "kVp 100 is outside the training kVp 120",
        "the series header says it is not ECG-gated; the training scans were gated",
    ]
    odd.kvp = None
    odd.geometry = Geometry(
        shape=(2, 512, 512), pixel_spacing=(0.8, 0.8), slice_spacing=5.0, slice_thickness=5.0
    )
    assert pred.warnings(odd) == [
        "slice thickness 5 mm is outside the training range 2.5-3 mm",
        "field of view 410 mm is outside the training range 180-260 mm",
        "kVp unknown; the training scans were 120 kVp",
        "the series header says it is not ECG-gated; the training scans were gated",
    ]


def test_from_checkpoint_reads_geometry_and_refuses_bare_arrays(tmp_path, make_lad_ckpt):
    ckpt = make_lad_ckpt(tmp_path / "m.ckpt", data_geometry=GEOMETRY)
    pred = Predictor.from_checkpoint(ckpt, device="cpu")
    assert pred.spacing_mm == 0.8 and pred.data_geometry.kvp == (120,)
    vol = _volume((1, 40, 40), 0.4)
    assert pred.predict(vol).shape == (1, 40, 40)
    with pytest.raises(InputError, match="pixel spacing"):
        pred.predict(vol.hu)
    assert pred.predict(vol.hu, pixel_spacing=(0.4, 0.4)).shape == (1, 40, 40)


def test_from_module_restores_training_mode():
    module = CACSegModule(net={"name": "unet", "channels": [4, 8]})
    module.train()
    pred = Predictor.from_module(module)
    labels = pred.predict(_volume((2, 20, 20), 0.5))
    assert labels.shape == (2, 20, 20) and module.training


def test_ecg_gating_from_dicom_headers():
    from pydicom.dataset import Dataset

    from cac_lightning.io.dicom import ecg_gating

    ds = Dataset()
    assert ecg_gating(ds) is None  # anonymised COCA headers carry none of the tags
    ds.TriggerTime = "350"
    assert ecg_gating(ds) is True
    ds = Dataset()
    ds.CardiacSynchronizationTechnique = "NONE"
    assert ecg_gating(ds) is False
    ds.CardiacSynchronizationTechnique = "PROSPECTIVE"
    assert ecg_gating(ds) is True


@pytest.mark.parametrize("bad", [0, -0.8, "x", float("nan")])
def test_bad_recorded_spacing_is_one_clear_error(bad):
    with pytest.raises(InputError, match="m.ckpt: .*spacing_mm must be a positive number"):
        Predictor(MaskToLAD(), {"data_geometry": {"spacing_mm": bad}}, name="m.ckpt")


def test_warning_for_a_single_training_value():
    geometry = {**GEOMETRY, "slice_thickness_mm": [3.0, 3.0]}
    odd = _volume((2, 300, 300), 0.8)
    odd.geometry = Geometry(
        shape=(2, 300, 300), pixel_spacing=(0.8, 0.8), slice_spacing=1.0, slice_thickness=1.0
    )
    assert Predictor(MaskToLAD(), {"data_geometry": geometry}).warnings(odd) == [
        "slice thickness 1 mm differs from the training scans' 3 mm"
    ]


def test_ensemble_averages_the_members_probabilities(tmp_path, make_lad_ckpt):
    """The members' mean log-probabilities decide: a sure LAD member outweighs a less sure RCA
    one and is outweighed by a surer one; two copies of one member give that member's labels."""
    lad = make_lad_ckpt(tmp_path / "lad.ckpt")  # logit 5 for LAD
    rca3 = make_lad_ckpt(tmp_path / "rca3.ckpt", bias=(0, 0, 0, 0, 3))
    rca8 = make_lad_ckpt(tmp_path / "rca8.ckpt", bias=(0, 0, 0, 0, 8))
    vol = _volume((2, 40, 40), 0.4)
    vol.hu[0, 10:14, 10:14] = 400
    calcium = (vol.hu >= 130).astype(np.uint8)

    def labels(*members):
        return Predictor.from_checkpoints(list(members), device="cpu").predict(vol)

    assert calcium.sum() == 16
    np.testing.assert_array_equal(labels(lad, lad), calcium * 2)
    np.testing.assert_array_equal(labels(lad, rca3), calcium * 2)
    np.testing.assert_array_equal(labels(lad, rca8), calcium * 4)
    assert Predictor.from_checkpoints([lad, rca8], device="cpu").describe()["net"] == "UNet + UNet"


def test_ensemble_members_must_share_grid_window_and_scoring(tmp_path, make_lad_ckpt):
    a = make_lad_ckpt(tmp_path / "a.ckpt", data_geometry=GEOMETRY)
    b = make_lad_ckpt(tmp_path / "b.ckpt", data_geometry={**GEOMETRY, "spacing_mm": 1.0})
    with pytest.raises(InputError, match="training spacing"):
        Predictor.from_checkpoints([a, b], device="cpu")
    with pytest.raises(InputError, match="no checkpoint"):
        Predictor.from_checkpoints([], device="cpu")
