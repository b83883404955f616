"""The heart stage: where in a scan calcium may be called coronary (issue 22).

:func:`find_heart` returns a :class:`HeartRegion`: the chest geometry (:mod:`.geometry`),
narrowed by the learned :class:`~cac_lightning.heart.locator.HeartLocator` (a small 3D U-Net
trained on synthetic phantoms only, weights shipped as ``weights/heartnet_v1.npz``) when its
weights are installed. The Predictor keeps calcium only inside it. Torch is imported only when a
locator is loaded.
"""

from __future__ import annotations

from cac_lightning.heart.locator import HeartLocator
from cac_lightning.heart.masks import heart_mask
from cac_lightning.heart.region import (
    DEFAULT_MARGIN_MM,
    HEART_METHODS,
    HeartRegion,
    NoHeartError,
    find_heart,
)

__all__ = [
    "DEFAULT_MARGIN_MM",
    "HEART_METHODS",
    "HeartLocator",
    "HeartRegion",
    "NoHeartError",
    "find_heart",
    "heart_mask",
]
