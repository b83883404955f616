"""``cac-eval``: the paper's evaluation report for a checkpoint on a dataset split.

``cac-eval ckpt_path=CKPT [splits=[test,test_zero]] [logger=wandb]`` (or
``ckpt_path=[CKPT,CKPT,...]``: an ensemble, :meth:`Predictor.from_checkpoints`;
``lesion_floor=P`` replaces the checkpoint's lesion-confidence floor, 0 removes it) writes
``report_dir`` (``metrics.json``, ``report.md``, ``records.jsonl``, PNG plots) and, with a
W&B logger, logs the tables and plots to W&B.

The scans are those of the data definition the checkpoint records (``data`` of
:mod:`cac_lightning.models.checkpoint`: the DataModule and its arguments the network was trained
with, so the splits, cohort, grid and thresholds are the training run's; an ensemble uses its
first member's). ``data_dir=DIR`` says where that dataset lives on this machine; ``data=...``
(a data group, e.g. ``data=manifest data.data_dir=DIR``) replaces the definition. Either prints
one line saying so.
Every scan is predicted and scored on its native grid (``native_scans``: the manifest's image
and label map), as ``cac-score`` scores it.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from cac_lightning.config import CONF_DIR
from cac_lightning.errors import InputError

__all__ = ["data_config", "evaluate", "main"]

_DATA_PACKAGE = "cac_lightning.data."

log = logging.getLogger("cac_lightning.eval")


def evaluate(cfg: DictConfig) -> tuple[dict, Path]:
    """Predict every scan of ``cfg.splits`` with ``cfg.ckpt_path``; write the report."""
    from hydra.utils import instantiate

    from cac_lightning.cli.common import check_config
    from cac_lightning.evaluation.records import evaluate_scans
    from cac_lightning.evaluation.report import write_report
    from cac_lightning.evaluation.tables import metrics_by_split
    from cac_lightning.inference import Predictor

    check_config(cfg)
    paths = cfg.ckpt_path if OmegaConf.is_list(cfg.ckpt_path) else [cfg.ckpt_path]
    predictor = Predictor.from_checkpoints(list(paths), cfg.device, cfg.batch_size)
    if cfg.get("lesion_floor") is not None:
        predictor.set_floor(float(cfg.lesion_floor))
    data, note = data_config(cfg, predictor.record.data, str(paths[0]))
    if note:
        print(f"cac-eval: {note}")
    dm = instantiate(data)
    dm.prepare_data()
    dm.setup("test")
    records = []
    for split in cfg.splits:
        records += evaluate_scans(predictor, dm.native_scans(split), split=split)
        log.info("%s: %d scans", split, sum(r.split == split for r in records))
    out = write_report(
        cfg.report_dir,
        records,
        title=f"CAC evaluation: {predictor.name}",
        settings={
            "checkpoint": ", ".join(str(p) for p in paths),
            "scoring": predictor.scoring,
            "model": predictor.describe(),
            "splits": list(cfg.splits),
        },
    )
    metrics = metrics_by_split(records)
    _log_wandb(cfg, metrics, out)
    return metrics, out


def _describe(data: Any) -> str:
    """``CACDataModule at DIR`` of a data definition."""
    return f"{str(data.get('_target_', '?')).rsplit('.', 1)[-1]} at {data.get('data_dir')}"


def data_config(cfg: DictConfig, recorded: dict | None, ckpt: str) -> tuple[Any, str | None]:
    """The data definition to evaluate on, and the line to print when it is not the
    checkpoint's own.

    Args:
        cfg: the eval config: ``data`` (a data group given on the command line, else absent)
            and ``data_dir`` (where the checkpoint's dataset lives here, else null).
        recorded: the checkpoint's ``data`` record (``{"_target_": ..., **kwargs}``) or None.
        ckpt: the checkpoint, for messages.

    Raises:
        InputError: no data group given and the checkpoint records no data definition, or a
            recorded DataModule outside ``cac_lightning.data`` (a checkpoint never names code to
            run).
    """
    given = cfg.get("data")
    if given is not None:
        if recorded is None:
            return given, None
        return given, (
            f"data from the command line ({_describe(given)}), not the checkpoint's training "
            f"data ({_describe(recorded)}): the figures are for the data you gave"
        )
    if recorded is None:
        raise InputError(
            f"{ckpt} records no data definition (written before cac-train stored it): give one, "
            "e.g. data=synthetic or data=manifest data.data_dir=DIR"
        )
    target = str(recorded.get("_target_", ""))
    if not target.startswith(_DATA_PACKAGE):
        raise InputError(
            f"{ckpt}: its data definition names {target!r}, not a DataModule of "
            f"{_DATA_PACKAGE.rstrip('.')}: give data=..."
        )
    data = dict(recorded)
    note = None
    if cfg.get("data_dir"):
        note = (
            f"the checkpoint's data definition with data_dir={cfg.data_dir} "
            f"(trained at {data.get('data_dir')})"
        )
        data["data_dir"] = str(cfg.data_dir)
    return OmegaConf.create(data), note


def _log_wandb(cfg: DictConfig, metrics: dict, out: Path) -> None:
    loggers = [c for c in (cfg.get("logger") or {}).values() if "Wandb" in c.get("_target_", "")]
    if not loggers:
        return
    import wandb

    c = loggers[0]
    run = wandb.init(
        project=c.project,
        group=c.get("group"),
        tags=list(c.get("tags") or []),
        job_type="eval",
        dir=str(out),
        mode="offline" if c.offline else None,
        config=OmegaConf.to_container(cfg, resolve=True),
    )
    run.log({k: v for k, v in metrics.items() if v == v})
    run.log({p.stem: wandb.Image(str(p)) for p in sorted(out.glob("*.png"))})
    run.log({"report": wandb.Html((out / "report.md").read_text())})
    run.finish()


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="eval")
def _hydra_main(cfg: DictConfig) -> None:
    from cac_lightning.errors import CACError

    try:
        metrics, out = evaluate(cfg)
    except CACError as err:
        print(f"cac-eval: error: {err}", file=sys.stderr)
        sys.exit(2)
    print((out / "report.md").read_text())
    print(f"report written to {out}")


def main() -> None:
    """Console entry point (Hydra parses the command line)."""
    _hydra_main()


if __name__ == "__main__":
    main()
