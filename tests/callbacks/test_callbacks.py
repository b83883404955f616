"""Scan-level Agatston callback on a stub model with a known error; the loss-gap stopping rule."""

from __future__ import annotations

import csv
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import numpy as np
import pytest
import torch

from cac_lightning.callbacks import LossGapStopping, ScanAgatstonEvaluation
from cac_lightning.volume import Geometry

GEOM = Geometry(shape=(3, 32, 32), pixel_spacing=(0.5, 0.5), slice_spacing=3.0)


def _scans():
    a_hu = np.full((3, 32, 32), 40, np.int16)
    a_lab = np.zeros(a_hu.shape, np.uint8)
    a_hu[1, 4:8, 4:8] = 450  # LAD lesion: 4 mm², weight 4 -> 16
    a_lab[1, 4:8, 4:8] = 2
    a_hu[2, 20:24, 20:28] = 600  # bone, unlabelled: 8 mm², weight 4 -> 32
    b_hu = np.full((3, 32, 32), 40, np.int16)
    b_lab = np.zeros(b_hu.shape, np.uint8)
    b_hu[0, 10:12, 10:14] = 250  # RCA lesion: 2 mm², weight 2 -> 4
    b_lab[0, 10:12, 10:14] = 4
    return [
        SimpleNamespace(
            scan_id=f"s{i}", hu=h, labels=lab, geometry=GEOM, kvp=120.0, mass_factor=None
        )
        for i, (h, lab) in enumerate([(a_hu, a_lab), (b_hu, b_lab)])
    ]


class StubData(L.LightningDataModule):
    def native_scans(self, split):
        return _scans() if split == "val" else []

    def val_dataloader(self):
        return torch.utils.data.DataLoader([torch.zeros(1)], batch_size=1)


class AlwaysLAD(L.LightningModule):
    """Predicts LAD wherever the >= 130 HU channel is on."""

    def __init__(self):
        super().__init__()
        self.save_hyperparameters(
            {"input": {"window": [-1024.0, 2048.0], "threshold_hu": 130.0}, "scoring": {}}
        )
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        logits = torch.zeros(x.shape[0], 5, *x.shape[2:])
        logits[:, 2] = x[:, 1] * 10.0
        return logits

    def validation_step(self, batch, batch_idx):
        return None


def test_agatston_callback_known_error():
    cb = ScanAgatstonEvaluation(batch_size=2)
    trainer = L.Trainer(
        accelerator="cpu",
        logger=False,
        callbacks=[cb],
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.validate(AlwaysLAD(), datamodule=StubData())
    m = trainer.callback_metrics
    assert float(m["val/agatston_mae"]) == pytest.approx(16.0)  # (|48-16| + |4-4|) / 2
    assert float(m["val/agatston_mae_LAD"]) == pytest.approx(18.0)  # (32 + 4) / 2
    assert float(m["val/agatston_mae_RCA"]) == pytest.approx(2.0)
    assert float(m["val/agatston_mae_LM"]) == 0.0
    res = {r["scan_id"]: r for r in cb.results["val"]}
    assert res["s0"]["ref"]["total"] == pytest.approx(16.0)
    assert res["s0"]["pred"]["total"] == pytest.approx(48.0)
    assert res["s1"]["pred"]["LAD"] == pytest.approx(4.0)


def _fake_trainer(train_loss, val_loss):
    return SimpleNamespace(
        callback_metrics={
            "train/loss": torch.tensor(train_loss),
            "val/loss": torch.tensor(val_loss),
        },
        current_epoch=0,
        should_stop=False,
    )


def test_loss_gap_stopping_rule():
    cb = LossGapStopping(margin=0.1, patience=2, relative=False)
    module = SimpleNamespace(log=lambda *a, **k: None)
    t = _fake_trainer(0.5, 0.55)  # gap 0.05 <= margin
    cb.on_train_epoch_end(t, module)
    assert not t.should_stop and cb.wait == 0
    t = _fake_trainer(0.5, 0.7)  # gap 0.2 > margin, first time
    cb.on_train_epoch_end(t, module)
    assert not t.should_stop and cb.wait == 1
    t = _fake_trainer(0.4, 0.3)  # back under the margin: reset
    cb.on_train_epoch_end(t, module)
    assert cb.wait == 0
    for _ in range(2):
        t = _fake_trainer(0.3, 0.6)
        cb.on_train_epoch_end(t, module)
    assert t.should_stop and cb.stopped_epoch == 0
    assert LossGapStopping().state_dict() == {"wait": 0, "stopped_epoch": None}


class CountingStubData(StubData):
    def __init__(self, n=5):
        super().__init__()
        self.n, self.calls = n, 0

    def native_scans(self, split):
        self.calls += 1
        base = _scans()
        out = []
        for i in range(self.n):
            s = SimpleNamespace(**vars(base[i % 2]))
            s.scan_id, s.ref = f"s{i}", {"total": {"agatston": float(10 * i)}}
            out.append(s)
        return out if split == "val" else []

    def train_dataloader(self):
        return torch.utils.data.DataLoader([torch.zeros(1)] * 2, batch_size=1)


class TrainableLAD(AlwaysLAD):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def training_step(self, batch, batch_idx):
        return (self.w - 1.0).pow(2).sum()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_every_n_epochs_subset_and_validation_share(caplog):
    cb = ScanAgatstonEvaluation(batch_size=2, every_n_epochs=2, val_scans=3)
    dm = CountingStubData(n=5)
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=3,
        logger=False,
        callbacks=[cb],
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        num_sanity_val_steps=0,
    )
    with caplog.at_level("INFO", logger="cac_lightning.callbacks.agatston"):
        trainer.fit(TrainableLAD(), datamodule=dm)
    assert dm.calls == 2  # epochs 0 and 2, not 1
    assert [r["scan_id"] for r in cb.results["val"]] == ["s0", "s2", "s4"]  # spread over refs
    assert "val/agatston_mae" in trainer.callback_metrics  # re-logged on epoch 1 too
    line = [r.message for r in caplog.records if "wall time" in r.message]
    assert len(line) == 1 and "validation took" in line[0] and "%" in line[0]
    assert 0 < cb.timing["validation_s"] <= cb.timing["fit_s"]


