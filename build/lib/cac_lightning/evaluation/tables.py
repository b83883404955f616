"""Per-scan evaluation records and the paper's Tables 3-7 built from them.

A :class:`ScanRecord` holds everything the tables need about one scan: the
reference and predicted scores, risk categories, calcium voxel counts and the
lesion-detection rows. :func:`scan_record` computes one from a CT volume and two
label maps; the ``table*`` functions turn a list of records into plain,
JSON-ready dicts mirroring Hong et al. 2022:

- Table 3: mean absolute Agatston error per scan, voxel precision, recall, Dice, IoU.
- Table 4: scan-level CAC present / absent confusion, sensitivity, specificity.
- Table 5: reference lesion vessel × predicted class, "not detected", "not CAC".
- Table 6: median (IQR) of reference and predicted scores, ICC(A,1) and p-value.
- Table 7: five-class risk confusion (C1-C5) and Cohen's kappa (unweighted, linear).
- Fig. 5: Bland-Altman bias and limits of agreement; the zero-calcium set summary.

Confusion matrices follow the paper's layout: rows are predicted, columns are
reference ("standard").
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

from cac_lightning.errors import InputError
from cac_lightning.evaluation.stats import bland_altman, icc_a1, kappa_from_table
from cac_lightning.vessels import NUM_CLASSES, VESSELS

if TYPE_CHECKING:
    from cac_lightning.io.volume import Geometry

__all__ = [
    "METRICS",
    "NOT_CAC",
    "NOT_DETECTED",
    "RISK_LABELS",
    "SCORE_KEYS",
    "ScanRecord",
    "bland_altman_table",
    "build_tables",
    "calcium_labels",
    "flat_metrics",
    "lesion_detection",
    "scan_record",
    "score_pairs",
    "table3",
    "table4",
    "table5",
    "table6",
    "table7",
    "tables_by_split",
    "voxel_confusion",
    "zero_calcium_summary",
]

log = logging.getLogger(__name__)

NAN = float("nan")
SCORE_KEYS: tuple[str, ...] = (*VESSELS, "total")
METRICS: tuple[str, ...] = ("agatston", "volume_mm3", "mass_mg")
METRIC_SHORT = {"agatston": "agatston", "volume_mm3": "volume", "mass_mg": "mass"}
RISK_LABELS: tuple[str, ...] = ("C1", "C2", "C3", "C4", "C5")
"""Risk categories of Hong et al. 2022, Table 2."""
NOT_DETECTED = "not detected"
NOT_CAC = "not CAC"
IQR_METHOD = "weibull"
"""Percentiles at rank (n + 1)p, SPSS's default ("HAVERAGE"); the paper used SPSS 24."""


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

    def to_dict(self) -> dict:
        """JSON-ready dict (lesion pairs become 2-element lists)."""
        d = asdict(self)
        d["lesions"] = [list(p) for p in self.lesions]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ScanRecord:
        """Inverse of :meth:`to_dict`."""
        d = dict(d)
        d["lesions"] = [tuple(p) for p in d.get("lesions", [])]
        return cls(**d)


# ---------------------------------------------------------------------------------------
# From label maps to a record


def _bbox(mask: np.ndarray) -> tuple[slice, ...]:
    """Smallest box (one slice per axis) holding every True voxel (empty box if none)."""
    box = []
    for axis in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        idx = np.flatnonzero(mask.any(axis=other))
        box.append(slice(int(idx[0]), int(idx[-1]) + 1) if idx.size else slice(0, 0))
    return tuple(box)


