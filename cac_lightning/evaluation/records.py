"""Per-scan evaluation records: the one scan-level path from a model to the paper's tables.

``Predictor.predict(scan)`` -> :func:`~cac_lightning.scoring.score_scan` (the reference and
the prediction, with the same settings and the scan's own threshold) -> :class:`ScanRecord`
-> :mod:`cac_lightning.evaluation.tables` -> flat metrics. :func:`evaluate_scans` runs the
chain for the validation callback (``val/...``), cac-train's test (``test/...``) and
``cac-eval`` alike, so a metric with one name is computed by one piece of code.

What counts as calcium is :func:`~cac_lightning.scoring.score_scan`'s decision (its
``calcium_index``: above the threshold, in a vessel, not noise under the scoring mode's
minimum-area rule); the voxel and lesion counts of a record are taken on those voxels.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import ndimage

from cac_lightning.errors import InputError
from cac_lightning.vessels import NUM_CLASSES, VESSELS, VESSELS_AND_TOTAL

if TYPE_CHECKING:
    from cac_lightning.inference import Predictor
    from cac_lightning.scoring import ScanScores, ScoringConfig
    from cac_lightning.volume import Geometry

__all__ = [
    "NOT_CAC",
    "NOT_DETECTED",
    "ScanRecord",
    "as_scoring_config",
    "evaluate_scans",
    "lesion_detection",
    "scan_record",
    "voxel_confusion",
]

log = logging.getLogger(__name__)

NOT_DETECTED = "not detected"
NOT_CAC = "not CAC"


@dataclass
class ScanRecord:
    """What the evaluation tables need to know about one scan.

    Attributes:
        scan_id: the scan's name (never a patient field).
        split: data split, e.g. ``"train"``, ``"val"``, ``"test"``, ``"test_zero"``.
        ref, pred: scores as ``ScanScores.to_dict()["scores"]``:
            ``{"LM": {"agatston", "volume_mm3", "mass_mg", "lesions"}, ..., "total": {...}}``.
        ref_risk, pred_risk: risk categories ``"C1"`` .. ``"C5"`` of the total Agatston.
        tp, fp, fn: calcium voxels (any vessel vs background) found in both, only in the
            prediction, only in the reference.
        voxel_confusion: 5 × 5 voxel counts over the calcium label maps; rows reference
            class (0 background, 1 LM, 2 LAD, 3 CX, 4 RCA), columns predicted class.
        lesions: one ``(reference vessel, predicted vessel or "not detected")`` pair per
            reference lesion.
        not_cac: per predicted vessel, the number of predicted lesions that touch no
            reference calcium.
        threshold_hu: the calcium threshold used for this scan (input mask, gate, scores).
        kvp: the scan's tube voltage when known.
        warnings: domain-shift lines (:meth:`Predictor.warnings`) for this scan.
    """

    scan_id: str
    split: str
    ref: dict[str, dict[str, float]]
    pred: dict[str, dict[str, float]]
    ref_risk: str
    pred_risk: str
    tp: int = 0
    fp: int = 0
    fn: int = 0
    voxel_confusion: list[list[int]] = field(
        default_factory=lambda: [[0] * NUM_CLASSES for _ in range(NUM_CLASSES)]
    )
    lesions: list[tuple[str, str]] = field(default_factory=list)
    not_cac: dict[str, int] = field(default_factory=lambda: {v: 0 for v in VESSELS})
    threshold_hu: float | None = None
    kvp: float | None = None
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """JSON-ready dict (lesion pairs become 2-element lists)."""
        d = asdict(self)
        d["lesions"] = [list(p) for p in self.lesions]
        return d

    def agatston_summary(self) -> dict:
        """The record as ``metrics.json`` lists it under ``scans``: scan id, threshold, kVp,
        reference and predicted Agatston per vessel and total, and both risk categories."""
        return {
            "scan_id": self.scan_id,
            "threshold_hu": self.threshold_hu,
            "kvp": self.kvp,
            "ref": {k: self.ref[k]["agatston"] for k in VESSELS_AND_TOTAL},
            "pred": {k: self.pred[k]["agatston"] for k in VESSELS_AND_TOTAL},
            "ref_risk": self.ref_risk,
            "pred_risk": self.pred_risk,
        }

    @classmethod
    def from_dict(cls, d: dict) -> ScanRecord:
        """Inverse of :meth:`to_dict`."""
        d = dict(d)
        d["lesions"] = [tuple(p) for p in d.get("lesions", [])]
        return cls(**d)


def _bbox(mask: np.ndarray) -> tuple[slice, ...]:
    """Smallest box (one slice per axis) holding every True voxel (empty box if none)."""
    box = []
    for axis in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        idx = np.flatnonzero(mask.any(axis=other))
        box.append(slice(int(idx[0]), int(idx[-1]) + 1) if idx.size else slice(0, 0))
    return tuple(box)


def voxel_confusion(ref_cal: np.ndarray, pred_cal: np.ndarray) -> np.ndarray:
    """5 × 5 voxel counts of (reference class, predicted class).

    Args:
        ref_cal: (z, y, x) reference calcium labels (0-4).
        pred_cal: (z, y, x) predicted calcium labels (0-4), same shape.

    Returns:
        int64 (5, 5) array; rows reference class, columns predicted class.
    """
    r, p = np.asarray(ref_cal).ravel(), np.asarray(pred_cal).ravel()
    idx = np.flatnonzero((r > 0) | (p > 0))
    conf = np.bincount(
        r[idx].astype(np.int64) * NUM_CLASSES + p[idx], minlength=NUM_CLASSES**2
    ).reshape(NUM_CLASSES, NUM_CLASSES)
    conf[0, 0] = r.size - idx.size
    return conf


def _structure(connectivity: int) -> np.ndarray:
    if connectivity == 6:
        return ndimage.generate_binary_structure(3, 1)
    if connectivity == 26:
        return ndimage.generate_binary_structure(3, 3)
    raise InputError(f"lesion connectivity must be 6 or 26, got {connectivity!r}")


def lesion_detection(
    ref_cal: np.ndarray, pred_cal: np.ndarray, connectivity: int = 6
) -> tuple[list[tuple[str, str]], dict[str, int]]:
    """Lesion-level detection rows of Table 5.

    Reference lesions are the 3D connected components (6-connected by default, as in
    Hong et al. 2022 section 2.3, or 26-connected) of each vessel's calcium. A reference
    lesion is detected when any predicted calcium voxel falls inside it; its predicted
    class is the most frequent predicted vessel over those voxels (ties go to the lower
    label). Predicted lesions, the components of each predicted vessel's calcium, that
    contain no reference calcium voxel are counted as "not CAC".

    Args:
        ref_cal: (z, y, x) reference calcium labels (0-4), e.g.
            ``ScanScores.calcium_labels(shape)``.
        pred_cal: (z, y, x) predicted calcium labels (0-4).
        connectivity: 6 or 26.

    Returns:
        ``(lesions, not_cac)``: one ``(reference vessel, predicted vessel or
        "not detected")`` pair per reference lesion, ordered by vessel then component;
        and ``{vessel: count}`` of predicted lesions hitting no reference calcium.
    """
    structure = _structure(connectivity)
    ref_cal, pred_cal = np.asarray(ref_cal), np.asarray(pred_cal)
    box = _bbox((ref_cal > 0) | (pred_cal > 0))
    ref_cal, pred_cal = ref_cal[box], pred_cal[box]
    lesions: list[tuple[str, str]] = []
    for value, vessel in enumerate(VESSELS, start=1):
        mask = ref_cal == value
        if not mask.any():
            continue
        comp, n = ndimage.label(mask, structure=structure)
        ids = comp[mask].astype(np.int64)
        hits = np.bincount(
            ids * NUM_CLASSES + pred_cal[mask], minlength=(n + 1) * NUM_CLASSES
        ).reshape(n + 1, NUM_CLASSES)
        for row in hits[1:, 1:]:
            lesions.append((vessel, VESSELS[int(np.argmax(row))] if row.any() else NOT_DETECTED))
    ref_any = ref_cal > 0
    not_cac = {v: 0 for v in VESSELS}
    for value, vessel in enumerate(VESSELS, start=1):
        mask = pred_cal == value
        if not mask.any():
            continue
        comp, n = ndimage.label(mask, structure=structure)
        touched = np.bincount(comp[mask & ref_any], minlength=n + 1)
        not_cac[vessel] = int((touched[1:] == 0).sum())
    return lesions, not_cac


def as_scoring_config(value: Any = None) -> ScoringConfig:
    """A ``ScoringConfig`` from a config, a mapping of its fields (a Hydra node) or None."""
    from cac_lightning.scoring import ScoringConfig

    if value is None:
        return ScoringConfig()
    if isinstance(value, Mapping):
        return ScoringConfig(**dict(value))
    return value


def _calcium_box(ref: ScanScores, pred: ScanScores, shape) -> tuple[np.ndarray, np.ndarray]:
    """Dense calcium label maps of both, cut to the bounding box of their union."""
    idx = np.union1d(ref.calcium_index, pred.calcium_index)
    if idx.size == 0:
        empty = np.zeros((0, 0, 0), np.uint8)
        return empty, empty
    zyx = np.unravel_index(idx, shape)
    lo = [int(a.min()) for a in zyx]
    box_shape = tuple(int(a.max()) - low + 1 for a, low in zip(zyx, lo, strict=True))
    out = []
    for s in (ref, pred):
        dense = np.zeros(box_shape, np.uint8)
        z, y, x = np.unravel_index(s.calcium_index, shape)
        dense[z - lo[0], y - lo[1], x - lo[2]] = s.calcium_vessel
        out.append(dense)
    return out[0], out[1]


def scan_record(
    scan_id: str,
    split: str,
    hu: np.ndarray,
    ref_labels: np.ndarray | ScanScores,
    pred_labels: np.ndarray,
    geometry: Geometry,
    scoring: Any = None,
    *,
    kvp: float | None = None,
    mass_factor: float | None = None,
    connectivity: int = 6,
) -> ScanRecord:
    """Score a reference and a predicted label map of one scan and compare them.

    Both are scored by :func:`cac_lightning.scoring.score_scan` with the same settings;
    voxel counts and lesions are taken on the calcium voxels it kept, lesions per
    :func:`lesion_detection`.

    Args:
        scan_id: scan name.
        split: data split name.
        hu: (z, y, x) HU volume.
        ref_labels: (z, y, x) reference label map (0-4), or its ``ScanScores`` already
            computed with the same settings (a cache).
        pred_labels: (z, y, x) predicted label map (0-4).
        geometry: the voxel grid (its shape must match the arrays).
        scoring: a ``ScoringConfig``, a mapping of its fields, or None (defaults).
        kvp: tube voltage, for the threshold (None -> the 120 kVp threshold).
        mass_factor: mass calibration factor passed to ``score_scan``.
        connectivity: 6 (default, the paper) or 26 for 3D lesions.

    Returns:
        :class:`ScanRecord`.

    Raises:
        InputError: array shapes differ from each other or from the geometry.
    """
    from cac_lightning.scoring import ScanScores, score_scan

    cfg = as_scoring_config(scoring)
    hu = np.asarray(hu)
    shape = tuple(int(n) for n in geometry.shape)
    arrays = [("hu", hu), ("prediction", np.asarray(pred_labels))]
    if not isinstance(ref_labels, ScanScores):
        arrays.append(("reference labels", np.asarray(ref_labels)))
    for name, arr in arrays:
        if tuple(arr.shape) != shape:
            raise InputError(f"{scan_id}: {name} has shape {arr.shape}, expected {shape}")
    if isinstance(ref_labels, ScanScores):
        ref_s = ref_labels
    else:
        ref_s = score_scan(hu, ref_labels, geometry, cfg, kvp=kvp, mass_factor=mass_factor)
    pred_s = score_scan(hu, pred_labels, geometry, cfg, kvp=kvp, mass_factor=mass_factor)
    ref_cal, pred_cal = _calcium_box(ref_s, pred_s, shape)
    conf = voxel_confusion(ref_cal, pred_cal)
    conf[0, 0] += hu.size - ref_cal.size
    lesions, not_cac = lesion_detection(ref_cal, pred_cal, connectivity)
    return ScanRecord(
        scan_id=scan_id,
        split=split,
        ref=ref_s.to_dict()["scores"],
        pred=pred_s.to_dict()["scores"],
        ref_risk=ref_s.risk_category,
        pred_risk=pred_s.risk_category,
        tp=int(conf[1:, 1:].sum()),
        fp=int(conf[0, 1:].sum()),
        fn=int(conf[1:, 0].sum()),
        voxel_confusion=conf.tolist(),
        lesions=lesions,
        not_cac=not_cac,
        threshold_hu=float(pred_s.settings["threshold_hu"]),
        kvp=None if kvp is None else float(kvp),
    )


def evaluate_scans(
    predictor: Predictor,
    scans: Iterable[Any],
    scoring: Any = None,
    split: str | None = None,
    *,
    ref_cache: dict | None = None,
    on_scan: Callable[[Any, np.ndarray, ScanRecord], None] | None = None,
) -> list[ScanRecord]:
    """Predict, score and compare every scan: the per-scan records of one split.

    Args:
        predictor: the model (:class:`~cac_lightning.inference.Predictor`).
        scans: objects with ``scan_id``, ``hu``, ``labels`` (the reference), ``geometry``,
            ``kvp``, ``mass_factor`` and optionally ``split``: scans on their native grid (a
            DataModule's ``native_scans(split)``), so the figures are those of ``cac-score``.
        scoring: scoring settings (``ScoringConfig``, mapping or None: the predictor's).
        split: the split name written into the records (default each scan's ``split``).
        ref_cache: a dict kept by the caller: reference scores by scan id, so repeated
            evaluations (every validation epoch) score each reference once.
        on_scan: called as ``on_scan(scan, predicted_labels, record)`` after each scan
            (e.g. to keep a thumbnail while the predicted labels exist).

    Returns:
        One :class:`ScanRecord` per scan, in order.
    """
    from cac_lightning.scoring import score_scan

    cfg = predictor.scoring_config() if scoring is None else as_scoring_config(scoring)
    records = []
    for scan in scans:
        kvp, mass = getattr(scan, "kvp", None), getattr(scan, "mass_factor", None)
        threshold = predictor.threshold_for(scan, cfg)
        labels = predictor.predict(scan, threshold_hu=threshold)
        hu = np.asarray(scan.hu)
        ref = None if ref_cache is None else ref_cache.get(scan.scan_id)
        if ref is None:
            ref_labels = np.asarray(scan.labels)
            ref = score_scan(hu, ref_labels, scan.geometry, cfg, kvp=kvp, mass_factor=mass)
            if ref_cache is not None:
                ref_cache[scan.scan_id] = ref
        name = split if split is not None else str(getattr(scan, "split", ""))
        rec = scan_record(
            scan.scan_id, name, hu, ref, labels, scan.geometry, cfg, kvp=kvp, mass_factor=mass
        )
        rec.warnings = predictor.warnings(scan)
        records.append(rec)
        if on_scan is not None:
            on_scan(scan, labels, rec)
    return records
