"""`cac-compare`: arms from sweep overrides and external folders, the leaderboard, every arm
against a reference with a hierarchical bootstrap and Holm's adjustment, notes on failed jobs."""

from __future__ import annotations

import json

import pytest

from cac_lightning.cli.compare import main
from cac_lightning.errors import InputError
from cac_lightning.evaluation.comparison import paired_rows, reference_arm
from cac_lightning.evaluation.paired import bootstrap_p, holm
from cac_lightning.evaluation.runs import arm_labels, gather, parse_overrides

# --- paired differences with a hierarchical bootstrap, on synthetic per-scan records ----------


def _records(seed: int, error_sd: float, bias: float = 0.0, n: int = 30) -> dict:
    """Per-scan Agatston records: references over the risk range, predictions with noise."""
    import numpy as np

    rng = np.random.default_rng(1000 + seed)  # the same test scans for every network and seed
    ref = np.exp(rng.uniform(0, 7, size=n))
    noise = np.random.default_rng(int(error_sd * 100) + seed).normal(bias, error_sd, size=n)
    pred = np.clip(ref * (1 + noise), 0, None)
    test = [
        {
            "scan_id": f"s{i}",
            "ref": {"LM": 0.0, "LAD": r, "CX": 0.0, "RCA": 0.0, "total": r},
            "pred": {"LM": 0.0, "LAD": p, "CX": 0.0, "RCA": 0.0, "total": p},
        }
        for i, (r, p) in enumerate(zip(ref, pred, strict=True))
    ]
    zero = [{"scan_id": f"z{i}", "ref": {"total": 0.0}, "pred": {"total": 0.0}} for i in range(5)]
    return {"test": test, "test_zero": zero}


def test_bootstrap_separates_a_clear_difference():
    from cac_lightning.evaluation.paired import bootstrap_paired

    a = {s: _records(s, 0.6)["test"] for s in (1, 2, 3)}  # U-Net: 60 % relative error
    b = {s: _records(s, 0.02)["test"] for s in (1, 2, 3)}  # U-Net++: 2 %
    res = bootstrap_paired(a, b, "test/agatston_mae", n_boot=300)
    assert res.level == "scans+seeds" and res.n_seeds == 3
    assert res.diff < 0 and res.hi < 0 and res.distinguishable
    assert res.p == pytest.approx(2 / 301)  # no resample >= 0: the smallest p of 300
    b_same = {s: _records(s, 0.6)["test"] for s in (1, 2, 3)}
    same = bootstrap_paired(a, b_same, "test/agatston_mae", n_boot=200)
    assert same.diff == 0 and same.lo <= 0 <= same.hi and not same.distinguishable
    assert same.p == 1.0


def test_bootstrap_interval_includes_scan_sampling():
    """With one seed the interval still has width: the test scans are resampled."""
    from cac_lightning.evaluation.paired import bootstrap_paired

    a, b = {1: _records(1, 0.3)["test"]}, {1: _records(1, 0.25)["test"]}
    res = bootstrap_paired(a, b, "test/icc_agatston_total", n_boot=300)
    assert res.n_seeds == 1 and res.lo < res.diff < res.hi and res.hi - res.lo > 1e-4
    assert bootstrap_paired({1: 0.5, 2: 0.6}, {1: 0.7, 2: 0.8}, "test/dice").level == "seeds"
    one = bootstrap_paired({1: 0.5}, {1: 0.7}, "test/dice")  # one seed, no per-scan records
    assert one.diff == pytest.approx(0.2) and not one.distinguishable and one.lo != one.lo


def test_seeds_only_p_has_the_sign_flip_floor():
    from cac_lightning.evaluation.paired import bootstrap_paired, seed_floor

    a = {s: 0.5 for s in range(1, 7)}
    b = {s: 0.6 + 0.01 * s for s in range(1, 7)}  # better on every seed
    two = bootstrap_paired({1: a[1], 2: a[2]}, {1: b[1], 2: b[2]}, "test/dice", n_boot=300)
    assert two.lo > 0 and two.p == seed_floor(2) == 0.5
    six = bootstrap_paired(a, b, "test/dice", n_boot=300)
    assert six.p == seed_floor(6) == pytest.approx(1 / 32)  # the bootstrap alone: 2/301


