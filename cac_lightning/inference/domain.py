"""Domain-shift warnings: where a scan lies outside what a checkpoint was trained on.

The checkpoint's ``data_geometry`` (written by ``cac-train``) records the ranges of the
training scans: ``pixel_spacing_mm`` [min, max], ``slice_thickness_mm`` [min, max],
``fov_range_mm`` [min, max] (native field of view), ``kvp`` (the tube voltages seen).
The training grid itself is in-domain: a scan at ``spacing_mm`` raises no spacing line, and
when the checkpoint records a training window ``fov_mm`` (which the Predictor cuts from wider
scans) the field-of-view range runs from ``fov_mm`` to the widest training scan.
A scan outside a range gets one line each; ``cac-score`` prints them, stores them in the
JSON's ``warnings`` and, with ``--strict-domain``, refuses the scan.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["RANGE_TOLERANCE", "domain_warnings", "ecg_gated", "field_of_view_mm"]

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


def _range(value: Any) -> tuple[float, float] | None:
    if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != 2:
        return None
    try:
        lo, hi = float(value[0]), float(value[1])
    except (TypeError, ValueError):
        return None
    return (lo, hi) if lo <= hi else None


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


def domain_warnings(volume: Any, data_geometry: Mapping[str, Any] | None) -> list[str]:
    """One line for each property of ``volume`` outside the checkpoint's training data.

    Args:
        volume: a :class:`~cac_lightning.volume.Volume` (or anything with ``geometry``,
            ``kvp`` and optionally ``extra``).
        data_geometry: the checkpoint's ``data_geometry`` (None: an older checkpoint).

    Returns:
        Lines about pixel spacing, slice thickness, field of view, kVp and ECG gating, in
        that order; one line saying the ranges are unknown when ``data_geometry`` is None.
    """
    if not data_geometry:
        return ["the checkpoint records no training data geometry: domain not checked"]
    g = volume.geometry
    out: list[str] = []
    rng = _widen(_range(data_geometry.get("pixel_spacing_mm")), data_geometry.get("spacing_mm"))
    if rng is not None:
        worst = max((float(s) for s in g.pixel_spacing), key=lambda s: abs(s - sum(rng) / 2))
        if _outside(worst, rng):
            out.append(_line("pixel spacing", worst, "mm", rng))
    rng = _range(data_geometry.get("slice_thickness_mm"))
    thickness = g.slice_thickness if g.slice_thickness is not None else g.slice_spacing
    if rng is not None and _outside(float(thickness), rng):
        out.append(_line("slice thickness", float(thickness), "mm", rng))
    rng = _range(data_geometry.get("fov_range_mm"))
    if rng is not None and data_geometry.get("fov_mm"):
        # The Predictor cuts the training window (fov_mm) from any wider scan: the network
        # sees the same physical window, so only a narrower scan or a much wider one is new.
        rng = (float(data_geometry["fov_mm"]), max(rng[1], float(data_geometry["fov_mm"])))
    if rng is not None and _outside(field_of_view_mm(g), rng):
        out.append(_line("field of view", field_of_view_mm(g), "mm", rng))
    kvps = data_geometry.get("kvp")
    if kvps:
        seen = sorted({int(round(float(k))) for k in kvps})
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
