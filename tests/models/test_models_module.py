"""CACSegModule: fit/validate on tiny random batches, metrics, scheduler, checkpoints."""

from __future__ import annotations

import functools
import math
import warnings

import lightning as L
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from cac_lightning.models import CACSegModule
from cac_lightning.models.module import calcium_metrics, describe_partial
from cac_lightning.vessels import CLASS_NAMES

TINY_NET = {"name": "unet", "channels": [4, 8, 16]}
NETS = [
    {"name": "unet", "channels": [4, 8, 16]},
    {"name": "unetplusplus", "channels": [4, 8, 16]},
    {"name": "unetplusplus", "channels": [4, 8, 16], "deep_supervision": True},
]


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _loader(n: int = 4, size: int = 16, batch_size: int = 2, seed: int = 0) -> DataLoader:
    g = torch.Generator().manual_seed(seed)
    items = [
        {
            "image": torch.randn(2, size, size, generator=g),
            "target": torch.randint(0, 5, (size, size), generator=g),
            "scan_id": f"s{i}",
        }
        for i in range(n)
    ]
    return DataLoader(items, batch_size=batch_size)


def _once(batch: dict) -> DataLoader:
    """A loader yielding exactly ``batch``."""
    return DataLoader([batch], batch_size=None)


def _module(net=None, lr: float = 1e-3, **kwargs) -> CACSegModule:
    return CACSegModule(
        net=net or TINY_NET,
        criterion={"name": "focal"},
        optimizer=functools.partial(torch.optim.Adam, lr=lr),
        scheduler=functools.partial(torch.optim.lr_scheduler.ExponentialLR, gamma=0.95),
        input={"window": [-1024.0, 2048.0]},
        scoring={"mode": "per-slice"},
        **kwargs,
    )


