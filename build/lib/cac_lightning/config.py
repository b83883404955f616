"""Where the Hydra configs live: ``cac_lightning/conf`` inside the installed package."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["CONF_DIR"]

# Shipped with the package (package-data), so installed copies find it; CAC_CONF_DIR overrides.
CONF_DIR = str(Path(os.environ.get("CAC_CONF_DIR", Path(__file__).resolve().parent / "conf")))