def calcium_labels(
    hu: np.ndarray,
    labels: np.ndarray,
    threshold_hu: float,
    pixel_area_mm2: float,
    min_area_mm2: float = 1.0,
) -> np.ndarray:
    """Keep the labelled voxels that count as calcium.

    A voxel is calcium when its label is a vessel (1-4), its HU is >= ``threshold_hu``
    and its in-plane 8-connected component of same-vessel calcium in that slice covers
    at least ``min_area_mm2`` (the clinical 1 mm² noise rule, Hong et al. 2022
    section 2.3; the default per-slice scoring definition).

    Args:
        hu: (z, y, x) HU volume.
        labels: (z, y, x) label map, 0 background, 1 LM, 2 LAD, 3 CX, 4 RCA.
        threshold_hu: calcium threshold (130 HU at 120 kVp).
        pixel_area_mm2: in-plane pixel area.
        min_area_mm2: smaller components are noise (default 1.0).

    Returns:
        uint8 (z, y, x) label map with non-calcium voxels set to 0.
    """
    lab = np.asarray(labels)
    keep = (lab > 0) & (lab < NUM_CLASSES) & (np.asarray(hu) >= threshold_hu)
    out = np.where(keep, lab, 0).astype(np.uint8)
    if min_area_mm2 <= 0 or not keep.any():
        return out
    in_plane = np.zeros((3, 3, 3), dtype=bool)
    in_plane[1] = True
    box = out[_bbox(keep)]  # a view: edits reach ``out``
    for value in range(1, NUM_CLASSES):
        mask = box == value
        if not mask.any():
            continue
        comp, n = ndimage.label(mask, structure=in_plane)
        area = np.bincount(comp.ravel(), minlength=n + 1) * pixel_area_mm2
        noise = area < min_area_mm2
        noise[0] = False
        box[noise[comp]] = 0
    return out


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
        ref_cal: (z, y, x) reference calcium labels (0-4), e.g. from :func:`calcium_labels`.
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


def scan_record(
    scan_id: str,
    split: str,
    hu: np.ndarray,
    ref_labels: np.ndarray,
    pred_labels: np.ndarray,
    geometry: Geometry,
    scoring_config=None,
    *,
    kvp: float | None = None,
    mass_factor: float | None = None,
    connectivity: int = 6,
) -> ScanRecord:
    """Score a reference and a predicted label map of one scan and compare them.

    Scores come from :func:`cac_lightning.scoring.score_scan` with ``scoring_config``.
    Calcium voxels for the voxel and lesion counts follow :func:`calcium_labels` with the
    config's threshold (resolved from ``kvp``) and minimum area, i.e. the clinical
    per-slice noise rule whatever the scoring mode; lesions follow
    :func:`lesion_detection`. Work is done inside the bounding box of the two label maps.

    Args:
        scan_id: scan name.
        split: data split name.
        hu: (z, y, x) HU volume.
        ref_labels: (z, y, x) reference label map (0-4).
        pred_labels: (z, y, x) predicted label map (0-4).
        geometry: the voxel grid (its shape must match the arrays).
        scoring_config: a ``ScoringConfig``, a mapping of its fields (e.g. a Hydra node),
            or None (defaults).
        kvp: tube voltage, for the threshold (None -> 130 HU).
        mass_factor: mass calibration factor passed to ``score_scan``.
        connectivity: 6 (default, the paper) or 26 for 3D lesions.

    Returns:
        :class:`ScanRecord`.

    Raises:
        InputError: array shapes differ from each other or from the geometry.
    """
    from cac_lightning.scoring import ScoringConfig, score_scan

    hu = np.asarray(hu)
    ref_labels, pred_labels = np.asarray(ref_labels), np.asarray(pred_labels)
    shape = tuple(geometry.shape)
    for name, arr in (("hu", hu), ("reference labels", ref_labels), ("prediction", pred_labels)):
        if tuple(arr.shape) != shape:
            raise InputError(f"{scan_id}: {name} has shape {arr.shape}, expected {shape}")
    if scoring_config is None:
        cfg = ScoringConfig()
    elif isinstance(scoring_config, Mapping):
        cfg = ScoringConfig(**dict(scoring_config))
    else:
        cfg = scoring_config
    ref_s = score_scan(hu, ref_labels, geometry, cfg, kvp=kvp, mass_factor=mass_factor)
    pred_s = score_scan(hu, pred_labels, geometry, cfg, kvp=kvp, mass_factor=mass_factor)
    threshold, _ = cfg.resolve(kvp)
    area = geometry.pixel_area_mm2
    box = _bbox((ref_labels > 0) | (pred_labels > 0))  # labels are sparse: work in their box
    ref_cal = calcium_labels(hu[box], ref_labels[box], threshold, area, cfg.min_area_mm2)
    pred_cal = calcium_labels(hu[box], pred_labels[box], threshold, area, cfg.min_area_mm2)
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
    )