def _trainer(**kwargs) -> L.Trainer:
    defaults = dict(
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    return L.Trainer(**{**defaults, **kwargs})


@pytest.mark.parametrize("net", NETS, ids=["unet", "unetplusplus", "unetplusplus_ds"])
def test_fast_dev_run_fit_and_validate(net):
    torch.manual_seed(0)
    module = _module(net)
    trainer = _trainer(fast_dev_run=True)
    trainer.fit(module, _loader(), _loader(seed=1))
    metrics = trainer.callback_metrics
    for key in ["train/loss", "val/loss", "train/lr"] + [
        f"{s}/slice_{m}" for s in ("train", "val") for m in ("dice", "iou", "precision", "recall")
    ]:
        assert key in metrics, key
        assert math.isfinite(float(metrics[key])), key
    for m in ("dice", "iou", "precision", "recall"):
        assert 0.0 <= float(metrics[f"val/slice_{m}"]) <= 1.0
    out = trainer.validate(module, _loader(seed=2), verbose=False)[0]
    assert out["val/loss"] > 0
    out = trainer.test(module, _loader(seed=3), verbose=False)[0]
    assert {"test/loss", "test/slice_dice", "test/slice_iou", "test/slice_precision"} <= set(out)


def test_deep_supervision_loss_is_mean_of_head_losses():
    torch.manual_seed(0)
    module = _module(NETS[2]).eval()
    batch = next(iter(_loader()))
    heads = module.net(batch["image"], return_heads=True)
    expected = torch.stack([module.criterion(h, batch["target"]) for h in heads]).mean()
    trainer = _trainer(fast_dev_run=True)
    out = trainer.validate(module, _once(batch), verbose=False)[0]
    assert out["val/loss"] == pytest.approx(expected.item(), rel=1e-5)
    single = module.criterion(heads[-1], batch["target"]).item()
    assert out["val/loss"] != pytest.approx(single, rel=1e-5)


def test_lr_decays_5_percent_per_epoch():
    module = _module(lr=1e-3)
    trainer = _trainer(max_epochs=2, limit_train_batches=1, limit_val_batches=1)
    trainer.fit(module, _loader(), _loader(seed=1))
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(1e-3 * 0.95**2)
    # train/lr is logged at the start of each epoch: epoch 2 ran at lr * 0.95
    assert float(trainer.callback_metrics["train/lr"]) == pytest.approx(1e-3 * 0.95)
    config = module.configure_optimizers()
    assert config["lr_scheduler"]["interval"] == "epoch"
    assert isinstance(config["optimizer"], torch.optim.Adam)


class _Oracle(nn.Module):
    """Predicts ``image[:, 0]`` as the label (or always ``constant``)."""

    def __init__(self, constant: int | None = None) -> None:
        super().__init__()
        self.constant = constant

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        labels = x[:, 0].long()
        if self.constant is not None:
            labels = torch.full_like(labels, self.constant)
        return nn.functional.one_hot(labels, 5).permute(0, 3, 1, 2).float() * 20.0


def _oracle_batch() -> dict[str, torch.Tensor]:
    target = torch.zeros(2, 4, 4, dtype=torch.long)
    target[0, 0, :2] = 1  # 2 LM pixels
    target[1, 3, :] = 2  # 4 LAD pixels
    # channel 1 (the >= 130 HU mask) on everywhere: no pixel is excluded from the metrics
    return {"image": torch.stack([target.float(), torch.ones(2, 4, 4)], dim=1), "target": target}


def test_metrics_on_oracle_predictions():
    module = _module()
    module.net = _Oracle()
    trainer = _trainer(fast_dev_run=True)
    out = trainer.validate(module, _once(_oracle_batch()), verbose=False)[0]
    for m in ("dice", "iou", "precision", "recall"):
        assert out[f"val/slice_{m}"] == pytest.approx(1.0)
    # always LM: LM tp 2, fp 30; LAD fn 4 -> dice (4/34 + 0)/2, precision (2/32)/2, recall 1/2
    module.net = _Oracle(constant=1)
    out = trainer.validate(module, _once(_oracle_batch()), verbose=False)[0]
    assert out["val/slice_dice"] == pytest.approx(4 / 34 / 2)
    assert out["val/slice_iou"] == pytest.approx(2 / 32 / 2)
    assert out["val/slice_precision"] == pytest.approx(2 / 32 / 2)
    assert out["val/slice_recall"] == pytest.approx(0.5)
    # predictions outside the mask channel are background, as at inference:
    # LM tp 2, fp 4 (the LAD pixels) -> dice 4/8; LAD fn 4 -> 0
    batch = _oracle_batch()
    batch["image"][:, 1] = (batch["target"] > 0).float()
    out = trainer.validate(module, _once(batch), verbose=False)[0]
    assert out["val/slice_dice"] == pytest.approx(0.25)


def test_calcium_metrics_by_hand():
    stats = torch.zeros(5, 5, dtype=torch.long)  # rows: classes; cols: tp, fp, tn, fn, support
    stats[0] = torch.tensor([90, 3, 5, 2, 92])  # background: ignored
    stats[1] = torch.tensor([2, 1, 96, 1, 3])
    stats[2] = torch.tensor([0, 0, 98, 2, 2])
    out = calcium_metrics(stats)
    assert out["dice"].item() == pytest.approx((4 / 6 + 0) / 2)
    assert out["iou"].item() == pytest.approx((2 / 4 + 0) / 2)
    assert out["precision"].item() == pytest.approx((2 / 3 + 0) / 2)
    assert out["recall"].item() == pytest.approx((2 / 3 + 0) / 2)
    nothing = torch.zeros(5, 5, dtype=torch.long)
    nothing[0] = torch.tensor([100, 0, 0, 0, 100])
    assert all(v.item() == 1.0 for v in calcium_metrics(nothing).values())


def test_predict_step_and_logits():
    torch.manual_seed(0)
    module = _module(NETS[2])
    module.train()
    x = torch.randn(3, 2, 16, 16)
    logits = module.predict_logits(x)
    assert module.training
    assert logits.shape == (3, 5, 16, 16) and logits.dtype == torch.float32
    preds = _trainer().predict(module, _loader(n=3, batch_size=3))
    assert preds[0].shape == (3, 16, 16) and preds[0].dtype == torch.uint8
    assert int(preds[0].max()) <= 4
    module.eval()
    with torch.no_grad():
        labels = module.predict_step({"image": x}, 0)
    gate = x[:, 1] > 0.5  # the HU gate: calcium only where the input's mask channel is on
    torch.testing.assert_close(labels, logits.argmax(1).to(torch.uint8) * gate)
    assert not labels[~gate].any() and bool(gate.any()) and bool((~gate).any())


def test_checkpoint_plain_and_reloads(tmp_path):
    torch.manual_seed(0)
    module = _module(NETS[2], lr=2e-3)
    trainer = _trainer(fast_dev_run=True)
    trainer.fit(module, _loader(), _loader(seed=1))
    path = tmp_path / "model.ckpt"
    trainer.save_checkpoint(path)
    ckpt = torch.load(path, weights_only=True)
    hp = ckpt["hyper_parameters"]
    assert hp["optimizer_cfg"] == {"name": "torch.optim.adam.Adam", "lr": 2e-3}
    assert hp["scheduler_cfg"] == {
        "name": "torch.optim.lr_scheduler.ExponentialLR",
        "gamma": 0.95,
    }
    assert hp["class_names"] == list(CLASS_NAMES)
    assert hp["net"] == NETS[2]
    assert hp["input"] == {"window": [-1024.0, 2048.0], "threshold": "scan", "context": 0}
    assert hp["schema_version"] == 1 and hp["versions"]["torch"] == torch.__version__
    assert "optimizer" not in hp and "scheduler" not in hp

    loaded = CACSegModule.load_from_checkpoint(path, weights_only=True)
    assert loaded.hparams["optimizer_cfg"] == hp["optimizer_cfg"]
    x = torch.randn(2, 2, 16, 16)
    module.eval()
    loaded.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), module(x))
    # the optimizer and scheduler come back from the stored plain config
    config = loaded.configure_optimizers()
    assert isinstance(config["optimizer"], torch.optim.Adam)
    assert config["optimizer"].param_groups[0]["lr"] == pytest.approx(2e-3)
    assert config["lr_scheduler"]["scheduler"].gamma == pytest.approx(0.95)


