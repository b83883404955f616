"""Overlay images of validation slices (reference | prediction) for W&B dashboards.

Each image is a legible panel (:func:`~cac_lightning.evaluation.panels.overlay_panel`) of a
native validation scan (``datamodule.native_scans("val")``): cropped around the calcium at the
scan's native resolution, a vessel colour legend, the
HU window and pixel size in the caption. The slices are chosen once (at the first
validation) and kept, so epochs can be compared image by image. Predictions come from
:class:`~cac_lightning.inference.Predictor` (the same path as ``cac-score``: resampling,
padding, precision, the scan's HU gate).
"""

from __future__ import annotations

import numpy as np
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import WandbLogger

from cac_lightning.evaluation.panels import overlay_panel

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
        self.slices: list[tuple[str, int]] | None = None  # (scan id, slice), fixed once chosen

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        wandb_loggers = [lg for lg in trainer.loggers if isinstance(lg, WandbLogger)]
        if not wandb_loggers or not hasattr(trainer.datamodule, "native_scans"):
            return
        from cac_lightning.inference import Predictor

        scans = trainer.datamodule.native_scans("val")
        if self.slices is None:
            self.slices = [(scans[i].scan_id, z) for i, z in pick_slices(scans, self.num_images)]
        by_id = {s.scan_id: s for s in scans}
        predictor = Predictor.from_module(pl_module)
        images, captions = [], []
        for scan_id, z in self.slices:
            scan = by_id.get(scan_id)
            if scan is None:
                continue
            hu = np.asarray(scan.hu[z])
            pred = predictor.predict(
                hu[None],
                pixel_spacing=tuple(scan.geometry.pixel_spacing),
                kvp=getattr(scan, "kvp", None),
            )[0]
            ref = np.asarray(scan.labels[z])
            title = f"{scan_id} slice {z} · epoch {trainer.current_epoch}"
            images.append(overlay_panel(hu, ref, pred, scan.geometry.pixel_spacing, title=title))
            captions.append(f"{scan_id} slice {z}: reference | prediction")
        self.last = images
        for lg in wandb_loggers:
            if images:
                lg.log_image(
                    key="val/overlays", images=images, caption=captions, step=trainer.global_step
                )
