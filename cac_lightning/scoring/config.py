"""Scoring settings: calcium threshold, kVp table, weight bands, minimum area, mass factor.

Every constant here is cited. The defaults reproduce the clinical Agatston
definition used by Hong et al. 2022 (section 2.3): 130 HU at 120 kVp, density
weights 1-4 with bands at 200, 300 and 400 HU, and calcium smaller than
1 mm² removed as noise.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

from cac_lightning.errors import CACError

__all__ = [
    "DEFAULT_MASS_FACTOR",
    "DEFAULT_THRESHOLD_HU",
    "KVP_THRESHOLDS_HU",
    "MODES",
    "REFERENCE_SLICE_MM",
    "SLICE_SCALINGS",
    "WEIGHT_BANDS_HU",
    "ScoringConfig",
    "threshold_for_kvp",
]

log = logging.getLogger(__name__)

MODES: tuple[str, ...] = ("per-slice", "lesion3d")

DEFAULT_THRESHOLD_HU = 130.0
"""Calcium threshold at 120 kVp (Agatston et al. 1990, J Am Coll Cardiol 15:827)."""

WEIGHT_BANDS_HU: tuple[float, float, float] = (200.0, 300.0, 400.0)
"""Lower edges of density weights 2, 3 and 4; weight 1 from the threshold up to 199 HU
(Agatston et al. 1990, J Am Coll Cardiol 15:827; Hong et al. 2022, Eq. 1)."""

REFERENCE_SLICE_MM = 3.0
"""Slice interval of the original Agatston score: 3 mm contiguous electron-beam CT slices
(Agatston et al. 1990). Scores of other series are multiplied by ``slice_spacing / 3``."""

SLICE_SCALINGS: tuple[str, ...] = ("standard", "none")
"""How a component's Agatston score depends on the slice spacing (``ScoringConfig.slice_scaling``):

- ``"standard"`` (default): ``area * w * slice_spacing / 3`` (:data:`REFERENCE_SLICE_MM`), so a
  series of other than 3 mm slices scores on the scale of the original 3 mm score;
- ``"none"``: ``area * w``, Hong et al. 2022 Eq. 1 read literally (Agatston = W x Pixels x Pixel
  Size, no slice factor); on the paper's 2 mm slices that is 1.5 x the standard score
  (docs/paper_recipe.md)."""

KVP_THRESHOLDS_HU: dict[float, float] = {
    70.0: 207.0,
    80.0: 177.0,
    100.0: 147.0,
    120.0: DEFAULT_THRESHOLD_HU,
    135.0: 119.0,
}
"""Calcium threshold (HU) by tube voltage (kVp).

- 120 kVp: 130 HU, Agatston et al. 1990, J Am Coll Cardiol 15:827.
- 100 kVp: 147 HU, Marwan et al. 2013, "Very low-dose coronary artery calcium scanning
  with high-pitch spiral acquisition mode: comparison between 120-kV and 100-kV tube
  voltage protocols", J Cardiovasc Comput Tomogr 7:32.
- 70, 80 and 135 kVp: 207, 177 and 119 HU, Gräni et al. 2018, "Ultra-low-dose coronary
  artery calcium scoring using novel scoring thresholds for low tube voltage protocols -
  a pilot study", Eur Heart J Cardiovasc Imaging 19:1362 (doi:10.1093/ehjci/jey019).

At a tabulated kVp other than 120 the weight bands are scaled by the same factor,
``threshold / 130`` (as Gräni et al. 2018 shift the whole Agatston scale).
"""

DEFAULT_MASS_FACTOR = 100.0 / DEFAULT_THRESHOLD_HU
"""Fallback mass calibration factor c, mg CaHA / (HU·cm³), about 0.769.

