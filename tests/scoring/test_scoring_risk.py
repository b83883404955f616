"""Risk classes: the paper's C1-C5, CAC-DRS A0-A3 and N0-N4; kVp threshold table."""

from __future__ import annotations

import subprocess
import sys

import pytest

from cac_lightning.errors import InputError
from cac_lightning.scoring import cac_drs, n_vessels_class, risk_category, threshold_for_kvp


@pytest.mark.parametrize(
    ("agatston", "category"),
    [
        (0, "C1"),
        (0.01, "C2"),
        (1, "C2"),
        (10, "C2"),
        (10.000000000001, "C2"),  # floating-point noise of the spacing factor
        (10.5, "C3"),
        (11, "C3"),
        (100, "C3"),
        (100.00001, "C4"),
        (100.5, "C4"),
        (101, "C4"),
        (400, "C4"),
        (400.01, "C5"),
        (401, "C5"),
        (5000, "C5"),
    ],
)
def test_risk_category_boundaries(agatston, category):
    assert risk_category(agatston) == category


@pytest.mark.parametrize(
    ("agatston", "klass"),
    [(0, "A0"), (0.5, "A1"), (1, "A1"), (99.99, "A1"), (100, "A2"), (299.9, "A2"), (300, "A3")],
)
def test_cac_drs_boundaries(agatston, klass):
    assert cac_drs(agatston) == klass


@pytest.mark.parametrize("bad", [-0.1, float("nan")])
def test_invalid_scores(bad):
    with pytest.raises(InputError):
        risk_category(bad)
    with pytest.raises(InputError):
        cac_drs(bad)


def test_n_vessels():
    assert n_vessels_class({}) == "N0"
    assert n_vessels_class({"LM": 0.0, "LAD": 3.2, "total": 3.2}) == "N1"
    assert n_vessels_class({"LM": 1, "LAD": 2, "CX": 0, "RCA": 4, "total": 7}) == "N3"
    assert n_vessels_class({"LM": 1, "LAD": 2, "CX": 3, "RCA": 4}) == "N4"


@pytest.mark.parametrize(
    ("kvp", "threshold"),
    [(None, 130.0), (120, 130.0), (120.4, 130.0), (100, 147.0), (80, 177.0), (70, 207.0)],
)
def test_threshold_for_kvp(kvp, threshold):
    assert threshold_for_kvp(kvp) == threshold


def test_scoring_never_imports_torch():
    code = "import sys, cac_lightning.scoring; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
