"""Same command, same seed, same numbers: two smoke runs write the same metrics (all but the
wall-clock training speed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cac_lightning.cli.train import train
from cac_lightning.evaluation.runs import TIMING_KEYS


@pytest.mark.slow
def test_two_runs_same_metrics(train_cfg, tmp_path):
    from cac_lightning.sources.synthetic import generate_cohort

    cohort = tmp_path / "cohort"
    generate_cohort(cohort, 8, seed=0, size=64, workers=1)
    summaries = []
    for run in ("a", "b"):
        cfg = train_cfg(
            [f"data.data_dir={cohort}", "logger=csv", "data.num_workers=1"], tmp_path / run
        )
        assert cfg.trainer.deterministic is True
        train(cfg)
        summary = json.loads(Path(cfg.summary_path).read_text())
        summary.pop("best_checkpoint", None)
        for key in TIMING_KEYS:  # wall-clock speed: the one metric that may differ
            assert summary["metrics"].pop(key) > 0
        summaries.append(summary)
    assert summaries[0]["metrics"] and summaries[0] == summaries[1]