# ---------------------------------------------------------------------------------------
# Tables


def _score(rec: ScanRecord, side: str, key: str, metric: str) -> float:
    scores = rec.ref if side == "ref" else rec.pred
    try:
        return float(scores[key][metric])
    except (KeyError, TypeError, ValueError):
        return NAN


def score_pairs(
    records: Sequence[ScanRecord], key: str, metric: str
) -> tuple[np.ndarray, np.ndarray]:
    """Finite (reference, predicted) pairs of one score over the records.

    Args:
        records: the scans.
        key: ``"LM"``, ``"LAD"``, ``"CX"``, ``"RCA"`` or ``"total"``.
        metric: ``"agatston"``, ``"volume_mm3"`` or ``"mass_mg"``.

    Returns:
        ``(ref (m,), pred (m,))`` float64, leaving out records lacking either value.
    """
    ref = np.array([_score(r, "ref", key, metric) for r in records], dtype=np.float64)
    pred = np.array([_score(r, "pred", key, metric) for r in records], dtype=np.float64)
    ok = np.isfinite(ref) & np.isfinite(pred)
    if (~ok).any():
        log.warning("%d record(s) lack a %s %s score; left out", int((~ok).sum()), key, metric)
    return ref[ok], pred[ok]


def _ratio(num: float, den: float) -> float:
    return num / den if den > 0 else NAN


def _nanmean(values: Iterable[float]) -> float:
    arr = np.array([v for v in values if math.isfinite(v)], dtype=np.float64)
    return float(arr.mean()) if arr.size else NAN


def _voxel_metrics(tp: float, fp: float, fn: float) -> dict[str, float]:
    return {
        "precision": _ratio(tp, tp + fp),
        "recall": _ratio(tp, tp + fn),
        "dice": _ratio(2 * tp, 2 * tp + fp + fn),
        "iou": _ratio(tp, tp + fp + fn),
    }


def table3(records: Sequence[ScanRecord]) -> dict:
    """Table 3: mean absolute Agatston error and voxel metrics.

    ``agatston_mae`` is the mean over scans of |predicted - reference| total Agatston.
    ``precision``, ``recall``, ``dice`` and ``iou`` on calcium voxels (any vessel vs
    background) are means over the scans where each is defined (a scan with no
    calcium in either map has none and is left out; ``n_voxel_scans`` counts the rest);
    ``pooled`` gives them from voxel counts summed over all scans, and ``dice_per_vessel``
    the pooled per-class Dice from the summed 5 × 5 voxel confusion.

    Args:
        records: the scans of one split.

    Returns:
        dict with the keys above and ``n_scans``.
    """
    ref, pred = score_pairs(records, "total", "agatston")
    per_scan = [_voxel_metrics(r.tp, r.fp, r.fn) for r in records]
    out: dict = {
        "n_scans": len(records),
        "agatston_mae": float(np.abs(pred - ref).mean()) if ref.size else NAN,
    }
    for key in ("precision", "recall", "dice", "iou"):
        out[key] = _nanmean(m[key] for m in per_scan)
    out["n_voxel_scans"] = sum(1 for r in records if r.tp + r.fp + r.fn > 0)
    tp, fp, fn = (sum(getattr(r, k) for r in records) for k in ("tp", "fp", "fn"))
    out["pooled"] = {"tp": tp, "fp": fp, "fn": fn, **_voxel_metrics(tp, fp, fn)}
    conf = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
    for r in records:
        conf += np.asarray(r.voxel_confusion, dtype=np.int64)
    out["dice_per_vessel"] = {
        v: _ratio(2 * conf[i, i], conf[i, :].sum() + conf[:, i].sum())
        for i, v in enumerate(VESSELS, start=1)
    }
    return out


