"""``cac-train``: the Hydra training app.

``cac-train experiment=demo``; ``cac-train -m model/net=unet,unetplusplus`` runs both;
``cac-train ckpt_path=.../last.ckpt`` resumes; ``cac-train init_from=CKPT`` fine-tunes (weights
only: fresh optimiser, epoch 0, any dataset). With ``calibrate_lesion_floor=true`` the best
checkpoint's lesion-confidence floor is chosen on the validation scans (native grid) after
fitting, before the test (:mod:`cac_lightning.evaluation.calibration`). The run folder holds
checkpoints, the CSV log, the offline W&B run and ``metrics.json`` (the end-of-run summary).

In a multirun (``-m``) a job that raises does not stop the sweep: it writes ``failed.json``
(error type, one-line message, overrides; :mod:`cac_lightning.evaluation.runs`) in its folder
and returns None, and the next job runs. A single run reports a user error in one line (exit 2)
and raises anything else.
"""

from __future__ import annotations

import logging
import math
import sys
from typing import Any

import hydra
from omegaconf import DictConfig

from cac_lightning.config import CONF_DIR

__all__ = ["main", "train"]

log = logging.getLogger("cac_lightning.train")


def _instantiate_dict(cfg: DictConfig | None) -> list:
    from hydra.utils import instantiate

    if not cfg:
        return []
    return [instantiate(c) for c in cfg.values() if isinstance(c, DictConfig) and "_target_" in c]


def _export_best(trainer, dest: str) -> None:
    """Copy the best (else the last) checkpoint to ``dest`` and print how to use it."""
    import shutil
    from pathlib import Path

    from cac_lightning.io.atomic import atomic_path

    cb = trainer.checkpoint_callback
    src = (cb.best_model_path or cb.last_model_path) if cb is not None else ""
    if not src or not Path(src).is_file():
        log.warning("no checkpoint to copy to %s", dest)
        return
    Path(dest).parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(dest) as tmp:
        shutil.copyfile(src, tmp)
    print(f"best checkpoint: {dest}")
    print(
        f"score your own DICOM series with it: cac-score DICOM_FOLDER --ckpt {dest} --out OUT_DIR"
    )


def _calibrate_floor(trainer, model, datamodule) -> dict[str, float]:
    """Choose the best checkpoint's lesion-confidence floor on the validation scans
    (:mod:`cac_lightning.evaluation.calibration`); record it in the module's hyper-parameters
    (so the test uses it) and in the checkpoint file (so cac-score and the exported copy do).

    Every rank computes the same floor (the same weights and scans); rank 0 rewrites the file.
    Returns the ``calibration/...`` metrics (also sent to the loggers); empty when skipped.
    """
    from cac_lightning.evaluation.calibration import calibrate_floor, write_floor
    from cac_lightning.inference import Predictor

    cb = trainer.checkpoint_callback
    best = cb.best_model_path if cb is not None else ""
    has_scans = best and hasattr(datamodule, "native_scans")
    scans = datamodule.native_scans("val") if has_scans else []
    if not scans:
        log.warning("no best checkpoint or no validation scans: no lesion-confidence floor")
        return {}
    predictor = Predictor.from_checkpoint(best, device=model.device)
    record = calibrate_floor(predictor, scans)
    model.hparams["lesion_confidence"] = record
    if trainer.is_global_zero:
        write_floor(best, record)
    trainer.strategy.barrier()
    values = {
        "calibration/lesion_floor": record["floor"],
        "calibration/val_agatston_mae_no_floor": record["agatston_mae"]["0"],
        "calibration/val_agatston_mae_floor": record["agatston_mae"][f"{record['floor']:g}"],
    }
    for lg in trainer.loggers:
        lg.log_metrics(values, step=trainer.global_step)
    return values


def _finish_wandb(exit_code: int | None = None) -> None:
    try:
        import wandb

        if wandb.run is not None:
            wandb.finish(exit_code=exit_code)
    except ImportError:
        pass


def _multirun_job() -> tuple[str, list[str]] | None:
    """(job folder, overrides) when this is a job of a Hydra multirun, else None."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return None
    hc = HydraConfig.get()
    return hc.runtime.output_dir, list(hc.overrides.task)


def _record_failure(job: tuple[str, list[str]], err: BaseException) -> None:
    """A multirun job that raised: log it, write ``failed.json`` in its folder, and let the
    sweep go on (the other arms still run; ``cac-compare`` lists the failure). A user error is
    one line; anything else also goes to the job's log with its traceback."""
    from cac_lightning.cli.common import user_error
    from cac_lightning.evaluation.runs import one_line, write_failure

    found = user_error(err)
    if found is None:
        log.error("job failed: %s", one_line(err), exc_info=err)
    path = write_failure(job[0], found or err, job[1])
    print(f"cac-train: job failed: {one_line(found or err)} (recorded in {path})", file=sys.stderr)


def _release_memory() -> None:
    """Free what a failed job held (Lightning's objects refer to each other) before the next
    job starts: an arm that ran out of GPU memory must not leave the next one short."""
    import gc

    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


