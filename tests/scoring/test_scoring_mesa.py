"""MESA percentile and 10-year CHD risk (cac_lightning.scoring.mesa)."""

from __future__ import annotations

import math

import pytest

from cac_lightning.errors import InputError
from cac_lightning.scoring.mesa import (
    PERCENTILE_UNAVAILABLE,
    Covariates,
    PercentileModel,
    cac_percentile,
    chd_risk_10y,
    mesa_summary,
    parse_age,
    parse_ethnicity,
    parse_sex,
)

# CVrisk (CRAN) tests/testthat/test-chd_10y_mesa_cac.R: "MESA (with CAC): 70yo male example"
CVRISK_EXAMPLE = Covariates(
    age=70, sex="M", ethnicity="hispanic", sbp=130, hdl=50, total_chol=190, bp_med=1,
    lipid_med=0, smoker=0, diabetes=0, family_history=0,
)  # fmt: skip


def test_chd_risk_reproduces_published_example():
    assert round(chd_risk_10y(0, CVRISK_EXAMPLE), 2) == 3.06


def test_chd_risk_grows_with_cac_by_the_published_coefficient():
    # 1 - S0**exp(x): the ratio of log-survivals is exp(0.2743 * (ln(401) - ln(1)))
    r0, r400 = chd_risk_10y(0, CVRISK_EXAMPLE), chd_risk_10y(400, CVRISK_EXAMPLE)
    ratio = math.log(1 - r400 / 100) / math.log(1 - r0 / 100)
    assert ratio == pytest.approx(math.exp(0.2743 * math.log(401)), rel=1e-9)
    assert 3.06 < r400 < 30


def test_chd_risk_ethnicity_changes_the_result():
    white = Covariates(**{**CVRISK_EXAMPLE.__dict__, "ethnicity": "white"})
    chinese = Covariates(**{**CVRISK_EXAMPLE.__dict__, "ethnicity": "chinese"})
    assert chd_risk_10y(0, chinese) < chd_risk_10y(0, CVRISK_EXAMPLE) < chd_risk_10y(0, white)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"age": 30}, "outside the MESA reference range 45-84"),
        ({"age": 85}, "outside the MESA reference range 45-84"),
        ({"sex": None}, "sex missing"),
        ({"ethnicity": "martian"}, "not a MESA group"),
        ({"ethnicity": None}, "ethnicity missing"),
        ({"hdl": None}, "risk factor(s) missing: hdl"),
        ({"smoker": 2}, "smoker must be 0 or 1"),
    ],
)
def test_bad_covariates_give_no_risk_and_no_percentile(change, message):
    cov = Covariates(**{**CVRISK_EXAMPLE.__dict__, **change})
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        chd_risk_10y(10, cov)
    summary = mesa_summary(10, cov, {"age": "flag"})
    assert summary["percentile"] is None and summary["risk_10y_chd"] is None
    assert summary["reason"]


def test_percentile_is_not_invented():
    got = cac_percentile(100, CVRISK_EXAMPLE)
    assert got.percentile is None and got.reason == PERCENTILE_UNAVAILABLE
    young = cac_percentile(100, Covariates(age=30, sex="F", ethnicity="white"))
    assert young.percentile is None and "45-84" in young.reason


def test_percentile_structure_with_an_injected_model():
    # a toy model (not MESA): half have calcium; positive scores uniform on (0, 200]
    toy = PercentileModel(lambda a, s, e: 0.5, lambda c, a, s, e: min(c / 200, 1.0), "toy")
    cov = Covariates(age=60, sex="F", ethnicity="black")
    assert cac_percentile(100, cov, toy).percentile == 75.0
    assert cac_percentile(0, cov, toy).percentile == 50.0
    old = Covariates(age=90, sex="F", ethnicity="black")
    assert cac_percentile(100, old, toy).percentile is None


def test_summary_with_all_factors():
    s = mesa_summary(0, CVRISK_EXAMPLE, {"age": "csv", "sex": "csv"})
    assert s["risk_10y_chd"] == 3.06 and s["risk_reason"] is None
    assert s["inputs_source"] == {"age": "csv", "sex": "csv"}


@pytest.mark.parametrize(
    ("raw", "age"), [("045Y", 45.0), ("84", 84.0), (" 060Y", 60.0), ("006M", 0.5), (None, None)]
)
def test_parse_age(raw, age):
    assert parse_age(raw) == age


def test_parsers_refuse_nonsense():
    with pytest.raises(InputError, match="age"):
        parse_age("old")
    with pytest.raises(InputError, match="sex must be M or F"):
        parse_sex("O")
    with pytest.raises(InputError, match="ethnicity must be one of"):
        parse_ethnicity("klingon")
    assert parse_sex("female") == "F" and parse_sex("") is None
    assert parse_ethnicity("African American") == "black"
