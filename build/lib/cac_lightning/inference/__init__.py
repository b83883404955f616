"""Model inference: whole-slice prediction of calcium label maps."""

from cac_lightning.inference.predict import predict_labels

__all__ = ["predict_labels"]
