"""ICC(A,1), Cohen's kappa and Bland-Altman against published values and hand computation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from cac_lightning.errors import InputError
from cac_lightning.evaluation.stats import (
    bland_altman,
    cohen_kappa,
    confusion_matrix,
    icc_a1,
    icc_a1_ratings,
    kappa_from_table,
    kappa_weights,
)

# Shrout & Fleiss (1979), Psychol Bull 86:420, Table 2: 6 targets x 4 judges.
SHROUT_FLEISS = np.array(
    [[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]],
    dtype=float,
)
# pingouin's "icc" data set (8 wines x 4 judges A-D), documented ICC2 row:
# ICC 0.728, df1 7, df2 21, p 0.000005, CI95% [0.43, 0.93].
WINES = np.array(
    [
        [1, 2, 0, 1],
        [1, 3, 3, 2],
        [3, 8, 1, 4],
        [6, 4, 3, 3],
        [6, 5, 5, 6],
        [7, 5, 6, 2],
        [8, 7, 7, 9],
        [9, 9, 9, 8],
    ],
    dtype=float,
)
# Hong et al. 2022, Table 7 (rows predicted C1-C5, columns standard C1-C5).
TABLE7_TEST1 = [
    [10, 1, 1, 0, 0],
    [0, 20, 1, 0, 0],
    [0, 3, 71, 1, 0],
    [0, 0, 2, 46, 2],
    [0, 0, 0, 0, 57],
]
TABLE7_TRAIN = [
    [29, 2, 1, 0, 0],
    [3, 70, 2, 0, 0],
    [2, 2, 214, 3, 0],
    [0, 0, 4, 214, 2],
    [0, 0, 0, 3, 203],
]
# SAS PROC FREQ agreement example, as checked in statsmodels' test_inter_rater.py.
SAS_TABLE = [[0, 4, 1], [0, 8, 0], [0, 1, 5]]


def test_icc_shrout_fleiss_table2():
    res = icc_a1_ratings(SHROUT_FLEISS)
    # Shrout & Fleiss 1979: ICC(2,1) = 0.29; R psych::ICC: F 11.03 on (5, 15), p 0.00013,
    # 95 % CI 0.02 - 0.76.
    assert round(res.icc, 2) == 0.29
    assert round(res.f_value, 2) == 11.03
    assert (res.df1, res.df2, res.n) == (5, 15, 6)
    assert res.p_value == pytest.approx(0.000135, abs=5e-6)
    assert round(res.ci_low, 2) == 0.02 and round(res.ci_high, 2) == 0.76
    # Shrout & Fleiss Table 3 mean squares BMS 11.24, JMS 32.49, EMS 1.02 give 0.29 too.
    bms, jms, ems, k, n = 11.24, 32.49, 1.02, 4, 6
    assert round((bms - ems) / (bms + (k - 1) * ems + k * (jms - ems) / n), 2) == 0.29


def test_icc_pingouin_wines():
    res = icc_a1_ratings(WINES)
    assert round(res.icc, 3) == 0.728
    # Exact ANOVA (fractions): MSR 26.888393, MSE 2.28125 -> F 11.7867 (docs print 11.79).
    assert res.f_value == pytest.approx(26.888392857142858 / 2.28125)
    assert round(res.f_value, 2) == 11.79
    assert (res.df1, res.df2) == (7, 21)
    assert 1e-6 < res.p_value < 1e-5
    assert (round(res.ci_low, 2), round(res.ci_high, 2)) == (0.43, 0.93)


def test_icc_two_raters_against_hand_anova():
    ref = [9, 6, 8, 7, 10, 6]  # Shrout & Fleiss judges 1 and 2
    pred = [2, 1, 4, 1, 5, 2]
    n, k = 6, 2
    grand = (sum(ref) + sum(pred)) / (n * k)
    ss_rows = sum(k * ((r + p) / 2 - grand) ** 2 for r, p in zip(ref, pred, strict=True))
    ss_cols = n * ((sum(ref) / n - grand) ** 2 + (sum(pred) / n - grand) ** 2)
    ss_tot = sum((x - grand) ** 2 for x in ref + pred)
    msr, msc = ss_rows / (n - 1), ss_cols / (k - 1)
    mse = (ss_tot - ss_rows - ss_cols) / ((n - 1) * (k - 1))
    expected = (msr - mse) / (msr + (k - 1) * mse + k * (msc - mse) / n)
    assert expected == pytest.approx(24 / 191)  # exact fractions: MSR 281/60, MSE 41/60
    res = icc_a1(ref, pred)
    assert res.icc == pytest.approx(expected, rel=1e-12)
    assert res.f_value == pytest.approx(281 / 41)
    assert res.p_value == pytest.approx(stats.f.sf(281 / 41, 5, 5))
    assert res.ci_low < res.icc < res.ci_high


def test_icc_rater_order_does_not_matter():
    a = icc_a1([1.0, 5, 2, 8, 3], [2.0, 4, 2, 9, 1])
    b = icc_a1([2.0, 4, 2, 9, 1], [1.0, 5, 2, 8, 3])
    assert a.icc == pytest.approx(b.icc) and a.ci_low == pytest.approx(b.ci_low)


@pytest.mark.parametrize(
    ("ref", "pred", "reason"),
    [
        ([], [], "fewer than 2 subjects"),
        ([3.0], [3.0], "fewer than 2 subjects"),
        ([0, 0, 0], [0, 0, 0], "no variance"),
        # two scans whose scores the prediction swaps: once a ZeroDivisionError that stopped a
        # leave-one-out fine-tuning run in its validation callback
        ([0.0, 74.6], [74.6, 0.0], "undefined"),
    ],
)
def test_icc_degenerate_gives_nan(ref, pred, reason):
    res = icc_a1(ref, pred)
    assert math.isnan(res.icc) and math.isnan(res.p_value)
    assert reason in res.reason


def test_icc_identical_ratings_with_variance_is_one():
    res = icc_a1([0.0, 10, 250, 1000], [0.0, 10, 250, 1000])
    assert res.icc == 1.0 and (res.ci_low, res.ci_high) == (1.0, 1.0)
    assert res.p_value == 0.0 and math.isinf(res.f_value)


def test_icc_constant_offset_is_below_one():
    res = icc_a1([1.0, 2, 3, 4], [2.0, 3, 4, 5])
    # MSE = 0, MSR = 10/3, MSC = 2: ICC = (10/3) / (10/3 + 2 * 2 / 4) = 10/13.
    assert res.icc == pytest.approx(10 / 13)
    assert math.isinf(res.f_value) and res.p_value == 0.0


def test_icc_bad_input():
    with pytest.raises(InputError):
        icc_a1([1, 2, 3], [1, 2])
    with pytest.raises(InputError):
        icc_a1([1, 2, float("nan")], [1, 2, 3])


def test_kappa_paper_table7():
    test1 = kappa_from_table(TABLE7_TEST1)
    assert test1.n == 215
    assert round(test1.kappa, 3) == 0.931
    assert (round(test1.ci_low, 3), round(test1.ci_high, 3)) == (0.891, 0.971)
    assert test1.p_value < 0.001
    train = kappa_from_table(TABLE7_TRAIN)
    assert train.n == 754
    assert round(train.kappa, 3) == 0.957
    assert (round(train.ci_low, 3), round(train.ci_high, 3)) == (0.940, 0.974)
    # Transposing (standard rows, predicted columns) changes nothing.
    t = kappa_from_table(np.asarray(TABLE7_TEST1).T)
    assert t.kappa == pytest.approx(test1.kappa) and t.se == pytest.approx(test1.se)


def test_kappa_sas_example_unweighted_and_linear():
    res = kappa_from_table(SAS_TABLE)
    got = [res.kappa, res.se, res.ci_low, res.ci_high, res.se0, res.z, res.p_value]
    assert got == pytest.approx([0.4842, 0.1380, 0.2137, 0.7547, 0.1484, 3.2626, 0.0011], abs=6e-5)
    res = kappa_from_table(SAS_TABLE, weights="linear")
    got = [res.kappa, res.se, res.ci_low, res.ci_high, res.se0, res.z, res.p_value]
    assert got == pytest.approx([0.4701, 0.1457, 0.1845, 0.7558, 0.1426, 3.2971, 0.0010], abs=6e-5)
    assert res.weights == "linear"


def test_kappa_r_irr_anxiety():
    # irr::anxiety raters 2 and 3; irr::kappa2 values as checked by statsmodels.
    anxiety = np.array(
        "3 3 3 4 5 5 2 3 5 2 2 6 1 5 2 2 1 2 4 3 3 6 4 6 2 4 2 4 3 3 "
        "2 3 3 3 2 2 1 3 3 4 2 1 4 4 3 2 1 6 1 1 1 2 3 3 1 1 3 3 2 2".split(),
        dtype=int,
    ).reshape(20, 3, order="F")
    r2, r3 = anxiety[:, 1].tolist(), anxiety[:, 2].tolist()
    labels = sorted(set(r2) | set(r3))  # irr keeps only the levels that occur
    for weights, kappa, z in (
        (None, -0.006289308, -0.0604067),
        ("linear", 0.1459075, 1.282472),
        ("quadratic", 0.2520325, 1.437451),
    ):
        res = cohen_kappa(r2, r3, labels=labels, weights=weights)
        assert res.kappa == pytest.approx(kappa, abs=1e-6)
        assert res.z == pytest.approx(z, abs=1e-5)


def test_kappa_hand_2x2():
    # po = 35/50 = 0.7, pe = (25*30 + 25*20) / 50**2 = 0.5 -> kappa = 0.4.
    ref = ["y"] * 25 + ["n"] * 25
    pred = ["y"] * 20 + ["n"] * 5 + ["y"] * 10 + ["n"] * 15
    res = cohen_kappa(ref, pred, labels=["y", "n"])
    assert res.kappa == pytest.approx(0.4) and res.n == 50
    assert res.ci_low == pytest.approx(0.4 - 1.959964 * res.se, abs=1e-6)


def test_kappa_weights_and_degenerate():
    assert kappa_weights(3, "linear").tolist() == [[1, 0.5, 0], [0.5, 1, 0.5], [0, 0.5, 1]]
    assert kappa_weights(3, "quadratic")[0].tolist() == [1, 0.75, 0]
    res = cohen_kappa(["C1"] * 4, ["C1"] * 4, labels=["C1", "C2"])
    assert math.isnan(res.kappa) and "chance agreement" in res.reason
    assert math.isnan(cohen_kappa([], [], labels=["C1"]).kappa)
    assert cohen_kappa(["a", "b"], ["a", "b"], labels=["a", "b"]).kappa == 1.0
    with pytest.raises(InputError):
        cohen_kappa(["C1"], ["C9"], labels=["C1", "C2"])
    with pytest.raises(InputError):
        kappa_from_table(SAS_TABLE, weights="cubic")


def test_confusion_matrix_rows_are_reference():
    m = confusion_matrix(["a", "a", "b"], ["b", "a", "b"], labels=["a", "b"])
    assert m.tolist() == [[1, 1], [0, 1]]


def test_bland_altman_hand_values():
    ba = bland_altman([1, 2, 3, 4], [2, 2, 5, 4])  # d = 1, 0, 2, 0
    sd = math.sqrt(2.75 / 3)
    assert ba.mean_diff == pytest.approx(0.75) and ba.sd_diff == pytest.approx(sd)
    assert ba.loa_low == pytest.approx(0.75 - 1.96 * sd)
    assert ba.loa_high == pytest.approx(0.75 + 1.96 * sd)
    assert ba.n == 4
    one = bland_altman([5.0], [7.0])
    assert one.mean_diff == 2.0 and math.isnan(one.sd_diff) and one.n == 1
    assert math.isnan(bland_altman([], []).mean_diff)
