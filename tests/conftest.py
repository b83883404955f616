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


def always_lad_checkpoint(path, channels=(4, 8), data_geometry=None, bias=(0, 0, 5.0, 0, 0)):
    """A real module whose network predicts LAD everywhere (so calcium = HU >= threshold); its
    logits are ``bias`` everywhere (another class, or another confidence, with another bias)."""
    import torch

    from cac_lightning.models import CACSegModule

    module = CACSegModule(
        net={"name": "unet", "channels": list(channels)},
        criterion={"name": "focal"},
        input={"window": [-1024.0, 2048.0]},
        data_geometry=data_geometry,
    )
    with torch.no_grad():
        for p in module.net.parameters():
            p.zero_()
        last = [m for m in module.net.modules() if isinstance(m, torch.nn.Conv2d)][-1]
        assert last.out_channels == 5
        last.bias.copy_(torch.tensor([float(b) for b in bias]))
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}, path)
    return path


def small_series(folder, seed: int, calcified_slices: int = 1, size: int = 32):
    """A DICOM series of ``calcified_slices + 3`` slices, 16 px of 420 HU on each calcified one
    (0.5 mm pixels: 16 Agatston per calcified slice)."""
    import numpy as np

    from cac_lightning.io import write_dicom_series
    from cac_lightning.volume import Geometry

    rng = np.random.default_rng(seed)
    hu = rng.normal(40, 10, (calcified_slices + 3, size, size)).astype(np.int16)
    hu[1 : 1 + calcified_slices, 8:12, 8:12] = 420
    g = Geometry(
        shape=hu.shape,
        pixel_spacing=(0.5, 0.5),
        slice_spacing=3.0,
        origin=(0.0, 0.0, 0.0),
        slice_thickness=3.0,
    )
    return write_dicom_series(hu, g, folder, patient_id=f"SYN{seed:04d}")


@pytest.fixture
def make_lad_ckpt():
    """:func:`always_lad_checkpoint` as a fixture (test modules do not import conftest)."""
    return always_lad_checkpoint


@pytest.fixture
def lad_ckpt(tmp_path):
    return always_lad_checkpoint(tmp_path / "model.ckpt")


@pytest.fixture
def make_small_series():
    """:func:`small_series` as a fixture."""
    return small_series
