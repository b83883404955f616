"""Model size and training speed of every run, for ``cac-compare``'s leaderboard.

Logs ``model/params`` (trainable parameters) and ``train/slices_per_s`` (training slices per
second of wall time spent in training steps) at the end of every training epoch, so both reach
the loggers and the run's ``metrics.json``. A training step is timed from the batch's start to
its end (forward, backward, optimiser step; on CUDA after a synchronisation), so data loading and
validation are not in the figure: it compares networks on the same data pipeline. The first step
of the fit (warm-up: allocator, cuDNN autotuning) is left out when more follow. Under DDP each
rank's figure is summed (the throughput of the whole run).

Also logged every epoch, for sizing long runs: ``time/epoch_s`` (wall seconds from the epoch's
start to its end, its validation included) and ``time/val_share`` (the share of it spent in
validation; rank 0's figures under DDP, no reduction).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping

import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from cac_lightning.evaluation.runs import EPOCH_SECONDS_KEY, SPEED_KEY, VAL_SHARE_KEY
from cac_lightning.models.registry import count_parameters

__all__ = ["TrainingThroughput", "batch_slices"]


def batch_slices(batch: object) -> int:
    """Slices in a training batch: the first dimension of ``batch["image"]`` (or of the first
    tensor of a sequence); 0 when there is none."""
    if isinstance(batch, Mapping):
        batch = batch.get("image")
    if isinstance(batch, (list, tuple)) and batch:
        batch = batch[0]
    return int(batch.shape[0]) if isinstance(batch, torch.Tensor) and batch.ndim else 0


class TrainingThroughput(Callback):
    """Log ``model/params`` and ``train/slices_per_s`` every training epoch.

    Args:
        warmup_steps: steps at the start of the fit left out of the speed (default 1), when
            more steps follow.
    """

    def __init__(self, warmup_steps: int = 1) -> None:
        if warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}")
        self.warmup_steps = int(warmup_steps)
        self._reset()

    def _reset(self) -> None:
        self.steps = 0
        self.slices = 0
        self.seconds = 0.0
        self._warm: tuple[int, float] | None = None  # the last warm-up step: slices, seconds
        self._start: float | None = None
        self._epoch_start: float | None = None
        self._val_start: float | None = None
        self._val_seconds = 0.0

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._reset()

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._epoch_start, self._val_seconds = time.perf_counter(), 0.0

    def on_validation_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._val_start = time.perf_counter()

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._val_start is not None and not trainer.sanity_checking:
            self._val_seconds += time.perf_counter() - self._val_start
        self._val_start = None

    @staticmethod
    def _sync(pl_module: LightningModule) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)

    def on_train_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch: object, batch_idx: int
    ) -> None:
        self._sync(pl_module)
        self._start = time.perf_counter()

    def on_train_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: object,
        batch: object,
        batch_idx: int,
    ) -> None:
        if self._start is None:
            return
        self._sync(pl_module)
        seconds, self._start = time.perf_counter() - self._start, None
        self.steps += 1
        if self.steps <= self.warmup_steps:
            self._warm = (batch_slices(batch), seconds)
            return
        self.slices += batch_slices(batch)
        self.seconds += seconds

    def slices_per_s(self) -> float:
        """Training slices per second so far (the warm-up step alone when nothing follows)."""
        slices, seconds = self.slices, self.seconds
        if not slices and self._warm is not None:
            slices, seconds = self._warm
        return slices / seconds if seconds > 0 else float("nan")

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        pl_module.log("model/params", float(count_parameters(pl_module)), sync_dist=False)
        speed = self.slices_per_s()
        if math.isfinite(speed):  # at least one timed step
            pl_module.log(SPEED_KEY, speed, sync_dist=True, reduce_fx="sum")
        if self._epoch_start is not None:
            seconds = time.perf_counter() - self._epoch_start
            pl_module.log(EPOCH_SECONDS_KEY, seconds, sync_dist=False)
            pl_module.log(VAL_SHARE_KEY, self._val_seconds / seconds, sync_dist=False)