def test_seeds_needed():
    from cac_lightning.evaluation.paired import seeds_needed

    assert seeds_needed(0.1, 0.1) == 4  # (1.96 * 0.1 / 0.1)^2 = 3.84
    assert seeds_needed(0.5, 0.1) == 2
    assert seeds_needed(0.0, 0.1) == float("inf")


def test_fast_metrics_equal_the_one_metric_path():
    """The bootstrap's metric shortcuts give exactly what metrics_by_split (the validation
    callback's, cac-train's and cac-eval's code) gives on the same scores."""
    import numpy as np

    from cac_lightning.evaluation.paired import _scan_metric, agatston_records, records_to_arrays
    from cac_lightning.evaluation.tables import metrics_by_split

    recs = records_to_arrays(_records(4, 0.4)["test"] + _records(4, 0.4)["test_zero"])
    ref = np.stack([v[0] for v in recs.values()])
    pred = np.stack([v[1] for v in recs.values()])
    pred[-1, -1] = 3.0  # one zero-calcium scan flagged
    full = metrics_by_split(agatston_records("test", ref, pred))
    for key in ("test/agatston_mae", "test/icc_agatston_total", "test/kappa", "test/kappa_linear"):
        assert _scan_metric("test", key)(ref, pred) == pytest.approx(full[key], rel=1e-12)
    key = "test_zero/zero_cac_flagged_rate"
    zero = metrics_by_split(agatston_records("test_zero", ref, pred))
    assert _scan_metric("test_zero", key)(ref, pred) == zero[key]
    assert _scan_metric("test", "test/risk_accuracy")(ref, pred) == full["test/risk_accuracy"]


# --- arms, reference, Holm -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("jobs", "labels"),
    [
        # one key varies: its value is the arm; seed and hydra.* never define an arm
        (
            [
                {"model/net": "unet", "seed": "1", "hydra.sweep.dir": "a"},
                {"model/net": "smp_fpn", "seed": "2", "hydra.sweep.dir": "b"},
            ],
            ["unet", "smp_fpn"],
        ),
        # two keys: group value, dotted key's last part = value, in order of appearance
        (
            [
                {"experiment": "x", "model/net": "unet", "model.optimizer.lr": "0.001"},
                {"experiment": "x", "model/net": "unet", "model.optimizer.lr": "0.01"},
                {"experiment": "x", "model/net": "smp_fpn", "model.optimizer.lr": "0.001"},
            ],
            ["unet lr=0.001", "unet lr=0.01", "smp_fpn lr=0.001"],
        ),
        # a key one job does not set
        ([{"model/net": "unet"}, {"model/net": "unet", "+a.lr": "1"}], ["lr=default", "lr=1"]),
        # short labels that would merge two arms: full keys
        (
            [{"a/k": "p q", "b/k": "r"}, {"a/k": "p", "b/k": "q r"}],
            ["a/k=p q b/k=r", "a/k=p b/k=q r"],
        ),
        # nothing varies
        ([{"model/net": "unet", "seed": "1"}, {"model/net": "unet", "seed": "2"}], [None, None]),
    ],
)
def test_arm_labels(jobs, labels):
    jobs = [parse_overrides([f"{k}={v}" for k, v in job.items()]) for job in jobs]
    assert arm_labels(jobs) == labels


def test_parse_overrides():
    assert parse_overrides(["model/net=unet", "+x.y=[1,2]", "~z", "++w=a=b"]) == {
        "model/net": "unet", "x.y": "[1,2]", "z": "~", "w": "a=b",
    }  # fmt: skip


def test_reference_arm():
    assert reference_arm(["smp_fpn", "unet", "unetplusplus"]) == "unetplusplus"
    assert reference_arm(["smp_fpn", "unet"]) == "smp_fpn"  # no unetplusplus: the first
    assert reference_arm(["smp_fpn", "unet"], "unet") == "unet"
    assert reference_arm(["unet lr=0.1", "unetplusplus lr=0.1"]) == "unetplusplus lr=0.1"
    nets = {"paper_unet": {"unet"}, "paper_unetplusplus": {"unetplusplus"}}  # experiment=...
    assert reference_arm(["paper_unet", "paper_unetplusplus"], nets=nets) == "paper_unetplusplus"
    with pytest.raises(InputError, match="--reference fpn matches no arm; arms: smp_fpn, unet"):
        reference_arm(["smp_fpn", "unet"], "fpn")
    with pytest.raises(InputError, match="several arms"):
        reference_arm(["unet lr=1", "unet lr=2"], "unet")


