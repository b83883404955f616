"""Vessel names and label values: the one place they are defined.

Label values follow the output channels of Hong et al. 2022 (section 2.4):
0 background (non-CAC), 1 left main (LM), 2 left anterior descending (LAD),
3 left circumflex (CX), 4 right coronary artery (RCA).
"""

from __future__ import annotations

__all__ = ["BACKGROUND", "CLASS_NAMES", "LABELS", "NUM_CLASSES", "VESSELS"]

BACKGROUND = 0
VESSELS: tuple[str, ...] = ("LM", "LAD", "CX", "RCA")
CLASS_NAMES: tuple[str, ...] = ("background", *VESSELS)
LABELS: dict[str, int] = {name: i for i, name in enumerate(CLASS_NAMES)}
NUM_CLASSES = len(CLASS_NAMES)
