"""The paper's stopping rule (Hong et al. 2022, section 2.4), on a footing where it can fire.

"Training of the model ceased when the difference between the focal loss of the
model for Validation Data Set and the Training Data Set was greater than a
certain value." The paper does not give the value. The focal loss is a
per-pixel mean over whole 512² slices: about 0.4 at the start and 1e-4 to 1e-6
once the background is confidently classified, so an absolute margin such as
0.01 can never be exceeded. The statistic here is therefore the *relative* gap

    gap = (val_loss - train_loss) / train_loss

(scale-free: "the validation loss is ``margin`` x 100 % above the training
loss"), and training stops when ``gap > margin`` for ``patience`` consecutive
validated epochs. ``relative=False`` gives the literal absolute difference.

Same footing: both losses are the same criterion averaged per pixel over a
balanced (1:1) draw of slices: the training sampler's draw and the validation
split's fixed balanced draw (``CACDataModule.val_dataloader``). In the paper
recipe training is not augmented, so both are measured on un-augmented scans;
where augmentation is on, the training loss is measured on augmented slices
and the gap is biased low (the rule fires later). The training loss is the mean
over the epoch while the weights change, which also biases the gap low early on.

The statistic is logged every validated epoch as ``train/loss_gap`` (and the
absolute difference as ``train/loss_gap_abs``) and written to the run log.
"""

from __future__ import annotations

import logging
import math

from lightning.pytorch import Callback, LightningModule, Trainer

__all__ = ["LossGapStopping", "loss_gap"]

log = logging.getLogger(__name__)


def loss_gap(train_loss: float, val_loss: float, relative: bool = True) -> float:
    """``(val - train) / train`` (``relative``) or ``val - train``; NaN when undefined."""
    train_loss, val_loss = float(train_loss), float(val_loss)
    if not (math.isfinite(train_loss) and math.isfinite(val_loss)):
        return math.nan
    if not relative:
        return val_loss - train_loss
    if train_loss <= 0.0:
        return math.nan
    return (val_loss - train_loss) / train_loss


class LossGapStopping(Callback):
    """Stop when the validation loss exceeds the training loss by more than ``margin``.

    Args:
        margin: allowed gap; relative (default 1.0: validation loss up to twice the
            training loss) or, with ``relative=False``, absolute.
        patience: consecutive validated epochs over the margin before stopping.
            Default 2.
        relative: use ``(val - train) / train`` (default) instead of ``val - train``.
        train_key / val_key: the logged epoch losses.
    """

    def __init__(
        self,
        margin: float = 1.0,
        patience: int = 2,
        relative: bool = True,
        train_key: str = "train/loss",
        val_key: str = "val/loss",
    ) -> None:
        if not margin >= 0 or patience < 1:
            raise ValueError(f"margin must be >= 0 and patience >= 1, got {margin}, {patience}")
        self.margin = float(margin)
        self.patience = int(patience)
        self.relative = bool(relative)
        self.train_key = train_key
        self.val_key = val_key
        self.wait = 0
        self.stopped_epoch: int | None = None
        self.history: list[dict[str, float]] = []
        self._validated_epoch: int | None = None

    def on_validation_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not getattr(trainer, "sanity_checking", False):
            self._validated_epoch = trainer.current_epoch

    def update(self, train_loss: float, val_loss: float, epoch: int) -> bool:
        """Feed one epoch's losses; returns True when the rule fires."""
        gap = loss_gap(train_loss, val_loss, self.relative)
        if not math.isfinite(gap):
            return False
        self.wait = self.wait + 1 if gap > self.margin else 0
        self.history.append(
            {"epoch": epoch, "train": float(train_loss), "val": float(val_loss), "gap": gap}
        )
        log.info(
            "epoch %d: loss train %.3g val %.3g, gap %s %.3g (stop above %.3g x%d: %d/%d)",
            epoch,
            train_loss,
            val_loss,
            "(val-train)/train" if self.relative else "val-train",
            gap,
            self.margin,
            self.patience,
            self.wait,
            self.patience,
        )
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            log.info("loss gap over %.3g for %d epochs: stopping", self.margin, self.wait)
            return True
        return False

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        metrics = trainer.callback_metrics
        if self.train_key not in metrics or self.val_key not in metrics:
            return
        epoch = trainer.current_epoch
        if self._validated_epoch is not None and self._validated_epoch != epoch:
            return  # no validation this epoch: the val loss is stale
        train_loss, val_loss = float(metrics[self.train_key]), float(metrics[self.val_key])
        gap = loss_gap(train_loss, val_loss, self.relative)
        if math.isfinite(gap):
            pl_module.log("train/loss_gap", gap, sync_dist=False)
            pl_module.log("train/loss_gap_abs", val_loss - train_loss, sync_dist=False)
        if self.update(train_loss, val_loss, epoch):
            trainer.should_stop = True

    def state_dict(self) -> dict:
        return {"wait": self.wait, "stopped_epoch": self.stopped_epoch}

    def load_state_dict(self, state_dict: dict) -> None:
        self.wait = int(state_dict.get("wait", 0))
        self.stopped_epoch = state_dict.get("stopped_epoch")
