"""Model inference: the :class:`Predictor` (checkpoint -> calcium labels on a scan's grid)."""

from cac_lightning.inference.predictor import Predictor, resolve_device

__all__ = ["Predictor", "resolve_device"]
