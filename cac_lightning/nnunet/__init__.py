"""nnU-Net v2 as an arm of ours: export a manifest dataset, score nnU-Net's predictions.

- :mod:`~cac_lightning.nnunet.layout`: nnU-Net's folder layout, our channels and labels in it.
- :mod:`~cac_lightning.nnunet.export`: a manifest dataset -> an nnU-Net raw dataset whose fold 0
  is our train/val split (``cac-export-nnunet``).
- :mod:`~cac_lightning.nnunet.predictions`: ``nnUNetv2_predict``'s label maps -> our per-scan
  records and ``metrics.json`` (``cac-import-nnunet``), for ``cac-compare``.

Nothing here imports ``nnunetv2``: the files are the interface (docs/nnunet.md).
"""

from __future__ import annotations

from cac_lightning.nnunet.export import ExportResult, export_dataset
from cac_lightning.nnunet.predictions import score_predictions, write_run

__all__ = ["ExportResult", "export_dataset", "score_predictions", "write_run"]
