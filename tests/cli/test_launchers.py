"""Hydra launchers: `hydra/launcher=gpu_shared` runs a batch of trials at the same time (several
trials on one GPU), `hydra/launcher=slurm` composes for a cluster."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from cac_lightning.config import CONF_DIR

REPO = Path(__file__).resolve().parents[2]


def _hydra(*overrides: str):
    with initialize_config_dir(CONF_DIR, version_base="1.3"):
        return compose("train", overrides=list(overrides), return_hydra_config=True).hydra


def test_gpu_shared_launcher_composes_with_a_trial_count():
    hydra = _hydra("hydra/launcher=gpu_shared", "hydra.sweeper.max_batch_size=8")
    assert hydra.launcher._target_.endswith("submitit_launcher.LocalLauncher")
    assert hydra.launcher.gpus_per_node == 1  # every trial gets CUDA_VISIBLE_DEVICES=0
    assert hydra.sweeper.max_batch_size == 8


def test_slurm_launcher_composes():
    hydra = _hydra("hydra/launcher=slurm")
    assert hydra.launcher._target_.endswith("submitit_launcher.SlurmLauncher")


@pytest.mark.slow
def test_gpu_shared_runs_a_batch_of_trials_at_the_same_time(tmp_path):
    from cac_lightning.sources.synthetic import generate_cohort

    cohort = tmp_path / "synthetic"
    generate_cohort(cohort, 8, seed=0, size=64, workers=1)
    r = subprocess.run(
        [
            sys.executable, "-m", "cac_lightning.cli.train", "-m", "hydra/launcher=gpu_shared",
            "hydra.launcher.gpus_per_node=0", "hydra.sweeper.max_batch_size=2",
            "experiment=smoke", "seed=1,2", "trainer.max_epochs=1", "test=false",
            f"data.data_dir={cohort}", "logger=csv", f"paths.log_dir={tmp_path / 'logs'}",
        ],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    jobs = sorted(p for p in (tmp_path / "logs").glob("smoke/multiruns/*/*") if p.name.isdigit())
    assert [j.name for j in jobs] == ["0", "1"]
    spans = []
    for job in jobs:
        start = (job / ".hydra" / "config.yaml").stat().st_mtime
        end = (job / "checkpoints" / "last.ckpt").stat().st_mtime
        spans.append((start, end))
    (s0, e0), (s1, e1) = spans
    assert s1 < e0 and s0 < e1, spans  # the two trials ran at the same time
    assert len(list((tmp_path / "logs").rglob(".submitit/*/*_result.pkl"))) == 2
