"""Lesion confidence: drop predicted lesions the network is unsure of.

A predicted lesion here is a 3D 26-connected component of predicted calcium (any vessel, after
the HU gate). Its confidence is the mean, over its voxels, of the network's foreground
probability ``1 - P(background)`` on the scan's native grid. A checkpoint may record a floor
(hyper-parameter ``lesion_confidence``: ``{"floor": ..., ...}``, see :func:`choose_floor`);
:meth:`~cac_lightning.inference.Predictor.predict` then drops every lesion whose confidence is
below it.

``cac-train`` picks the floor once, after fitting, on the validation scans with the best
checkpoint (:mod:`cac_lightning.evaluation.calibration`): the value of :data:`FLOOR_GRID` with
the smallest validation Agatston error, the paper's model-selection criterion (Hong et al.
2022, section 2.4), the lower floor on a tie. ``0`` keeps every lesion: the argmax alone.
The same post-hoc choice on validation data as nnU-Net's post-processing step (Isensee et al.
2021, Nat Methods 18:203).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy import ndimage

from cac_lightning.models.checkpoint import LesionFloor

__all__ = [
    "FLOOR_GRID",
    "apply_floor",
    "choose_floor",
    "floor_record",
    "lesion_confidence",
    "recorded_floor",
]

FLOOR_GRID: tuple[float, ...] = (0.0, 0.5, 0.6, 0.7, 0.8, 0.9)
"""Floors tried by the calibration (0 = no floor)."""

_26 = np.ones((3, 3, 3), dtype=bool)


def lesion_confidence(labels: np.ndarray, foreground: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Predicted lesions and their mean foreground probability.

    Args:
        labels: (z, y, x) predicted calcium labels (0 background, 1-4 vessels).
        foreground: (z, y, x) float foreground probability ``1 - P(background)``, same shape.

    Returns:
        ``(components, confidence)``: int32 (z, y, x) component ids (0 outside lesions) and a
        float64 array of length ``n + 1`` whose entry ``k`` is lesion ``k``'s mean foreground
        probability (entry 0 unused, 1.0).
    """
    if np.shape(labels) != np.shape(foreground):
        raise ValueError(f"labels {np.shape(labels)} and foreground {np.shape(foreground)} differ")
    components, n = ndimage.label(np.asarray(labels) > 0, structure=_26)
    ids = components.ravel()
    total = np.bincount(ids, weights=np.asarray(foreground, np.float64).ravel(), minlength=n + 1)
    count = np.bincount(ids, minlength=n + 1)
    confidence = total / np.maximum(count, 1)
    confidence[0] = 1.0
    return components.astype(np.int32, copy=False), confidence


def apply_floor(labels: np.ndarray, foreground: np.ndarray, floor: float) -> np.ndarray:
    """``labels`` without the lesions whose confidence is below ``floor`` (a new array)."""
    labels = np.asarray(labels)
    if not floor > 0 or not labels.any():
        return labels.copy()
    components, confidence = lesion_confidence(labels, foreground)
    drop = confidence < float(floor)
    return np.where(drop[components], 0, labels).astype(labels.dtype, copy=False)


def choose_floor(errors: Mapping[float, float]) -> float:
    """The floor with the smallest error (nan errors ignored; the lower floor on a tie; 0 when
    every error is nan)."""
    valid = sorted((float(e), float(f)) for f, e in errors.items() if e == e)
    return valid[0][1] if valid else 0.0


def floor_record(floor: float, errors: Mapping[float, float], split: str, n_scans: int) -> dict:
    """The checkpoint's ``lesion_confidence`` hyper-parameter (plain names and numbers;
    :class:`~cac_lightning.models.checkpoint.LesionFloor`)."""
    return LesionFloor(
        float(floor),
        split,
        int(n_scans),
        {f"{f:g}": float(e) for f, e in sorted(errors.items())},
    ).to_dict()


def recorded_floor(record: Mapping | None) -> float:
    """The floor of a checkpoint's ``lesion_confidence`` record (0 when absent).

    Raises:
        ValueError: a floor outside [0, 1).
    """
    return (LesionFloor.from_dict(record) or LesionFloor()).floor
