"""Every option of every config group composes and instantiates."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from cac_lightning.config import CONF_DIR
from cac_lightning.models.registry import stored_net

CONF = Path(CONF_DIR)


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def test_groups_exist():
    for g in (
        "data",
        "model",
        "model/net",
        "model/criterion",
        "trainer",
        "callbacks",
        "logger",
        "paths",
        "experiment",
        "hparams_search",
        "hydra/launcher",
    ):
        assert options(g), g
    assert {"paper_unet", "paper_unetplusplus", "demo", "smoke"} <= set(options("experiment"))
    assert {"cpu", "gpu", "ddp"} <= set(options("trainer"))


def test_monitor_declared_once(train_cfg):
    cfg = train_cfg()
    assert cfg.monitor == "val/agatston_mae"
    assert cfg.callbacks.model_checkpoint.monitor == cfg.monitor
    assert cfg.callbacks.early_stopping.monitor == cfg.monitor
    cfg = train_cfg(["monitor=val/dice", "monitor_mode=max"])
    assert cfg.callbacks.model_checkpoint.monitor == "val/dice"
    assert cfg.callbacks.model_checkpoint.mode == "max"


@pytest.mark.parametrize("experiment", options("experiment"))
def test_experiment_composes(train_cfg, experiment):
    cfg = train_cfg([f"experiment={experiment}"])
    assert cfg.model.net.name in {"unet", "unetplusplus"}
    assert cfg.data.batch_size >= 1


def test_paper_settings(train_cfg):
    cfg = train_cfg(["experiment=paper_unetplusplus"])
    assert list(cfg.model.net.channels) == [32, 64, 128, 256, 512]
    assert cfg.model.net.in_channels == 2 and "num_classes" not in cfg.model.net  # vessels'
    assert cfg.model.criterion.name == "focal"
    assert (cfg.model.criterion.alpha, cfg.model.criterion.gamma) == (0.5, 3.0)
    assert cfg.model.optimizer.lr == 1e-4 and cfg.model.scheduler.gamma == 0.95
    assert cfg.data.batch_size == 4 and cfg.data.synthetic.size == 512
    assert cfg.data.augment is None and cfg.callbacks.early_stopping is None
    assert cfg.trainer.precision == "bf16-mixed"
    assert train_cfg(["experiment=paper_unet"]).model.net.name == "unet"


@pytest.mark.parametrize("net", options("model/net"))
@pytest.mark.parametrize("criterion", options("model/criterion"))
def test_model_options_instantiate(train_cfg, net, criterion):
    cfg = train_cfg([f"model/net={net}", f"model/criterion={criterion}"])
    # an option is an arm (file name = arm name) or a size preset of one (unet_cpu)
    assert net.startswith(cfg.model.net.name)
    if "channels" in cfg.model.net and not net.startswith("monai"):
        cfg.model.net.channels = [4, 8, 16]  # the paper nets, shrunk: cheap
    model = instantiate(cfg.model)
    # what the checkpoint stores: the config less the init-only keys (encoder_weights_path)
    assert model.hparams.net == stored_net(OmegaConf.to_container(cfg.model.net))
    assert "encoder_weights_path" not in model.hparams.net
    # an option is a criterion (file name = criterion name) or a preset of one (dice_focal_cpu)
    assert model.hparams.criterion["name"] == cfg.model.criterion.name
    assert criterion.startswith(cfg.model.criterion.name)


def test_train_help_lists_the_arms(train_cfg):
    """`cac-train --help` prints the registry's table (conf/hydra/help/train.yaml)."""
    from cac_lightning.models import NETS

    text = train_cfg().hydra.help.template
    assert all(f"\n{name} " in text for name in NETS)
    assert "$APP_CONFIG_GROUPS" in text  # Hydra fills in the groups


@pytest.mark.parametrize("trainer", options("trainer"))
def test_trainer_options_compose(train_cfg, trainer):
    cfg = train_cfg([f"trainer={trainer}"])
    assert cfg.trainer.use_distributed_sampler is False
    if trainer in ("cpu", "default", "ddp_cpu"):
        t = instantiate(cfg.trainer, logger=False, enable_checkpointing=False)
        assert t.max_epochs == cfg.trainer.max_epochs


@pytest.mark.parametrize("logger", options("logger"))
def test_logger_options_instantiate(train_cfg, logger, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    if logger == "tensorboard":
        pytest.importorskip("tensorboard")
    cfg = train_cfg([f"logger={logger}"])
    for c in cfg.logger.values():
        lg = instantiate(c)
        assert lg.save_dir


@pytest.mark.parametrize("callbacks", options("callbacks"))
def test_callback_options_instantiate(train_cfg, callbacks):
    cfg = train_cfg([f"callbacks={callbacks}"])
    from lightning.pytorch import Callback

    objs = [instantiate(c) for c in (cfg.callbacks or {}).values()]
    assert all(isinstance(o, Callback) for o in objs)
    if callbacks == "default":
        from lightning.pytorch.callbacks import ModelCheckpoint

        names = {type(o).__name__ for o in objs}
        assert {"ScanAgatstonEvaluation", "LossGapStopping", "TrainingThroughput"} <= names
        assert any(isinstance(o, ModelCheckpoint) for o in objs)


def test_demo_ema_validates_the_weight_average_after_the_scan_evaluation(train_cfg):
    # EMAWeights swaps the raw weights back at validation-epoch end: it must come after agatston
    ema = train_cfg(["experiment=demo_ema"])
    keys = list(ema.callbacks)
    assert keys.index("ema") > keys.index("agatston")
    demo = train_cfg(["experiment=demo"])
    assert "ema" not in demo.callbacks and "ema" not in train_cfg().callbacks
    plain, want = OmegaConf.to_container(ema), OmegaConf.to_container(demo)
    del plain["callbacks"]["ema"], plain["hydra"], want["hydra"]  # hydra: the choice's name
    assert plain == want  # the demo recipe plus the average, nothing else


@pytest.mark.parametrize("data", options("data"))
def test_data_options_instantiate(train_cfg, data, tmp_path):
    overrides = [f"data={data}"]
    if data != "synthetic":
        overrides.append(f"data.data_dir={tmp_path / 'ds'}")
    cfg = train_cfg(overrides)
    dm = instantiate(cfg.data)
    assert dm.batch_size == cfg.data.batch_size
    assert dm.hparams.window == list(cfg.data.window)


def test_hparams_search_and_launcher_compose(train_cfg):
    cfg = train_cfg(["hparams_search=optuna"])
    assert cfg.hydra.sweeper.direction == "minimize"
    assert "model/net" in cfg.hydra.sweeper.params
    # a failed job (no return value) is a failed trial, and the search goes on
    assert cfg.hydra.sweeper.max_failure_rate == 1.0
    cfg = train_cfg(["hydra/launcher=slurm"])
    assert cfg.hydra.launcher._target_.endswith("SlurmLauncher")
