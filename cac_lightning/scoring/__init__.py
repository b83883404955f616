"""Clinical calcium scoring: Agatston, volume and mass per coronary artery, risk classes.

Pure numpy/scipy (no torch), so ``cac-score --mask`` starts fast.

Example:
    >>> from cac_lightning.scoring import ScoringConfig, score_scan
    >>> scores = score_scan(vol.hu, labels, vol.geometry, ScoringConfig(), kvp=vol.kvp)
    >>> scores.vessels["total"].agatston, scores.risk_category
"""

from __future__ import annotations

from cac_lightning.scoring.agatston import density_weight, score_scan
from cac_lightning.scoring.config import (
    DEFAULT_MASS_FACTOR,
    DEFAULT_THRESHOLD_HU,
    KVP_THRESHOLDS_HU,
    MODES,
    WEIGHT_BANDS_HU,
    ScoringConfig,
    threshold_for_kvp,
)
from cac_lightning.scoring.lesions import Lesion, ScanScores, VesselScore
from cac_lightning.scoring.risk import (
    CAC_DRS_BOUNDARIES,
    CAC_DRS_CLASSES,
    RISK_CATEGORIES,
    cac_drs,
    cac_drs_report,
    n_vessels_class,
    risk_category,
)

__all__ = [
    "CAC_DRS_BOUNDARIES",
    "CAC_DRS_CLASSES",
    "DEFAULT_MASS_FACTOR",
    "DEFAULT_THRESHOLD_HU",
    "KVP_THRESHOLDS_HU",
    "MODES",
    "RISK_CATEGORIES",
    "WEIGHT_BANDS_HU",
    "Lesion",
    "ScanScores",
    "ScoringConfig",
    "VesselScore",
    "cac_drs",
    "cac_drs_report",
    "density_weight",
    "n_vessels_class",
    "risk_category",
    "score_scan",
    "threshold_for_kvp",
]
