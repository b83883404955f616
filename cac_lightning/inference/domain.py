"""Domain-shift warnings: where a scan lies outside what a checkpoint was trained on.

The checkpoint's ``data_geometry`` (written by ``cac-train``;
:class:`~cac_lightning.models.checkpoint.DataGeometry`) records the ranges of the
training scans: ``pixel_spacing_mm`` [min, max], ``slice_thickness_mm`` [min, max],
``fov_range_mm`` [min, max] (native field of view), ``kvp`` (the tube voltages seen).
The training grid itself is in-domain: a scan at ``spacing_mm`` raises no spacing line, and
when the checkpoint records a training window ``fov_mm`` (which the Predictor cuts from wider
scans) the field-of-view range runs from ``fov_mm`` to the widest training scan.
A scan outside a range gets one line each; ``cac-score`` prints them, stores them in the
JSON's ``warnings`` and, with ``--strict-domain``, refuses the scan.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cac_lightning.models.checkpoint import DataGeometry

__all__ = [
    "NON_GATED_FOV_MM",
    "NON_GATED_NOTE",
    "NON_GATED_THICKNESS_MM",
    "RANGE_TOLERANCE",
    "acquisition",
    "domain_warnings",
    "ecg_gated",
    "field_of_view_mm",
]

RANGE_TOLERANCE = 0.02
"""Relative slack on each range before a warning (rounding in headers)."""


def field_of_view_mm(geometry: Any) -> float:
    """The larger in-plane side of the reconstructed field of view (mm)."""
    _, rows, cols = (int(n) for n in geometry.shape)
    sy, sx = (float(s) for s in geometry.pixel_spacing)
    return max(rows * sy, cols * sx)


def ecg_gated(volume: Any) -> bool | None:
    """The volume's ECG gating (``extra["ecg_gated"]``, from
    :func:`cac_lightning.io.dicom.ecg_gating`): True, False, or None when unknown."""
    value = (getattr(volume, "extra", None) or {}).get("ecg_gated")
    return None if value is None else bool(value)


NON_GATED_FOV_MM = 300.0
"""A field of view at least this wide is a whole-chest scan (a gated calcium scan's is
about 180-250 mm)."""
NON_GATED_THICKNESS_MM = 4.0
"""Slices at least this thick belong to a routine chest CT (gated calcium scans: 2.5-3 mm)."""
NON_GATED_NOTE = (
    "non-gated chest CT: coronary calcium scores run lower than on an ECG-gated calcium scan "
    "(motion blur and thick slices); read them as a lower bound"
)
"""The one warning line ``cac-score`` prints (and records) for a non-gated scan."""


def acquisition(volume: Any) -> str:
    """``gated``, ``non-gated`` or ``unknown``, from the series header and its geometry.

    The header decides when it carries the cardiac tags (:func:`ecg_gated`). Without them
    (common after anonymisation), a whole-chest field of view (>= :data:`NON_GATED_FOV_MM`) or
    thick slices (>= :data:`NON_GATED_THICKNESS_MM`) mark a routine, non-gated chest CT; a scan
    with neither stays ``unknown``.
    """
    gated = ecg_gated(volume)
    if gated is not None:
        return "gated" if gated else "non-gated"
    g = volume.geometry
    thickness = g.slice_thickness if g.slice_thickness is not None else g.slice_spacing
    if field_of_view_mm(g) >= NON_GATED_FOV_MM or float(thickness) >= NON_GATED_THICKNESS_MM:
        return "non-gated"
    return "unknown"


def _widen(rng: tuple[float, float] | None, value: Any) -> tuple[float, float] | None:
    """``rng`` stretched to include ``value`` (the training grid's own spacing is in-domain)."""
    if rng is None or not isinstance(value, (int, float)) or not value > 0:
        return rng
    return min(rng[0], float(value)), max(rng[1], float(value))


def _outside(value: float, rng: tuple[float, float]) -> bool:
    lo, hi = rng
    return value < lo * (1 - RANGE_TOLERANCE) or value > hi * (1 + RANGE_TOLERANCE)


def _line(what: str, value: float, unit: str, rng: tuple[float, float]) -> str:
    lo, hi = f"{rng[0]:.3g}", f"{rng[1]:.3g}"
    if lo == hi:
        return f"{what} {value:.3g} {unit} differs from the training scans' {lo} {unit}"
    return f"{what} {value:.3g} {unit} is outside the training range {lo}-{hi} {unit}"


def domain_warnings(
    volume: Any, data_geometry: DataGeometry | Mapping[str, Any] | None
) -> list[str]:
    """One line for each property of ``volume`` outside the checkpoint's training data.

    Args:
        volume: a :class:`~cac_lightning.volume.Volume` (or anything with ``geometry``,
            ``kvp`` and optionally ``extra``).
        data_geometry: the checkpoint's :class:`DataGeometry` (or its dict; None: not recorded).

    Returns:
        Lines about pixel spacing, slice thickness, field of view, kVp and ECG gating, in
        that order; one line saying the ranges are unknown when ``data_geometry`` is None.
    """
    geo = DataGeometry.from_dict(data_geometry)
    if geo is None:
        return ["the checkpoint records no training data geometry: domain not checked"]
    g = volume.geometry
    out: list[str] = []
    rng = _widen(geo.pixel_spacing_mm, geo.spacing_mm)
    if rng is not None:
        worst = max((float(s) for s in g.pixel_spacing), key=lambda s: abs(s - sum(rng) / 2))
        if _outside(worst, rng):
            out.append(_line("pixel spacing", worst, "mm", rng))
    rng = geo.slice_thickness_mm
    thickness = g.slice_thickness if g.slice_thickness is not None else g.slice_spacing
    if rng is not None and _outside(float(thickness), rng):
        out.append(_line("slice thickness", float(thickness), "mm", rng))
    rng = geo.fov_range_mm
    if rng is not None and geo.fov_mm:
        # The Predictor cuts the training window (fov_mm) from any wider scan: the network
        # sees the same physical window, so only a narrower scan or a much wider one is new.
        rng = (geo.fov_mm, max(rng[1], geo.fov_mm))
    if rng is not None and _outside(field_of_view_mm(g), rng):
        out.append(_line("field of view", field_of_view_mm(g), "mm", rng))
    if geo.kvp:
        seen = list(geo.kvp)
        kvp = getattr(volume, "kvp", None)
        if kvp is None:
            out.append(f"kVp unknown; the training scans were {', '.join(map(str, seen))} kVp")
        elif all(abs(float(kvp) - k) > 1.0 for k in seen):
            out.append(
                f"kVp {float(kvp):g} is outside the training kVp {', '.join(map(str, seen))}"
            )
    if ecg_gated(volume) is False:
        out.append("the series header says it is not ECG-gated; the training scans were gated")
    return out
