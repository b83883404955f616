"""`cac-train init_from=CKPT`: weights only, fresh optimiser and epoch 0, network check; the
`experiment=finetune_coca` recipe on a manifest dataset."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cac_lightning.cli.train import train
from cac_lightning.errors import InputError
from cac_lightning.models.pretrained import load_init_weights


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    from cac_lightning.sources.synthetic import generate_cohort

    out = tmp_path_factory.mktemp("cohort") / "synthetic"
    generate_cohort(out, 6, seed=3, size=64, workers=1)
    return out


def _cfg(train_cfg, cohort, *extra, root=None):
    return train_cfg([f"data.data_dir={cohort}", "logger=csv", "test=false", *extra], root)


def test_init_from_loads_weights_not_training_state(train_cfg, cohort, tmp_path):
    cfg = _cfg(train_cfg, cohort, "trainer.max_epochs=1", root=tmp_path / "a")
    _, objs = train(cfg)
    last = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    steps = objs["trainer"].global_step
    assert steps > 0
    src = torch.load(last, weights_only=True)["state_dict"]

    # No training: the new model holds exactly the checkpoint's weights.
    cfg0 = _cfg(train_cfg, cohort, f"init_from={last}", "train=false", root=tmp_path / "b")
    _, objs0 = train(cfg0)
    own = objs0["model"].state_dict()
    assert set(own) == set(src)
    assert all(torch.equal(own[k], src[k]) for k in src)

    # One epoch of fine-tuning starts at epoch 0 (a resume of that 1-epoch run would do 0 steps).
    cfg1 = _cfg(train_cfg, cohort, f"init_from={last}", "trainer.max_epochs=1", root=tmp_path / "c")
    _, objs1 = train(cfg1)
    assert objs1["trainer"].current_epoch == 1
    assert objs1["trainer"].global_step == steps
    opt = objs1["trainer"].optimizers[0]
    assert all(s["step"].item() == steps for s in opt.state.values() if "step" in s)


def test_init_from_mismatch_and_bad_files(train_cfg, cohort, tmp_path):
    cfg = _cfg(train_cfg, cohort, "train=false")
    _, objs = train(cfg)
    model = objs["model"]
    good = tmp_path / "plain.pt"
    torch.save(model.state_dict(), good)
    assert load_init_weights(model, good)["path"] == str(good)
    wrong = {k: v for k, v in model.state_dict().items()}
    key = next(k for k, v in wrong.items() if v.ndim == 4)
    wrong[key] = torch.zeros(1, 1, 1, 1)
    torch.save({"state_dict": wrong, "epoch": 3}, tmp_path / "wrong.ckpt")
    with pytest.raises(InputError, match="does not match.*1 shape mismatches"):
        load_init_weights(model, tmp_path / "wrong.ckpt")
    with pytest.raises(InputError, match="no such checkpoint"):
        load_init_weights(model, tmp_path / "missing.ckpt")
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="not a loadable checkpoint"):
        load_init_weights(model, tmp_path / "junk.ckpt")


def test_cli_mismatched_network_is_one_line_exit_2(tmp_path):
    """A checkpoint of another network: one line, exit code 2, before any data is prepared."""
    torch.save({"state_dict": {"net.conv.weight": torch.zeros(2, 2)}}, tmp_path / "other.ckpt")
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "cac_lightning.cli.train",
            "experiment=smoke",
            f"init_from={tmp_path / 'other.ckpt'}",
            f"data.data_dir={tmp_path / 'never_made'}",
            "logger=csv",
            f"paths.log_dir={tmp_path}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 2, r.stderr
    err = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert err[-1].startswith("cac-train: error: init_from=") and "does not match" in err[-1]
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "never_made").exists()


def test_finetune_coca_recipe_runs_on_a_manifest(cohort, tmp_path):
    """The recipe composes (COCA data group, weights-only start) and trains on any manifest."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from hydra.utils import instantiate
    from omegaconf import OmegaConf, open_dict

    from cac_lightning.config import CONF_DIR

    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=CONF_DIR):
        base = compose(config_name="train", overrides=["experiment=finetune_coca"])
        assert base.require_init_from and base.init_from is None
        with pytest.raises(InputError, match="give init_from=CKPT"):
            train(base)
        # the demo's weights are fine-tuned at the demo's grid and with its network
        demo = compose(config_name="train", overrides=["experiment=demo"])
        keys = (
            "data.target_spacing_mm",
            "data.fov_mm",
            "model.net.name",
            "model.net.channels",
            "model.criterion",
            "model.loss_region",
        )
        for key in keys:
            assert OmegaConf.select(base, key) == OmegaConf.select(demo, key), key
        assert base.model.optimizer.lr < demo.model.optimizer.lr
        model = instantiate(base.model)
        ckpt = tmp_path / "tiny.ckpt"
        torch.save({"state_dict": model.state_dict(), "epoch": 9}, ckpt)
        cfg = compose(
            config_name="train",
            return_hydra_config=True,
            overrides=[
                "experiment=finetune_coca",
                f"init_from={ckpt}",
                f"data.data_dir={cohort}",
                "data.fov_mm=44.8",
                "data.crop=32",
                "data.target_spacing_mm=1.4",
                "data.samples_per_epoch=8",
                "data.num_workers=0",
                "trainer=cpu",
                "trainer.max_epochs=1",
                "logger=csv",
                "test=false",
            ],
        )
        HydraConfig().set_config(cfg)
        with open_dict(cfg):
            cfg.paths.output_dir = str(tmp_path / "out")
            cfg.paths.log_dir = str(tmp_path / "logs")
            cfg.paths.data_dir = str(tmp_path / "data")
    try:
        metrics, objs = train(cfg)
    finally:
        GlobalHydra.instance().clear()
    assert objs["trainer"].current_epoch == 1 and "val/agatston_mae" in metrics
    assert (tmp_path / "logs" / "finetune_coca" / "best.ckpt").is_file()
