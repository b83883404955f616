"""Hand-computed Agatston, volume and mass cases for score_scan."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from cac_lightning.errors import CACError, InputError
from cac_lightning.scoring import (
    DEFAULT_MASS_FACTOR,
    ScoringConfig,
    density_weight,
    score_scan,
)
from cac_lightning.volume import Geometry

LM, LAD, CX, RCA = 1, 2, 3, 4


def blank(nz: int = 3, n: int = 10, pixel: float = 0.5, spacing: float = 3.0, **geo):
    """Empty HU volume (0 HU), empty labels and a matching geometry."""
    hu = np.zeros((nz, n, n), np.int16)
    labels = np.zeros((nz, n, n), np.uint8)
    return hu, labels, Geometry((nz, n, n), (pixel, pixel), spacing, **geo)


def put(hu, labels, z, rows, cols, value, vessel):
    hu[z, rows, cols] = value
    labels[z, rows, cols] = vessel


def test_density_weight_bands():
    got = density_weight([130, 199, 199.9, 200, 299, 300, 399, 400, 1500])
    assert got.tolist() == [1, 1, 1, 2, 2, 3, 3, 4, 4]


def test_multi_slice_lesion_weighted_per_slice():
    # 0.5 mm pixels (0.25 mm²). Slice 1: 8 px, max 180 -> 2.0 mm² x 1 = 2.0.
    # Slice 2: 6 px, max 420 -> 1.5 mm² x 4 = 6.0. 3 mm slices: factor 1. Total 8.0.
    hu, labels, g = blank()
    put(hu, labels, 1, slice(2, 4), slice(2, 6), 150, LAD)
    hu[1, 2, 2] = 180
    put(hu, labels, 2, slice(2, 4), slice(2, 5), 300, LAD)
    hu[2, 3, 4] = 420
    s = score_scan(hu, labels, g)
    assert s.vessels["LAD"].agatston == pytest.approx(8.0)
    assert s.vessels["LAD"].volume_mm3 == pytest.approx(14 * 0.25 * 3.0)
    assert s.vessels["LAD"].lesions == 1  # the two slices overlap: one lesion
    (les,) = s.lesions
    assert les.slices == (1, 2) and les.n_voxels == 14
    assert les.area_mm2 == pytest.approx(3.5) and les.max_hu == 420
    # lesion3d: one 6-connected lesion, 3.5 mm² x w(420) = 4 -> 14.0
    s3 = score_scan(hu, labels, g, ScoringConfig(mode="lesion3d"))
    assert s3.total.agatston == pytest.approx(14.0)
    assert s3.total.volume_mm3 == pytest.approx(s.total.volume_mm3)


def test_small_slice_component_dropped_per_slice():
    # Slice 1: 4 px max 180 = 1.0 mm² (kept, boundary) -> 1.0; slice 2: 3 px max 420 =
    # 0.75 mm² -> noise by default; with min_area 0.5 it scores 0.75 x 4 = 3.0.
    hu, labels, g = blank()
    put(hu, labels, 1, slice(2, 4), slice(2, 4), 180, LAD)
    put(hu, labels, 2, slice(2, 3), slice(2, 5), 420, LAD)
    s = score_scan(hu, labels, g)
    assert s.total.agatston == pytest.approx(1.0)
    assert s.total.volume_mm3 == pytest.approx(4 * 0.25 * 3)
    assert s.lesions[0].slices == (1, 1) and s.lesions[0].max_hu == 180
    s = score_scan(hu, labels, g, ScoringConfig(min_area_mm2=0.5))
    assert s.total.agatston == pytest.approx(4.0)
    # lesion3d applies the rule to the lesion's total area (1.75 mm²): kept, w(420) = 4
    s3 = score_scan(hu, labels, g, ScoringConfig(mode="lesion3d"))
    assert s3.total.agatston == pytest.approx(1.75 * 4)


def test_noise_dropped_from_every_score():
    hu, labels, g = blank()
    put(hu, labels, 0, slice(1, 2), slice(1, 4), 900, RCA)  # 3 px = 0.75 mm²: noise
    put(hu, labels, 1, slice(5, 7), slice(5, 7), 250, CX)  # 4 px = 1.0 mm²: kept
    s = score_scan(hu, labels, g)
    assert s.vessels["RCA"] == type(s.vessels["RCA"])()  # all zeros, 0 lesions
    assert s.vessels["CX"].agatston == pytest.approx(2.0)
    assert s.total.lesions == 1 and len(s.lesions) == 1
    assert s.total.mass_mg == pytest.approx(s.vessels["CX"].mass_mg)
    assert s.n_vessels == "N1"


def test_voxels_below_threshold_inside_label_ignored():
    hu, labels, g = blank(pixel=1.0)
    labels[1, 1:6, 1:6] = LM
    hu[1, 1:6, 1:6] = 100
    hu[1, 2:4, 2:4] = 250
    hu[1, 5, 5] = 129  # below 130: ignored
    hu[1, 4, 4] = 130  # exactly 130: calcium, joins the 2x2 block diagonally
    s = score_scan(hu, labels, g)
    assert s.lesions[0].n_voxels == 5
    assert s.total.agatston == pytest.approx(5 * 2)
    hu[1, 4, 4] = 129
    assert score_scan(hu, labels, g).total.agatston == pytest.approx(4 * 2)


def test_unlabelled_calcium_ignored():
    hu, labels, g = blank(pixel=1.0)
    hu[1, 2:8, 2:8] = 1000  # bone, no label
    s = score_scan(hu, labels, g)
    assert s.total.agatston == 0 and s.lesions == []


def test_diagonal_pixels_form_one_component():
    # 1 mm pixels; (2,2) 150 HU and (3,3) 450 HU touch diagonally.
    hu, labels, g = blank(pixel=1.0)
    put(hu, labels, 1, 2, 2, 150, LAD)
    put(hu, labels, 1, 3, 3, 450, LAD)
    s = score_scan(hu, labels, g)
    assert s.total.agatston == pytest.approx(2 * 4)  # one component: 2 mm² x w(450)
    assert s.total.lesions == 1
    # lesion3d is 6-connected: two 1 mm² lesions, 1 x 1 + 1 x 4
    s3 = score_scan(hu, labels, g, ScoringConfig(mode="lesion3d"))
    assert s3.total.agatston == pytest.approx(5.0)
    assert s3.total.lesions == 2


@pytest.mark.parametrize(("spacing", "agatston", "volume"), [(3.0, 8.0, 12.0), (1.5, 4.0, 6.0)])
def test_slice_spacing_normalisation(spacing, agatston, volume):
    hu, labels, g = blank(pixel=1.0, spacing=spacing)
    put(hu, labels, 1, slice(2, 4), slice(2, 4), 250, RCA)  # 4 mm², w 2
    s = score_scan(hu, labels, g)
    assert s.vessels["RCA"].agatston == pytest.approx(agatston)
    assert s.vessels["RCA"].volume_mm3 == pytest.approx(volume)


def test_thin_slices_lesion_over_two_slices():
    # 1.5 mm series: the same 4 mm² (w 2) cross-section in two slices ->
    # 2 x (4 x 2) x 0.5 = 8.0, equal to the single 3 mm slice it replaces.
    hu, labels, g = blank(pixel=1.0, spacing=1.5)
    put(hu, labels, 1, slice(2, 4), slice(2, 4), 250, RCA)
    put(hu, labels, 2, slice(2, 4), slice(2, 4), 250, RCA)
    s = score_scan(hu, labels, g)
    assert s.total.agatston == pytest.approx(8.0)
    assert s.total.volume_mm3 == pytest.approx(8 * 1.5)
    assert s.total.lesions == 1


def test_vessels_kept_apart():
    # Touching pixels of two vessels: LAD 150/150, CX 450/450 (1 mm pixels).
    hu, labels, g = blank(pixel=1.0)
    put(hu, labels, 1, 4, slice(2, 4), 150, LAD)
    put(hu, labels, 1, 4, slice(4, 6), 450, CX)
    s = score_scan(hu, labels, g)
    assert s.vessels["LAD"].agatston == pytest.approx(2.0)  # not merged with the 450s
    assert s.vessels["CX"].agatston == pytest.approx(8.0)
    assert s.vessels["LM"].agatston == 0 and s.vessels["RCA"].agatston == 0
    assert s.total.agatston == pytest.approx(10.0)
    assert s.total.lesions == 2 and s.n_vessels == "N2"
    assert [les.vessel for les in s.lesions] == ["LAD", "CX"]


def test_mass_and_volume_exact():
    # 4 voxels HU 200, 300, 400, 500 (mean 350); 0.5 mm pixels, 3 mm slices.
    hu, labels, g = blank()
    put(hu, labels, 1, 2, slice(2, 6), [200, 300, 400, 500], LM)
    volume = 4 * 0.25 * 3.0
    s = score_scan(hu, labels, g, ScoringConfig(mass_factor=0.8))
    assert s.vessels["LM"].volume_mm3 == pytest.approx(3.0) == volume
    assert s.vessels["LM"].mass_mg == pytest.approx(0.8 * 350 * 3.0 / 1000)  # 0.84 mg
    assert s.lesions[0].mean_hu == pytest.approx(350)
    assert s.settings["mass_factor_source"] == "config"
    # the scan's factor is used when the config has none; the config wins otherwise
    s = score_scan(hu, labels, g, mass_factor=0.9)
    assert s.total.mass_mg == pytest.approx(0.945)
    assert s.settings["mass_factor_source"] == "scan"
    s = score_scan(hu, labels, g, ScoringConfig(mass_factor=0.8), mass_factor=0.9)
    assert s.total.mass_mg == pytest.approx(0.84)
    s = score_scan(hu, labels, g)
    assert s.total.mass_mg == pytest.approx(DEFAULT_MASS_FACTOR * 350 * 3.0 / 1000)
    assert s.settings["mass_factor_source"] == "default"


def test_mass_sums_per_component():
    # Two components in one vessel: sum of c * mean * volume / 1000.
    hu, labels, g = blank(pixel=1.0)
    put(hu, labels, 0, 1, slice(1, 3), [200, 400], RCA)  # mean 300, 2 mm² x 3 mm
    put(hu, labels, 2, 6, slice(6, 9), [150, 150, 300], RCA)  # mean 200, 3 mm² x 3 mm
    s = score_scan(hu, labels, g, ScoringConfig(mass_factor=1.0))
    assert s.vessels["RCA"].mass_mg == pytest.approx((300 * 6 + 200 * 9) / 1000)
    assert s.vessels["RCA"].volume_mm3 == pytest.approx(15.0)
    assert s.vessels["RCA"].agatston == pytest.approx(2 * 4 + 3 * 3)
    assert s.vessels["RCA"].lesions == 2


def test_kvp_threshold():
    hu, labels, g = blank(pixel=1.0)
    put(hu, labels, 1, slice(2, 4), slice(2, 4), 140, LAD)  # >= 130, < 147
    put(hu, labels, 1, slice(6, 8), slice(6, 8), 150, CX)  # >= 147
    assert score_scan(hu, labels, g, kvp=120).total.lesions == 2
    assert score_scan(hu, labels, g).total.lesions == 2  # unknown kVp -> 130 HU
    s = score_scan(hu, labels, g, kvp=100)
    assert s.settings["threshold_hu"] == 147.0
    assert s.vessels["LAD"].agatston == 0 and s.vessels["CX"].agatston == pytest.approx(4.0)
    # an explicit threshold overrides the kVp table
    s = score_scan(hu, labels, g, ScoringConfig(threshold_hu=130), kvp=100)
    assert s.total.lesions == 2


def test_kvp_scales_weight_bands():
    hu, labels, g = blank(pixel=1.0)
    put(hu, labels, 1, slice(2, 4), slice(2, 4), 220, LAD)
    assert score_scan(hu, labels, g, kvp=120).total.agatston == pytest.approx(4 * 2)
    s = score_scan(hu, labels, g, kvp=100)  # bands 200 x 147/130 = 226.2 ...
    assert s.settings["weight_bands_hu"][0] == pytest.approx(200 * 147 / 130, abs=1e-6)
    assert s.total.agatston == pytest.approx(4 * 1)
    s = score_scan(hu, labels, g, ScoringConfig(weight_bands_hu=[210, 300, 400]))
    assert s.total.agatston == pytest.approx(4 * 2)


def test_unknown_kvp_warns(caplog):
    hu, labels, g = blank()
    with caplog.at_level(logging.WARNING):
        s = score_scan(hu, labels, g, kvp=140)
    assert s.settings["threshold_hu"] == 130.0
    assert "140 kVp" in caplog.text


def test_empty_label_map():
    hu, labels, g = blank()
    hu[:] = 800
    s = score_scan(hu, labels, g)
    for score in s.vessels.values():
        assert (score.agatston, score.volume_mm3, score.mass_mg, score.lesions) == (0, 0, 0, 0)
    assert (s.risk_category, s.cac_drs, s.n_vessels) == ("C1", "A0", "N0")
    assert s.lesions == []
    assert s.to_dict()["scores"]["total"] == {
        "agatston": 0.0,
        "volume_mm3": 0.0,
        "mass_mg": 0.0,
        "lesions": 0,
    }


def test_lesion_centroid_and_slices():
    hu, labels, g = blank(pixel=0.5, spacing=2.0, origin=(10.0, 20.0, 30.0))
    put(hu, labels, 1, slice(2, 4), slice(4, 6), 300, LAD)  # centre (y, x) = (2.5, 4.5)
    put(hu, labels, 2, slice(2, 4), slice(4, 6), 300, LAD)
    s = score_scan(hu, labels, g)
    (les,) = s.lesions
    assert les.slices == (1, 2)
    assert les.centroid_zyx == pytest.approx((1.5, 2.5, 4.5))
    assert les.centroid_mm == pytest.approx((10 + 4.5 * 0.5, 20 + 2.5 * 0.5, 30 + 1.5 * 2.0))


def test_per_slice_grouping_needs_overlap():
    # Same vessel, consecutive slices, no shared (y, x): two lesions; overlapping: one.
    hu, labels, g = blank(pixel=1.0)
    put(hu, labels, 0, slice(1, 3), slice(1, 3), 200, LAD)
    put(hu, labels, 1, slice(1, 3), slice(4, 6), 200, LAD)
    assert score_scan(hu, labels, g).total.lesions == 2
    put(hu, labels, 1, slice(1, 3), slice(2, 4), 200, LAD)
    assert score_scan(hu, labels, g).total.lesions == 1


def test_to_dict_json_ready_and_rounded():
    hu, labels, g = blank(pixel=0.3, spacing=2.5)
    put(hu, labels, 1, slice(2, 6), slice(2, 6), 333, CX)
    s = score_scan(hu, labels, g, kvp=120.0)
    d = json.loads(json.dumps(s.to_dict()))
    assert set(d) == {
        "scores",
        "risk_category",
        "cac_drs",
        "n_vessels",
        "cac_drs_report",
        "lesions",
        "settings",
    }
    assert list(d["scores"]) == ["LM", "LAD", "CX", "RCA", "total"]
    expected = 16 * 0.09 * 3 * 2.5 / 3  # 3.6
    assert d["scores"]["CX"]["agatston"] == round(expected, 4)
    assert d["settings"] == {
        "mode": "per-slice",
        "threshold_hu": 130.0,
        "weight_bands_hu": [200.0, 300.0, 400.0],
        "min_area_mm2": 1.0,
        "slice_scaling": "standard",
        "mass_factor": round(DEFAULT_MASS_FACTOR, 6),
        "mass_factor_source": "default",
        "kvp": 120.0,
        "pixel_spacing_mm": [0.3, 0.3],
        "slice_spacing_mm": 2.5,
    }
    (les,) = d["lesions"]
    assert les["vessel"] == "CX" and les["slices"] == [1, 1] and les["n_voxels"] == 16
    assert d["risk_category"] == "C2" and d["cac_drs"] == "A1" and d["n_vessels"] == "N1"


def test_float_hu_and_int_labels_accepted():
    hu, labels, g = blank(pixel=1.0)
    put(hu, labels, 1, slice(2, 4), slice(2, 4), 250, RCA)
    s = score_scan(hu.astype(np.float32), labels.astype(np.int64), g)
    assert s.total.agatston == pytest.approx(8.0)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("labels_shape", "label map shape"),
        ("geometry", "geometry shape"),
        ("float_labels", "integers"),
        ("bad_value", "found [7]"),
        ("two_d", "3D"),
    ],
)
def test_input_errors(change, message):
    hu, labels, g = blank()
    if change == "labels_shape":
        labels = labels[:, :-1]
    elif change == "geometry":
        g = Geometry((3, 10, 11), (0.5, 0.5), 3.0)
    elif change == "float_labels":
        labels = labels.astype(np.float32)
    elif change == "bad_value":
        put(hu, labels, 0, 0, 0, 500, 7)
    elif change == "two_d":
        hu, labels = hu[0], labels[0]
    with pytest.raises(InputError, match=message.replace("[", r"\[").replace("]", r"\]")):
        score_scan(hu, labels, g)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"mode": "2d"},
        {"min_area_mm2": -1},
        {"mass_factor": 0},
        {"threshold_hu": float("nan")},
        {"weight_bands_hu": (300, 200, 400)},
    ],
)
def test_bad_config(kwargs):
    with pytest.raises(CACError):
        ScoringConfig(**kwargs)


def test_config_accepts_hydra_style_values():
    cfg = ScoringConfig(mode="per_slice", min_area_mm2="0.5", weight_bands_hu=[200, 300, 400])
    assert cfg.mode == "per-slice" and cfg.min_area_mm2 == 0.5
    assert cfg.weight_bands_hu == (200.0, 300.0, 400.0)
