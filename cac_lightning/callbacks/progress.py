"""Lightning's progress bar, made safe for DDP.

Lightning's bars (Rich and tqdm) refresh their metrics in ``on_train_epoch_end`` on rank 0
only (the other ranks' bars are disabled). Reading the metrics there reduces every
``sync_dist`` value: collectives that rank 0 runs and the other ranks do not, before the
module's own epoch-end collectives (the torchmetrics reduction of the slice metrics). The ranks
then wait on different collectives and the run hangs (measured: ``trainer=ddp_cpu`` with the
training-speed callback never finished). Under DDP this bar skips that one refresh; the epoch's
metrics show at the next refresh (validation, next epoch) and in every logger, as before.
"""

from __future__ import annotations

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ProgressBar, RichProgressBar, TQDMProgressBar
from lightning.pytorch.utilities.imports import _RICH_AVAILABLE

__all__ = ["progress_bar"]


class _RankSymmetricEpochEnd:
    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.world_size > 1:
            return  # a metrics read here would be a rank-0-only collective
        super().on_train_epoch_end(trainer, pl_module)  # type: ignore[misc]


class RankSafeRichProgressBar(_RankSymmetricEpochEnd, RichProgressBar):
    """:class:`~lightning.pytorch.callbacks.RichProgressBar` without the DDP epoch-end read."""


class RankSafeTQDMProgressBar(_RankSymmetricEpochEnd, TQDMProgressBar):
    """:class:`~lightning.pytorch.callbacks.TQDMProgressBar` without the DDP epoch-end read."""


def progress_bar() -> ProgressBar:
    """The bar Lightning would choose (Rich when installed, else tqdm), DDP-safe."""
    return RankSafeRichProgressBar() if _RICH_AVAILABLE else RankSafeTQDMProgressBar()