def train(cfg: DictConfig) -> tuple[dict[str, float], dict[str, Any]]:
    """Fit (and test) the model described by ``cfg``; returns (metrics, objects).

    ``ckpt_path`` resumes: the file is loaded weights-only and checked against the model
    first (:mod:`cac_lightning.cli.resume`); the best score, early-stopping and loss-gap
    state carry over, and a run that had already stopped is not trained further. Add
    ``hydra.run.dir=<the run folder>`` to resume into the same run folder.
    """
    import lightning as L
    from hydra.utils import instantiate
    from lightning.pytorch.callbacks import ProgressBar

    from cac_lightning.callbacks import ScanAgatstonEvaluation
    from cac_lightning.callbacks.geometry import RecordDataGeometry
    from cac_lightning.callbacks.progress import progress_bar
    from cac_lightning.cli.common import check_config
    from cac_lightning.errors import InputError
    from cac_lightning.evaluation.dashboard import flatten_config
    from cac_lightning.evaluation.summary import summary_table, write_summary

    hparams = check_config(cfg)
    if cfg.get("require_init_from") and not cfg.get("init_from"):
        raise InputError(f"experiment {cfg.task_name} fine-tunes: give init_from=CKPT")
    if cfg.get("init_from") and cfg.get("ckpt_path"):
        raise InputError("give init_from (fine-tune) or ckpt_path (resume), not both")
    L.seed_everything(cfg.seed, workers=True)
    datamodule = instantiate(cfg.data)
    if hasattr(datamodule, "check_source"):
        datamodule.check_source()  # a missing manifest: one line before any trainer is built
    model = instantiate(cfg.model)
    if cfg.get("init_from"):
        from cac_lightning.models.pretrained import load_init_weights

        load_init_weights(model, cfg.init_from)
    callbacks = _instantiate_dict(cfg.get("callbacks")) + [RecordDataGeometry()]
    if cfg.trainer.get("enable_progress_bar", True) and not any(
        isinstance(c, ProgressBar) for c in callbacks
    ):
        callbacks.append(progress_bar())  # Lightning's default bar hangs DDP at epoch end
    ckpt_path = cfg.get("ckpt_path") if cfg.get("train") else None
    stopped = None
    if ckpt_path:
        from cac_lightning.cli.resume import (
            StopAtStart,
            check_against_model,
            load_resume_checkpoint,
            stopped_reason,
        )

        resume = load_resume_checkpoint(ckpt_path)
        check_against_model(resume, model, ckpt_path)
        stopped = stopped_reason(resume)
        del resume
        if stopped:
            log.warning("the resumed run had already stopped (%s): not training further", stopped)
            callbacks.append(StopAtStart())
    loggers = _instantiate_dict(cfg.get("logger"))
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    for lg in loggers:  # W&B gets flat keys so parallel coordinates and grouping can use them
        flat = type(lg).__name__ == "WandbLogger"
        lg.log_hyperparams(flatten_config(hparams) if flat else hparams)
    objects = {"cfg": cfg, "datamodule": datamodule, "model": model, "trainer": trainer}

    if cfg.get("train"):
        trainer.fit(model=model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    ckpt = trainer.checkpoint_callback
    if ckpt is not None and ckpt.best_model_score is not None:
        metrics[f"best/{cfg.monitor}"] = float(ckpt.best_model_score)

    export = cfg.get("export_ckpt") if cfg.get("train") else None
    if cfg.get("calibrate_lesion_floor") and cfg.get("train"):
        metrics.update(_calibrate_floor(trainer, model, datamodule))
    if cfg.get("test"):
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        if not best:
            log.warning("no best checkpoint: testing the current weights")
        trainer.test(model=model, datamodule=datamodule, ckpt_path=best or None, weights_only=True)
        metrics.update({k: float(v) for k, v in trainer.callback_metrics.items()})
        evaluator = next((c for c in callbacks if isinstance(c, ScanAgatstonEvaluation)), None)
        if trainer.is_global_zero:
            # the stable exported copy when there is one, so reruns write the same summary
            bar = cfg.get("quality_bar")
            bar = {str(k): float(v) for k, v in bar.items()} if bar else None
            summary = write_summary(
                cfg.summary_path, metrics, evaluator, best and (export or best), bar
            )
            print(summary_table(summary))
    if export and trainer.is_global_zero:
        _export_best(trainer, str(export))
    return metrics, objects


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="train")
def _hydra_main(cfg: DictConfig) -> float | None:
    from cac_lightning.cli.common import EXIT_USER_ERROR, user_error

    job = _multirun_job()
    failed = False
    try:
        metrics, _ = train(cfg)
    except Exception as err:  # ours, possibly wrapped by Hydra's instantiate: one line
        failed = True
        _finish_wandb(exit_code=1)
        if job is not None:  # None, not NaN: the Optuna sweeper fails on NaN
            _record_failure(job, err)
            return None
        found = user_error(err)
        if found is None:
            raise
        print(f"cac-train: error: {found}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
    finally:
        _finish_wandb()
        if failed and job is not None:
            _release_memory()
    name = cfg.get("optimized_metric")
    value = metrics.get(f"best/{name}", metrics.get(name)) if name else None
    return None if value is None or math.isnan(value) else value


def main() -> None:
    """Console entry point (Hydra parses the command line)."""
    _hydra_main()


if __name__ == "__main__":
    main()