def test_holm_by_hand():
    # sorted 0.01, 0.03, 0.04: 3 x 0.01 = 0.03; 2 x 0.03 = 0.06; max(0.06, 1 x 0.04) = 0.06
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    nan = float("nan")
    out = holm([0.02, nan, 0.5])  # NaN: not counted, stays NaN
    assert out[0] == pytest.approx(0.04) and out[1] != out[1] and out[2] == pytest.approx(0.5)
    assert holm([0.6, 0.7]) == [1.0, 1.0]  # capped at 1
    assert holm([]) == []


def test_bootstrap_p():
    import numpy as np

    assert bootstrap_p(np.zeros(100)) == 1.0
    assert bootstrap_p(-np.ones(99)) == pytest.approx(2 / 100)
    assert bootstrap_p(np.r_[-np.ones(89), np.ones(10)]) == pytest.approx(2 * 11 / 100)
    assert bootstrap_p(np.full(100, np.nan)) != bootstrap_p(np.full(100, np.nan))  # NaN


# --- cac-compare on fabricated run folders --------------------------------------------------


def _scan_metrics(test: list[dict]) -> dict:
    """The run's scan-level test metrics of its records, as cac-train would log them."""
    import numpy as np

    from cac_lightning.evaluation.paired import _scan_metric, records_to_arrays

    arrays = records_to_arrays(test).values()
    ref, pred = np.stack([a[0] for a in arrays]), np.stack([a[1] for a in arrays])
    keys = ("agatston_mae", "icc_agatston_total", "kappa_linear", "risk_accuracy")
    return {f"test/{k}": _scan_metric("test", f"test/{k}")(ref, pred) for k in keys}


def _job(root, name, net, seed, error_sd=0.6, dice=0.5, params=1e6, overrides=(), done=True):
    """A multirun job folder: .hydra/ (overrides, config) and, when done, metrics.json."""
    d = root / name
    (d / ".hydra").mkdir(parents=True)
    lines = ["experiment=arch_sweep", f"model/net={net}", f"seed={seed}", *overrides]
    (d / ".hydra" / "overrides.yaml").write_text("".join(f"- {x}\n" for x in lines))
    (d / ".hydra" / "config.yaml").write_text(
        f"seed: {seed}\ngroup: arch_test\nmodel:\n  net:\n    name: {net}\n"
    )
    if done:
        scans = _records(seed, error_sd)
        metrics = {
            "test/dice": dice + 0.01 * seed, "model/params": params,
            "train/slices_per_s": 100.0 + seed, **_scan_metrics(scans["test"]),
        }  # fmt: skip
        summary = {"metrics": metrics, "scans": scans}
        (d / "metrics.json").write_text(json.dumps(summary))
    return d


def _sweep(root):
    """unetplusplus (the reference) and unet: the same predictions; smp_fpn: far better."""
    for i, seed in enumerate((1, 2)):
        _job(root, f"{3 * i}", "unet", seed)
        _job(root, f"{3 * i + 1}", "unetplusplus", seed, params=2e6)
        _job(root, f"{3 * i + 2}", "smp_fpn", seed, error_sd=0.02, dice=0.7, params=3e6)


