"""Result types: one calcified lesion, one vessel's scores, one scan's scores."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cac_lightning.vessels import VESSELS_AND_TOTAL

__all__ = ["DECIMALS", "SCORE_METRICS", "Lesion", "ScanScores", "VesselScore"]

DECIMALS = 4
"""Decimals kept by the ``to_dict`` methods."""

SCORE_METRICS: tuple[str, ...] = ("agatston", "volume_mm3", "mass_mg")
"""The scores of a :class:`VesselScore` (as keys of its ``to_dict``)."""


def _r(value: float) -> float:
    out = round(float(value), DECIMALS)
    return 0.0 if out == 0 else out  # no "-0.0" in JSON


@dataclass(frozen=True)
class Lesion:
    """One calcified lesion.

    In ``lesion3d`` mode a lesion is a 6-connected 3D component. In ``per-slice`` mode it
    is a group of the kept 2D components that overlap from slice to slice (the lesion a
    reader would count), while its Agatston score is still the sum of per-slice weights.

    Attributes:
        vessel: ``"LM"``, ``"LAD"``, ``"CX"`` or ``"RCA"``.
        slices: (first, last) slice index, inclusive.
        n_voxels: voxels at or above the threshold.
        area_mm2: in-plane area summed over its slices.
        max_hu / mean_hu: over its voxels.
        agatston / volume_mm3 / mass_mg: its scores.
        centroid_zyx: mean voxel index (z, y, x).
        centroid_mm: the centroid in patient coordinates (x, y, z) mm (LPS).
    """

    vessel: str
    slices: tuple[int, int]
    n_voxels: int
    area_mm2: float
    max_hu: float
    mean_hu: float
    agatston: float
    volume_mm3: float
    mass_mg: float
    centroid_zyx: tuple[float, float, float]
    centroid_mm: tuple[float, float, float]

    def to_dict(self) -> dict:
        """JSON-ready dict, floats rounded to :data:`DECIMALS`."""
        return {
            "vessel": self.vessel,
            "slices": [int(self.slices[0]), int(self.slices[1])],
            "n_voxels": int(self.n_voxels),
            "area_mm2": _r(self.area_mm2),
            "max_hu": _r(self.max_hu),
            "mean_hu": _r(self.mean_hu),
            "agatston": _r(self.agatston),
            "volume_mm3": _r(self.volume_mm3),
            "mass_mg": _r(self.mass_mg),
            "centroid_zyx": [_r(c) for c in self.centroid_zyx],
            "centroid_mm": [_r(c) for c in self.centroid_mm],
        }


@dataclass(frozen=True)
class VesselScore:
    """Scores of one vessel (or the total).

    Attributes:
        agatston: Agatston score (unitless).
        volume_mm3: volume score in mm³.
        mass_mg: mass score in mg calcium hydroxyapatite.
        lesions: number of lesions (noise removed).
    """

    agatston: float = 0.0
    volume_mm3: float = 0.0
    mass_mg: float = 0.0
    lesions: int = 0

    def to_dict(self) -> dict:
        """JSON-ready dict, floats rounded to :data:`DECIMALS`."""
        return {
            "agatston": _r(self.agatston),
            "volume_mm3": _r(self.volume_mm3),
            "mass_mg": _r(self.mass_mg),
            "lesions": int(self.lesions),
        }


@dataclass(frozen=True)
class ScanScores:
    """Scores of one scan.

    Attributes:
        vessels: :class:`VesselScore` for ``"LM"``, ``"LAD"``, ``"CX"``, ``"RCA"``, ``"total"``.
        lesions: the lesions, in raster order of their first voxel.
        risk_category: ``"C1"`` .. ``"C5"`` (Hong et al. 2022, Table 2).
        cac_drs: ``"A0"`` .. ``"A3"`` (Hecht et al. 2018).
        n_vessels: ``"N0"`` .. ``"N4"``, vessels with Agatston > 0.
        cac_drs_report: the SCCT string, ``"CAC-DRS A2/N2"`` (``"CAC-DRS A0"``).
        settings: mode, threshold_hu, weight_bands_hu, min_area_mm2, slice_scaling,
            mass_factor, mass_factor_source, kvp, pixel_spacing_mm, slice_spacing_mm.
        calcium_index: int64 (n,) ascending flat (z, y, x) indices of the calcium voxels that
            were scored (above the threshold, in a vessel, not noise): *the* definition of
            what counts as calcium, reused by the evaluation.
        calcium_vessel: uint8 (n,) their label values (1 LM .. 4 RCA).
    """

    vessels: dict[str, VesselScore]
    lesions: list[Lesion] = field(default_factory=list)
    risk_category: str = "C1"
    cac_drs: str = "A0"
    n_vessels: str = "N0"
    cac_drs_report: str = "CAC-DRS A0"
    settings: dict = field(default_factory=dict)
    calcium_index: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    calcium_vessel: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint8))

    def calcium_labels(self, shape: tuple[int, int, int]) -> np.ndarray:
        """The scored calcium as a uint8 (z, y, x) label map of ``shape`` (the scan's)."""
        out = np.zeros(shape, dtype=np.uint8)
        out.reshape(-1)[self.calcium_index] = self.calcium_vessel
        return out

    @property
    def total(self) -> VesselScore:
        """The whole-heart scores (``vessels["total"]``)."""
        return self.vessels["total"]

    def to_dict(self) -> dict:
        """JSON-ready dict: scores, risk_category, cac_drs, n_vessels, cac_drs_report, lesions,
        settings."""
        return {
            "scores": {k: self.vessels[k].to_dict() for k in VESSELS_AND_TOTAL},
            "risk_category": self.risk_category,
            "cac_drs": self.cac_drs,
            "n_vessels": self.n_vessels,
            "cac_drs_report": self.cac_drs_report,
            "lesions": [les.to_dict() for les in self.lesions],
            "settings": dict(self.settings),
        }
