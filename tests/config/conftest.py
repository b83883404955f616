"""Compose the real Hydra configs for tests (tiny cohort, CPU, temp folders)."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from cac_lightning.config import CONF_DIR


def compose_train(tmp_path, overrides: list[str] | None = None) -> DictConfig:
    """The train config as `cac-train` would see it, with paths under ``tmp_path``."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=CONF_DIR):
        cfg = compose(config_name="train", return_hydra_config=True,
                      overrides=["experiment=smoke", *(overrides or [])])
        HydraConfig().set_config(cfg)
        with open_dict(cfg):
            cfg.paths.root_dir = str(tmp_path)
            cfg.paths.output_dir = str(tmp_path / "out")
            cfg.paths.data_dir = str(tmp_path / "data")
            cfg.paths.log_dir = str(tmp_path / "logs")
    return cfg


@pytest.fixture
def train_cfg(tmp_path):
    yield lambda overrides=None: compose_train(tmp_path, overrides)
    GlobalHydra.instance().clear()
