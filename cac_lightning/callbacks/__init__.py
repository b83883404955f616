"""Lightning callbacks: scan-level Agatston evaluation, loss-gap stopping, overlay images,
run dashboards."""

from cac_lightning.callbacks.agatston import ScanAgatstonEvaluation
from cac_lightning.callbacks.checkpoint import ResumableModelCheckpoint
from cac_lightning.callbacks.dashboard import RunDashboard
from cac_lightning.callbacks.images import OverlayImageLogger
from cac_lightning.callbacks.loss_gap import LossGapStopping

__all__ = [
    "LossGapStopping",
    "OverlayImageLogger",
    "ResumableModelCheckpoint",
    "RunDashboard",
    "ScanAgatstonEvaluation",
]
