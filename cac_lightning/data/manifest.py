"""The dataset manifest, kept importable here: it lives in :mod:`cac_lightning.io.manifest`.

``sources/`` writes the manifest and ``data/`` reads it, so its format sits in ``io/``, below
both (docs/architecture.md); this module only re-exports its names for code written against the
old path.
"""

from __future__ import annotations

from cac_lightning.io.manifest import (
    COLUMNS,
    REF_COLUMNS,
    SPLITS,
    ManifestRow,
    read_manifest,
    write_manifest,
)

__all__ = ["COLUMNS", "REF_COLUMNS", "SPLITS", "ManifestRow", "read_manifest", "write_manifest"]


def __getattr__(name: str) -> object:
    if name == "SCORE_KEYS":  # the old name of the manifest's score columns
        import warnings

        from cac_lightning.scoring.lesions import SCORE_METRICS

        warnings.warn("manifest.SCORE_KEYS is scoring.SCORE_METRICS", DeprecationWarning, 2)
        return SCORE_METRICS
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
