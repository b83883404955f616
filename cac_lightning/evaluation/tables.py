"""The paper's Tables 3-7 and the flat metrics, built from per-scan records.

A :class:`~cac_lightning.evaluation.records.ScanRecord` holds everything the tables need
about one scan (:mod:`cac_lightning.evaluation.records` builds them); the ``table*``
functions turn a list of records into plain, JSON-ready dicts mirroring Hong et al. 2022:

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
from collections.abc import Iterable, Sequence

import numpy as np

from cac_lightning.errors import InputError
from cac_lightning.evaluation.records import NOT_CAC, NOT_DETECTED, ScanRecord
from cac_lightning.evaluation.stats import bland_altman, icc_a1, kappa_from_table
from cac_lightning.scoring.lesions import SCORE_METRICS
from cac_lightning.scoring.risk import RISK_CATEGORIES
from cac_lightning.vessels import NUM_CLASSES, VESSELS, VESSELS_AND_TOTAL

__all__ = [
    "METRICS",
    "bland_altman_table",
    "build_tables",
    "flat_metrics",
    "metrics_by_split",
    "score_pairs",
    "table3",
    "table4",
    "table5",
    "table6",
    "table7",
    "tables_by_split",
    "zero_calcium_summary",
]

log = logging.getLogger(__name__)

NAN = float("nan")
METRICS: tuple[str, ...] = SCORE_METRICS
METRIC_SHORT = {"agatston": "agatston", "volume_mm3": "volume", "mass_mg": "mass"}
IQR_METHOD = "weibull"
"""Percentiles at rank (n + 1)p, SPSS's default ("HAVERAGE"); the paper used SPSS 24."""


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

    ``agatston_mae`` is the mean over scans of |predicted - reference| total Agatston,
    ``agatston_mae_per_vessel`` the same per vessel.
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
        "agatston_mae_per_vessel": {},
    }
    for v in VESSELS:
        vr, vp = score_pairs(records, v, "agatston")
        out["agatston_mae_per_vessel"][v] = float(np.abs(vp - vr).mean()) if vr.size else NAN
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
    for key in VESSELS_AND_TOTAL:
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
    index = {c: i for i, c in enumerate(RISK_CATEGORIES)}
    m = np.zeros((len(RISK_CATEGORIES),) * 2, dtype=np.int64)
    for rec in records:
        if rec.ref_risk not in index or rec.pred_risk not in index:
            raise InputError(
                f"{rec.scan_id}: risk categories must be C1-C5, got "
                f"{rec.ref_risk!r} and {rec.pred_risk!r}"
            )
        m[index[rec.pred_risk], index[rec.ref_risk]] += 1
    n = int(m.sum())
    return {
        "labels": list(RISK_CATEGORIES),
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

    Keys (after ``prefix``): ``n_scans``, ``agatston_mae``, ``agatston_mae_<vessel>``,
    ``precision``, ``recall``, ``dice``, ``iou``, ``sensitivity``, ``specificity``,
    ``icc_<agatston|volume|mass>_<LM|LAD|CX|RCA|total>``, ``kappa``, ``kappa_linear``,
    ``risk_accuracy``, ``detection_rate_<vessel>``, ``not_detected_rate``, ``not_cac_rate``,
    ``ba_<agatston|volume|mass>_<mean_diff|loa_low|loa_high>``, ``zero_cac_scans``,
    ``zero_cac_flagged``, ``zero_cac_flagged_rate``.
    Undefined values are nan.

    Args:
        tables: the output of :func:`build_tables`.
        prefix: prepended to every key (default ``"test/"``).

    Returns:
        ``{name: float}``.
    """
    out: dict[str, float] = {"n_scans": tables["n_scans"]}
    t3, t4, t5, t6, t7 = (tables[f"table{i}"] for i in range(3, 8))
    for k in ("agatston_mae", "precision", "recall", "dice", "iou"):
        out[k] = t3[k]
    for v in VESSELS:
        out[f"agatston_mae_{v}"] = t3["agatston_mae_per_vessel"][v]
    out["sensitivity"], out["specificity"] = t4["sensitivity"], t4["specificity"]
    for key in VESSELS_AND_TOTAL:
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


def metrics_by_split(records: Sequence[ScanRecord]) -> dict[str, float]:
    """:func:`flat_metrics` of every split, keys ``<split>/<name>``: the one metric path of
    the validation callback, cac-train's test and ``cac-eval``."""
    out: dict[str, float] = {}
    for split, tables in tables_by_split(records).items():
        out.update(flat_metrics(tables, prefix=f"{split}/"))
    return out
