"""Where the Hydra configs live: the top-level ``conf/``, installed as ``cac_lightning.conf``.

``CONF_DIR`` is the folder ``cac-train`` and ``cac-eval`` compose from (``CAC_CONF_DIR``
overrides it). A ``conf/`` folder in the working directory is searched after it
(``hydra.searchpath`` in ``train.yaml`` / ``eval.yaml``), so a user's own experiments, nets or
data configs are found by name without touching the package. Where there is no such folder
Hydra would warn on every run; that one warning is filtered here (the folder is optional).

The ``cac_arms`` resolver gives the registry's table of architectures to ``cac-train --help``
(``conf/hydra/help/train.yaml``); it imports the registry only when the help is printed.
"""

from __future__ import annotations

import os
import warnings
from importlib.resources import files
from pathlib import Path

from omegaconf import OmegaConf

__all__ = ["CONF_DIR"]

CONF_DIR = str(Path(os.environ.get("CAC_CONF_DIR") or str(files("cac_lightning.conf"))).resolve())

# Hydra warns when an optional search-path folder is absent; ./conf is optional by design.
warnings.filterwarnings(
    "ignore", message=r"provider=hydra\.searchpath in main, path=conf is not available"
)


def _arms_table() -> str:
    from cac_lightning.models.registry import describe_arms

    return describe_arms()


OmegaConf.register_new_resolver("cac_arms", _arms_table, replace=True)
