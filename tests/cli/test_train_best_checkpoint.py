"""Which checkpoint `cac-train` keeps: the epoch of least validation Agatston error, not the last.

A real `cac-train experiment=smoke` run of 3 epochs (CSV logger, no early stopping). So that the
best epoch is not the last whatever the platform's training dynamics, :class:`WorsenFrom` turns
the network into "LAD at every candidate" from epoch 2 on (a large LAD bias on its output
convolutions), which scores all bone as calcium: epoch 2's ``val/agatston_mae`` is worse than
an earlier one's. The logged per-epoch metrics (``csv/metrics.csv``) decide the argmin.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest
import torch
from lightning.pytorch.callbacks import Callback

from cac_lightning.cli.train import train

MONITOR = "val/agatston_mae"


class WorsenFrom(Callback):
    """From training epoch ``epoch`` on, every 5-channel output convolution gets a LAD bias of
    ``bias`` (training cannot undo it in a few steps)."""

    def __init__(self, epoch: int = 2, bias: float = 50.0) -> None:
        self.epoch, self.bias = int(epoch), float(bias)

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch < self.epoch:
            return
        heads = [m for m in pl_module.net.modules() if isinstance(m, torch.nn.Conv2d)]
        with torch.no_grad():
            for conv in heads:
                if conv.out_channels == 5 and conv.bias is not None:
                    conv.bias.zero_()
                    conv.bias[2] = self.bias


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    from cac_lightning.sources.synthetic import generate_cohort

    out = tmp_path_factory.mktemp("cohort") / "synthetic"
    generate_cohort(out, 8, seed=0, size=64, workers=1)
    return out


def _per_epoch(metrics_csv: Path) -> dict[int, float]:
    rows = list(csv.DictReader(metrics_csv.open()))
    return {int(r["epoch"]): float(r[MONITOR]) for r in rows if r.get(MONITOR)}


@pytest.mark.slow
def test_best_checkpoint_is_the_argmin_epoch_of_val_agatston_mae(train_cfg, cohort):
    cfg = train_cfg(
        [
            f"data.data_dir={cohort}",
            "logger=csv",
            "test=false",
            "trainer.max_epochs=3",
            "model.optimizer.lr=1e-2",
            "~callbacks.early_stopping",
            "~callbacks.overlay_images",
            "~callbacks.dashboard",
            "callbacks.loss_gap_stopping.patience=100",
            f"+callbacks.worsen._target_={__name__}.WorsenFrom",
            "+callbacks.worsen.epoch=2",
        ]
    )
    assert cfg.monitor == MONITOR and cfg.monitor_mode == "min"
    _, objs = train(cfg)
    out = Path(cfg.paths.output_dir)
    per_epoch = _per_epoch(out / "csv" / "metrics.csv")
    assert sorted(per_epoch) == [0, 1, 2], per_epoch
    best_value = min(per_epoch.values())
    best_epochs = [e for e, v in per_epoch.items() if v == best_value]
    # the run discriminates: one best epoch, and it is not the last
    assert len(best_epochs) == 1 and best_epochs[0] != max(per_epoch), per_epoch
    callback = objs["trainer"].checkpoint_callback
    best = Path(callback.best_model_path)
    assert best.parent == out / "checkpoints"
    assert re.fullmatch(r"epoch(\d{3})\.ckpt", best.name), best.name
    assert int(best.name[5:8]) == best_epochs[0], (best.name, per_epoch)
    assert torch.load(best, weights_only=True)["epoch"] == best_epochs[0]
    assert float(callback.best_model_score) == pytest.approx(best_value)
    # save_top_k=1: the best file is the only epoch file; last.ckpt is the last epoch
    assert sorted(p.name for p in best.parent.glob("epoch*.ckpt")) == [best.name]
    assert torch.load(best.parent / "last.ckpt", weights_only=True)["epoch"] == 2
