"""Lesion confidence: per-lesion mean foreground probability, the floor, its calibration."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cac_lightning.errors import InputError
from cac_lightning.evaluation.calibration import calibrate_floor
from cac_lightning.inference import Predictor
from cac_lightning.inference.confidence import (
    FLOOR_GRID,
    apply_floor,
    choose_floor,
    lesion_confidence,
    recorded_floor,
)
from cac_lightning.volume import Geometry, Volume


def test_lesion_confidence_means_over_26_connected_lesions():
    labels = np.zeros((2, 8, 8), np.uint8)
    labels[0, 1, 1] = 2
    labels[1, 2, 2] = 3  # diagonal neighbour across slices: the same lesion (26-connected)
    labels[0, 6, 6] = 4
    fg = np.zeros(labels.shape, np.float32)
    fg[0, 1, 1], fg[1, 2, 2], fg[0, 6, 6] = 0.9, 0.5, 0.3
    comp, conf = lesion_confidence(labels, fg)
    assert comp.max() == 2
    assert conf[comp[0, 1, 1]] == pytest.approx(0.7)
    assert conf[comp[0, 6, 6]] == pytest.approx(0.3)


def test_apply_floor_drops_whole_lesions_below_it():
    labels = np.zeros((2, 8, 8), np.uint8)
    labels[0, 1, 1], labels[1, 2, 2], labels[0, 6, 6] = 2, 3, 4
    fg = np.zeros(labels.shape, np.float32)
    fg[0, 1, 1], fg[1, 2, 2], fg[0, 6, 6] = 0.9, 0.5, 0.3
    kept = apply_floor(labels, fg, 0.6)
    assert kept[0, 1, 1] == 2 and kept[1, 2, 2] == 3  # a mixed-vessel lesion stays whole
    assert kept[0, 6, 6] == 0
    assert not apply_floor(labels, fg, 0.8).any()
    np.testing.assert_array_equal(apply_floor(labels, fg, 0.0), labels)
    assert labels[0, 6, 6] == 4  # the input is not changed


def test_choose_floor_smallest_error_lower_on_tie_zero_when_unknown():
    assert choose_floor({0.0: 10.0, 0.5: 4.0, 0.8: 6.0}) == 0.5
    assert choose_floor({0.0: 3.0, 0.5: 3.0, 0.8: 6.0}) == 0.0
    assert choose_floor({0.0: float("nan"), 0.5: float("nan")}) == 0.0


def test_recorded_floor_checks_its_range():
    assert recorded_floor(None) == 0.0
    assert recorded_floor({"floor": 0.7}) == 0.7
    with pytest.raises(ValueError, match="floor"):
        recorded_floor({"floor": 1.5})


class BrightIsSure(torch.nn.Module):
    """LAD on every >= threshold pixel; sure of it where the image channel is bright (>= ~670 HU
    in the default window), unsure (P(LAD) ~ 0.62) on dimmer calcium."""

    depth = 1

    def forward(self, x):
        logits = torch.full((x.shape[0], 5, *x.shape[2:]), -20.0)
        logits[:, 0] = 0.0
        bright = (x[:, 0] > 0.55).float()
        logits[:, 2] = x[:, 1] * (0.5 + 8.0 * bright) - 0.001
        return logits


IN_DOMAIN = {
    "spacing_mm": None,
    "fov_mm": None,
    "pixel_spacing_mm": [0.9, 1.1],
    "slice_thickness_mm": [3.0, 3.0],
    "fov_range_mm": [25.0, 40.0],
    "kvp": [120],
}


def _scan(seed: int = 0):
    """One slice with a bright (true) lesion and a dim (false) one; the reference has the
    bright one only."""
    hu = np.full((1, 32, 32), 40, np.int16)
    hu[0, 4:8, 4:8] = 900
    hu[0, 20:23, 20:23] = 250
    labels = np.zeros(hu.shape, np.uint8)
    labels[0, 4:8, 4:8] = 2
    g = Geometry(shape=hu.shape, pixel_spacing=(1.0, 1.0), slice_spacing=3.0)
    vol = Volume(hu=hu, geometry=g, kvp=120.0, scan_id=f"s{seed}")
    vol.labels, vol.mass_factor = labels, None
    return vol


def test_predictor_applies_the_checkpoint_floor_and_returns_foreground():
    vol = _scan()
    plain = Predictor(BrightIsSure(), {})
    labels, fg = plain.predict(vol, return_foreground=True)
    assert labels[0, 21, 21] == 2 and labels[0, 5, 5] == 2  # argmax alone keeps both
    assert fg[0, 5, 5] > 0.99 and 0.6 < fg[0, 21, 21] < 0.65
    hp = {"lesion_confidence": {"floor": 0.8}, "data_geometry": IN_DOMAIN}
    floored = Predictor(BrightIsSure(), hp)
    assert floored.lesion_floor == 0.8 and floored.floor_for(vol) == 0.8
    kept = floored.predict(vol)
    assert kept[0, 5, 5] == 2 and kept[0, 21, 21] == 0
    assert floored.predict(vol, floor=0.0)[0, 21, 21] == 2
    assert floored.describe()["lesion_confidence_floor"] == 0.8
    with pytest.raises(InputError, match="floor"):
        Predictor(BrightIsSure(), {"lesion_confidence": {"floor": "high"}})


def test_floor_only_inside_the_training_domain_unless_set():
    """The calibrated floor is not applied to a scan with a domain-shift warning (or of unknown
    domain); a floor set by the user is applied to every scan."""
    vol = _scan()
    vol.geometry = Geometry(shape=vol.hu.shape, pixel_spacing=(0.4, 0.4), slice_spacing=3.0)
    hp = {"lesion_confidence": {"floor": 0.8}, "data_geometry": IN_DOMAIN}
    floored = Predictor(BrightIsSure(), hp)
    assert floored.warnings(vol) and floored.floor_for(vol) == 0.0  # 0.4 mm pixels: outside
    assert floored.predict(vol)[0, 21, 21] == 2
    unknown = Predictor(BrightIsSure(), {"lesion_confidence": {"floor": 0.8}})
    assert unknown.floor_for(_scan()) == 0.0  # no training geometry recorded: not checked
    floored.set_floor(0.8)
    assert floored.floor_for(vol) == 0.8 and floored.predict(vol)[0, 21, 21] == 0
    with pytest.raises(InputError, match=r"\[0, 1\)"):
        floored.set_floor(1.0)


def test_calibration_picks_the_floor_that_removes_the_false_lesion():
    record = calibrate_floor(Predictor(BrightIsSure(), {}), [_scan(0), _scan(1)])
    assert record["calibrated_on"] == "val" and record["n_scans"] == 2
    assert set(record["agatston_mae"]) == {f"{f:g}" for f in FLOOR_GRID}
    assert record["agatston_mae"]["0"] > 0  # the dim lesion is scored without a floor
    assert record["floor"] == 0.7  # the lowest floor above its confidence (0.62)
    assert record["agatston_mae"]["0.7"] == 0.0
