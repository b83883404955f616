"""An exponential moving average of the weights, validated, checkpointed and scored.

Lightning's :class:`~lightning.pytorch.callbacks.WeightAveraging` keeps the average: it is swapped
in for each validation epoch (so the scan-level evaluation and the checkpoint choice see it; list
this callback after ``agatston`` so its swap back comes after that evaluation) and saved as the
checkpoint's ``state_dict``, which is what ``cac-score``, the floor calibration and the test load.
The one change here: loading a checkpoint outside fitting (``trainer.test(ckpt_path=...)``) keeps
the averaged ``state_dict`` instead of restoring the raw training weights, so the test scores the
weights every other reader of the file gets.
"""

from __future__ import annotations

from typing import Any

from lightning import LightningModule, Trainer
from lightning.pytorch.callbacks import WeightAveraging
from lightning.pytorch.trainer.states import TrainerFn
from torch.optim.swa_utils import get_ema_multi_avg_fn


class EMAWeights(WeightAveraging):
    """EMA of parameters and buffers, ``avg = decay * avg + (1 - decay) * w`` after every
    optimiser step from ``start_step`` on (the first update copies the weights)."""

    def __init__(self, decay: float = 0.99, start_step: int = 0) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        super().__init__(multi_avg_fn=get_ema_multi_avg_fn(decay))
        self.decay = decay
        self.start_step = start_step

    def should_update(self, step_idx: int | None = None, epoch_idx: int | None = None) -> bool:
        return step_idx is not None and step_idx >= self.start_step

    def on_load_checkpoint(
        self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        if trainer.state.fn == TrainerFn.FITTING:
            super().on_load_checkpoint(trainer, pl_module, checkpoint)
