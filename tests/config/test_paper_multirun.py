"""The README's ablation multirun composes the paper's recipe for every job.

The command is read from the README itself, expanded as Hydra's basic sweeper expands it, and
each job's config is composed with the Hydra compose API: it must be exactly
``experiment=paper_<net>`` with that seed (no augmentation, no early stopping, the recipe's
precision and lesion scoring), and the sweep must cover both networks and three seeds.
"""

from __future__ import annotations

import itertools
import re
import shlex
from pathlib import Path

import pytest
from omegaconf import OmegaConf

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_multirun() -> list[str]:
    """The overrides of the README's ``cac-train -m ... seed=1,2,3`` ablation line."""
    lines = [
        ln for ln in README.read_text().splitlines() if re.match(r"\s*cac-train -m .*seed=", ln)
    ]
    assert len(lines) == 1, lines
    tokens = shlex.split(lines[0].split("#", 1)[0])
    assert tokens[:2] == ["cac-train", "-m"]
    return tokens[2:]


def expand(overrides: list[str]) -> list[list[str]]:
    """One override list per job, as Hydra's basic sweeper expands comma sweeps."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(overrides)
    choices = [
        [f"{o.get_key_element()}={v}" for v in o.sweep_string_iterator()]
        if o.is_sweep_override()
        else [o.input_line]
        for o in parsed
    ]
    return [list(job) for job in itertools.product(*choices)]


@pytest.fixture(scope="module")
def compose():
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from cac_lightning.config import CONF_DIR

    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=CONF_DIR):
        yield lambda overrides: hydra_compose(config_name="train", overrides=overrides)
    GlobalHydra.instance().clear()


def test_readme_multirun_composes_the_paper_recipe(compose):
    jobs = expand(readme_multirun())
    assert len(jobs) == 6, jobs
    seen = set()
    for job in jobs:
        cfg = compose(job)
        net, seed = cfg.model.net.name, cfg.seed
        seen.add((net, seed))
        # the paper's settings (docs/paper_recipe.md)
        assert cfg.data.augment is None, job
        assert cfg.callbacks.get("early_stopping") is None, job
        assert cfg.callbacks.loss_gap_stopping.patience == 2, job
        assert cfg.model.scoring.mode == "lesion3d", job
        assert cfg.model.criterion.name == "focal" and cfg.model.optimizer.lr == 1.0e-4, job
        assert cfg.monitor == "val/agatston_mae" and cfg.group == "paper", job
        # ... and nothing else: the job is that network's paper experiment with this seed
        recipe = compose([f"experiment=paper_{net}", f"seed={seed}"])
        assert cfg.trainer.precision == recipe.trainer.precision, job
        assert OmegaConf.to_container(cfg) == OmegaConf.to_container(recipe), job
    assert seen == {(n, s) for n in ("unet", "unetplusplus") for s in (1, 2, 3)}
