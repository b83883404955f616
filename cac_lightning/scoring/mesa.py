"""MESA references for a total Agatston score: the age/sex/race percentile and 10-year CHD risk.

Two published MESA (Multi-Ethnic Study of Atherosclerosis) tools, both defined for people aged
45-84 in four race/ethnicity groups (White, Black / African American, Hispanic, Chinese
American):

* **10-year CHD risk with CAC** (:func:`chd_risk_10y`): McClelland RL, Jorgensen NW, Budoff M,
  et al. "10-Year Coronary Heart Disease Risk Prediction Using Coronary Artery Calcium and
  Traditional Risk Factors: Derivation in the MESA (Multi-Ethnic Study of Atherosclerosis) With
  Validation in the HNR (Heinz Nixdorf Recall) Study and the DHS (Dallas Heart Study)."
  J Am Coll Cardiol. 2015;66(15):1643-1653, doi:10.1016/j.jacc.2015.08.035 (PMC4603537), the
  risk equation of its appendix ("MESA risk score with CAC"):
  ``risk = 1 - 0.99833 ** exp(sum(coef * x))``, the coefficients in :data:`CHD_CAC_COEFFICIENTS`.
  Transcription checked against two independent public restatements of that appendix
  (https://ebmcalc.com/MESA.htm, "Terms CAC"; the CRAN package CVrisk, data ``mesa_cac_coef``)
  and against CVrisk's worked example (``tests/testthat/test-chd_10y_mesa_cac.R``: a 70-year-old
  Hispanic man, SBP 130 on treatment, HDL 50, total cholesterol 190, non-smoker, no diabetes,
  no family history, CAC 0 -> 3.06 %), which :mod:`tests.scoring.test_scoring_mesa` reproduces.
* **CAC percentile** (:func:`cac_percentile`): McClelland RL, Chung H, Detrano R, Post W,
  Kronmal RA. "Distribution of coronary artery calcium by race, gender, and age: results from
  the Multi-Ethnic Study of Atherosclerosis (MESA)." Circulation. 2006;113(1):30-37,
  doi:10.1161/CIRCULATIONAHA.105.580696. The paper estimates the percentiles "with
  nonparametric techniques" and publishes them only as tables of selected percentiles by age
  band; the continuous model behind the MESA online calculator (the probability of CAC > 0 and
  the distribution of positive scores by age, sex and race) is not published as coefficients
  that could be checked. This module therefore holds the structure of that two-part model
  (:class:`PercentileModel`) but **no model**: :func:`cac_percentile` returns no percentile and
  says why (:data:`PERCENTILE_UNAVAILABLE`). A wrong percentile is worse than none.

Outside the reference (age < 45 or > 84, sex missing, race/ethnicity not one of the four) no
percentile or risk is given, with a reason string; nothing is extrapolated. Reason strings
name the covariate, never its value (they go into reports).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields

from cac_lightning.errors import InputError

__all__ = [
    "AGE_RANGE",
    "CHD_CAC_BASELINE_SURVIVAL",
    "CHD_CAC_COEFFICIENTS",
    "COVARIATE_FIELDS",
    "ETHNICITIES",
    "PERCENTILE_MODEL",
    "PERCENTILE_UNAVAILABLE",
    "RISK_FACTORS",
    "Covariates",
    "MesaPercentile",
    "PercentileModel",
    "cac_percentile",
    "chd_risk_10y",
    "mesa_summary",
    "parse_age",
    "parse_ethnicity",
    "parse_sex",
]

AGE_RANGE: tuple[int, int] = (45, 84)
"""Ages (years, inclusive) of the MESA cohort; no reference value outside."""

ETHNICITIES: tuple[str, ...] = ("white", "black", "hispanic", "chinese")
"""The four MESA race/ethnicity groups, as this package spells them."""

_ETHNICITY_ALIASES = {
    "white": "white",
    "caucasian": "white",
    "non-hispanic white": "white",
    "black": "black",
    "african american": "black",
    "african-american": "black",
    "aa": "black",
    "hispanic": "hispanic",
    "latino": "hispanic",
    "chinese": "chinese",
    "chinese american": "chinese",
}

CHD_CAC_BASELINE_SURVIVAL = 0.99833
"""10-year baseline survival of the MESA CHD model with CAC (McClelland et al. 2015, appendix)."""

CHD_CAC_COEFFICIENTS: dict[str, float] = {
    "age": 0.0172,  # per year
    "male": 0.4079,
    "chinese": -0.3475,
    "black": 0.0353,
    "hispanic": -0.0222,
    "diabetes": 0.3892,
    "smoker": 0.3717,  # current smoker
    "total_chol": 0.0043,  # per mg/dL
    "hdl": -0.0114,  # per mg/dL
    "lipid_med": 0.1206,
    "sbp": 0.0066,  # per mm Hg
    "bp_med": 0.2278,
    "family_history": 0.3239,  # heart attack in a parent, sibling or child
    "ln_cac_plus_1": 0.2743,
}
"""Coefficients of the MESA 10-year CHD risk score with CAC (McClelland et al. 2015, appendix)."""

RISK_FACTORS: tuple[str, ...] = (
    "diabetes",
    "smoker",
    "total_chol",
    "hdl",
    "sbp",
    "lipid_med",
    "bp_med",
    "family_history",
)
"""Covariates the CHD risk needs besides age, sex and race/ethnicity (0/1 flags; mg/dL; mm Hg)."""

_FLAGS = ("diabetes", "smoker", "lipid_med", "bp_med", "family_history")
_RANGES = {"total_chol": (50.0, 600.0), "hdl": (5.0, 200.0), "sbp": (60.0, 300.0)}

PERCENTILE_UNAVAILABLE = (
    "MESA percentile not available: the continuous model behind the MESA CAC calculator "
    "(McClelland et al., Circulation 2006;113:30-37) is not published as coefficients this "
    "package could verify"
)


def parse_sex(value: object) -> str | None:
    """``"M"``/``"F"`` from M, F, male, female (any case); None when empty.

    Raises:
        InputError: any other value (DICOM ``O``/other included: no MESA reference).
    """
    text = "" if value is None else str(value).strip().lower()
    if not text:
        return None
    if text in ("m", "male"):
        return "M"
    if text in ("f", "female"):
        return "F"
    raise InputError(f"sex must be M or F (male/female), got {value!r}")


def parse_ethnicity(value: object) -> str | None:
    """One of :data:`ETHNICITIES` (aliases such as "African American" accepted); None if empty.

    Raises:
        InputError: a value that names none of the four MESA groups.
    """
    text = "" if value is None else " ".join(str(value).strip().lower().split())
    if not text:
        return None
    if text not in _ETHNICITY_ALIASES:
        raise InputError(
            f"ethnicity must be one of {', '.join(ETHNICITIES)} (the MESA groups), got {value!r}"
        )
    return _ETHNICITY_ALIASES[text]


def parse_age(value: object) -> float | None:
    """Age in years from a number or a DICOM AS string (``"045Y"``; months/weeks/days too).

    Raises:
        InputError: text that is not an age.
    """
    if value is None:
        return None
    text = str(value).strip().upper()
    if not text:
        return None
    units = {"Y": 1.0, "M": 1 / 12, "W": 7 / 365.25, "D": 1 / 365.25}
    try:
        age = float(text[:-1]) * units[text[-1]] if text[-1] in units else float(text)
    except ValueError:
        raise InputError(
            f"age must be a number of years (or a DICOM age like 045Y), got {value!r}"
        ) from None
    if not math.isfinite(age) or age < 0 or age > 130:
        raise InputError(f"age must be between 0 and 130 years, got {value!r}")
    return age


@dataclass(frozen=True)
class Covariates:
    """What the MESA references need about a person (no identifiers).

    Attributes:
        age: years. sex: ``"M"``/``"F"``. ethnicity: one of :data:`ETHNICITIES`.
        diabetes, smoker, lipid_med, bp_med, family_history: 0/1 (None: not given).
        total_chol, hdl: mg/dL. sbp: systolic blood pressure, mm Hg.
    """

    age: float | None = None
    sex: str | None = None
    ethnicity: str | None = None
    diabetes: float | None = None
    smoker: float | None = None
    total_chol: float | None = None
    hdl: float | None = None
    sbp: float | None = None
    lipid_med: float | None = None
    bp_med: float | None = None
    family_history: float | None = None

    def merged(self, other: Covariates) -> Covariates:
        """These covariates with every value ``other`` gives (not None) taking precedence."""
        mine = asdict(self)
        mine.update({k: v for k, v in asdict(other).items() if v is not None})
        return Covariates(**mine)

    def missing_risk_factors(self) -> list[str]:
        """Names in :data:`RISK_FACTORS` that are not given."""
        return [k for k in RISK_FACTORS if getattr(self, k) is None]


def _out_of_reference(cov: Covariates) -> str | None:
    """Why ``cov`` lies outside the MESA reference population; None when inside."""
    lo, hi = AGE_RANGE
    if cov.age is None:
        return "age missing (give --age or a covariates CSV; the DICOM header had none)"
    if not lo <= cov.age <= hi:
        return f"age is outside the MESA reference range {lo}-{hi} years"
    if cov.sex not in ("M", "F"):
        return "sex missing (give --sex M/F)"
    if cov.ethnicity not in ETHNICITIES:
        if cov.ethnicity is None:
            return f"ethnicity missing (give --ethnicity: {', '.join(ETHNICITIES)})"
        return f"ethnicity is not a MESA group ({', '.join(ETHNICITIES)})"
    return None


def _check_agatston(agatston: float) -> float:
    a = float(agatston)
    if not math.isfinite(a) or a < 0:
        raise InputError(f"an Agatston score must be a number >= 0, got {agatston!r}")
    return a


@dataclass(frozen=True)
class PercentileModel:
    """The two-part form of the MESA percentile: P(CAC > 0) and the CDF of positive scores.

    ``percentile = 100 * ((1 - p) + p * F(cac))`` for ``cac > 0``, and for ``cac == 0`` the
    share of zeros ``100 * (1 - p)`` is reported as the percentile's upper bound, the way the
    MESA calculator states that a zero lies among the ``1 - p`` of people without calcium.

    Attributes:
        p_positive: ``(age, sex, ethnicity) -> P(CAC > 0)``.
        cdf_positive: ``(cac, age, sex, ethnicity) -> P(CAC <= cac | CAC > 0)``.
        source: the citation of the fitted model.
    """

    p_positive: Callable[[float, str, str], float]
    cdf_positive: Callable[[float, float, str, str], float]
    source: str

    def percentile(self, agatston: float, cov: Covariates) -> float:
        p = float(self.p_positive(cov.age, cov.sex, cov.ethnicity))
        if agatston <= 0:
            return 100.0 * (1.0 - p)
        f = float(self.cdf_positive(agatston, cov.age, cov.sex, cov.ethnicity))
        return 100.0 * ((1.0 - p) + p * f)


PERCENTILE_MODEL: PercentileModel | None = None
"""The MESA percentile model; None: not available (see the module docstring)."""


@dataclass(frozen=True)
class MesaPercentile:
    """A percentile (0-100) or None with the reason."""

    percentile: float | None
    reason: str | None


def cac_percentile(
    agatston: float, cov: Covariates, model: PercentileModel | None = None
) -> MesaPercentile:
    """The MESA age/sex/race percentile of a total Agatston score, or None and why.

    Args:
        agatston: total Agatston score (>= 0).
        cov: age, sex and ethnicity (the risk factors are not used).
        model: the percentile model; default :data:`PERCENTILE_MODEL` (not available).

    Returns:
        :class:`MesaPercentile`: ``percentile`` rounded to 0.1, or None with ``reason``
        (outside the reference range, a covariate missing, or no model available).
    """
    a = _check_agatston(agatston)
    reason = _out_of_reference(cov)
    if reason is not None:
        return MesaPercentile(None, reason)
    model = model if model is not None else PERCENTILE_MODEL
    if model is None:
        return MesaPercentile(None, PERCENTILE_UNAVAILABLE)
    pct = model.percentile(a, cov)
    if not (math.isfinite(pct) and 0.0 <= pct <= 100.0):
        return MesaPercentile(None, f"the percentile model gave {pct!r}, outside 0-100")
    return MesaPercentile(round(pct, 1), None)


def chd_risk_10y(agatston: float, cov: Covariates) -> float:
    """MESA 10-year CHD risk with CAC, in percent (McClelland et al. 2015).

    Args:
        agatston: total Agatston score (>= 0); enters as ``ln(CAC + 1)``.
        cov: every field of :class:`Covariates` given.

    Returns:
        ``100 * (1 - 0.99833 ** exp(sum(coef * x)))``, not rounded.

    Raises:
        InputError: outside the reference population, a risk factor missing or implausible.
    """
    a = _check_agatston(agatston)
    reason = _out_of_reference(cov)
    if reason is not None:
        raise InputError(f"no MESA CHD risk: {reason}")
    missing = cov.missing_risk_factors()
    if missing:
        raise InputError(f"no MESA CHD risk: risk factor(s) missing: {', '.join(missing)}")
    for k in _FLAGS:
        if getattr(cov, k) not in (0, 1):
            raise InputError(f"no MESA CHD risk: {k} must be 0 or 1")
    for k, (lo, hi) in _RANGES.items():
        if not lo <= getattr(cov, k) <= hi:
            raise InputError(f"no MESA CHD risk: {k} is outside the plausible {lo:g}-{hi:g}")
    c = CHD_CAC_COEFFICIENTS
    x = c["age"] * cov.age + c["male"] * (cov.sex == "M") + c["ln_cac_plus_1"] * math.log1p(a)
    if cov.ethnicity != "white":
        x += c[cov.ethnicity]
    x += sum(c[k] * float(getattr(cov, k)) for k in RISK_FACTORS)
    return 100.0 * (1.0 - CHD_CAC_BASELINE_SURVIVAL ** math.exp(x))


def mesa_summary(agatston: float, cov: Covariates, inputs_source: dict[str, str]) -> dict:
    """The ``mesa`` block of a scan report.

    Args:
        agatston: total Agatston score.
        cov: the covariates found (header, flags, CSV).
        inputs_source: where each covariate came from, e.g. ``{"age": "dicom", "sex": "flag"}``
            (names only, never values).

    Returns:
        ``{"percentile", "reason", "risk_10y_chd", "risk_reason", "inputs_source"}``;
        ``risk_10y_chd`` is percent rounded to 0.01, None (with ``risk_reason``) when the risk
        factors are not all given or lie outside the model.
    """
    pct = cac_percentile(agatston, cov)
    risk: float | None = None
    risk_reason: str | None = None
    try:
        risk = round(chd_risk_10y(agatston, cov), 2)
    except InputError as err:
        risk_reason = str(err)
    return {
        "percentile": pct.percentile,
        "reason": pct.reason,
        "risk_10y_chd": risk,
        "risk_reason": risk_reason,
        "inputs_source": dict(inputs_source),
    }


COVARIATE_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Covariates))
