"""Risk classes from Agatston scores: the paper's C1-C5, CAC-DRS A0-A3 and N0-N4.

Agatston scores here are real valued (the slice-spacing factor), so the class
boundaries are stated exactly on the real line (after rounding to 6 decimals).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from cac_lightning.errors import InputError
from cac_lightning.vessels import VESSELS

__all__ = [
    "CAC_DRS_BOUNDARIES",
    "CAC_DRS_CLASSES",
    "RISK_CATEGORIES",
    "cac_drs",
    "cac_drs_report",
    "n_vessels_class",
    "risk_category",
]

RISK_CATEGORIES: tuple[str, ...] = ("C1", "C2", "C3", "C4", "C5")
CAC_DRS_CLASSES: tuple[str, ...] = ("A0", "A1", "A2", "A3")
CAC_DRS_BOUNDARIES: tuple[tuple[str, float, float], ...] = (
    ("A0", 0.0, 0.0),
    ("A1", 0.0, 100.0),
    ("A2", 100.0, 300.0),
    ("A3", 300.0, math.inf),
)
"""CAC-DRS Agatston classes (Hecht et al. 2018, SCCT guideline, J Cardiovasc Comput Tomogr
12:185, Table 1: A0 = 0, A1 = 1-99, A2 = 100-299, A3 >= 300) as ``(class, low, high)``:
A0 is ``a == 0``; the others are ``low <= a < high`` except A1, which is ``0 < a < 100``.

The guideline's classes are integer ranges and its top class is closed below (">= 300"),
so each class is extended to real scores by closing it below: a score in ``(0, 1)`` is
calcium present, hence A1 (A0 is "zero CAC" only); a score in ``(99, 100)`` is A1 (A2
starts at 100). The score is classified unrounded (after :data:`_DECIMALS`): 99.6 is A1,
although a report that rounds it shows "100". (The C1-C5 table is closed on the right
instead, because its top class is "> 400"; both agree with their tables at every integer.)"""


_DECIMALS = 6
"""Scores are rounded to 6 decimals before classification, so floating-point noise of the
spacing factor (e.g. 100.00000000000001) cannot cross a class boundary."""


def _check(agatston: float) -> float:
    a = float(agatston)
    if math.isnan(a) or a < 0:
        raise InputError(f"an Agatston score must be a number >= 0, got {agatston!r}")
    return round(a, _DECIMALS)


def risk_category(agatston: float) -> str:
    """Risk category of a total Agatston score (Hong et al. 2022, Table 2).

    C1 ``a == 0`` (none); C2 ``0 < a <= 10`` (minimal); C3 ``10 < a <= 100`` (mild);
    C4 ``100 < a <= 400`` (moderate); C5 ``a > 400`` (extensive). The table's
    integer ranges 1-10, 11-100, 101-400 (Rumberger et al. 1999, Mayo Clin Proc 74:243)
    are extended to real scores by closing each class on the right.

    Args:
        agatston: total Agatston score, >= 0.

    Returns:
        ``"C1"`` .. ``"C5"``.

    Raises:
        InputError: a negative or NaN score.
    """
    a = _check(agatston)
    if a == 0:
        return "C1"
    if a <= 10:
        return "C2"
    if a <= 100:
        return "C3"
    if a <= 400:
        return "C4"
    return "C5"


def cac_drs(agatston: float) -> str:
    """CAC-DRS Agatston class (Hecht et al. 2018, J Cardiovasc Comput Tomogr 12:185).

    A0 ``a == 0``; A1 ``0 < a < 100`` (1-99); A2 ``100 <= a < 300`` (100-299);
    A3 ``a >= 300`` (:data:`CAC_DRS_BOUNDARIES` says how real scores between the
    guideline's integers are classed).

    Args:
        agatston: total Agatston score, >= 0.

    Returns:
        ``"A0"`` .. ``"A3"``.

    Raises:
        InputError: a negative or NaN score.
    """
    a = _check(agatston)
    if a == 0:
        return "A0"
    for klass, low, high in CAC_DRS_BOUNDARIES[1:]:
        if low <= a < high:
            return klass
    raise AssertionError(a)  # unreachable: the classes cover [0, inf)


def n_vessels_class(vessel_agatston: Mapping[str, float]) -> str:
    """CAC-DRS vessel count ``"N0"`` .. ``"N4"`` (Hecht et al. 2018).

    Args:
        vessel_agatston: Agatston score per vessel name; LM, LAD, CX and RCA are counted
            when > 0, other keys (e.g. ``"total"``) are ignored, missing vessels count 0.

    Returns:
        ``"N<k>"`` with k the number of vessels with calcium.
    """
    return f"N{sum(1 for v in VESSELS if _check(vessel_agatston.get(v, 0.0)) > 0)}"


def cac_drs_report(agatston: float, vessel_agatston: Mapping[str, float]) -> str:
    """The CAC-DRS string a clinician reads: ``"CAC-DRS A2/N2"``, or ``"CAC-DRS A0"``.

    SCCT 2018 (Hecht et al., J Cardiovasc Comput Tomogr 12:185): the Agatston class
    (:func:`cac_drs`, :data:`CAC_DRS_BOUNDARIES`) followed, when it is above A0, by the
    number of vessels with calcium (:func:`n_vessels_class`: LM, LAD, CX, RCA). Only the
    Agatston ("A") form is produced; the visual ("S") form needs a reader's grading.

    Args:
        agatston: total Agatston score, >= 0.
        vessel_agatston: Agatston score per vessel (see :func:`n_vessels_class`).

    Returns:
        ``"CAC-DRS A0"`` or ``"CAC-DRS A<k>/N<n>"``.

    Raises:
        InputError: a negative or NaN score.
    """
    klass = cac_drs(agatston)
    if klass == "A0":
        return "CAC-DRS A0"
    return f"CAC-DRS {klass}/{n_vessels_class(vessel_agatston)}"
