"""Agreement statistics: ICC(A,1), Cohen's kappa, Bland-Altman, confusion matrices.

These are the statistics of Hong et al. 2022 (section 2.5): the intraclass
correlation between reference and predicted scores (Table 6), Cohen's kappa on
the five risk categories (Table 7) and Bland-Altman limits (Fig. 5). Pure
numpy/scipy. Degenerate inputs give documented ``nan`` results with a
``reason``, never an exception; malformed inputs raise
:class:`~cac_lightning.errors.InputError`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from cac_lightning.errors import InputError

__all__ = [
    "BlandAltman",
    "ICCResult",
    "KappaResult",
    "bland_altman",
    "cohen_kappa",
    "confusion_matrix",
    "icc_a1",
    "icc_a1_ratings",
    "kappa_from_table",
    "kappa_weights",
]

NAN = float("nan")
Z_FACTOR = 1.96
"""Bland-Altman limits of agreement: mean difference ± 1.96 SD (Bland & Altman 1986,
Lancet 327:307)."""


@dataclass(frozen=True)
class ICCResult:
    """ICC(A,1) with its F test and confidence interval.

    Attributes:
        icc: the coefficient (nan when undefined, see ``reason``).
        ci_low, ci_high: the (1 - alpha) confidence interval (McGraw & Wong 1996).
        f_value: F = MSR / MSE (H0: ICC = 0).
        df1, df2: F-test degrees of freedom, n - 1 and (n - 1)(k - 1).
        p_value: one-sided P(F > f_value) under H0.
        n: number of subjects (rows).
        reason: why a value is nan or forced ("" when the normal formulas applied).
    """

    icc: float
    ci_low: float
    ci_high: float
    f_value: float
    df1: int
    df2: int
    p_value: float
    n: int
    reason: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class KappaResult:
    """Cohen's kappa with its asymptotic standard errors and confidence interval.

    Attributes:
        kappa: the coefficient (nan when undefined, see ``reason``).
        se: asymptotic standard error, not assuming kappa = 0 (Fleiss, Cohen & Everitt 1969).
        ci_low, ci_high: kappa ± z(1 - alpha/2) · se.
        n: number of rated items.
        se0: standard error under H0: kappa = 0 (Fleiss, Cohen & Everitt 1969).
        z: kappa / se0.
        p_value: two-sided p-value of z.
        weights: "none", "linear" or "quadratic".
        reason: why a value is nan ("" otherwise).
    """

    kappa: float
    se: float
    ci_low: float
    ci_high: float
    n: int
    se0: float = NAN
    z: float = NAN
    p_value: float = NAN
    weights: str = "none"
    reason: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class BlandAltman:
    """Bland-Altman summary of ``pred - ref``.

    Attributes:
        mean_diff: mean of pred - ref (the bias).
        sd_diff: sample standard deviation (ddof=1) of the differences.
        loa_low, loa_high: limits of agreement, mean_diff ∓ 1.96 sd_diff.
        n: number of pairs.
    """

    mean_diff: float
    sd_diff: float
    loa_low: float
    loa_high: float
    n: int

    def to_dict(self) -> dict:
        return asdict(self)


def _pairs(ref, pred) -> tuple[np.ndarray, np.ndarray]:
    r = np.asarray(ref, dtype=np.float64).ravel()
    p = np.asarray(pred, dtype=np.float64).ravel()
    if r.shape != p.shape:
        raise InputError(f"ref and pred must have the same length, got {r.size} and {p.size}")
    if not (np.isfinite(r).all() and np.isfinite(p).all()):
        raise InputError("ref and pred must be finite numbers (found nan or inf)")
    return r, p


def icc_a1(
    ref: Sequence[float] | np.ndarray, pred: Sequence[float] | np.ndarray, alpha: float = 0.05
) -> ICCResult:
    """ICC(A,1) between two raters: the reference and the prediction.

    Two-way random effects, absolute agreement, single measure (McGraw & Wong 1996,
    Psychol Methods 1:30, case 2A; identical to Shrout & Fleiss 1979 ICC(2,1)).

    Args:
        ref: (n,) reference scores.
        pred: (n,) predicted scores, paired with ``ref``.
        alpha: 1 - confidence level of the interval (default 0.05 -> 95 %).

    Returns:
        :class:`ICCResult`; see :func:`icc_a1_ratings` for degenerate inputs.

    Raises:
        InputError: lengths differ or a value is not finite.
    """
    r, p = _pairs(ref, pred)
    return icc_a1_ratings(np.column_stack([r, p]), alpha=alpha)


def icc_a1_ratings(ratings: np.ndarray, alpha: float = 0.05) -> ICCResult:
    """ICC(A,1) of an (n subjects, k raters) table.

    With the two-way ANOVA mean squares MSR (rows), MSC (columns) and MSE (residual)::

        ICC(A,1) = (MSR - MSE) / (MSR + (k - 1) MSE + k (MSC - MSE) / n)

    The p-value is the F test of H0: ICC = 0 with F = MSR / MSE on (n - 1, (n - 1)(k - 1))
    degrees of freedom; the confidence interval is McGraw & Wong (1996) Table 7, case 2A
    (Satterthwaite degrees of freedom), as in SPSS and R ``psych::ICC``.

    Degenerate inputs, never an exception:

    - n < 2 or k < 2: all nan, reason "fewer than 2 subjects" / "fewer than 2 raters".
    - every rating identical (no variance): icc nan, reason "no variance".
    - every row constant but rows differ (perfect agreement): icc 1.0, CI (1, 1),
      F inf, p 0.
    - a zero denominator (no variance between rows or columns, only residual: two subjects
      whose ratings the raters swap): all nan, reason "undefined: ...".

    Args:
        ratings: (n, k) array of finite numbers.
        alpha: 1 - confidence level (default 0.05).

    Returns:
        :class:`ICCResult`.

    Raises:
        InputError: not a 2D array or a value is not finite.
    """
    from scipy import stats

    x = np.asarray(ratings, dtype=np.float64)
    if x.ndim != 2:
        raise InputError(f"ratings must be a 2D (subjects, raters) array, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise InputError("ratings must be finite numbers (found nan or inf)")
    n, k = x.shape
    df1, df2 = max(n - 1, 0), max((n - 1) * (k - 1), 0)
    if n < 2 or k < 2:
        why = "fewer than 2 subjects" if n < 2 else "fewer than 2 raters"
        return ICCResult(NAN, NAN, NAN, NAN, df1, df2, NAN, n, why)
    grand = x.mean()
    ss_total = float(((x - grand) ** 2).sum())
    ss_rows = float(k * ((x.mean(axis=1) - grand) ** 2).sum())
    ss_cols = float(n * ((x.mean(axis=0) - grand) ** 2).sum())
    ss_err = max(ss_total - ss_rows - ss_cols, 0.0)
    scale = max(float(np.abs(x).max()), 1.0) ** 2 * x.size
    tiny = 1e-12 * scale
    if ss_total <= tiny:
        return ICCResult(NAN, NAN, NAN, NAN, df1, df2, NAN, n, "no variance: all ratings equal")
    msr = ss_rows / df1
    msc = ss_cols / (k - 1)
    mse = ss_err / df2
    if ss_err <= tiny and ss_cols <= tiny:
        return ICCResult(1.0, 1.0, 1.0, math.inf, df1, df2, 0.0, n, "perfect agreement")
    denom = msr + (k - 1) * mse + k * (msc - mse) / n
    if abs(denom) <= tiny / max(df2, 1):  # e.g. two scans whose scores the raters swap
        why = "undefined: no variance between subjects or raters, only disagreement"
        return ICCResult(NAN, NAN, NAN, NAN, df1, df2, NAN, n, why)
    icc = (msr - mse) / denom
    with np.errstate(divide="ignore", invalid="ignore"):
        f_value = msr / mse if mse > 0 else math.inf
        p_value = float(stats.f.sf(f_value, df1, df2)) if mse > 0 else 0.0
        lo, hi = _icc_a1_ci(icc, msr, msc, mse, n, k, alpha)
    return ICCResult(float(icc), lo, hi, float(f_value), df1, df2, p_value, n)


def _icc_a1_ci(
    icc: float, msr: float, msc: float, mse: float, n: int, k: int, alpha: float
) -> tuple[float, float]:
    """McGraw & Wong (1996) confidence interval of ICC(A,1), case 2A."""
    from scipy import stats

    if icc >= 1.0:
        return 1.0, 1.0
    a = k * icc / (n * (1.0 - icc))
    b = 1.0 + k * icc * (n - 1) / (n * (1.0 - icc))
    num = (a * msc + b * mse) ** 2
    den = (a * msc) ** 2 / (k - 1) + (b * mse) ** 2 / ((n - 1) * (k - 1))
    v = num / den if den > 0 else NAN
    if not np.isfinite(v) or v <= 0:
        return NAN, NAN
    f_up = stats.f.isf(alpha / 2, n - 1, v)
    f_dn = stats.f.isf(alpha / 2, v, n - 1)
    c = k * msc + (k * n - k - n) * mse
    lo = n * (msr - f_up * mse) / (f_up * c + n * msr)
    hi = n * (f_dn * msr - mse) / (c + n * f_dn * msr)
    return float(lo), float(hi)


def confusion_matrix(ref: Sequence, pred: Sequence, labels: Sequence) -> np.ndarray:
    """Counts of (reference, predicted) label pairs.

    Args:
        ref: (n,) reference labels.
        pred: (n,) predicted labels.
        labels: the k label values, in table order.

    Returns:
        int64 (k, k) array; rows are reference labels, columns predicted labels.

    Raises:
        InputError: lengths differ or a value is not in ``labels``.
    """
    ref, pred, labels = list(ref), list(pred), list(labels)
    if len(ref) != len(pred):
        raise InputError(f"ref and pred must have the same length, got {len(ref)} and {len(pred)}")
    index = {lab: i for i, lab in enumerate(labels)}
    out = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for r, p in zip(ref, pred, strict=True):
        if r not in index or p not in index:
            bad = r if r not in index else p
            raise InputError(f"label {bad!r} is not one of {labels}")
        out[index[r], index[p]] += 1
    return out


def kappa_weights(k: int, weights: str | None = None) -> np.ndarray:
    """Agreement weights w_ij (1 on the diagonal) for k ordered categories.

    Args:
        k: number of categories.
        weights: None (identity: unweighted kappa), ``"linear"`` (1 - |i - j| / (k - 1)) or
            ``"quadratic"`` (1 - (i - j)² / (k - 1)²) (Cohen 1968, Psychol Bull 70:213).

    Returns:
        float64 (k, k) array.

    Raises:
        InputError: an unknown weighting.
    """
    i, j = np.indices((k, k))
    if weights in (None, "none", "unweighted"):
        return (i == j).astype(np.float64)
    if k < 2:
        return np.ones((k, k))
    if weights == "linear":
        return 1.0 - np.abs(i - j) / (k - 1)
    if weights == "quadratic":
        return 1.0 - (i - j) ** 2 / (k - 1) ** 2
    raise InputError(f"unknown kappa weights {weights!r}; use None, 'linear' or 'quadratic'")


def kappa_from_table(
    table: np.ndarray, weights: str | None = None, alpha: float = 0.05
) -> KappaResult:
    """Cohen's (weighted) kappa of a k × k contingency table of counts.

    With cell proportions p_ij, margins p_i. and p_.j and agreement weights w_ij,
    ``po = Σ w_ij p_ij``, ``pe = Σ w_ij p_i. p_.j`` and ``kappa = (po - pe) / (1 - pe)``.
    The standard errors are those of Fleiss, Cohen & Everitt (1969, Psychol Bull 72:323):
    ``se`` without assuming kappa = 0 (SAS "ASE", SPSS "Asymp. Std. Error") for the
    confidence interval and ``se0`` under H0 for the z test. Kappa is unchanged when
    the table is transposed.

    Degenerate inputs: no counts -> nan, reason "no observations"; pe == 1 (every
    rating in one category) -> nan, reason "chance agreement is 1".

    Args:
        table: (k, k) non-negative counts.
        weights: None, ``"linear"`` or ``"quadratic"`` (see :func:`kappa_weights`).
        alpha: 1 - confidence level (default 0.05).

    Returns:
        :class:`KappaResult`.

    Raises:
        InputError: not a square table of non-negative finite counts, or unknown weights.
    """
    from scipy import stats

    t = np.asarray(table, dtype=np.float64)
    if t.ndim != 2 or t.shape[0] != t.shape[1]:
        raise InputError(f"a kappa table must be square, got shape {t.shape}")
    if not np.isfinite(t).all() or (t < 0).any():
        raise InputError("a kappa table must hold non-negative finite counts")
    wname = "none" if weights in (None, "none", "unweighted") else str(weights)
    w = kappa_weights(t.shape[0], weights)
    n = float(t.sum())
    if n <= 0:
        return KappaResult(NAN, NAN, NAN, NAN, 0, weights=wname, reason="no observations")
    p = t / n
    row, col = p.sum(axis=1), p.sum(axis=0)
    po = float((w * p).sum())
    pe = float((w * np.outer(row, col)).sum())
    if pe >= 1.0 - 1e-12:
        return KappaResult(
            NAN,
            NAN,
            NAN,
            NAN,
            int(round(n)),
            weights=wname,
            reason="chance agreement is 1: every rating in one category",
        )
    kappa = (po - pe) / (1.0 - pe)
    w_row = w @ col  # w̄_i. = Σ_j p_.j w_ij
    w_col = row @ w  # w̄_.j = Σ_i p_i. w_ij
    wsum = w_row[:, None] + w_col[None, :]
    # Fleiss, Cohen & Everitt (1969), Eq. 13: variance without assuming kappa = 0.
    var = ((p * (w * (1 - pe) - wsum * (1 - po)) ** 2).sum() - (po * pe - 2 * pe + po) ** 2) / (
        n * (1 - pe) ** 4
    )
    # Fleiss, Cohen & Everitt (1969), Eq. 14: variance under H0 (kappa = 0).
    var0 = ((np.outer(row, col) * (w - wsum) ** 2).sum() - pe**2) / (n * (1 - pe) ** 2)
    se = math.sqrt(max(float(var), 0.0))
    se0 = math.sqrt(max(float(var0), 0.0))
    zq = float(stats.norm.isf(alpha / 2))
    if se0 > 0:
        z = kappa / se0
        pval = float(2 * stats.norm.sf(abs(z)))
    else:
        z, pval = NAN, NAN
    return KappaResult(
        float(kappa),
        se,
        float(kappa - zq * se),
        float(kappa + zq * se),
        int(round(n)),
        se0,
        float(z),
        pval,
        wname,
    )


def cohen_kappa(
    ref: Sequence, pred: Sequence, labels: Sequence, weights: str | None = None, alpha: float = 0.05
) -> KappaResult:
    """Cohen's kappa between reference and predicted categories.

    Args:
        ref: (n,) reference labels, e.g. risk categories ``"C1"`` .. ``"C5"``.
        pred: (n,) predicted labels.
        labels: the ordered category values (order matters for weighted kappa).
        weights: None (unweighted), ``"linear"`` or ``"quadratic"``.
        alpha: 1 - confidence level (default 0.05).

    Returns:
        :class:`KappaResult` (see :func:`kappa_from_table`).

    Raises:
        InputError: lengths differ, a label is unknown, or unknown weights.
    """
    return kappa_from_table(confusion_matrix(ref, pred, labels), weights=weights, alpha=alpha)


def bland_altman(
    ref: Sequence[float] | np.ndarray, pred: Sequence[float] | np.ndarray
) -> BlandAltman:
    """Bias and 95 % limits of agreement of ``pred - ref`` (Bland & Altman 1986).

    Args:
        ref: (n,) reference values.
        pred: (n,) predicted values.

    Returns:
        :class:`BlandAltman`; all nan for n = 0, and sd / limits nan for n = 1.

    Raises:
        InputError: lengths differ or a value is not finite.
    """
    r, p = _pairs(ref, pred)
    d = p - r
    n = int(d.size)
    if n == 0:
        return BlandAltman(NAN, NAN, NAN, NAN, 0)
    mean = float(d.mean())
    if n == 1:
        return BlandAltman(mean, NAN, NAN, NAN, 1)
    sd = float(d.std(ddof=1))
    return BlandAltman(mean, sd, mean - Z_FACTOR * sd, mean + Z_FACTOR * sd, n)
