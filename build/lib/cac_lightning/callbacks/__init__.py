"""Lightning callbacks: scan-level Agatston evaluation, loss-gap stopping, overlay images."""

from cac_lightning.callbacks.agatston import ScanAgatstonEvaluation
from cac_lightning.callbacks.images import OverlayImageLogger
from cac_lightning.callbacks.loss_gap import LossGapStopping

__all__ = ["LossGapStopping", "OverlayImageLogger", "ScanAgatstonEvaluation"]
