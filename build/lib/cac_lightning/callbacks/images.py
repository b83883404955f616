"""Overlay images of validation slices (reference | prediction) for W&B dashboards."""

from __future__ import annotations

import numpy as np
import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import WandbLogger

from cac_lightning.evaluation.overlay import render_overlay, side_by_side

__all__ = ["OverlayImageLogger", "pick_slices"]


def pick_slices(scans, n: int) -> list[tuple[int, int]]:
    """The ``n`` (scan, slice) pairs with the most reference calcium, one per scan first."""
    best = []
    for i, scan in enumerate(scans):
        counts = (np.asarray(scan.labels) > 0).sum(axis=(1, 2))
        if counts.max() > 0:
            best.append((int(counts.max()), i, int(counts.argmax())))
    best.sort(reverse=True)
    return [(i, z) for _, i, z in best[:n]]


class OverlayImageLogger(Callback):
    """Log ``num_images`` validation slices, reference and prediction side by side, each epoch.

    Only loggers that take images (W&B) receive them; captions carry the scan id
    and slice index, never patient data.
    """

    def __init__(self, num_images: int = 4) -> None:
        self.num_images = int(num_images)
        self.last: list[np.ndarray] = []

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        wandb_loggers = [lg for lg in trainer.loggers if isinstance(lg, WandbLogger)]
        if not wandb_loggers or not hasattr(trainer.datamodule, "scans"):
            return
        from cac_lightning.data.transforms import make_input

        scans = trainer.datamodule.scans("val")
        inp = dict(pl_module.hparams.get("input", {}) or {})
        images, captions = [], []
        for i, z in pick_slices(scans, self.num_images):
            hu = np.asarray(scans[i].hu[z])
            x = make_input(
                hu[None],
                window=tuple(inp.get("window", (-1024.0, 2048.0))),
                threshold_hu=float(inp.get("threshold_hu", 130.0)),
            )
            with torch.no_grad():
                pred = pl_module(x.to(pl_module.device)).argmax(1)[0].cpu().numpy()
            pred[hu < float(inp.get("threshold_hu", 130.0))] = 0
            ref = np.asarray(scans[i].labels[z])
            images.append(side_by_side(render_overlay(hu, ref), render_overlay(hu, pred)))
            captions.append(f"{scans[i].scan_id} slice {z}: reference | prediction")
        self.last = images
        for lg in wandb_loggers:
            if images:
                lg.log_image(
                    key="val/overlays", images=images, caption=captions, step=trainer.global_step
                )
