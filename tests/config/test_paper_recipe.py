"""The recipe card docs/paper_recipe.md is a test: each row matches the composed paper_* configs."""

from __future__ import annotations

import importlib
import math
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

CARD = Path(__file__).resolve().parents[2] / "docs" / "paper_recipe.md"
EXPERIMENTS = ("paper_unet", "paper_unetplusplus")
# Settings of the paper the card must cover (issue 8, item 1); a deleted row fails here.
REQUIRED = {
    "input channels", "mask threshold", "network", "network (ablation)", "channels per level",
    "output classes", "loss", "focal α", "focal γ", "sampler balance", "epoch size", "batch size",
    "optimiser", "learning rate", "decay per epoch", "decay factor", "stopping rule",
    "stopping statistic", "stopping margin", "checkpoint selection", "augmentation", "noise rule",
    "scoring", "splits", "splits (synthetic cohort)", "zero-calcium test set", "precision",
    "memory format",
    "Agatston slice factor",
}  # fmt: skip


def card_rows(path: Path = CARD) -> list[dict[str, str]]:
    """Rows of every table in the card that has a ``Config key`` column."""
    rows, header = [], None
    for line in path.read_text().splitlines():
        if not line.startswith("|"):
            header = None
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if header is None:
            header = cells
        elif set("".join(cells)) <= set("-: "):
            continue
        elif "Config key" in header:
            rows.append(dict(zip(header, cells, strict=True)))
    return rows


@pytest.fixture(scope="module")
def configs():
    """``experiment=paper_*`` composed as ``cac-train experiment=paper_*`` composes it."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from cac_lightning.config import CONF_DIR

    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=CONF_DIR):
        out = {e: compose(config_name="train", overrides=[f"experiment={e}"]) for e in EXPERIMENTS}
    GlobalHydra.instance().clear()
    return out


def actual_value(cfg, key: str):
    """The value a row's key names: a config key or ``py:module.CONSTANT``."""
    if key.startswith("py:"):
        module, _, name = key[3:].rpartition(".")
        value = getattr(importlib.import_module(module), name)
        return list(value) if isinstance(value, tuple) else value
    missing = object()
    node = OmegaConf.select(cfg, key, default=missing)
    if node is missing:
        raise AssertionError(f"config key {key} does not exist")
    if OmegaConf.is_config(node):
        return OmegaConf.to_container(node, resolve=True)
    return node


def same(a, b) -> bool:
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None:
        return a is b or a == b and type(a) is type(b)
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-12)
    return a == b


def check_card(configs: dict, rows: list[dict[str, str]]) -> list[str]:
    """One message per mismatch between the card and the composed configs."""
    errors = []
    for row in rows:
        exps = EXPERIMENTS if row["Experiment"] == "both" else (row["Experiment"],)
        key = row["Config key"]
        expected = yaml.safe_load(row["Value"])
        for e in exps:
            try:
                actual = actual_value(configs[e], key)
            except AssertionError as err:
                errors.append(f"{e}: {err} (card row {row['Setting']!r})")
                continue
            if not same(actual, expected):
                errors.append(
                    f"{e}: {key} = {actual!r}, but the recipe card says {expected!r} "
                    f"(row {row['Setting']!r}, paper section {row.get('Section', '-')})"
                )
    return errors


def test_card_covers_the_papers_settings():
    rows = card_rows()
    settings = {r["Setting"] for r in rows}
    assert REQUIRED <= settings, f"card rows missing: {sorted(REQUIRED - settings)}"
    for r in rows:
        assert r["Experiment"] in (*EXPERIMENTS, "both"), r
        assert r.get("Section") or r.get("Why we differ"), r


def test_card_matches_composed_configs(configs):
    errors = check_card(configs, card_rows())
    assert not errors, "recipe card and paper_* configs disagree:\n" + "\n".join(errors)


def test_changing_one_paper_value_fails_the_card(configs):
    """The check is not vacuous: a one-value change in a paper_* config is reported."""
    cfg = configs["paper_unet"].copy()
    OmegaConf.set_struct(cfg, False)
    cfg.data.batch_size = 8
    errors = check_card({**configs, "paper_unet": cfg}, card_rows())
    assert errors == [
        "paper_unet: data.batch_size = 8, but the recipe card says 4 "
        "(row 'batch size', paper section 2.4)"
    ]


def test_paper_experiments_split_the_synthetic_cohort_by_the_paper_rule(configs):
    """``experiment=paper_*`` hands ``split: paper`` to the cohort generator; the default stays
    the generator's own ``demo`` rule, so existing cohorts keep their splits."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from cac_lightning.config import CONF_DIR
    from cac_lightning.sources.synthetic import SPLIT_RULES

    for e in EXPERIMENTS:
        assert configs[e].data.synthetic.split == "paper", e
        assert configs[e].data.make_cohort._target_.endswith("synthetic.prepare_cohort"), e
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=CONF_DIR):
        default = compose(config_name="train")
    GlobalHydra.instance().clear()
    assert default.data.synthetic.split == SPLIT_RULES[0] == "demo"