def table4(records: Sequence[ScanRecord]) -> dict:
    """Table 4: scan-level calcium detection (total Agatston > 0, after the 1 mm² rule).

    Args:
        records: the scans of one split.

    Returns:
        dict: ``labels`` ("No CAC", "CAC"), ``matrix`` 2 × 2 (rows predicted, columns
        reference), ``tp``, ``fp``, ``fn``, ``tn``, ``sensitivity`` tp / (tp + fn) and
        ``specificity`` tn / (tn + fp) (nan when undefined).
    """
    ref, pred = score_pairs(records, "total", "agatston")
    r, p = ref > 0, pred > 0
    tp, fp = int((r & p).sum()), int((~r & p).sum())
    fn, tn = int((r & ~p).sum()), int((~r & ~p).sum())
    return {
        "labels": ["No CAC", "CAC"],
        "rows": "predicted",
        "columns": "reference",
        "matrix": [[tn, fn], [fp, tp]],
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
        "sensitivity": _ratio(tp, tp + fn),
        "specificity": _ratio(tn, tn + fp),
    }


def table5(records: Sequence[ScanRecord]) -> dict:
    """Table 5: vessel-specific lesion detection.

    ``matrix[i][j]`` counts reference lesions of vessel ``columns[j]`` predicted as
    ``rows[i]``; the last row is "not detected", the last column "not CAC" (predicted
    lesions touching no reference calcium); the bottom-right cell is None ("–").
    ``detection_rate`` is the paper's figure: lesions of a vessel detected *as that
    vessel* over all its reference lesions (e.g. Training LM 290 / 295 = 98.3 %);
    ``detection_rate_any_vessel`` counts a detection of any class. ``not_detected_rate``
    and ``not_cac_rate`` divide by the total number of reference lesions (Hong et al.
    2022 section 3.2: 1.9 % and 3.9 % in the Training Data Set).

    Args:
        records: the scans of one split.

    Returns:
        dict with ``rows``, ``columns``, ``matrix``, ``n_lesions``, the rates above and
        the totals ``n_not_detected``, ``n_not_cac``.
    """
    k = len(VESSELS)
    index = {v: i for i, v in enumerate(VESSELS)}
    m = np.zeros((k + 1, k + 1), dtype=np.int64)
    for rec in records:
        for ref_v, pred_v in rec.lesions:
            if ref_v not in index:
                raise InputError(f"{rec.scan_id}: unknown reference lesion vessel {ref_v!r}")
            row = k if pred_v == NOT_DETECTED else index.get(pred_v)
            if row is None:
                raise InputError(f"{rec.scan_id}: unknown predicted lesion class {pred_v!r}")
            m[row, index[ref_v]] += 1
        for v, count in rec.not_cac.items():
            m[index[v], k] += int(count)
    n_lesions = m[:, :k].sum(axis=0)
    total = int(n_lesions.sum())
    matrix: list[list] = m.tolist()
    matrix[k][k] = None
    return {
        "rows": [*VESSELS, NOT_DETECTED],
        "columns": [*VESSELS, NOT_CAC],
        "matrix": matrix,
        "n_lesions": {v: int(n_lesions[i]) for i, v in enumerate(VESSELS)},
        "detection_rate": {v: _ratio(m[i, i], n_lesions[i]) for i, v in enumerate(VESSELS)},
        "detection_rate_any_vessel": {
            v: _ratio(n_lesions[i] - m[k, i], n_lesions[i]) for i, v in enumerate(VESSELS)
        },
        "n_not_detected": int(m[k, :k].sum()),
        "n_not_cac": int(m[:k, k].sum()),
        "not_detected_rate": _ratio(m[k, :k].sum(), total),
        "not_cac_rate": _ratio(m[:k, k].sum(), total),
    }


