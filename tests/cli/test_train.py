"""`cac-train` on the real configs: fast_dev_run per net, smoke run outputs, resume, DDP."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cac_lightning.cli.train import train


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    from cac_lightning.sources.synthetic import generate_cohort

    out = tmp_path_factory.mktemp("cohort") / "synthetic"
    generate_cohort(out, 8, seed=0, size=64, workers=1)
    return out


def _cfg(train_cfg, cohort, *extra, root=None):
    return train_cfg([f"data.data_dir={cohort}", "logger=csv", *extra], root)


@pytest.mark.parametrize("net", ["unet_tiny", "unetplusplus_tiny"])
def test_fast_dev_run(train_cfg, cohort, net):
    cfg = _cfg(train_cfg, cohort, f"model/net={net}", "+trainer.fast_dev_run=true", "test=false")
    metrics, objs = train(cfg)
    assert objs["model"].hparams.net["name"] == net.removesuffix("_tiny")
    assert "train/loss" in metrics and torch.isfinite(torch.tensor(metrics["train/loss"]))
    assert "val/agatston_mae" in metrics


def test_smoke_run_writes_checkpoint_csv_wandb(train_cfg, cohort):
    cfg = train_cfg([f"data.data_dir={cohort}", "calibrate_lesion_floor=true"])
    metrics, objs = train(cfg)
    import wandb

    wandb.finish()
    out = Path(cfg.paths.output_dir)
    assert (out / "checkpoints" / "last.ckpt").is_file()
    best = objs["trainer"].checkpoint_callback.best_model_path
    assert best and Path(best).is_file()
    assert (out / "csv" / "metrics.csv").is_file()
    assert "val/agatston_mae" in (out / "csv" / "metrics.csv").read_text()
    runs = list((out / "wandb").glob("offline-run-*"))
    assert runs and any(runs[0].rglob("*.wandb"))
    assert list(runs[0].rglob("media/images/val/overlays*.png"))  # overlay images logged
    assert (out / "metrics.json").is_file()
    assert "test/agatston_mae" in metrics and "test_zero/zero_cac_flagged_rate" in metrics
    # model size and training speed (callbacks/throughput.py) reach metrics.json
    import json

    written = json.loads((out / "metrics.json").read_text())["metrics"]
    n_params = sum(p.numel() for p in objs["model"].parameters() if p.requires_grad)
    assert written["model/params"] == n_params and written["train/slices_per_s"] > 0
    ck = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    assert ck["hyper_parameters"]["net"]["name"] == "unetplusplus"
    # the lesion-confidence floor, chosen on the validation scans, is in the best checkpoint
    # file and in the module the test ran with
    from cac_lightning.inference.confidence import FLOOR_GRID

    floor = torch.load(best, weights_only=True)["hyper_parameters"]["lesion_confidence"]
    assert floor == objs["model"].hparams["lesion_confidence"]
    assert floor["floor"] in FLOOR_GRID and floor["calibrated_on"] == "val"
    assert len(floor["agatston_mae"]) == len(FLOOR_GRID) and floor["n_scans"] > 0
    assert metrics["calibration/lesion_floor"] == floor["floor"]
    assert "calibration/lesion_floor" in (out / "csv" / "metrics.csv").read_text()
    from cac_lightning.evaluation.wandb_file import read_run

    (run_file,) = runs[0].glob("*.wandb")
    logged = {k for row in read_run(run_file, wait_s=60).history for k in row}
    assert {"calibration/lesion_floor", "calibration/val_agatston_mae_floor"} <= logged


def test_resume_continues_epoch_count(train_cfg, cohort, tmp_path):
    cfg = _cfg(
        train_cfg,
        cohort,
        "trainer.max_epochs=1",
        "test=false",
        "callbacks.loss_gap_stopping.patience=100",
    )
    _, objs = train(cfg)
    last = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    assert objs["trainer"].current_epoch == 1
    cfg2 = _cfg(
        train_cfg,
        cohort,
        "trainer.max_epochs=3",
        "test=false",
        "callbacks.loss_gap_stopping.patience=100",
        f"ckpt_path={last}",
        root=tmp_path / "r",
    )
    _, objs2 = train(cfg2)
    assert objs2["trainer"].current_epoch == 3
    assert objs2["trainer"].global_step == 3 * objs["trainer"].global_step


def test_last_checkpoint_is_the_latest_epoch(train_cfg, cohort):
    """Lightning >= 2.6 writes last.ckpt only at a step with a top-k save; a resume must start
    from the latest epoch even when it did not improve (here: monitoring the epoch number, least
    is best, so only epoch 0 is a top-k save)."""
    cfg = _cfg(
        train_cfg, cohort, "trainer.max_epochs=2", "test=false", "monitor=epoch",
        "monitor_mode=min", "~callbacks.early_stopping", "callbacks.loss_gap_stopping.patience=100",
    )  # fmt: skip
    _, objs = train(cfg)
    last = torch.load(Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["epoch"] == 1 and last["global_step"] == objs["trainer"].global_step


def test_bad_data_dir_is_one_line(tmp_path):
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "cac_lightning.cli.train",
            "data=manifest",
            f"data.data_dir={tmp_path / 'missing'}",
            "logger=csv",
            f"paths.log_dir={tmp_path}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 2
    err = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert err[-1].startswith("cac-train: error:") and "Traceback" not in r.stderr


def test_multirun_job_failures_are_recorded_and_the_sweep_goes_on(tmp_path, capsys):
    """Each job of a multirun that raises writes failed.json and the next job runs; the
    sweep ends normally, and cac-compare finds nothing usable (one line, exit 2)."""
    import json

    from cac_lightning.cli.compare import main as compare

    r = subprocess.run(
        [
            sys.executable, "-m", "cac_lightning.cli.train", "-m", "data=manifest",
            f"data.data_dir={tmp_path / 'missing'}", "logger=csv", f"paths.log_dir={tmp_path}",
            "seed=1,2",
        ],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    failed = sorted(tmp_path.rglob("failed.json"))
    assert [f.parent.name for f in failed] == ["0", "1"]
    record = json.loads(failed[1].read_text())
    assert record["error"] == "InputError" and "seed=2" in record["overrides"]
    assert "manifest" in record["message"] and "\n" not in record["message"]
    assert "Traceback" not in r.stderr  # a user error: one line per job
    assert r.stderr.count("cac-train: job failed:") == 2
    assert compare([str(failed[0].parents[1]), "--out", str(tmp_path / "r.md")]) == 2
    assert "(2 failed, 0 unfinished jobs)" in capsys.readouterr().err


def test_eval_without_checkpoint_names_the_override(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "cac_lightning.cli.evaluate", f"paths.log_dir={tmp_path}"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr
    err = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(err) == 1 and "ckpt_path=..." in err[0], r.stderr
    assert not (tmp_path / "data").exists()  # nothing generated


@pytest.mark.slow
def test_ddp_two_cpu_processes(train_cfg, cohort):
    # no logger: Lightning's CSVLogger cannot add columns across ddp_spawn's fit and test
    # processes (its header lives in the spawned process)
    cfg = train_cfg(
        [
            f"data.data_dir={cohort}",
            "logger=[]",
            "callbacks.lr_monitor=null",
            "trainer=ddp_cpu",
            "trainer.max_epochs=1",
            "data.num_workers=0",
            "calibrate_lesion_floor=true",
        ]
    )
    metrics, objs = train(cfg)
    t = objs["trainer"]
    assert t.world_size == 2
    best = torch.load(t.checkpoint_callback.best_model_path, weights_only=True)
    assert (
        best["hyper_parameters"]["lesion_confidence"]["floor"]
        == metrics["calibration/lesion_floor"]
    )
    assert (Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt").is_file()
    assert "val/agatston_mae" in metrics
    # test scans are sharded across the two ranks and gathered: every scan is scored once
    dm = objs["datamodule"]
    dm.setup("test")
    for split in ("val", "test", "test_zero"):
        n = len(dm.scans(split))
        assert n >= 1 and metrics[f"{split}/n_scans"] == n, split


def test_eval_report_from_checkpoint(train_cfg, cohort, tmp_path, capsys):
    """cac-eval on a freshly trained checkpoint writes the paper's report, and its metrics are
    those of cac-train's test callback on the same checkpoint and scans (one metric path); by
    default on the data the checkpoint records, a data group given instead is said in a line."""
    import json

    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    from cac_lightning.callbacks import ScanAgatstonEvaluation
    from cac_lightning.cli.evaluate import evaluate
    from cac_lightning.config import CONF_DIR

    cfg = _cfg(train_cfg, cohort, "trainer.max_epochs=1", "test=false")
    _, objs = train(cfg)
    ckpt = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    trainer = objs["trainer"]
    trainer.test(objs["model"], datamodule=objs["datamodule"], ckpt_path=str(ckpt), verbose=False)
    callback = next(c for c in trainer.callbacks if isinstance(c, ScanAgatstonEvaluation))
    GlobalHydra.instance().clear()

    def cac_eval(ckpt_path: str, report: str, data=("data=manifest", f"data.data_dir={cohort}")):
        with initialize_config_dir(version_base="1.3", config_dir=CONF_DIR):
            ecfg = compose(
                config_name="eval",
                return_hydra_config=True,
                overrides=[
                    f"ckpt_path={ckpt_path}",
                    *data,
                    f"report_dir={tmp_path / report}",
                    "device=cpu",
                ],
            )
            HydraConfig().set_config(ecfg)
        return evaluate(ecfg)

    capsys.readouterr()
    own, _ = cac_eval(str(ckpt), "own", data=())  # the checkpoint's own data definition
    assert "cac-eval:" not in capsys.readouterr().out
    metrics, out = cac_eval(str(ckpt), "report")
    (line,) = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("cac-eval:")]
    assert "data from the command line" in line and str(cohort) in line
    for key in ("test/agatston_mae", "test/icc_agatston_total", "test_zero/n_scans"):
        assert own[key] == metrics[key] or (math.isnan(own[key]) and math.isnan(metrics[key]))
    report = json.loads((out / "metrics.json").read_text())
    assert set(report["splits"]) == {"test", "test_zero"}
    assert "table7" in report["splits"]["test"] and "table5" in report["splits"]["test"]
    assert "### Table 6" in (out / "report.md").read_text()
    assert (out / "bland_altman_test.png").is_file()
    assert "test/icc_agatston_total" in metrics
    for key in ("agatston_mae", "icc_agatston_total", "kappa", "kappa_linear", "dice"):
        for split in ("test", "test_zero"):
            a, b = callback.metrics[f"{split}/{key}"], metrics[f"{split}/{key}"]
            assert a == b or (math.isnan(a) and math.isnan(b)), (split, key, a, b)
    assert math.isfinite(metrics["test/agatston_mae"]) and math.isfinite(metrics["test/dice"])
    # ckpt_path=[A,A]: an ensemble of one checkpoint twice scores as that checkpoint
    metrics2, out2 = cac_eval(f"[{ckpt},{ckpt}]", "report2")
    assert "ensemble of 2" in (out2 / "report.md").read_text()
    for key in ("test/agatston_mae", "test/icc_agatston_total", "test/kappa", "test/dice"):
        a, b = metrics[key], metrics2[key]
        assert a == b or (math.isnan(a) and math.isnan(b)), (key, a, b)
