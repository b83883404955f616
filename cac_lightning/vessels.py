"""Vessel names, label values and display colours: the one place they are defined.

Label values follow the output channels of Hong et al. 2022 (section 2.4):
0 background (non-CAC), 1 left main (LM), 2 left anterior descending (LAD),
3 left circumflex (CX), 4 right coronary artery (RCA).
"""

from __future__ import annotations

__all__ = [
    "BACKGROUND",
    "CLASS_NAMES",
    "LABELS",
    "NUM_CLASSES",
    "VESSELS",
    "VESSELS_AND_TOTAL",
    "VESSEL_COLORS",
]

BACKGROUND = 0
VESSELS: tuple[str, ...] = ("LM", "LAD", "CX", "RCA")
CLASS_NAMES: tuple[str, ...] = ("background", *VESSELS)
LABELS: dict[str, int] = {name: i for i, name in enumerate(CLASS_NAMES)}
NUM_CLASSES = len(CLASS_NAMES)
"""Output channels of every network (the configs do not repeat it)."""
VESSELS_AND_TOTAL: tuple[str, ...] = (*VESSELS, "total")
"""Where a scan is scored: each vessel, then the whole heart (the keys of its scores)."""
VESSEL_COLORS: dict[str, tuple[int, int, int]] = {
    "LM": (255, 215, 0),
    "LAD": (255, 60, 60),
    "CX": (60, 200, 255),
    "RCA": (80, 255, 80),
}
"""RGB display colour of each vessel (overlays, figures)."""


def __getattr__(name: str) -> object:
    if name == "SCORE_KEYS":  # the old, ambiguous name of VESSELS_AND_TOTAL
        import warnings

        warnings.warn("vessels.SCORE_KEYS is VESSELS_AND_TOTAL", DeprecationWarning, stacklevel=2)
        return VESSELS_AND_TOTAL
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
