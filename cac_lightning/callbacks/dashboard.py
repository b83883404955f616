"""Run dashboards: per-scan tables, risk confusion, Bland-Altman and run metadata.

At the start of fit the run records what it is (data summary, parameter count, FLOPs per
512² slice, git commit) in the W&B config and ``run_meta.json``. Each validation epoch that
improves ``val/agatston_mae`` logs the ``val/scans`` table; at test, each split gets
``<split>/scans`` (one row per scan with a thumbnail of its worst slice),
``<split>/risk_confusion`` (W&B's confusion-matrix chart) and ``<split>/bland_altman``.
The same tables go to ``out_dir`` as CSV/PNG whatever the loggers. Everything comes from
the records of :class:`cac_lightning.callbacks.ScanAgatstonEvaluation` (the one
scan-level path); scan ids are manifest pseudonyms, never DICOM patient fields.
"""

from __future__ import annotations

import copy
import json
import logging
import math
from pathlib import Path

import numpy as np
import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import WandbLogger

from cac_lightning.evaluation.dashboard import (
    SCAN_COLUMNS,
    data_summary,
    git_commit,
    risk_confusion,
    scan_rows,
    write_dashboard,
)
from cac_lightning.io.atomic import atomic_write_text
from cac_lightning.models.checkpoint import CheckpointRecord
from cac_lightning.models.registry import count_parameters
from cac_lightning.scoring.risk import RISK_CATEGORIES

__all__ = ["RunDashboard", "model_summary"]

log = logging.getLogger(__name__)
SPLITS = ("train", "val", "test", "test_zero")


def model_summary(net: torch.nn.Module, in_channels: int = 2, size: int = 512) -> dict:
    """Parameter count and forward FLOPs for one ``size``² slice (counted on the meta device,
    so nothing is computed)."""
    from torch.utils.flop_counter import FlopCounterMode

    params = count_parameters(net, trainable_only=False)
    flops = None
    try:
        meta = copy.deepcopy(net).to("meta").eval()
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            meta(torch.zeros(1, in_channels, size, size, device="meta"))
        flops = int(counter.get_total_flops())
    except Exception as err:  # noqa: BLE001 - an exotic layer must not stop training
        log.warning("FLOP count unavailable: %s", err)
    return {"params": int(params), f"gflops_per_slice_{size}": flops and round(flops / 1e9, 2)}


