"""`cac-train`: resume safety (item 4), one-line config errors (9), best-score restore (11)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cac_lightning.cli.common import user_error
from cac_lightning.cli.train import train
from cac_lightning.errors import CACError, InputError

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    from cac_lightning.sources.synthetic import generate_cohort

    out = tmp_path_factory.mktemp("cohort") / "synthetic"
    generate_cohort(out, 8, seed=0, size=64, workers=1)
    return out


@pytest.fixture(scope="module")
def first_run(tmp_path_factory, cohort, compose_train_fn):
    """One epoch of the smoke recipe; its folder holds last.ckpt and the best checkpoint."""
    compose_train = compose_train_fn
    root = tmp_path_factory.mktemp("run1")
    cfg = compose_train(root, _over(cohort, "trainer.max_epochs=1"))
    _, objs = train(cfg)
    return cfg, objs


def _over(cohort, *extra):
    return [
        f"data.data_dir={cohort}",
        "logger=csv",
        "test=false",
        "callbacks.loss_gap_stopping.patience=100",
        *extra,
    ]


class Payload:
    """Unpickling this runs ``touch MARKER``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _run_cli(args: list[str], env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), **(env_extra or {})}
    return subprocess.run(
        [sys.executable, "-m", "cac_lightning.cli.train", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def _one_error_line(r: subprocess.CompletedProcess) -> str:
    assert r.returncode == 2, r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    errors = [ln for ln in r.stderr.splitlines() if "error" in ln.lower()]
    assert len(errors) == 1 and errors[0].startswith("cac-train: error:"), r.stderr[-2000:]
    return errors[0]


def test_payload_checkpoint_does_not_run(first_run, cohort, tmp_path):
    """Item 4: with TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 a crafted resume checkpoint is refused."""
    cfg, _ = first_run
    last = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    ckpt = torch.load(last, weights_only=True)
    marker = tmp_path / "payload_ran"
    ckpt["callbacks"]["Payload"] = Payload(marker)  # a real training checkpoint plus a payload
    evil = tmp_path / "evil.ckpt"
    torch.save(ckpt, evil)
    # The payload is real: an unsafe load runs it.
    torch.load(evil, weights_only=False)
    assert marker.exists()
    marker.unlink()
    r = _run_cli(
        [
            "experiment=smoke",
            *_over(cohort, "trainer.max_epochs=2"),
            f"ckpt_path={evil}",
            f"paths.log_dir={tmp_path / 'logs'}",
        ],
        {"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"},
    )
    line = _one_error_line(r)
    assert "not a loadable checkpoint" in line and str(evil) in line
    assert not marker.exists(), "the checkpoint's payload ran"


@pytest.mark.parametrize("case", ["truncated", "not_training", "other_net", "missing"])
def test_bad_resume_checkpoint_is_one_error(first_run, cohort, tmp_path, train_cfg, case):
    cfg, _ = first_run
    last = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    bad = tmp_path / "bad.ckpt"
    extra: list[str] = []
    if case == "truncated":
        data = last.read_bytes()
        bad.write_bytes(data[: len(data) // 2])
        want = "not a loadable checkpoint"
    elif case == "not_training":
        ck = torch.load(last, weights_only=True)
        torch.save({"state_dict": ck["state_dict"]}, bad)
        want = "not a cac-train training checkpoint"
    elif case == "other_net":
        bad = last
        extra = ["model/net=unet_tiny"]
        want = "trained with model.net=unetplusplus"
    else:
        want = "no such checkpoint file"
    run_cfg = train_cfg([*_over(cohort, "trainer.max_epochs=2", f"ckpt_path={bad}"), *extra])
    with pytest.raises(InputError, match=want):
        train(run_cfg)


def test_weights_only_is_passed_to_lightning(first_run, cohort, train_cfg, monkeypatch):
    """Item 4: Lightning's own load of the resume and best checkpoints is weights-only too."""
    import lightning.pytorch as pl

    seen = {}
    real_fit, real_test = pl.Trainer.fit, pl.Trainer.test

    def fit(self, *a, **kw):
        seen["fit"] = kw.get("weights_only")
        return real_fit(self, *a, **kw)

    def test(self, *a, **kw):
        seen["test"] = kw.get("weights_only")
        return real_test(self, *a, **kw)

    monkeypatch.setattr(pl.Trainer, "fit", fit)
    monkeypatch.setattr(pl.Trainer, "test", test)
    cfg, _ = first_run
    last = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    over = [
        o for o in _over(cohort, "trainer.max_epochs=1", f"ckpt_path={last}") if o != "test=false"
    ]
    train(train_cfg([*over, "+trainer.limit_test_batches=1"]))
    assert seen == {"fit": True, "test": True}


def test_errors_inside_hydra_instantiation_are_one_line(tmp_path):
    """Item 9: our InputError raised inside instantiate: one line, exit 2 (end to end)."""
    r = _run_cli(["experiment=smoke", "data.batch_size=-4", f"paths.log_dir={tmp_path}"])
    line = _one_error_line(r)
    assert "batch_size must be >= 1" in line
    assert "Error in call to target" not in r.stderr


def test_unknown_network_unwrapped(train_cfg, tmp_path):
    cfg = train_cfg(["model.net.name=nope", f"data.data_dir={tmp_path}"])
    with pytest.raises(Exception) as info:
        train(cfg)
    found = user_error(info.value)
    assert isinstance(found, CACError) and "unknown network 'nope'" in str(found)


@pytest.mark.parametrize("overrides", [["data=manifest"], ["experiment=smoke", "data=manifest"]])
def test_missing_data_dir_names_the_override(train_cfg, overrides):
    """Item 9: `data=manifest` without data_dir names the value to set."""
    cfg = train_cfg(overrides)
    with pytest.raises(InputError, match=r"data\.data_dir=\.\.\."):
        train(cfg)


def test_unexpected_net_hparam_in_checkpoint_is_one_line(
    tmp_path, capsys, make_small_series, lad_ckpt
):
    """Item 9: an unknown key in a checkpoint's net hyper-parameters (cac-score)."""
    from cac_lightning.cli.score import main

    ckpt_path = lad_ckpt
    ck = torch.load(ckpt_path, weights_only=True)
    ck["hyper_parameters"]["net"]["bogus_width"] = 3
    torch.save(ck, ckpt_path)
    series = make_small_series(tmp_path / "s", 1)
    code = main([str(series), "--ckpt", str(ckpt_path), "--out", str(tmp_path / "o")])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bogus_width" in err[0] and "Traceback" not in err[0]


def _ckpt_state(ckpt: dict, name: str) -> dict:
    (key,) = [k for k in ckpt["callbacks"] if k.startswith(name)]
    return ckpt["callbacks"][key]


def test_resume_keeps_best_score_across_run_folders(first_run, cohort, train_cfg, tmp_path):
    """Item 11: a resume in a new run folder keeps the earlier best score and its file."""
    cfg, _ = first_run
    last = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    ck = torch.load(last, weights_only=True)
    state = _ckpt_state(ck, "ModelCheckpoint")
    old_best = Path(state["best_model_path"])
    assert old_best.is_file()
    state["best_model_score"] = torch.tensor(-1.0)  # unbeatable for mode=min
    edited = tmp_path / "edited.ckpt"
    torch.save(ck, edited)
    cfg2 = train_cfg(_over(cohort, "trainer.max_epochs=2", f"ckpt_path={edited}"), tmp_path / "r2")
    _, objs = train(cfg2)
    cb = objs["trainer"].checkpoint_callback
    assert objs["trainer"].current_epoch == 2
    assert float(cb.best_model_score) == -1.0  # post-resume epochs did not replace it
    best = Path(cb.best_model_path)
    assert best.parent == Path(cfg2.paths.output_dir) / "checkpoints"  # copied into the new run
    assert best.read_bytes() == old_best.read_bytes()
    assert old_best.is_file()  # the earlier run folder is left alone


def test_resume_into_same_folder_and_stopped_run(first_run, cohort, train_cfg, tmp_path):
    """Item 11: a run that had stopped is not trained further; same-folder resume works."""
    cfg, objs1 = first_run
    last = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    ck = torch.load(last, weights_only=True)
    _ckpt_state(ck, "LossGapStopping")["stopped_epoch"] = 1
    stopped = tmp_path / "stopped.ckpt"
    torch.save(ck, stopped)
    cfg2 = train_cfg(_over(cohort, "trainer.max_epochs=4", f"ckpt_path={stopped}"), tmp_path / "r")
    _, objs = train(cfg2)
    assert objs["trainer"].global_step == objs1["trainer"].global_step  # no further step
    # Same folder: Lightning's own restore applies (no copy), best_k_models carries over.
    root = Path(cfg.paths.root_dir)
    cfg3 = train_cfg(_over(cohort, "trainer.max_epochs=2", f"ckpt_path={last}"), root)
    _, objs3 = train(cfg3)
    cb = objs3["trainer"].checkpoint_callback
    assert Path(cb.dirpath) == last.parent and cb.best_model_score is not None
    assert Path(cb.best_model_path).parent == last.parent


def test_stopped_reason_reads_callback_states():
    from cac_lightning.cli.resume import stopped_reason

    es = "EarlyStopping{'monitor': 'val/agatston_mae', 'mode': 'min'}"
    assert (
        stopped_reason({"callbacks": {es: {"stopped_epoch": 0, "wait_count": 3, "patience": 10}}})
        is None
    )
    assert "epoch 0" in stopped_reason(
        {"callbacks": {es: {"stopped_epoch": 0, "wait_count": 10, "patience": 10}}}
    )
    assert "LossGapStopping" in stopped_reason(
        {"callbacks": {"LossGapStopping": {"stopped_epoch": 0}}}
    )
    assert (
        stopped_reason({"callbacks": {"LossGapStopping": {"wait": 1, "stopped_epoch": None}}})
        is None
    )
