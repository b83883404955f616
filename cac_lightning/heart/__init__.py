"""The heart stage: where in a scan calcium may be called coronary.

:func:`find_heart` returns a :class:`HeartRegion` (chest geometry, :mod:`.geometry`, narrowed by
the learned locator when installed); the Predictor keeps calcium only inside it.
"""

from __future__ import annotations

from cac_lightning.heart.region import (
    DEFAULT_MARGIN_MM,
    HEART_METHODS,
    HeartRegion,
    NoHeartError,
    find_heart,
)

__all__ = ["DEFAULT_MARGIN_MM", "HEART_METHODS", "HeartRegion", "NoHeartError", "find_heart"]
