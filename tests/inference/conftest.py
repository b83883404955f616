"""The lesion network's tests run on toy volumes with no chest in them: no heart region.

The heart stage itself, with its default ``auto``, is tested in ``tests/heart``.
"""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def no_heart_region(monkeypatch):
    from cac_lightning.inference import Predictor

    monkeypatch.setattr(Predictor, "default_heart", "off")
