"""The CT volume types, kept importable here: they live in :mod:`cac_lightning.volume`.

``cac_lightning.volume`` sits below both ``io/`` and ``scoring/`` (docs/architecture.md); this
module only re-exports its names for code written against the old path.
"""

from __future__ import annotations

from cac_lightning.volume import AIR_HU, IDENTITY, Geometry, Volume

__all__ = ["AIR_HU", "IDENTITY", "Geometry", "Volume"]
