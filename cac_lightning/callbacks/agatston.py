"""Scan-level Agatston evaluation during validation and test (the paper's model selection).

Each scan of a split goes through the one scan-level path: the scan on its **native** grid
(``datamodule.native_scans(split)``: the manifest's image and label map, not the training-grid
cache), the module wrapped in a :class:`~cac_lightning.inference.Predictor` (the same
training-grid transform, padding, precision, heart region and HU gate as ``cac-score``, logits
mapped back to the native grid) -> :func:`~cac_lightning.evaluation.records.evaluate_scans`
(scored on native voxels against the native reference labels) -> the flat
metrics of :func:`~cac_lightning.evaluation.tables.metrics_by_split`, the same code and the
same names as ``cac-eval``: ``val/agatston_mae``, ``val/agatston_mae_<VESSEL>``,
``val/icc_agatston_total``, ``val/kappa``, ``val/kappa_linear``, ``val/risk_accuracy``,
``val/dice`` (per-scan calcium-voxel Dice), ``test_zero/zero_cac_flagged_rate`` ...

Cost control: ``every_n_epochs`` (whole-scan validation every n-th epoch, starting with the
first; in between the last values are logged again, so checkpointing and early stopping
see a value every epoch) and ``val_scans`` (a fixed subset of n validation scans spread
over the range of reference scores). At the end of a fit a log line gives the share of
wall time spent in validation. Under DDP each rank scores a disjoint share of the scans
and the records are gathered.
"""

from __future__ import annotations

import logging
import time

import numpy as np
from lightning.pytorch import Callback, LightningModule, Trainer

__all__ = ["ScanAgatstonEvaluation", "pick_subset"]

log = logging.getLogger(__name__)


def _ref_total(scan) -> float:
    try:
        return float((getattr(scan, "ref", None) or {})["total"]["agatston"])
    except (KeyError, TypeError, ValueError):
        return float(np.asarray(scan.labels).any())


def pick_subset(scans: list, n: int | None) -> list:
    """A fixed subset of ``n`` scans spread evenly over the range of reference totals.

    Args:
        scans: the split's scans (``scan_id``; ``ref`` reference scores when known).
        n: how many; None or >= len(scans) keeps them all.

    Returns:
        The chosen scans in their original order (the same on every call).
    """
    if n is None or n >= len(scans):
        return list(scans)
    order = sorted(range(len(scans)), key=lambda i: (_ref_total(scans[i]), scans[i].scan_id))
    picks = {order[int(round(k))] for k in np.linspace(0, len(scans) - 1, max(1, int(n)))}
    return [s for i, s in enumerate(scans) if i in picks]


def _gather(trainer: Trainer, mine: list) -> list:
    """All ranks' ``(index, record dict)`` lists, concatenated (every rank gets all)."""
    if trainer.world_size <= 1:
        return mine
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return mine
    parts: list = [None] * trainer.world_size
    dist.all_gather_object(parts, mine)
    return [item for part in parts for item in part]


class ScanAgatstonEvaluation(Callback):
    """Score whole validation/test scans and log Agatston agreement.

    Args:
        batch_size: slices per forward pass.
        test_splits: splits scored at test time (default the test set and the zero-calcium set).
        every_n_epochs: whole-scan validation every n-th epoch (default 1: every epoch).
        val_scans: validate on a fixed subset of this many scans (default None: all).
    """

    def __init__(
        self,
        batch_size: int = 16,
        test_splits: tuple[str, ...] = ("test", "test_zero"),
        every_n_epochs: int = 1,
        val_scans: int | None = None,
    ):
        self.batch_size = int(batch_size)
        self.test_splits = tuple(test_splits)
        self.every_n_epochs = max(1, int(every_n_epochs))
        self.val_scans = None if val_scans is None else int(val_scans)
        self.records: dict[str, list] = {}
        # called as listener(split, scan, predicted_labels, record) for each scored scan
        self.listeners: list = []
        self.results: dict[str, list[dict]] = {}
        self.metrics: dict[str, float] = {}
        self.timing: dict[str, float] = {"validation_s": 0.0, "scan_eval_s": 0.0, "fit_s": 0.0}
        self._last_val: dict[str, float] = {}
        self._ref_cache: dict = {}
        self._t_fit = self._t_val = 0.0

    # -- scan-level path -------------------------------------------------------------------
    def evaluate(
        self, trainer: Trainer, pl_module: LightningModule, split: str
    ) -> dict[str, float]:
        """Records and flat metrics of one split (this rank's share, gathered)."""
        from cac_lightning.evaluation.records import ScanRecord, evaluate_scans
        from cac_lightning.evaluation.tables import metrics_by_split
        from cac_lightning.inference import Predictor

        t0 = time.perf_counter()
        scans = trainer.datamodule.native_scans(split)
        if split == "val":
            scans = pick_subset(scans, self.val_scans)
        rank, world = trainer.global_rank, trainer.world_size
        predictor = Predictor.from_module(pl_module, self.batch_size)

        def on_scan(scan, labels, record) -> None:
            for listener in self.listeners:
                listener(split, scan, labels, record)

        mine = evaluate_scans(
            predictor,
            scans[rank::world],
            split=split,
            ref_cache=self._ref_cache,
            on_scan=on_scan if self.listeners else None,
        )
        indexed = [(rank + i * world, r.to_dict()) for i, r in enumerate(mine)]
        gathered = sorted(_gather(trainer, indexed), key=lambda item: item[0])
        records = [ScanRecord.from_dict(d) for _, d in gathered]
        self.records[split] = records
        self.results[split] = [r.agatston_summary() for r in records]
        self.timing["scan_eval_s"] += time.perf_counter() - t0
        return metrics_by_split(records) if records else {}

    def _log(self, pl_module: LightningModule, metrics: dict[str, float]) -> None:
        self.metrics.update(metrics)
        # every rank holds the same gathered values: the mean over ranks changes nothing
        sync = pl_module.trainer.world_size > 1
        for k, v in metrics.items():
            pl_module.log(k, float(v), sync_dist=sync)

    # -- hooks -------------------------------------------------------------------------------
    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._t_fit = time.perf_counter()

    def on_validation_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._t_val = time.perf_counter()

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.timing["validation_s"] += time.perf_counter() - self._t_val

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking or not hasattr(trainer.datamodule, "native_scans"):
            return
        due = trainer.current_epoch % self.every_n_epochs == 0
        if due or not self._last_val:
            self._last_val = self.evaluate(trainer, pl_module, "val")
        self._log(pl_module, self._last_val)

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not hasattr(trainer.datamodule, "native_scans"):
            return
        for split in self.test_splits:
            self._log(pl_module, self.evaluate(trainer, pl_module, split))

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.timing["fit_s"] = time.perf_counter() - self._t_fit
        fit, val = self.timing["fit_s"], self.timing["validation_s"]
        if trainer.is_global_zero and fit > 0:
            log.info(
                "validation took %.1f s of %.1f s wall time (%.0f%%); whole-scan evaluation "
                "%.1f s (every %d epoch(s), %s val scans)",
                val,
                fit,
                100.0 * val / fit,
                self.timing["scan_eval_s"],
                self.every_n_epochs,
                "all" if self.val_scans is None else self.val_scans,
            )
