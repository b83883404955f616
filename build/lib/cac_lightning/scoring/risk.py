"""Risk classes from Agatston scores: the paper's C1-C5, CAC-DRS A0-A3 and N0-N4.

Agatston scores here are real valued (the slice-spacing factor), so the class
boundaries are stated exactly on the real line (after rounding to 6 decimals).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from cac_lightning.errors import InputError
from cac_lightning.vessels import VESSELS

__all__ = ["CAC_DRS_CLASSES", "RISK_CATEGORIES", "cac_drs", "n_vessels_class", "risk_category"]

RISK_CATEGORIES: tuple[str, ...] = ("C1", "C2", "C3", "C4", "C5")
CAC_DRS_CLASSES: tuple[str, ...] = ("A0", "A1", "A2", "A3")


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
    A3 ``a >= 300``.

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
    if a < 100:
        return "A1"
    if a < 300:
        return "A2"
    return "A3"


def n_vessels_class(vessel_agatston: Mapping[str, float]) -> str:
    """CAC-DRS vessel count ``"N0"`` .. ``"N4"`` (Hecht et al. 2018).

    Args:
        vessel_agatston: Agatston score per vessel name; LM, LAD, CX and RCA are counted
            when > 0, other keys (e.g. ``"total"``) are ignored, missing vessels count 0.

    Returns:
        ``"N<k>"`` with k the number of vessels with calcium.
    """
    return f"N{sum(1 for v in VESSELS if _check(vessel_agatston.get(v, 0.0)) > 0)}"