def test_n_arms_leaderboard_paired_holm(tmp_path, capsys):
    root = tmp_path / "multirun"
    _sweep(root)
    found = gather([root])
    assert sorted({r.arm for r in found.runs}) == ["smp_fpn", "unet", "unetplusplus"]
    rows = {(r.key, r.arm): r for r in paired_rows(found.runs, "unetplusplus", n_boot=200)}
    mae = rows["test/agatston_mae", "smp_fpn"]
    assert mae.result.diff < 0 and mae.result.p == pytest.approx(2 / 201)
    # Holm over the 2 arms: 2 x 2/201 for smp_fpn; unet's p is 1 (no difference at all)
    assert mae.p_holm == pytest.approx(4 / 201) and mae.verdict == "smp_fpn better"
    same = rows["test/agatston_mae", "unet"]
    assert same.result.diff == 0 and same.p_holm == 1.0 and same.verdict == "not distinguishable"
    dice = rows["test/dice", "smp_fpn"]  # voxel level: seeds only, +0.2 on each seed ...
    assert dice.result.level == "seeds" and dice.result.diff == pytest.approx(0.2)
    assert dice.result.lo == dice.result.hi == pytest.approx(0.2)  # every resample: +0.2
    assert dice.result.p == 0.5 and dice.verdict == "not distinguishable"  # ... of two seeds

    out = tmp_path / "res" / "results.md"
    assert main([str(root), "--out", str(out), "--n-boot", "200", "--no-wandb"]) == 0
    text = out.read_text()
    board = text.split("## Leaderboard")[1].split("## Paired")[0]
    lines = [ln for ln in board.splitlines() if ln.startswith("| ")][1:]
    assert [ln.split(" | ")[1] for ln in lines] == ["smp_fpn", "unet", "unetplusplus"]  # by MAE
    assert lines[0].startswith("| 1 | smp_fpn | 2 |") and "3.00 M" in lines[0]
    assert "| 0.715 ± 0.007 |" in lines[0] and "| 101.5 ± 0.7 |" in lines[0]  # Dice, slices/s
    assert "## Paired differences against unetplusplus" in text
    assert "| CAC error (MAE) | smp_fpn |" in text and "| 0.020 | scans+seeds | 2 |" in text
    assert "| Dice | unet | +0.000 | [+0.000, +0.000] | 1.000 | 1.000 | seeds | 2 |" in text
    assert "## Notes" not in text  # nothing failed, every seed paired
    assert out.with_suffix(".png").stat().st_size > 1000
    # --reference picks another arm: differences against it
    assert main([str(root), "--out", str(out), "--n-boot", "200", "--no-wandb",
                 "--reference", "smp_fpn"]) == 0  # fmt: skip
    assert "| CAC error (MAE) | unetplusplus |" in out.read_text()
    assert "unetplusplus better" not in out.read_text().split("CAC error")[0]


def test_two_arms_from_config_only_folders(tmp_path):
    """Folders without overrides.yaml (older runs): the net of config.yaml is the arm."""
    root = tmp_path / "multirun"
    for i, (net, seed) in enumerate([("unet", 1), ("unet", 2), ("unetplusplus", 1)]):
        d = _job(root, str(i), net, seed)
        (d / ".hydra" / "overrides.yaml").unlink()
    out = tmp_path / "r.md"
    assert main([str(root), "--out", str(out), "--n-boot", "200", "--no-wandb"]) == 0
    text = out.read_text()
    assert "| CAC error (MAE) | unet | +0.000 |" in text  # seed 1 paired: the same predictions
    assert "arm unet: seed(s) 2 without a unetplusplus run" in text


def test_external_arm_paired_by_scan_id(tmp_path):
    """An imported arm (metrics.json with arm and seed, as cac-import-nnunet writes) is paired
    with the sweep's arms scan by scan, whatever the order of its records."""
    root = tmp_path / "multirun"
    _sweep(root)
    scans = _records(1, 0.6)  # unetplusplus's seed-1 predictions ...
    scans["test"] = scans["test"][::-1][1:] + [  # ... reversed, one dropped, one added
        {"scan_id": "extra", "ref": {"total": 5.0}, "pred": {"total": 500.0}}
    ]
    nn = tmp_path / "runs" / "nnunet_2d"
    nn.mkdir(parents=True)
    summary = {"arm": "nnunet_2d", "seed": 1, "metrics": {"test/dice": 0.6}, "scans": scans}
    (nn / "metrics.json").write_text(json.dumps(summary))
    other = tmp_path / "runs" / "nnunet_3d"
    other.mkdir()
    only_test = {**summary, "arm": "nnunet_3d", "seed": 0, "scans": {"test": scans["test"]}}
    (other / "metrics.json").write_text(json.dumps(only_test))  # no test_zero split
    out = tmp_path / "r.md"
    args = [str(root), str(nn), str(other), "--out", str(out), "--n-boot", "200", "--no-wandb"]
    assert main(args) == 0
    text = out.read_text()
    assert "| CAC error (MAE) | nnunet_2d | +0.000 | [+0.000, +0.000] | 1.000 |" in text
    assert "arm nnunet_2d seed 1, test: paired on the 29 scans both have" in text
    assert "arm nnunet_2d: no run for seed(s) 2 of unetplusplus" in text
    assert "arm nnunet_3d (seeds 0) has no seed in common with the reference" in text
    assert "| CAC error (MAE) | nnunet_3d | n/a | n/a | n/a | n/a |" in text
    assert "| Zero-CAC FP rate | nnunet_3d | n/a |" in text


