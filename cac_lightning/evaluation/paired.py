"""Paired architecture comparison with a hierarchical bootstrap (``cac-compare``'s arms).

For a metric, the paired difference ``B - A`` (an arm minus the reference arm) is the mean over
seeds of the per-seed difference on the same test scans (paired by scan id). Its 95 % interval
is a percentile bootstrap that resamples seeds (with replacement) and, within each drawn seed,
the test scans (with replacement, the same scans for both networks): both sources of variation,
training seed and test sample, are in the interval. The two-sided p-value is read from the
same resamples (:func:`bootstrap_p`); with several arms against one reference,
:func:`holm` adjusts the p-values of one metric for the number of arms.

Scan-level metrics (Agatston MAE, ICC, risk kappa, zero-calcium flagged rate) are
recomputed on every resample from the per-scan Agatston scores of ``metrics.json``; the
metric definitions are those of the one metric path
(:func:`cac_lightning.evaluation.tables.metrics_by_split`), which a test checks the shortcuts
against, and any other Agatston-based key goes through it directly. Voxel-level metrics
(Dice, ...) have no per-scan scores there: their interval resamples seeds only, and their
p-value is at least ``2 ** (1 - n)`` for ``n`` seeds (:func:`seed_floor`): a bootstrap of a
handful of numbers that all share a sign puts every resample on that side, which says nothing
with two seeds.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from cac_lightning.evaluation.tables import metrics_by_split
from cac_lightning.vessels import VESSELS_AND_TOTAL

__all__ = [
    "PairedDifference",
    "agatston_records",
    "bootstrap_p",
    "bootstrap_paired",
    "holm",
    "records_to_arrays",
    "seed_floor",
    "seeds_needed",
]


def agatston_records(split: str, ref: np.ndarray, pred: np.ndarray) -> list:
    """Scan records holding only Agatston scores ((n, 5) arrays, columns
    :data:`~cac_lightning.vessels.VESSELS_AND_TOTAL`), for
    :func:`~cac_lightning.evaluation.tables.metrics_by_split` (other scores are NaN)."""
    from cac_lightning.evaluation.records import ScanRecord
    from cac_lightning.scoring.risk import risk_category

    nan = math.nan

    def scores(row: np.ndarray) -> dict:
        return {
            k: {"agatston": float(a), "volume_mm3": nan, "mass_mg": nan}
            for k, a in zip(VESSELS_AND_TOTAL, row, strict=True)
        }

    return [
        ScanRecord(
            scan_id=f"s{i}",
            split=split,
            ref=scores(r),
            pred=scores(p),
            ref_risk=risk_category(float(r[-1])),
            pred_risk=risk_category(float(p[-1])),
        )
        for i, (r, p) in enumerate(zip(ref, pred, strict=True))
    ]


@dataclass(frozen=True)
class PairedDifference:
    """``B - A`` for one metric.

    Attributes:
        diff: mean over seeds of the per-seed difference on all scans.
        lo / hi: 95 % percentile bootstrap interval.
        n_seeds: seeds with both networks.
        sd_seed: standard deviation of the per-seed differences (NaN with one seed).
        level: ``"scans+seeds"`` or ``"seeds"`` (what was resampled).
        p: two-sided bootstrap p-value of "no difference" (:func:`bootstrap_p`; NaN when
            there is no interval).
    """

    diff: float
    lo: float
    hi: float
    n_seeds: int
    sd_seed: float
    level: str
    p: float = math.nan

    @property
    def distinguishable(self) -> bool:
        """True when the interval excludes 0."""
        return math.isfinite(self.lo) and math.isfinite(self.hi) and (self.lo > 0 or self.hi < 0)


def records_to_arrays(records: Sequence[Mapping]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per-scan ``{"scan_id", "ref": {vessel: a}, "pred": {...}}`` -> id -> (ref, pred) (5,)."""
    out = {}
    for r in records:
        ref = np.array([float(r["ref"].get(k, 0.0)) for k in VESSELS_AND_TOTAL])
        pred = np.array([float(r["pred"].get(k, 0.0)) for k in VESSELS_AND_TOTAL])
        out[str(r["scan_id"])] = (ref, pred)
    return out


