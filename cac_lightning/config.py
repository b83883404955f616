"""Where the Hydra configs live: the top-level ``conf/``, installed as ``cac_lightning.conf``.

``CONF_DIR`` is the folder ``cac-train`` and ``cac-eval`` compose from (``CAC_CONF_DIR``
overrides it). A ``conf/`` folder in the working directory is searched after it
(``hydra.searchpath`` in ``train.yaml`` / ``eval.yaml``), so a user's own experiments, nets or
data configs are found by name without touching the package.
"""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path

__all__ = ["CONF_DIR"]

CONF_DIR = str(Path(os.environ.get("CAC_CONF_DIR") or str(files("cac_lightning.conf"))).resolve())
