"""`cac-train -m experiment=arch_sweep`: the arms line matches the sweep, every arm composes and
builds at its own default size, and the sweep is CPU-sized."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra.utils import instantiate

from cac_lightning.config import CONF_DIR

EXPERIMENT = Path(CONF_DIR) / "experiment" / "arch_sweep.yaml"


def arms_line() -> list[str]:
    """The arms of the experiment's ``# arms:`` comment."""
    text = EXPERIMENT.read_text().splitlines()
    (line,) = [ln for ln in text if ln.strip().startswith("# arms:")]
    return [a.strip() for a in line.split(":", 1)[1].split(",")]


def test_arms_line_is_the_sweep(train_cfg):
    cfg = train_cfg(["experiment=arch_sweep"])
    params = cfg.hydra.sweeper.params
    arms = params["model/net"].split(",")
    assert arms_line() == arms
    nets = {p.stem for p in (Path(CONF_DIR) / "model" / "net").glob("*.yaml")}
    assert set(arms) <= nets and len(arms) >= 2
    assert params["seed"] == "1,2" and str(cfg.hydra.mode) == "RunMode.MULTIRUN"


@pytest.mark.parametrize("arm", arms_line())
def test_every_arm_builds_small_images(train_cfg, arm):
    if arm.startswith("smp"):
        pytest.importorskip("segmentation_models_pytorch")
    cfg = train_cfg(["experiment=arch_sweep", f"model/net={arm}", "seed=2"])
    assert cfg.model.net.name == arm and cfg.seed == 2 and cfg.group == "arch_sweep"
    assert cfg.data.synthetic.size == 64 and cfg.data.synthetic.n_scans == 16
    assert cfg.trainer.max_epochs == 4 and cfg.trainer.accelerator == "cpu"
    model = instantiate(cfg.model)
    assert model.hparams.net["name"] == arm