def _median_iqr(x: np.ndarray) -> tuple[float, float]:
    if x.size == 0:
        return NAN, NAN
    q25, q50, q75 = np.percentile(x, [25, 50, 75], method=IQR_METHOD)
    return float(q50), float(q75 - q25)


def table6(records: Sequence[ScanRecord]) -> dict:
    """Table 6: median (IQR) of reference and predicted scores with ICC(A,1).

    Percentiles use rank (n + 1)p as SPSS does (:data:`IQR_METHOD`).

    Args:
        records: the scans of one split.

    Returns:
        ``{key: {metric: {...}}}`` for key in LM, LAD, CX, RCA, total and metric in
        agatston, volume_mm3, mass_mg, each with ``ref_median``, ``ref_iqr``,
        ``pred_median``, ``pred_iqr``, ``icc``, ``ci_low``, ``ci_high``, ``f_value``,
        ``p_value``, ``n`` and ``reason``.
    """
    out: dict = {}
    for key in SCORE_KEYS:
        out[key] = {}
        for metric in METRICS:
            ref, pred = score_pairs(records, key, metric)
            icc = icc_a1(ref, pred)
            rm, ri = _median_iqr(ref)
            pm, pi = _median_iqr(pred)
            out[key][metric] = {
                "ref_median": rm,
                "ref_iqr": ri,
                "pred_median": pm,
                "pred_iqr": pi,
                "icc": icc.icc,
                "ci_low": icc.ci_low,
                "ci_high": icc.ci_high,
                "f_value": icc.f_value,
                "p_value": icc.p_value,
                "n": icc.n,
                "reason": icc.reason,
            }
    return out


def table7(records: Sequence[ScanRecord]) -> dict:
    """Table 7: risk-category confusion and Cohen's kappa.

    Args:
        records: the scans of one split.

    Returns:
        dict: ``labels`` C1-C5, ``matrix`` 5 × 5 (rows predicted, columns reference),
        ``accuracy``, ``kappa`` and ``kappa_linear`` (each a
        :class:`~cac_lightning.evaluation.stats.KappaResult` as a dict).
    """
    index = {c: i for i, c in enumerate(RISK_LABELS)}
    m = np.zeros((len(RISK_LABELS),) * 2, dtype=np.int64)
    for rec in records:
        if rec.ref_risk not in index or rec.pred_risk not in index:
            raise InputError(
                f"{rec.scan_id}: risk categories must be C1-C5, got "
                f"{rec.ref_risk!r} and {rec.pred_risk!r}"
            )
        m[index[rec.pred_risk], index[rec.ref_risk]] += 1
    n = int(m.sum())
    return {
        "labels": list(RISK_LABELS),
        "rows": "predicted",
        "columns": "reference",
        "matrix": m.tolist(),
        "accuracy": _ratio(float(np.trace(m)), n),
        "kappa": kappa_from_table(m).to_dict(),
        "kappa_linear": kappa_from_table(m, weights="linear").to_dict(),
    }


def bland_altman_table(records: Sequence[ScanRecord], key: str = "total") -> dict:
    """Fig. 5: Bland-Altman bias and limits of agreement for each score.

    Args:
        records: the scans of one split.
        key: which score (default ``"total"``; or a vessel name).

    Returns:
        ``{metric: BlandAltman dict}`` for agatston, volume_mm3, mass_mg.
    """
    return {m: bland_altman(*score_pairs(records, key, m)).to_dict() for m in METRICS}


