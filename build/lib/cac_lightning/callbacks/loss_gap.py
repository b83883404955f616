"""The paper's stopping rule (Hong et al. 2022, section 2.4).

"Training of the model ceased when the difference between the focal loss of the
model for Validation Data Set and the Training Data Set was greater than a
certain value." Here: stop when ``val/loss - train/loss > margin`` for
``patience`` consecutive epochs.
"""

from __future__ import annotations

import logging
import math

from lightning.pytorch import Callback, LightningModule, Trainer

__all__ = ["LossGapStopping"]

log = logging.getLogger(__name__)


class LossGapStopping(Callback):
    """Stop when the validation loss exceeds the training loss by more than ``margin``.

    Args:
        margin: allowed ``val_loss - train_loss`` (same criterion, epoch means). Default 0.01.
        patience: consecutive epochs over the margin before stopping. Default 2.
        train_key / val_key: the logged epoch losses.
    """

    def __init__(
        self,
        margin: float = 0.01,
        patience: int = 2,
        train_key: str = "train/loss",
        val_key: str = "val/loss",
    ) -> None:
        self.margin = float(margin)
        self.patience = int(patience)
        self.train_key = train_key
        self.val_key = val_key
        self.wait = 0
        self.stopped_epoch: int | None = None

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        metrics = trainer.callback_metrics
        if self.train_key not in metrics or self.val_key not in metrics:
            return
        gap = float(metrics[self.val_key]) - float(metrics[self.train_key])
        if not math.isfinite(gap):
            return
        pl_module.log("val/loss_gap", gap, sync_dist=False)
        self.wait = self.wait + 1 if gap > self.margin else 0
        if self.wait >= self.patience:
            self.stopped_epoch = trainer.current_epoch
            trainer.should_stop = True
            log.info("loss gap %.4f > %.4f for %d epochs: stopping", gap, self.margin, self.wait)

    def state_dict(self) -> dict:
        return {"wait": self.wait, "stopped_epoch": self.stopped_epoch}

    def load_state_dict(self, state_dict: dict) -> None:
        self.wait = int(state_dict.get("wait", 0))
        self.stopped_epoch = state_dict.get("stopped_epoch")
