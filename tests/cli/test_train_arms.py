"""`cac-train experiment=smoke model/net=<arm>` for every arm of the registry: one epoch ends with
exit code 0, its checkpoint reloads and labels a synthetic scan through the Predictor, and
`cac-score --ckpt` scores a DICOM series with it (the user's round trip)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cac_lightning.inference import Predictor
from cac_lightning.models import NETS

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    from cac_lightning.sources.synthetic import generate_cohort

    out = tmp_path_factory.mktemp("cohort") / "synthetic"
    generate_cohort(out, 8, seed=0, size=64, workers=1)
    return out


@pytest.fixture(scope="module")
def scan():
    """A synthetic scan on another grid than the cohort's (96² instead of 64²)."""
    from cac_lightning.sources.synthetic import make_scan

    return make_scan(seed=1, index=0, size=96)


@pytest.mark.parametrize("arm", list(NETS))
def test_smoke_recipe_trains_every_arm(arm, cohort, scan, tmp_path, make_small_series):
    logs = tmp_path / "logs"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "cac_lightning.cli.train",
            "experiment=smoke",
            f"model/net={arm}",
            f"data.data_dir={cohort}",
            "logger=csv",
            "trainer.max_epochs=1",
            "test=false",
            f"paths.log_dir={logs}",
        ],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert r.returncode == 0, r.stderr[-3000:]
    (last,) = logs.rglob("checkpoints/last.ckpt")
    predictor = Predictor.from_checkpoint(last, device="cpu")
    assert predictor.record.network.name == arm
    labels = predictor.predict(scan.hu, pixel_spacing=scan.geometry.pixel_spacing, kvp=120.0)
    assert labels.shape == scan.hu.shape and labels.dtype == np.uint8
    assert set(np.unique(labels)) <= set(range(5))
    from cac_lightning.cli.score import main as score

    series = make_small_series(tmp_path / "series", 3, calcified_slices=2, size=64)
    out = tmp_path / "scored"
    args = [str(series), "--ckpt", str(last), "--out", str(out), "--device", "cpu"]
    assert score([*args, "--heart", "off"]) == 0
    (js,) = out.glob("*.json")
    assert json.loads(js.read_text())["model"]["net"]
    shutil.rmtree(logs)  # a library arm's checkpoint with Adam states is 0.1-0.6 GB
