"""Model size and training speed: counted over training steps only, logged every epoch."""

from __future__ import annotations

import time

import lightning as L
import pytest
import torch

from cac_lightning.callbacks import TrainingThroughput
from cac_lightning.callbacks.throughput import batch_slices


class Tiny(L.LightningModule):
    """One 3x3 conv (2 -> 5 channels: 95 parameters, 2 of them frozen); validation sleeps."""

    def __init__(self, val_sleep: float = 0.0):
        super().__init__()
        self.conv = torch.nn.Conv2d(2, 5, 3)
        self.frozen = torch.nn.Parameter(torch.zeros(2), requires_grad=False)
        self.val_sleep = val_sleep

    def training_step(self, batch, batch_idx):
        return self.conv(batch["image"]).mean()

    def validation_step(self, batch, batch_idx):
        time.sleep(self.val_sleep)

    def configure_optimizers(self):
        return torch.optim.SGD(self.conv.parameters(), lr=0.1)


def _loader(n: int, batch_size: int):
    items = [{"image": torch.zeros(2, 8, 8)} for _ in range(n)]
    return torch.utils.data.DataLoader(items, batch_size=batch_size)


def test_params_and_slices_per_second_exclude_validation():
    cb = TrainingThroughput()
    trainer = L.Trainer(
        max_epochs=2, callbacks=[cb], logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
    )  # fmt: skip
    model = Tiny(val_sleep=0.25)
    trainer.fit(model, _loader(12, 4), _loader(1, 1))  # 3 steps of 4 slices per epoch
    assert cb.steps == 6 and cb.slices == 5 * 4  # the first step is warm-up
    assert 0 < cb.seconds < 0.25  # two validations slept 0.5 s: not counted
    metrics = trainer.callback_metrics
    assert metrics["model/params"] == 2 * 5 * 9 + 5
    assert float(metrics["train/slices_per_s"]) == pytest.approx(cb.slices / cb.seconds)
    # the last epoch: 0.25 s of validation in an epoch of a little more
    epoch, share = float(metrics["time/epoch_s"]), float(metrics["time/val_share"])
    assert 0.25 <= epoch < 1.5 and 0.25 / epoch == pytest.approx(share, rel=0.05)
    assert 0.15 < share <= 1.0


def test_one_step_is_timed_even_as_warm_up():
    cb = TrainingThroughput()
    trainer = L.Trainer(
        max_epochs=1, callbacks=[cb], logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
    )  # fmt: skip
    trainer.fit(Tiny(), _loader(3, 3))
    assert cb.slices == 0 and trainer.callback_metrics["train/slices_per_s"] > 0


def test_batch_slices():
    assert batch_slices({"image": torch.zeros(7, 2, 4, 4)}) == 7
    assert batch_slices((torch.zeros(3, 1), torch.zeros(3))) == 3
    assert batch_slices({"target": torch.zeros(2)}) == 0
    with pytest.raises(ValueError):
        TrainingThroughput(warmup_steps=-1)
