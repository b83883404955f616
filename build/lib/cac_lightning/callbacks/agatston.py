"""Scan-level Agatston evaluation during validation and test (the paper's model selection).

Every slice of each scan is predicted, argmax'd, kept only where HU >= 130, and
scored with :func:`cac_lightning.scoring.score_scan`; the reference is scored
the same way from the reference label map. Logs, for split ``s``:
``s/agatston_mae`` (mean absolute total Agatston error per scan),
``s/agatston_mae_<VESSEL>``, ``s/icc_agatston_total``, ``s/kappa`` and
``s/kappa_linear`` (5-class risk category), ``s/risk_accuracy`` and, on the
zero-calcium split, ``test_zero/fp_rate``. Under DDP each rank scores a
disjoint share of the scans and the per-scan numbers are gathered.
"""

from __future__ import annotations

import contextlib
import logging
import math

import numpy as np
import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from cac_lightning.vessels import VESSELS

__all__ = ["ScanAgatstonEvaluation", "summarise"]

log = logging.getLogger(__name__)
KEYS = (*VESSELS, "total")
RISK = ("C1", "C2", "C3", "C4", "C5")


def summarise(split: str, ref: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """Metrics from per-scan Agatston arrays (n, 5): columns LM, LAD, CX, RCA, total."""
    from cac_lightning.evaluation.stats import cohen_kappa, icc_a1
    from cac_lightning.scoring import risk_category

    out: dict[str, float] = {}
    if len(ref) == 0:
        return out
    err = np.abs(pred - ref)
    out[f"{split}/agatston_mae"] = float(err[:, -1].mean())
    for i, v in enumerate(VESSELS):
        out[f"{split}/agatston_mae_{v}"] = float(err[:, i].mean())
    rc = [risk_category(float(a)) for a in ref[:, -1]]
    pc = [risk_category(float(a)) for a in pred[:, -1]]
    out[f"{split}/risk_accuracy"] = float(np.mean([a == b for a, b in zip(rc, pc, strict=True)]))
    out[f"{split}/scan_fp_rate"] = (
        float(np.mean(pred[ref[:, -1] == 0, -1] > 0)) if (ref[:, -1] == 0).any() else float("nan")
    )
    if split.endswith("zero"):
        out[f"{split}/fp_rate"] = out[f"{split}/scan_fp_rate"]
        return out
    out[f"{split}/icc_agatston_total"] = float(icc_a1(ref[:, -1], pred[:, -1]).icc)
    for i, v in enumerate(VESSELS):
        out[f"{split}/icc_agatston_{v}"] = float(icc_a1(ref[:, i], pred[:, i]).icc)
    out[f"{split}/kappa"] = float(cohen_kappa(rc, pc, labels=RISK).kappa)
    out[f"{split}/kappa_linear"] = float(cohen_kappa(rc, pc, labels=RISK, weights="linear").kappa)
    return out


class ScanAgatstonEvaluation(Callback):
    """Score whole validation/test scans and log Agatston agreement.

    Args:
        batch_size: slices per forward pass.
        test_splits: splits scored at test time (default the test set and the zero-calcium set).
    """

    def __init__(self, batch_size: int = 16, test_splits: tuple[str, ...] = ("test", "test_zero")):
        self.batch_size = int(batch_size)
        self.test_splits = tuple(test_splits)
        self.results: dict[str, list[dict]] = {}
        self.metrics: dict[str, float] = {}
        self._ref_cache: dict[str, np.ndarray] = {}

    # -- per-scan work -------------------------------------------------------------------
    def _scores(self, scan, labels: np.ndarray, pl_module: LightningModule) -> np.ndarray:
        from cac_lightning.scoring import ScoringConfig, score_scan

        cfg = ScoringConfig(**dict(pl_module.hparams.get("scoring", {}) or {}))
        s = score_scan(
            np.asarray(scan.hu),
            labels,
            scan.geometry,
            cfg,
            kvp=scan.kvp,
            mass_factor=scan.mass_factor,
        )
        return np.array([s.vessels[k].agatston for k in KEYS], dtype=np.float64)

    def score_scan_pair(self, scan, pl_module: LightningModule, trainer: Trainer | None = None):
        """Predicted and reference Agatston (LM, LAD, CX, RCA, total) of one cached scan."""
        from cac_lightning.inference import predict_labels

        inp = dict(pl_module.hparams.get("input", {}) or {})
        ctx = trainer.precision_plugin.forward_context() if trainer else contextlib.nullcontext()
        with torch.no_grad(), ctx:
            pred_labels = predict_labels(
                pl_module,
                scan.hu,
                window=inp.get("window", (-1024.0, 2048.0)),
                threshold_hu=float(inp.get("threshold_hu", 130.0)),
                batch_size=self.batch_size,
                device=pl_module.device,
            )
        if scan.scan_id not in self._ref_cache:
            self._ref_cache[scan.scan_id] = self._scores(scan, np.asarray(scan.labels), pl_module)
        return self._ref_cache[scan.scan_id], self._scores(scan, pred_labels, pl_module)

    def evaluate(
        self, trainer: Trainer, pl_module: LightningModule, split: str
    ) -> dict[str, float]:
        scans = trainer.datamodule.scans(split)
        rank, world = trainer.global_rank, trainer.world_size
        mine = scans[rank::world]
        rows = np.full((math.ceil(len(scans) / world) if scans else 0, 2 * len(KEYS) + 1), np.nan)
        for i, scan in enumerate(mine):
            ref, pred = self.score_scan_pair(scan, pl_module, trainer)
            rows[i] = np.concatenate([[rank + i * world], ref, pred])
        if world > 1 and len(rows):
            gathered = trainer.strategy.all_gather(torch.as_tensor(rows, device=pl_module.device))
            rows = gathered.reshape(-1, rows.shape[1]).cpu().numpy()
        rows = rows[~np.isnan(rows[:, 0])]
        rows = rows[np.argsort(rows[:, 0])]
        ref, pred = rows[:, 1 : 1 + len(KEYS)], rows[:, 1 + len(KEYS) :]
        self.results[split] = [
            {
                "scan_id": scans[int(r[0])].scan_id,
                "ref": dict(zip(KEYS, map(float, a), strict=True)),
                "pred": dict(zip(KEYS, map(float, b), strict=True)),
            }
            for r, a, b in zip(rows, ref, pred, strict=True)
        ]
        return summarise(split, ref, pred)

    def _log(self, pl_module: LightningModule, metrics: dict[str, float]) -> None:
        self.metrics.update(metrics)
        for k, v in metrics.items():
            pl_module.log(k, v, sync_dist=False, rank_zero_only=False)

    # -- hooks ---------------------------------------------------------------------------
    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking or not hasattr(trainer.datamodule, "scans"):
            return
        self._log(pl_module, self.evaluate(trainer, pl_module, "val"))

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not hasattr(trainer.datamodule, "scans"):
            return
        for split in self.test_splits:
            self._log(pl_module, self.evaluate(trainer, pl_module, split))
