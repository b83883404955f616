"""Shared fixtures. Real COCA scans are found through ``CAC_COCA_ROOT``
(default ``../shared/data/coca-sample`` beside the repository); tests that need
them skip cleanly when the folder is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DEFAULT_COCA = REPO.parent / "shared" / "data" / "coca-sample"

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")


def coca_root_or_none() -> Path | None:
    root = Path(os.environ.get("CAC_COCA_ROOT", DEFAULT_COCA))
    return root if (root / "Gated_release_final").is_dir() else None


@pytest.fixture(scope="session")
def coca_root() -> Path:
    """The COCA sample root (holding ``Gated_release_final``), or skip."""
    root = coca_root_or_none()
    if root is None:
        pytest.skip("COCA sample not found (set CAC_COCA_ROOT)")
    return root


@pytest.fixture(scope="session")
def pydicom_test_files() -> Path:
    """Folder of the real test files that pydicom ships."""
    from pydicom.data import get_testdata_file

    return Path(get_testdata_file("CT_small.dcm")).parent


def compose_train(root: Path, overrides: list[str] | None = None):
    """The train config as `cac-train` would compose it, with paths under ``root``."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    from cac_lightning.config import CONF_DIR

    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=CONF_DIR):
        cfg = compose(
            config_name="train",
            return_hydra_config=True,
            overrides=["experiment=smoke", *(overrides or [])],
        )
        HydraConfig().set_config(cfg)
        with open_dict(cfg):
            cfg.paths.root_dir = str(root)
            cfg.paths.output_dir = str(root / "out")
            cfg.paths.data_dir = str(root / "data")
            cfg.paths.log_dir = str(root / "logs")
    return cfg


@pytest.fixture
def train_cfg(tmp_path):
    """``train_cfg(overrides, root=tmp_path)`` -> composed train config."""
    from hydra.core.global_hydra import GlobalHydra

    yield lambda overrides=None, root=None: compose_train(root or tmp_path, overrides)
    GlobalHydra.instance().clear()