# Per-epoch train/val focal losses of real paper-recipe runs on the COCA sample; each file's
# header holds the command, the machine and the epoch its rule stopped at (or "none").
RUNS = sorted((Path(__file__).parent / "data").glob("loss_gap_*.csv"))


def _read_run(path: Path) -> tuple[list[tuple[float, float]], int | None]:
    lines = path.read_text().splitlines()
    stop = next(ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("# stopped_epoch:"))
    rows = list(csv.DictReader(ln for ln in lines if not ln.startswith("#")))
    assert [int(r["epoch"]) for r in rows] == list(range(len(rows)))
    losses = [(float(r["train_loss"]), float(r["val_loss"])) for r in rows]
    return losses, None if stop == "none" else int(stop)


def _replay(cb: LossGapStopping, losses, scale: float = 1.0) -> int | None:
    """Feed the epochs through the callback as the trainer would; the epoch it stops at."""
    module = SimpleNamespace(logged={}, log=lambda k, v, **kw: module.logged.__setitem__(k, v))
    for epoch, (tr, va) in enumerate(losses):
        t = _fake_trainer(tr * scale, va * scale)
        t.current_epoch = epoch
        cb.on_train_epoch_end(t, module)
        gap = (va - tr) / tr if cb.relative else (va - tr) * scale
        assert module.logged["train/loss_gap"] == pytest.approx(gap, rel=1e-4)
        if t.should_stop:
            return epoch
    return None


@pytest.mark.parametrize("path", RUNS, ids=[p.stem for p in RUNS])
def test_loss_gap_rule_on_real_runs(path):
    """The paper recipe's rule (relative, margin 1.0, patience 2) replayed on a real run's losses
    stops where that run stopped; being relative, it stops there at any loss scale (a 512² run's
    per-pixel losses are ~1e-4 of these), which an absolute margin cannot."""
    losses, stopped = _read_run(path)
    assert len(losses) >= 10
    assert _replay(LossGapStopping(margin=1.0, patience=2), losses) == stopped
    assert _replay(LossGapStopping(margin=1.0, patience=2), losses, scale=1e-4) == stopped
    absolute = LossGapStopping(margin=0.01, patience=2, relative=False)
    assert _replay(absolute, losses, scale=1e-4) is None  # the literal rule: never at 1e-4 scale


def test_loss_gap_fires_when_validation_loss_doubles():
    cb = LossGapStopping(margin=1.0, patience=2)
    losses = [(0.4, 0.3), (0.1, 0.15), (0.05, 0.11), (0.04, 0.09), (0.03, 0.05)]
    assert _replay(cb, losses) == 3 and cb.stopped_epoch == 3  # over 2x at epochs 2 and 3


def test_loss_gap_skips_epochs_without_validation():
    cb = LossGapStopping(margin=0.5, patience=1)
    module = SimpleNamespace(log=lambda *a, **k: None)
    t = _fake_trainer(1e-5, 5e-5)
    cb.on_validation_epoch_start(SimpleNamespace(sanity_checking=False, current_epoch=0), module)
    t.current_epoch = 1  # validation ran at epoch 0 only: the val loss is stale
    cb.on_train_epoch_end(t, module)
    assert not t.should_stop and cb.history == []
    t.current_epoch = 0
    cb.on_train_epoch_end(t, module)
    assert t.should_stop
