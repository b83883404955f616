"""Lightning callbacks: scan-level Agatston evaluation, loss-gap stopping, overlay images,
run dashboards, model size and training speed, an EMA of the weights."""

from cac_lightning.callbacks.agatston import ScanAgatstonEvaluation
from cac_lightning.callbacks.checkpoint import ResumableModelCheckpoint
from cac_lightning.callbacks.dashboard import RunDashboard
from cac_lightning.callbacks.ema import EMAWeights
from cac_lightning.callbacks.images import OverlayImageLogger
from cac_lightning.callbacks.loss_gap import LossGapStopping
from cac_lightning.callbacks.throughput import TrainingThroughput

__all__ = [
    "EMAWeights",
    "LossGapStopping",
    "OverlayImageLogger",
    "ResumableModelCheckpoint",
    "RunDashboard",
    "ScanAgatstonEvaluation",
    "TrainingThroughput",
]
