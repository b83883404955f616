"""The CAC-DRS string (SCCT 2018): every Agatston edge, the vessel count, and where it appears."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cac_lightning.errors import InputError
from cac_lightning.scoring import CAC_DRS_BOUNDARIES, cac_drs, cac_drs_report, score_scan
from cac_lightning.volume import Geometry


@pytest.mark.parametrize(
    ("total", "vessels", "text"),
    [
        (0, {}, "CAC-DRS A0"),
        (0.0000001, {"LAD": 0.0000001}, "CAC-DRS A0"),  # below the 6-decimal rounding
        (0.3, {"LAD": 0.3}, "CAC-DRS A1/N1"),  # 0 < score < 1: calcium present
        (1, {"LAD": 1}, "CAC-DRS A1/N1"),
        (50, {"LM": 10, "LAD": 40}, "CAC-DRS A1/N2"),
        (99, {"RCA": 99}, "CAC-DRS A1/N1"),
        (99.6, {"RCA": 99.6}, "CAC-DRS A1/N1"),  # 99 < score < 100: still A1
        (99.9999999, {"RCA": 99.9999999}, "CAC-DRS A2/N1"),  # rounds to 100 at 6 decimals
        (100, {"LAD": 60, "CX": 40}, "CAC-DRS A2/N2"),
        (299.99, {"LM": 1, "LAD": 1, "CX": 1, "RCA": 296.99}, "CAC-DRS A2/N4"),
        (300, {"LAD": 200, "CX": 50, "RCA": 50}, "CAC-DRS A3/N3"),
        (5000, {"LAD": 5000}, "CAC-DRS A3/N1"),
    ],
)
def test_cac_drs_report_edges(total, vessels, text):
    assert cac_drs_report(total, vessels) == text


def test_boundary_table_covers_the_real_line_once():
    assert [k for k, *_ in CAC_DRS_BOUNDARIES] == ["A0", "A1", "A2", "A3"]
    pairs = zip(CAC_DRS_BOUNDARIES[1:-1], CAC_DRS_BOUNDARIES[2:], strict=True)
    for (_, _, high), (_, low, _) in pairs:
        assert high == low
    assert CAC_DRS_BOUNDARIES[-1][2] == math.inf
    for klass, low, _ in CAC_DRS_BOUNDARIES[2:]:
        assert cac_drs(low) == klass
        assert cac_drs(low - 0.01) != klass


@pytest.mark.parametrize("bad", [-1.0, float("nan")])
def test_cac_drs_report_refuses_bad_scores(bad):
    with pytest.raises(InputError):
        cac_drs_report(bad, {})


def test_score_scan_carries_the_string():
    hu = np.full((4, 16, 16), 40, np.int16)
    hu[1, 4:8, 4:8] = 420  # 16 px of 0.25 mm² at weight 4 = 16 Agatston (spacing 3 mm)
    labels = np.zeros_like(hu, np.uint8)
    labels[1, 4:8, 4:8] = 2
    g = Geometry(shape=hu.shape, pixel_spacing=(0.5, 0.5), slice_spacing=3.0, origin=(0, 0, 0))
    d = score_scan(hu, labels, g).to_dict()
    assert d["cac_drs"] == "A1" and d["n_vessels"] == "N1"
    assert d["cac_drs_report"] == "CAC-DRS A1/N1"