def test_failed_unfinished_and_unpaired_are_notes(tmp_path, capsys):
    root = tmp_path / "multirun"
    for i, seed in enumerate((1, 2)):
        _job(root, f"{i}", "unet", seed)
    _job(root, "2", "unetplusplus", 1)
    failed = _job(root, "3", "unetplusplus", 2, done=False)
    (failed / "failed.json").write_text(json.dumps({
        "error": "OutOfMemoryError", "message": "CUDA out of memory. Tried to allocate 2 GiB",
        "overrides": ["experiment=arch_sweep", "model/net=unetplusplus", "seed=2"],
    }))  # fmt: skip
    _job(root, "4", "smp_fpn", 1, done=False)  # still running (or killed)
    out = tmp_path / "r.md"
    assert main([str(root), "--out", str(out), "--n-boot", "200", "--no-wandb"]) == 0
    notes = out.read_text().split("## Notes")[1]
    assert (
        f"job `{failed}` (arm unetplusplus, seed 2) failed: OutOfMemoryError: "
        "CUDA out of memory. Tried to allocate 2 GiB" in notes
    )
    assert f"job `{root / '4'}` (arm smp_fpn, seed 1): no metrics.json" in notes
    assert "arm unet: seed(s) 2 without a unetplusplus run" in notes
    assert "smp_fpn" not in out.read_text().split("## Notes")[0]  # no run: not on the board
    assert "note: job" in capsys.readouterr().out