class RunDashboard(Callback):
    """Log per-scan tables, risk confusion, Bland-Altman and metadata (see module doc).

    Args:
        out_dir: folder for the CSV/PNG copies and ``run_meta.json``.
        thumbnails: put a worst-slice panel in each row of the test tables.
    """

    def __init__(self, out_dir: str | Path = "dashboard", thumbnails: bool = True) -> None:
        self.out_dir = Path(out_dir)
        self.thumbnails = bool(thumbnails)
        self.best: float = math.inf
        self.meta: dict = {}
        self.panels: dict[tuple[str, str], np.ndarray] = {}

    # -- helpers -------------------------------------------------------------------------
    @staticmethod
    def _wandb(trainer: Trainer) -> list[WandbLogger]:
        return [lg for lg in trainer.loggers if isinstance(lg, WandbLogger)]

    @staticmethod
    def _evaluator(trainer: Trainer):
        from cac_lightning.callbacks.agatston import ScanAgatstonEvaluation

        return next((c for c in trainer.callbacks if isinstance(c, ScanAgatstonEvaluation)), None)

    def on_scan(self, split: str, scan, pred_labels: np.ndarray, record) -> None:
        """Listener the evaluator calls per scored scan: keep a worst-slice panel."""
        if not (self.thumbnails and split.startswith("test")):
            return
        from cac_lightning.evaluation.panels import overlay_panel, worst_slice

        ref = np.asarray(scan.labels)
        z = worst_slice(ref, pred_labels)
        self.panels[(split, scan.scan_id)] = overlay_panel(
            np.asarray(scan.hu[z]),
            ref[z],
            pred_labels[z],
            scan.geometry.pixel_spacing,
            title=f"{scan.scan_id} slice {z}",
            width_in=4.0,
        )

    # -- hooks ---------------------------------------------------------------------------
    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        ev = self._evaluator(trainer)
        if ev is not None and hasattr(ev, "listeners") and self.on_scan not in ev.listeners:
            ev.listeners.append(self.on_scan)

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        dm = trainer.datamodule
        scans = {}
        if dm is not None and hasattr(dm, "scans"):
            for split in SPLITS:
                try:
                    scans[split] = dm.scans(split)
                except Exception:  # noqa: BLE001 - a split the data does not have
                    continue
        record = CheckpointRecord.from_hyper_parameters(pl_module.hparams)
        net = record.network
        geometry = record.data_geometry
        self.meta = {
            "data": data_summary(scans, name=type(dm).__name__ if dm is not None else ""),
            "training_geometry": geometry.to_dict() if geometry else None,
            "model": {
                "net": net.name if net else None,
                **model_summary(pl_module.net, int(net.kwargs.get("in_channels", 2) if net else 2)),
            },
            "git_commit": git_commit(),
        }
        self.out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.out_dir / "run_meta.json", json.dumps(self.meta, indent=2))
        for lg in self._wandb(trainer):
            lg.experiment.config.update({"run_meta": self.meta}, allow_val_change=True)

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        value = trainer.callback_metrics.get("val/agatston_mae")
        if value is None or not math.isfinite(float(value)) or float(value) >= self.best:
            return
        self.best = float(value)
        summary = {"val/agatston_mae_best": self.best, "val/best_epoch": trainer.current_epoch}
        for key in ("train/loss_gap", "train/loss_gap_rel"):
            if key in trainer.callback_metrics:
                summary[key] = float(trainer.callback_metrics[key])
        ev = self._evaluator(trainer)
        records = list(getattr(ev, "records", {}).get("val", [])) if ev else []
        for lg in self._wandb(trainer):
            exp = lg.experiment
            for k, v in summary.items():
                exp.summary[k] = v
            if records:
                import wandb

                table = wandb.Table(columns=list(SCAN_COLUMNS), data=scan_rows(records))
                exp.log({"val/scans": table, "trainer/global_step": trainer.global_step})

    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        ev = self._evaluator(trainer)
        by_split = dict(getattr(ev, "records", {}) or {}) if ev else {}
        records = [r for split, recs in by_split.items() if split != "val" for r in recs]
        if not records:
            log.warning("dashboard: no test records to show")
            return
        files = write_dashboard(self.out_dir, records)
        for lg in self._wandb(trainer):
            self._log_wandb(lg, records, files)

    def _log_wandb(self, lg: WandbLogger, records, files: dict) -> None:
        import wandb

        out = {}
        for split in dict.fromkeys(r.split for r in records):
            recs = [r for r in records if r.split == split]
            rows = scan_rows(recs)
            columns = list(SCAN_COLUMNS)
            if self.thumbnails:
                columns.append("worst_slice")
                rows = [
                    [*row, _image(wandb, self.panels.get((split, rec.scan_id)))]
                    for row, rec in zip(rows, recs, strict=True)
                ]
            out[f"{split}/scans"] = wandb.Table(columns=columns, data=rows)
            index = {c: i for i, c in enumerate(RISK_CATEGORIES)}
            out[f"{split}/risk_confusion"] = wandb.plot.confusion_matrix(
                y_true=[index[r.ref_risk] for r in recs],
                preds=[index[r.pred_risk] for r in recs],
                class_names=list(RISK_CATEGORIES),
                title=f"{split}: risk category (rows reference)",
            )
            out[f"{split}/risk_counts"] = wandb.Table(
                columns=["reference", *RISK_CATEGORIES],
                data=[
                    [c, *map(int, row)]
                    for c, row in zip(RISK_CATEGORIES, risk_confusion(recs), strict=True)
                ],
            )
            out[f"{split}/bland_altman"] = wandb.Image(
                str(files[f"bland_altman_{split}"]), caption=f"{split}: Agatston, volume, mass"
            )
        lg.experiment.log(out)


def _image(wandb, panel: np.ndarray | None):
    return wandb.Image(panel) if panel is not None else None