def _scan_metric(split: str, key: str) -> Callable[[np.ndarray, np.ndarray], float]:
    """``f(ref (n, 5), pred (n, 5)) -> value`` of ``key``.

    The headline metrics are computed directly with the statistics the tables use (MAE of the
    totals, ICC(A,1) of the totals, Cohen's kappa and accuracy of the risk categories, the
    zero-calcium flagged rate), about 10x faster than building every table; any other key goes
    through :func:`~cac_lightning.evaluation.tables.metrics_by_split` on records of the scores.
    """
    from cac_lightning.evaluation.stats import cohen_kappa, icc_a1
    from cac_lightning.scoring.risk import RISK_CATEGORIES as RISK
    from cac_lightning.scoring.risk import risk_category

    name = key.split("/", 1)[1]

    def cats(a: np.ndarray) -> list[str]:
        return [risk_category(float(v)) for v in a]

    def f(ref: np.ndarray, pred: np.ndarray) -> float:
        r, p = ref[:, -1], pred[:, -1]
        if name == "agatston_mae":
            return float(np.abs(p - r).mean())
        if name == "icc_agatston_total":
            return float(icc_a1(r, p).icc)
        if name == "risk_accuracy":
            return float(np.mean([a == b for a, b in zip(cats(r), cats(p), strict=True)]))
        if name in ("kappa", "kappa_linear"):
            weights = "linear" if name == "kappa_linear" else None
            return float(cohen_kappa(cats(r), cats(p), labels=RISK, weights=weights).kappa)
        if name == "zero_cac_flagged_rate":
            zero = r == 0
            return float(np.mean(p[zero] > 0)) if zero.any() else math.nan
        value = metrics_by_split(agatston_records(split, ref, pred)).get(key, math.nan)
        return float(value) if value is not None else math.nan

    return f


def _enough(values: np.ndarray) -> np.ndarray | None:
    """The finite resamples, or None when too few are finite for an interval."""
    v = values[np.isfinite(values)]
    return v if v.size >= max(20, values.size // 2) else None


def _percentiles(values: np.ndarray) -> tuple[float, float]:
    v = _enough(values)
    if v is None:
        return math.nan, math.nan
    return float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))


def bootstrap_p(values: np.ndarray) -> float:
    """Two-sided bootstrap p-value of "the difference is 0" from resampled differences.

    ``min(1, 2 * (min(#{d <= 0}, #{d >= 0}) + 1) / (n + 1))`` over the ``n`` finite
    resamples: twice the smaller tail, in the Monte Carlo ``(count + 1) / (n + 1)`` form so it
    is never 0. Resamples that are all exactly 0 give 1. NaN when too few resamples are finite
    for an interval.
    """
    v = _enough(np.asarray(values, dtype=float))
    if v is None:
        return math.nan
    tail = min(int((v <= 0).sum()), int((v >= 0).sum())) + 1
    return float(min(1.0, 2.0 * tail / (v.size + 1)))


