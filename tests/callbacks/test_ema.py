"""EMAWeights: the checkpoint holds the EMA, and testing that checkpoint scores the EMA."""

from __future__ import annotations

import os

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from cac_lightning.callbacks import EMAWeights


class Tiny(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(3, 1)
        self.tested: dict[str, torch.Tensor] = {}

    def training_step(self, batch, _):
        x, y = batch
        return torch.nn.functional.mse_loss(self.layer(x), y)

    def test_step(self, batch, _):
        self.tested = {k: v.detach().clone() for k, v in self.state_dict().items()}

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.2)


class Record(L.Callback):
    """The raw weights after every optimiser step."""

    def __init__(self) -> None:
        self.steps: list[dict[str, torch.Tensor]] = []

    def on_train_batch_end(self, trainer, pl_module, *args) -> None:
        self.steps.append({k: v.detach().clone() for k, v in pl_module.state_dict().items()})


def _loader() -> DataLoader:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(12, 3, generator=g)
    return DataLoader(TensorDataset(x, x.sum(1, keepdim=True) + 1.0), batch_size=2)


def test_checkpoint_and_test_hold_the_average(tmp_path):
    decay = 0.6
    record = Record()
    ckpt = L.pytorch.callbacks.ModelCheckpoint(dirpath=tmp_path, filename="w")
    trainer = L.Trainer(
        max_epochs=1,
        callbacks=[record, EMAWeights(decay=decay), ckpt],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        accelerator="cpu",
        default_root_dir=tmp_path,
    )
    model = Tiny()
    trainer.fit(model, train_dataloaders=_loader())

    expected = dict(record.steps[0])  # the first update copies the weights
    for step in record.steps[1:]:
        expected = {k: decay * expected[k] + (1 - decay) * step[k] for k in expected}
    saved = torch.load(os.path.join(tmp_path, "w.ckpt"), weights_only=True)
    for k, v in expected.items():
        torch.testing.assert_close(saved["state_dict"][k], v)
    raw = record.steps[-1]["layer.weight"]
    assert not torch.allclose(saved["state_dict"]["layer.weight"], raw)

    trainer.test(model, dataloaders=_loader(), ckpt_path=ckpt.best_model_path, weights_only=True)
    for k, v in expected.items():  # the averaged weights, not current_model_state
        torch.testing.assert_close(model.tested[k], v)


def test_decay_outside_zero_one_is_refused():
    with pytest.raises(ValueError, match="decay"):
        EMAWeights(decay=1.0)
