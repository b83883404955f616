"""Heart localisation: keep calcium only inside the heart (issue 22).

The learned stage: :class:`~cac_lightning.heart.locator.HeartLocator` (a small 3D U-Net trained
on synthetic phantoms only, weights shipped as ``weights/heartnet_v1.npz``). Torch is imported
only when a locator is loaded.
"""

from __future__ import annotations

from cac_lightning.heart.locator import HeartLocator
from cac_lightning.heart.masks import heart_mask

__all__ = ["HeartLocator", "heart_mask"]
