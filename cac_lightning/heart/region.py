"""The heart region: where calcium may be called coronary.

The experts label coronary calcium only, and every coronary artery runs on the heart's surface.
Calcium outside the heart (sternum, costal cartilage, ribs, spine, the aortic arch) is never
coronary, so :class:`~cac_lightning.inference.Predictor` keeps predicted calcium only inside
this region, and centres the lesion network's window on it.

Two ways to find it (``method``):

- ``geometry``: the classical chest geometry of :mod:`cac_lightning.heart.geometry` (inside the
  lungs' hull, outside lungs, bone and what lies behind the spine). Large: it holds the whole
  mediastinum.
- ``locator``: the learned heart locator (:mod:`cac_lightning.heart.locator`, trained on the
  synthetic phantoms' exact heart masks), grown by ``margin_mm`` and kept inside the geometry.
- ``auto`` (default): ``locator`` when its weights are installed, else ``geometry``.
- ``off``: no region (every voxel may be called coronary; the behaviour before version 0.2).

A scan in which no region is found (no lungs: not a chest CT; or a region smaller than
:data:`MIN_REGION_ML`) raises :class:`NoHeartError`; ``cac-score`` reports it in one line and
writes nothing for that scan.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from cac_lightning.errors import InputError
from cac_lightning.heart.geometry import chest_masks

__all__ = [
    "DEFAULT_MARGIN_MM",
    "HEART_METHODS",
    "MIN_REGION_ML",
    "HeartRegion",
    "NoHeartError",
    "check_heart_settings",
    "find_heart",
]

log = logging.getLogger(__name__)

HEART_METHODS = ("auto", "locator", "geometry", "off")
"""The ways to find the heart region (see the module docstring)."""
DEFAULT_MARGIN_MM = 10.0
"""How far (mm) the located heart is grown: the coronaries run in the epicardial fat on its
surface, and a 3-4 mm locator's boundary is uncertain by about a voxel."""
MIN_REGION_ML = 50.0
"""A region smaller than this is no heart (an adult heart is about 500-1,000 mL)."""
PROBABILITY = 0.5
"""Locator probability at and above which a voxel is heart."""


class NoHeartError(InputError):
    """No heart region was found in a scan (not a chest CT, or the heart is outside it)."""


@dataclass
class HeartRegion:
    """Where calcium may be called coronary in one scan.

    Attributes:
        mask: (Z, H, W) bool on the scan's native grid (the grown region).
        method: ``locator`` or ``geometry``.
        margin_mm: how far the located heart was grown (0 for ``geometry``).
        voxel_ml: the volume of one voxel (mL).
        heart_ml: the located heart's own volume before growing (None for ``geometry``).
        notes: what happened on the way (e.g. a fallback), for the report.
    """

    mask: np.ndarray
    method: str
    margin_mm: float
    voxel_ml: float
    heart_ml: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def volume_ml(self) -> float:
        """The region's volume (mL)."""
        return float(self.mask.sum()) * self.voxel_ml

    def centre_yx(self) -> tuple[float, float]:
        """(row, column) centre of the region in native pixels, over all its slices."""
        _, yy, xx = np.nonzero(self.mask)
        return float(yy.mean()), float(xx.mean())

    def describe(self) -> dict[str, Any]:
        """Plain numbers for the JSON report."""
        return {
            "method": self.method,
            "volume_ml": round(self.volume_ml, 1),
            "heart_ml": None if self.heart_ml is None else round(self.heart_ml, 1),
            "margin_mm": self.margin_mm,
            "notes": list(self.notes),
        }


def _grow(mask: np.ndarray, margin_mm: float, spacing_zyx) -> np.ndarray:
    """``mask`` grown by ``margin_mm`` (Euclidean, anisotropic voxels)."""
    if margin_mm <= 0:
        return mask
    sz, sy, sx = (float(s) for s in spacing_zyx)
    # Work on a coarse grid: the margin is many native pixels, the distance map is exact there.
    fy, fx = max(1, int(2.0 // sy)), max(1, int(2.0 // sx))
    small = mask[:, ::fy, ::fx]
    dist = ndi.distance_transform_edt(~small, sampling=(sz, sy * fy, sx * fx))
    grown = np.repeat(np.repeat(dist <= margin_mm, fy, axis=1), fx, axis=2)
    return grown[:, : mask.shape[1], : mask.shape[2]] | mask


def _locator_available() -> bool:
    from cac_lightning.heart.locator import default_weights

    return default_weights().is_file()


_LOCATOR: list[Any] = []  # loaded once per process


def _locator():
    from cac_lightning.heart.locator import HeartLocator

    if not _LOCATOR:
        _LOCATOR.append(HeartLocator.load())
    return _LOCATOR[0]


def check_heart_settings(method: str, margin_mm: float) -> None:
    """Raise :class:`InputError` for an unknown method or a negative margin."""
    if method not in HEART_METHODS:
        raise InputError(f"heart method {method!r}: choose one of {', '.join(HEART_METHODS)}")
    if not margin_mm >= 0:
        raise InputError(f"heart margin must be >= 0 mm, got {margin_mm}")


def find_heart(
    hu: np.ndarray,
    spacing_zyx: tuple[float, float, float],
    *,
    method: str = "auto",
    margin_mm: float = DEFAULT_MARGIN_MM,
) -> HeartRegion | None:
    """The heart region of a scan (None for ``method="off"``).

    Args:
        hu: (Z, H, W) CT numbers in HU, slices in ascending position order.
        spacing_zyx: voxel spacing (slice, row, column) in mm.
        method: one of :data:`HEART_METHODS`.
        margin_mm: how far the located heart is grown (``locator``).

    Raises:
        InputError: an unknown method or a negative margin.
        NoHeartError: no region found.
    """
    check_heart_settings(method, margin_mm)
    if method == "off":
        return None
    if method == "auto":
        method = "locator" if _locator_available() else "geometry"
    voxel_ml = float(np.prod(spacing_zyx)) / 1000.0
    chest = chest_masks(hu, spacing_zyx)
    if not chest.region.any():
        raise NoHeartError("no heart found: no lungs in the scan (is it a chest CT?)")
    region = HeartRegion(chest.region, "geometry", 0.0, voxel_ml)
    if method == "locator":
        prob = _locator().probability(np.asarray(hu, dtype=np.float32), tuple(spacing_zyx))
        heart = prob >= PROBABILITY
        heart_ml = float(heart.sum()) * voxel_ml
        if heart_ml < MIN_REGION_ML:
            raise NoHeartError(
                f"no heart found: the heart locator found {heart_ml:.0f} mL "
                f"(less than {MIN_REGION_ML:.0f} mL)"
            )
        mask = _grow(heart, margin_mm, spacing_zyx) & chest.region
        region = HeartRegion(mask, "locator", float(margin_mm), voxel_ml, heart_ml)
    if region.volume_ml < MIN_REGION_ML:
        raise NoHeartError(
            f"no heart found: the {region.method} region holds {region.volume_ml:.0f} mL "
            f"(less than {MIN_REGION_ML:.0f} mL)"
        )
    return region
