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
