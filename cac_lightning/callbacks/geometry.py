"""Record what the network is trained on in the checkpoint: the data geometry, the input's
threshold source and the data definition (:mod:`cac_lightning.models.checkpoint`)."""

from __future__ import annotations

import dataclasses

from lightning.pytorch import Callback, LightningModule, Trainer

from cac_lightning.errors import CACError
from cac_lightning.models.checkpoint import DataGeometry, InputSpec, describe_datamodule

__all__ = ["RecordDataGeometry"]


class RecordDataGeometry(Callback):
    """Stores the DataModule's description in the module's hyper-parameters (checkpoint schema).

    ``data_geometry``: :class:`~cac_lightning.models.checkpoint.DataGeometry` of
    ``datamodule.geometry_summary()``; ``input.threshold``: ``datamodule.input_threshold()``
    (``"scan"`` or a fixed HU), checked against the DataModule's ``context_slices``
    (the network was built for ``input.context``); ``data``: the DataModule's class and arguments
    (:func:`~cac_lightning.models.checkpoint.describe_datamodule`), which ``cac-eval`` rebuilds.

    Lightning calls a callback's ``setup`` after ``datamodule.setup(stage)`` and before
    training, on every rank (after rank 0's ``prepare_data``), so the checkpoint records the
    grid the network is trained on (the spacing, window and ranges the Predictor reads) without
    preparing data outside Lightning. A module-level class, so ``ddp_spawn`` can pickle it.
    """

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        dm = trainer.datamodule
        if stage != "fit" or dm is None:
            return
        summary = getattr(dm, "geometry_summary", None)
        if summary is not None:
            geometry = DataGeometry.from_dict(summary())
            pl_module.hparams["data_geometry"] = geometry.to_dict() if geometry else None
        spec = InputSpec.from_dict(pl_module.hparams.get("input"))
        threshold = getattr(dm, "input_threshold", None)
        if threshold is not None:
            spec = dataclasses.replace(spec, threshold=threshold())
            pl_module.hparams["input"] = spec.to_dict()
        context = getattr(dm, "context_slices", None)
        if context is not None and int(context) != spec.context:
            raise CACError(
                f"the data gives {context} context slices a side but the network was built "
                f"for model.input.context={spec.context}: set both from data.context_slices"
            )
        data = describe_datamodule(dm)
        if data is not None:
            pl_module.hparams["data"] = data
