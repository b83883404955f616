"""Helpers for the CLI tests (the checkpoint and series helpers live in ``tests/conftest.py``)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def compose_train_fn():
    """``compose_train(root, overrides)`` of the top-level conftest (usable in module fixtures)."""
    path = Path(__file__).resolve().parents[1] / "conftest.py"
    spec = importlib.util.spec_from_file_location("_cac_tests_conftest", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.compose_train


@pytest.fixture(autouse=True)
def no_heart_region(monkeypatch):
    """``cac-score --ckpt`` tests score toy series with no chest in them (``small_series``):
    no heart region. The heart stage and its CLI outputs are tested in ``tests/heart``."""
    from cac_lightning.inference import Predictor

    monkeypatch.setattr(Predictor, "default_heart", "off")
