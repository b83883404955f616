"""`cac-train` in physical units: the checkpoint records its grid; export_ckpt copies the best."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from cac_lightning.cli.train import train


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    from cac_lightning.sources.synthetic import generate_cohort

    out = tmp_path_factory.mktemp("cohort") / "synthetic"
    generate_cohort(out, 8, seed=0, size=64, workers=1)
    return out


def test_checkpoint_records_training_grid_and_best_is_exported(train_cfg, cohort, tmp_path, capsys):
    export = tmp_path / "stable" / "best.ckpt"
    cfg = train_cfg(
        [
            f"data.data_dir={cohort}",
            "logger=csv",
            "data.target_spacing_mm=2.0",
            "data.fov_mm=128",
            f"export_ckpt={export}",
        ]
    )
    _, objs = train(cfg)
    # the summary names the stable exported copy, not the timestamped run folder
    summary = json.loads(Path(cfg.summary_path).read_text())
    assert summary["best_checkpoint"] == str(export)
    dm = objs["datamodule"]
    assert {s.hu.shape[1:] for s in dm.scans("train")} == {(64, 64)}  # 128 mm / 2 mm
    assert export.is_file()
    geometry = torch.load(export, weights_only=True)["hyper_parameters"]["data_geometry"]
    assert geometry["spacing_mm"] == 2.0 and geometry["fov_mm"] == 128.0
    lo, hi = geometry["pixel_spacing_mm"]
    assert 2.5 < lo <= hi < 4.0  # the 64² synthetic scans' native spacing (165-230 mm / 64)
    assert geometry["kvp"] == [120]
    out = capsys.readouterr().out
    assert f"cac-score DICOM_FOLDER --ckpt {export}" in out