def seed_floor(n_seeds: int) -> float:
    """``2 ** (1 - n)``: the smallest two-sided p-value that ``n`` paired differences can give
    under a sign-flip test (all ``2 ** n`` sign patterns equally likely under no difference);
    the floor of a seeds-only bootstrap p-value (0.5 for two seeds, 1/32 for six)."""
    return 2.0 ** (1 - n_seeds)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment of p-values for multiple comparisons (Holm 1979).

    Sorted ascending, the i-th of m p-values (i from 0) becomes ``(m - i) * p``, made
    non-decreasing along the order and capped at 1. NaN entries are left out of ``m`` and
    stay NaN.

    Example:
        ``holm([0.01, 0.04, 0.03])`` is ``[0.03, 0.06, 0.06]``.
    """
    p = np.asarray(p_values, dtype=float)
    out = [math.nan] * p.size
    finite = [i for i in np.argsort(p, kind="stable") if math.isfinite(p[i])]
    running = 0.0
    for rank, i in enumerate(finite):
        running = max(running, min(1.0, (len(finite) - rank) * float(p[i])))
        out[i] = running
    return out


def bootstrap_paired(
    a: Mapping[int, object],
    b: Mapping[int, object],
    key: str,
    n_boot: int = 1000,
    seed: int = 0,
) -> PairedDifference:
    """Paired difference ``b - a`` of metric ``key`` with a hierarchical bootstrap interval.

    Args:
        a / b: seed -> per-scan records of the metric's split (a list of dicts as in
            ``metrics.json["scans"][split]``) for scan-level metrics, or seed -> a number
            (the run's metric) for metrics without per-scan records; records only where both
            have them for every common seed, else the numbers (a list gives NaN there).
        key: metric name, e.g. ``test/agatston_mae`` or ``test_zero/zero_cac_flagged_rate``.
        n_boot: bootstrap resamples.
        seed: seed of the resampling.

    Returns:
        :class:`PairedDifference` (NaN entries when no seed has both networks).
    """
    seeds = sorted(set(a) & set(b))
    if not seeds:
        return PairedDifference(math.nan, math.nan, math.nan, 0, math.nan, "seeds")
    rng = np.random.default_rng(seed)
    scan_level = all(isinstance(x[s], (list, tuple)) for s in seeds for x in (a, b))
    if not scan_level:
        d = np.array([_num(b[s]) - _num(a[s]) for s in seeds])
        d = d[np.isfinite(d)]
        if d.size == 0:
            return PairedDifference(math.nan, math.nan, math.nan, 0, math.nan, "seeds")
        if d.size < 2:  # one seed: nothing to resample
            return PairedDifference(float(d.mean()), math.nan, math.nan, 1, math.nan, "seeds")
        reps = d[rng.integers(0, d.size, size=(n_boot, d.size))].mean(axis=1)
        lo, hi = _percentiles(reps)
        sd = float(d.std(ddof=1))
        p = max(bootstrap_p(reps), seed_floor(d.size))
        return PairedDifference(float(d.mean()), lo, hi, int(d.size), sd, "seeds", p)

    split = key.split("/")[0]
    metric = _scan_metric(split, key)
    paired = []  # per seed: (ref_a, pred_a, ref_b, pred_b) over the common scans
    for s in seeds:
        ra, rb = records_to_arrays(a[s]), records_to_arrays(b[s])
        ids = sorted(set(ra) & set(rb))
        if not ids:
            continue
        paired.append(
            (
                np.stack([ra[i][0] for i in ids]),
                np.stack([ra[i][1] for i in ids]),
                np.stack([rb[i][0] for i in ids]),
                np.stack([rb[i][1] for i in ids]),
            )
        )
    if not paired:
        return PairedDifference(math.nan, math.nan, math.nan, 0, math.nan, "scans+seeds")

    def diff(p, idx=None) -> float:
        ref_a, pred_a, ref_b, pred_b = p if idx is None else (x[idx] for x in p)
        return metric(ref_b, pred_b) - metric(ref_a, pred_a)

    per_seed = np.array([diff(p) for p in paired])
    reps = np.empty(n_boot)
    for i in range(n_boot):
        chosen = rng.integers(0, len(paired), size=len(paired))
        vals = []
        for c in chosen:
            n = len(paired[c][0])
            vals.append(diff(paired[c], rng.integers(0, n, size=n)))
        reps[i] = np.mean(vals)
    lo, hi = _percentiles(reps)
    finite = per_seed[np.isfinite(per_seed)]
    sd = float(finite.std(ddof=1)) if finite.size > 1 else math.nan
    mean = float(finite.mean()) if finite.size else math.nan
    return PairedDifference(mean, lo, hi, len(paired), sd, "scans+seeds", bootstrap_p(reps))


def _num(value: object) -> float:
    try:
        out = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan
    return out


def seeds_needed(diff: float, sd_seed: float, z: float = 1.96) -> float:
    """Seeds for a ``z`` interval of the mean difference to exclude 0 at this ``diff`` and ``sd``.

    ``ceil((z * sd / |diff|)^2)``, at least 2; NaN when either is unknown, inf when diff is 0.
    Seed-to-seed variation only (the test-scan resampling widens the interval further).
    """
    if not (math.isfinite(diff) and math.isfinite(sd_seed)):
        return math.nan
    if diff == 0:
        return math.inf
    return float(max(2, math.ceil((z * sd_seed / abs(diff)) ** 2)))
