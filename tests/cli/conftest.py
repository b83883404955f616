"""Helpers for the ``cac-score`` tests: a checkpoint that predicts LAD everywhere, small scans."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from cac_lightning.io.volume import Geometry


def always_lad_checkpoint(path):
    """A real module whose network predicts LAD everywhere (so calcium = HU >= 130)."""
    import torch

    from cac_lightning.models import CACSegModule

    module = CACSegModule(
        net={"name": "unet", "channels": [4, 8]},
        criterion={"name": "focal"},
        input={"window": [-1024.0, 2048.0], "threshold_hu": 130.0},
    )
    with torch.no_grad():
        for p in module.net.parameters():
            p.zero_()
        last = [m for m in module.net.modules() if isinstance(m, torch.nn.Conv2d)][-1]
        last.bias.copy_(torch.tensor([0.0, 0.0, 5.0, 0.0, 0.0]))
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}, path)
    return path


def small_series(folder, seed: int, calcified_slices: int = 1, size: int = 32):
    """A DICOM series of ``calcified_slices + 3`` slices, 16 px of 420 HU on each calcified one."""
    from cac_lightning.io import write_dicom_series

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
def lad_ckpt(tmp_path):
    return always_lad_checkpoint(tmp_path / "model.ckpt")


@pytest.fixture
def make_series():
    """:func:`small_series` as a fixture (test modules do not import conftest)."""
    return small_series


@pytest.fixture(scope="session")
def compose_train_fn():
    """``compose_train(root, overrides)`` of the top-level conftest (usable in module fixtures)."""
    path = Path(__file__).resolve().parents[1] / "conftest.py"
    spec = importlib.util.spec_from_file_location("_cac_tests_conftest", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.compose_train