def zero_calcium_summary(records: Sequence[ScanRecord]) -> dict:
    """Scans whose reference total Agatston is 0 and how many the model flags.

    The paper's Testing Data Set 2 check (section 3.5: 78 of 744 flagged).

    Args:
        records: the scans of one split.

    Returns:
        dict: ``n_scans`` (reference zero), ``n_flagged`` (predicted total > 0),
        ``flagged_rate`` and ``flagged`` (their scan ids, in record order).
    """
    zero = [r for r in records if _score(r, "ref", "total", "agatston") == 0]
    flagged = [r.scan_id for r in zero if _score(r, "pred", "total", "agatston") > 0]
    return {
        "n_scans": len(zero),
        "n_flagged": len(flagged),
        "flagged_rate": _ratio(len(flagged), len(zero)),
        "flagged": flagged,
    }


def build_tables(records: Sequence[ScanRecord]) -> dict:
    """All tables for one group of scans (one split).

    Args:
        records: the scans.

    Returns:
        dict with ``n_scans``, ``table3`` .. ``table7``, ``bland_altman`` and
        ``zero_calcium``.
    """
    records = list(records)
    return {
        "n_scans": len(records),
        "table3": table3(records),
        "table4": table4(records),
        "table5": table5(records),
        "table6": table6(records),
        "table7": table7(records),
        "bland_altman": bland_altman_table(records),
        "zero_calcium": zero_calcium_summary(records),
    }


def tables_by_split(records: Sequence[ScanRecord]) -> dict[str, dict]:
    """:func:`build_tables` for each split, in order of first appearance."""
    groups: dict[str, list[ScanRecord]] = {}
    for r in records:
        groups.setdefault(r.split, []).append(r)
    return {split: build_tables(rs) for split, rs in groups.items()}


def flat_metrics(tables: dict, prefix: str = "test/") -> dict[str, float]:
    """Flatten one split's tables into scalar metrics for loggers.

    Keys (after ``prefix``): ``agatston_mae``, ``precision``, ``recall``, ``dice``,
    ``iou``, ``sensitivity``, ``specificity``, ``icc_<agatston|volume|mass>_<LM|LAD|CX|RCA|
    total>``, ``kappa``, ``kappa_linear``, ``risk_accuracy``, ``detection_rate_<vessel>``,
    ``not_detected_rate``, ``not_cac_rate``, ``ba_<agatston|volume|mass>_<mean_diff|
    loa_low|loa_high>``, ``zero_cac_scans``, ``zero_cac_flagged``, ``zero_cac_flagged_rate``.
    Undefined values are nan.

    Args:
        tables: the output of :func:`build_tables`.
        prefix: prepended to every key (default ``"test/"``).

    Returns:
        ``{name: float}``.
    """
    out: dict[str, float] = {}
    t3, t4, t5, t6, t7 = (tables[f"table{i}"] for i in range(3, 8))
    for k in ("agatston_mae", "precision", "recall", "dice", "iou"):
        out[k] = t3[k]
    out["sensitivity"], out["specificity"] = t4["sensitivity"], t4["specificity"]
    for key in SCORE_KEYS:
        for metric in METRICS:
            out[f"icc_{METRIC_SHORT[metric]}_{key}"] = t6[key][metric]["icc"]
    out["kappa"] = t7["kappa"]["kappa"]
    out["kappa_linear"] = t7["kappa_linear"]["kappa"]
    out["risk_accuracy"] = t7["accuracy"]
    for v in VESSELS:
        out[f"detection_rate_{v}"] = t5["detection_rate"][v]
    out["not_detected_rate"], out["not_cac_rate"] = t5["not_detected_rate"], t5["not_cac_rate"]
    for metric, ba in tables["bland_altman"].items():
        for k in ("mean_diff", "loa_low", "loa_high"):
            out[f"ba_{METRIC_SHORT[metric]}_{k}"] = ba[k]
    z = tables["zero_calcium"]
    out["zero_cac_scans"] = z["n_scans"]
    out["zero_cac_flagged"] = z["n_flagged"]
    out["zero_cac_flagged_rate"] = z["flagged_rate"]
    return {f"{prefix}{k}": (NAN if v is None else float(v)) for k, v in out.items()}