def test_nothing_usable_is_one_line_exit_2(tmp_path, capsys):
    root = tmp_path / "multirun"
    d = _job(root, "0", "unet", 1, done=False)
    (d / "failed.json").write_text(json.dumps({"error": "ValueError", "message": "bad lr"}))
    _job(root, "1", "unetplusplus", 1, done=False)
    out = tmp_path / "r.md"
    assert main([str(root), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        len(err) == 1 and "no usable runs" in err[0] and "(1 failed, 1 unfinished jobs)" in err[0]
    )
    assert not out.exists()
    assert main([str(tmp_path / "missing"), "--out", str(out)]) == 2
    assert main([str(root), "--out", str(out), "--n-boot", "10"]) == 2


def test_not_a_run_and_duplicates_are_notes(tmp_path):
    root = tmp_path / "multirun"
    _job(root, "0", "unet", 1)
    _job(root, "1", "unetplusplus", 1)
    _job(root / "again", "0", "unet", 1)  # the same arm and seed twice
    (root / "report").mkdir()
    (root / "report" / "metrics.json").write_text(json.dumps({"title": "cac-eval report"}))
    found = gather([root])
    assert len(found.runs) == 2
    assert any("a second run" in n and "left out" in n for n in found.notes)
    assert any("report" in n and "not a run" in n for n in found.notes)


def test_wandb_offline_compare_run(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    from cac_lightning.evaluation.wandb_file import find_run_files, read_run

    root = tmp_path / "multirun"
    _sweep(root)
    out = tmp_path / "res" / "results.md"
    assert main([str(root), "--out", str(out), "--n-boot", "200"]) == 0
    assert "W&B: compare run in group arch_test" in capsys.readouterr().out
    (run_file,) = find_run_files(tmp_path / "res" / "wandb")
    run = read_run(run_file, wait_s=60)
    assert run.job_type == "compare" and run.group == "arch_test"
    assert run.config["reference"] == "unetplusplus"
    assert run.config["arms"] == ["smp_fpn", "unet", "unetplusplus"]
    (row,) = [r for r in run.history if "compare/leaderboard/nrows" in r]
    assert row["compare/leaderboard/nrows"] == 3  # one row per arm
    assert row["compare/paired_differences/nrows"] == 2 * 7  # 2 arms x the 7 metrics runs have
    assert row["compare/leaderboard_plot/_type"] == "image-file"


# --- real sweeps (slow) ----------------------------------------------------------------------


def _sweep_cli(tmp_path, *overrides: str):
    import subprocess
    import sys

    return subprocess.run(
        [
            sys.executable, "-m", "cac_lightning.cli.train", "-m", "logger=csv",
            f"paths.log_dir={tmp_path / 'outputs'}", f"paths.data_dir={tmp_path / 'data'}",
            *overrides,
        ],
        capture_output=True, text=True, timeout=1800, cwd=tmp_path,
    )  # fmt: skip


@pytest.mark.slow
def test_arch_sweep_then_compare(tmp_path, capsys, monkeypatch):
    """`cac-train -m experiment=arch_sweep` with three of its arms, shrunk to one epoch and
    one seed, then cac-compare on the multirun folder."""
    pytest.importorskip("segmentation_models_pytorch")
    monkeypatch.setenv("WANDB_MODE", "offline")
    r = _sweep_cli(
        tmp_path, "experiment=arch_sweep", "model/net=unet,unetplusplus,smp_unet", "seed=1",
        "trainer.max_epochs=1", "trainer.check_val_every_n_epoch=1", "data.samples_per_epoch=16",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    (root,) = (tmp_path / "outputs" / "arch_sweep" / "multiruns").iterdir()
    summaries = [json.loads(p.read_text()) for p in sorted(root.glob("*/metrics.json"))]
    assert len(summaries) == 3
    for s in summaries:  # callbacks/throughput.py in every run
        assert s["metrics"]["model/params"] > 0 and s["metrics"]["train/slices_per_s"] > 0
    out = tmp_path / "results.md"
    assert main([str(root), "--out", str(out), "--n-boot", "200"]) == 0
    text = out.read_text()
    board = text.split("## Leaderboard")[1].split("## Paired")[0]
    assert {ln.split(" | ")[1] for ln in board.splitlines() if ln.startswith("| ")} == {
        "arm", "unet", "unetplusplus", "smp_unet",
    }  # fmt: skip
    assert "## Paired differences against unetplusplus" in text
    assert "| CAC error (MAE) | smp_unet |" in text and "| CAC error (MAE) | unet |" in text
    assert "W&B: compare run in group arch_sweep" in capsys.readouterr().out


@pytest.mark.slow
def test_a_failed_job_does_not_stop_the_sweep(tmp_path):
    """A bad override value for one arm (a negative learning rate): that job records
    failed.json, the jobs after it still run, and cac-compare names it in its notes. The same
    error in a single run still raises."""
    r = _sweep_cli(
        tmp_path, "experiment=smoke", "model.optimizer.lr=0.001,-1,0.003", "seed=1",
        "trainer.max_epochs=1",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    (root,) = (tmp_path / "outputs" / "smoke" / "multiruns").iterdir()
    assert sorted(p.parent.name for p in root.glob("*/metrics.json")) == ["0", "2"]
    failure = json.loads((root / "1" / "failed.json").read_text())
    assert failure["error"] == "ValueError" and "model.optimizer.lr=-1" in failure["overrides"]
    out = tmp_path / "results.md"
    assert main([str(root), "--out", str(out), "--n-boot", "200", "--no-wandb"]) == 0
    text = out.read_text()
    assert f"job `{root / '1'}` (arm lr=-1, seed 1) failed: ValueError: " in text
    assert "| CAC error (MAE) | lr=0.003 |" in text  # the others are compared (ref: first arm)

    import subprocess
    import sys

    single = subprocess.run(
        [
            sys.executable, "-m", "cac_lightning.cli.train", "experiment=smoke", "logger=csv",
            "model.optimizer.lr=-1", f"paths.log_dir={tmp_path / 'single'}",
            f"paths.data_dir={tmp_path / 'data'}",
        ],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )  # fmt: skip
    assert single.returncode not in (0, 2) and "Traceback" in single.stderr
    assert not list((tmp_path / "single").rglob("failed.json"))
