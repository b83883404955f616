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
    "SCORE_KEYS",
    "VESSELS",
    "VESSEL_COLORS",
]

BACKGROUND = 0
VESSELS: tuple[str, ...] = ("LM", "LAD", "CX", "RCA")
CLASS_NAMES: tuple[str, ...] = ("background", *VESSELS)
LABELS: dict[str, int] = {name: i for i, name in enumerate(CLASS_NAMES)}
NUM_CLASSES = len(CLASS_NAMES)
SCORE_KEYS: tuple[str, ...] = (*VESSELS, "total")
"""Keys of a scan's scores: each vessel, then the whole heart."""
VESSEL_COLORS: dict[str, tuple[int, int, int]] = {
    "LM": (255, 215, 0),
    "LAD": (255, 60, 60),
    "CX": (60, 200, 255),
    "RCA": (80, 255, 80),
}
"""RGB display colour of each vessel (overlays, figures)."""
