"""Record the training grid in the checkpoint (``data_geometry`` hyper-parameter)."""

from __future__ import annotations

from lightning.pytorch import Callback, LightningModule, Trainer

__all__ = ["RecordDataGeometry"]


class RecordDataGeometry(Callback):
    """Stores ``datamodule.geometry_summary()`` as the module's ``data_geometry`` hyper-parameter.

    Lightning calls a callback's ``setup`` after ``datamodule.setup(stage)`` and before
    training, on every rank (after rank 0's ``prepare_data``), so the checkpoint records the
    grid the network is trained on (the spacing, window and ranges the Predictor reads) without
    preparing data outside Lightning. A module-level class, so ``ddp_spawn`` can pickle it.
    """

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        summary = getattr(trainer.datamodule, "geometry_summary", None)
        if stage == "fit" and summary is not None:
            pl_module.hparams["data_geometry"] = summary()
