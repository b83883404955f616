"""Factories of hand-made scan records for the evaluation tests."""

from __future__ import annotations

import pytest

from cac_lightning.evaluation.records import ScanRecord
from cac_lightning.vessels import VESSELS


def scores(total: float, **vessels: float) -> dict:
    """A ``ScanScores.to_dict()["scores"]``-like dict: volume = 0.5 × and mass = 0.1 × Agatston.

    Vessels not given get 0 except that an unspecified split puts the whole total on LAD.
    """
    per = {v: float(vessels.get(v, 0.0)) for v in VESSELS}
    if not vessels:
        per["LAD"] = float(total)
    out = {
        v: {"agatston": a, "volume_mm3": 0.5 * a, "mass_mg": 0.1 * a, "lesions": int(a > 0)}
        for v, a in per.items()
    }
    out["total"] = {
        "agatston": float(total),
        "volume_mm3": 0.5 * total,
        "mass_mg": 0.1 * total,
        "lesions": sum(int(a > 0) for a in per.values()),
    }
    return out


def risk(a: float) -> str:
    """The paper's Table 2 categories (test-local copy)."""
    if a == 0:
        return "C1"
    return "C2" if a <= 10 else "C3" if a <= 100 else "C4" if a <= 400 else "C5"


def record(
    scan_id: str, ref_total: float, pred_total: float, split: str = "test", **kwargs
) -> ScanRecord:
    """A record whose risk categories follow the totals (override with ref_risk/pred_risk)."""
    kwargs.setdefault("ref_risk", risk(ref_total))
    kwargs.setdefault("pred_risk", risk(pred_total))
    return ScanRecord(
        scan_id=scan_id, split=split, ref=scores(ref_total), pred=scores(pred_total), **kwargs
    )


@pytest.fixture
def make_record():
    return record


@pytest.fixture
def make_scores():
    return scores