Derived from the 120 kVp calibration behind the Agatston threshold: 130 HU corresponds
to about 100 mg/cm³ hydroxyapatite (McCollough et al. 2007, Radiology 243:527; restated
by van der Werf et al. 2022, Eur Radiol, doi:10.1007/s00330-022-08642-5). A scanner- and
patient-size-specific factor from a calibration phantom (Hong et al. 2022, Eq. 3; DICOM
(0018,9352) CalciumScoringMassFactorDevice) should be preferred whenever it is known.
"""

_KVP_TOLERANCE = 1.0


def threshold_for_kvp(kvp: float | None) -> float:
    """Calcium threshold (HU) for a tube voltage.

    Args:
        kvp: tube voltage in kVp, or None when unknown.

    Returns:
        130 HU when ``kvp`` is None or 120; the :data:`KVP_THRESHOLDS_HU` value when the
        kVp is tabulated (within 1 kV); otherwise 130 HU with a logged warning.
    """
    if kvp is None:
        return DEFAULT_THRESHOLD_HU
    kvp = float(kvp)
    for table_kvp, thr in KVP_THRESHOLDS_HU.items():
        if abs(kvp - table_kvp) <= _KVP_TOLERANCE:
            return thr
    log.warning(
        "no calcium threshold tabulated for %g kVp; using %g HU (set threshold_hu to override)",
        kvp,
        DEFAULT_THRESHOLD_HU,
    )
    return DEFAULT_THRESHOLD_HU


def _finite(name: str, value: object, *, minimum: float | None = None, strict: bool = False):
    try:
        out = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise CACError(f"scoring {name} must be a number, got {value!r}") from None
    if not math.isfinite(out):
        raise CACError(f"scoring {name} must be finite, got {value!r}")
    if minimum is not None and (out <= minimum if strict else out < minimum):
        op = ">" if strict else ">="
        raise CACError(f"scoring {name} must be {op} {minimum:g}, got {out:g}")
    return out


@dataclass(frozen=True)
class ScoringConfig:
    """How calcium is scored.

    Args:
        mode: ``"per-slice"`` (default; the clinical definition: 2D 8-connected components
            per slice, a weight per component) or ``"lesion3d"`` (Hong et al. 2022 section
            2.3: 6-connected 3D lesions, one weight per lesion). ``"per_slice"`` is accepted.
        threshold_hu: calcium threshold in HU; None picks it from the scan's kVp
            (:func:`threshold_for_kvp`; 130 HU at 120 kVp or unknown kVp).
        min_area_mm2: components (per-slice) or lesions (lesion3d, total in-plane area)
            smaller than this are noise and dropped from every score. Default 1 mm²
            (Hong et al. 2022, sections 2.3-2.4).
        mass_factor: mass calibration factor c in mg CaHA/(HU·cm³); None takes the value
            passed to :func:`~cac_lightning.scoring.score_scan` (from DICOM (0018,9352)),
            else :data:`DEFAULT_MASS_FACTOR`.
        weight_bands_hu: lower edges (HU) of weights 2, 3, 4; None gives (200, 300, 400),
            scaled by ``threshold / 130`` when the threshold comes from the kVp table.
        slice_scaling: the Agatston slice factor, one of :data:`SLICE_SCALINGS`: ``"standard"``
            (default, ``slice_spacing / 3 mm``) or ``"none"`` (Hong et al. 2022 Eq. 1, no
            slice factor). Volume and mass always use the slice spacing.

    Raises:
        CACError: an unknown mode or an invalid number.
    """

    mode: str = "per-slice"
    threshold_hu: float | None = None
    min_area_mm2: float = 1.0
    mass_factor: float | None = None
    weight_bands_hu: tuple[float, float, float] | None = None
    slice_scaling: str = "standard"

    def __post_init__(self) -> None:
        mode = str(self.mode).strip().lower().replace("_", "-")
        if mode not in MODES:
            raise CACError(f"unknown scoring mode {self.mode!r}; choose one of {', '.join(MODES)}")
        object.__setattr__(self, "mode", mode)
        scaling = str(self.slice_scaling).strip().lower()
        if scaling not in SLICE_SCALINGS:
            raise CACError(
                f"unknown scoring slice_scaling {self.slice_scaling!r}; "
                f"choose one of {', '.join(SLICE_SCALINGS)}"
            )
        object.__setattr__(self, "slice_scaling", scaling)
        if self.threshold_hu is not None:
            object.__setattr__(self, "threshold_hu", _finite("threshold_hu", self.threshold_hu))
        object.__setattr__(
            self, "min_area_mm2", _finite("min_area_mm2", self.min_area_mm2, minimum=0.0)
        )
        if self.mass_factor is not None:
            mf = _finite("mass_factor", self.mass_factor, minimum=0.0, strict=True)
            object.__setattr__(self, "mass_factor", mf)
        if self.weight_bands_hu is not None:
            object.__setattr__(self, "weight_bands_hu", _bands(self.weight_bands_hu))

    def slice_factor(self, slice_spacing_mm: float) -> float:
        """The factor of every component's Agatston score for slices ``slice_spacing_mm`` apart:
        ``slice_spacing_mm / 3`` (``"standard"``) or 1 (``"none"``, Hong et al. 2022 Eq. 1)."""
        if self.slice_scaling == "none":
            return 1.0
        return float(slice_spacing_mm) / REFERENCE_SLICE_MM

    def resolve(self, kvp: float | None = None) -> tuple[float, tuple[float, float, float]]:
        """Threshold and weight bands for a scan.

        Args:
            kvp: the scan's tube voltage, or None.

        Returns:
            ``(threshold_hu, (band2, band3, band4))`` in HU.
        """
        if self.threshold_hu is not None:
            thr = self.threshold_hu
            scale = 1.0
        else:
            thr = threshold_for_kvp(kvp)
            scale = thr / DEFAULT_THRESHOLD_HU
        if self.weight_bands_hu is not None:
            return thr, self.weight_bands_hu
        b2, b3, b4 = (b * scale for b in WEIGHT_BANDS_HU)
        return thr, (b2, b3, b4)


def _bands(value: Sequence[float]) -> tuple[float, float, float]:
    try:
        bands = tuple(_finite("weight_bands_hu", v) for v in value)
    except TypeError:
        raise CACError(f"scoring weight_bands_hu must be 3 numbers, got {value!r}") from None
    if len(bands) != 3 or not bands[0] < bands[1] < bands[2]:
        raise CACError(f"scoring weight_bands_hu must be 3 increasing numbers, got {value!r}")
    return bands  # type: ignore[return-value]