def test_hydra_configs_become_plain():
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    cfg = OmegaConf.create(
        {
            "_target_": "cac_lightning.models.module.CACSegModule",
            "net": {"name": "unetplusplus", "channels": [4, 8, 16]},
            "criterion": {"name": "dice_focal", "weight": [1, 2, 2, 2, 2]},
            "optimizer": {
                "_target_": "torch.optim.Adam",
                "_partial_": True,
                "lr": 1e-4,
                "betas": [0.9, 0.99],
            },
            "scheduler": {
                "_target_": "torch.optim.lr_scheduler.ExponentialLR",
                "_partial_": True,
                "gamma": 0.95,
            },
            "input": {"window": [-1024, 2048], "threshold_hu": 130},
            "scoring": {},
        }
    )
    module = instantiate(cfg)
    hp = module.hparams
    assert type(hp["net"]) is dict and type(hp["net"]["channels"]) is list
    assert type(hp["criterion"]["weight"]) is list
    assert hp["optimizer_cfg"]["betas"] == [0.9, 0.99]
    assert type(hp["input"]["window"]) is list
    opt = module.configure_optimizers()["optimizer"]
    assert tuple(opt.param_groups[0]["betas"]) == (0.9, 0.99)


def test_defaults_follow_the_paper():
    module = CACSegModule(net=TINY_NET)
    assert module.hparams["criterion"] == {"name": "focal"}
    assert module.criterion.alpha == 0.5 and module.criterion.gamma == 3.0
    config = module.configure_optimizers()
    assert config["optimizer"].param_groups[0]["lr"] == pytest.approx(1e-4)
    assert config["lr_scheduler"]["scheduler"].gamma == pytest.approx(0.95)


def test_describe_partial_and_bad_configs():
    assert describe_partial(None) is None
    d = describe_partial(functools.partial(torch.optim.SGD, lr=0.1, momentum=0.9))
    assert d == {"name": "torch.optim.sgd.SGD", "lr": 0.1, "momentum": 0.9}
    from cac_lightning.errors import CACError

    with pytest.raises(CACError, match="name"):
        CACSegModule(net={"channels": [4, 8]})
    with pytest.raises(CACError, match="valid names"):
        CACSegModule(net={"name": "nope"})
    module = CACSegModule(net=TINY_NET, optimizer_cfg={"name": "os.system", "command": "true"})
    with pytest.raises(CACError, match="torch.optim"):
        module.configure_optimizers()


def test_channels_last_and_compile_flag():
    module = _module(channels_last=True)
    weight = module.net.nodes["x_0_0"][0].weight
    assert weight.is_contiguous(memory_format=torch.channels_last)
    trainer = _trainer(fast_dev_run=True)
    trainer.fit(module, _loader(), _loader(seed=1))
    assert math.isfinite(float(trainer.callback_metrics["train/loss"]))
    compiled = _module(compile=True)
    assert compiled.net._compiled_call_impl is None
    compiled.setup("fit")
    assert compiled.net._compiled_call_impl is not None
    assert set(compiled.state_dict()) == set(_module().state_dict())


def test_cuda_graphs_off_cuda_is_a_warning_and_a_no_op(caplog):
    module = _module(cuda_graphs=True)
    assert module.hparams.cuda_graphs is True
    trainer = _trainer(fast_dev_run=True)
    with caplog.at_level("WARNING", logger="cac_lightning.models.module"):
        trainer.fit(module, _loader(), _loader(seed=1))
    lines = [r.getMessage() for r in caplog.records if "cuda_graphs" in r.getMessage()]
    assert lines == ["model.cuda_graphs=true needs a CUDA device; on cpu it does nothing"]
    assert module.net._compiled_call_impl is None  # nothing compiled
    assert math.isfinite(float(trainer.callback_metrics["train/loss"]))
