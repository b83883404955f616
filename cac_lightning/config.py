"""Where the Hydra configs live and the resolvers they use."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["CONF_DIR"]

# The repository's conf/ next to the installed (editable) package; CAC_CONF_DIR overrides.
CONF_DIR = str(Path(os.environ.get("CAC_CONF_DIR", Path(__file__).resolve().parents[1] / "conf")))
