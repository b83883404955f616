"""`cac-compare`: mean ± sd per architecture over seeds from run folders."""

from __future__ import annotations

import json

import pytest

from cac_lightning.cli.compare import main


def _run(root, i, net, seed, dice, icc):
    d = root / str(i)
    (d / ".hydra").mkdir(parents=True)
    (d / ".hydra" / "config.yaml").write_text(f"seed: {seed}\nmodel:\n  net:\n    name: {net}\n")
    (d / "metrics.json").write_text(
        json.dumps(
            {"metrics": {"test/dice": dice, "test/icc_agatston_total": icc, "test/kappa": None}}
        )
    )


def test_compare_table(tmp_path, capsys):
    root = tmp_path / "multirun"
    _run(root, 0, "unet", 1, 0.5, 0.8)
    _run(root, 1, "unet", 2, 0.7, 0.9)
    _run(root, 2, "unetplusplus", 1, 0.8, 0.95)
    out = tmp_path / "results.md"
    assert main([str(root), "--out", str(out), "--no-wandb"]) == 0
    text = out.read_text()
    assert "| Dice | 0.600 ± 0.141 | 0.800 ± 0.000 |" in text
    assert "| ICC Agatston total | 0.850 ± 0.071 | 0.950 ± 0.000 |" in text
    assert "| Risk kappa | n/a | n/a |" in text
    assert out.with_suffix(".png").stat().st_size > 1000


def test_compare_no_runs(tmp_path, capsys):
    assert main([str(tmp_path), "--out", str(tmp_path / "r.md")]) == 2
    assert "no finished runs" in capsys.readouterr().err
    assert not (tmp_path / "r.md").exists()


@pytest.mark.parametrize("bad", ["missing"])
def test_compare_bad_folder(tmp_path, capsys, bad):
    assert main([str(tmp_path / bad), "--out", str(tmp_path / "r.md")]) == 2


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


def _scan_run(root, i, net, seed, error_sd, bias=0.0):
    d = root / str(i)
    (d / ".hydra").mkdir(parents=True)
    (d / ".hydra" / "config.yaml").write_text(
        f"seed: {seed}\ngroup: ablation_test\nmodel:\n  net:\n    name: {net}\n"
    )
    metrics = {"test/dice": 0.5 + 0.01 * seed + (0.2 if net == "unetplusplus" else 0.0)}
    (d / "metrics.json").write_text(
        json.dumps({"metrics": metrics, "scans": _records(seed, error_sd, bias)})
    )


def test_bootstrap_separates_a_clear_difference():
    from cac_lightning.evaluation.paired import bootstrap_paired

    a = {s: _records(s, 0.6)["test"] for s in (1, 2, 3)}  # U-Net: 60 % relative error
    b = {s: _records(s, 0.02)["test"] for s in (1, 2, 3)}  # U-Net++: 2 %
    res = bootstrap_paired(a, b, "test/agatston_mae", n_boot=300)
    assert res.level == "scans+seeds" and res.n_seeds == 3
    assert res.diff < 0 and res.hi < 0 and res.distinguishable
    b_same = {s: _records(s, 0.6)["test"] for s in (1, 2, 3)}
    same = bootstrap_paired(a, b_same, "test/agatston_mae", n_boot=200)
    assert same.diff == 0 and same.lo <= 0 <= same.hi and not same.distinguishable


def test_bootstrap_interval_includes_scan_sampling():
    """With one seed the interval still has width: the test scans are resampled."""
    from cac_lightning.evaluation.paired import bootstrap_paired

    a, b = {1: _records(1, 0.3)["test"]}, {1: _records(1, 0.25)["test"]}
    res = bootstrap_paired(a, b, "test/icc_agatston_total", n_boot=300)
    assert res.n_seeds == 1 and res.lo < res.diff < res.hi and res.hi - res.lo > 1e-4
    assert bootstrap_paired({1: 0.5, 2: 0.6}, {1: 0.7, 2: 0.8}, "test/dice").level == "seeds"
    one = bootstrap_paired({1: 0.5}, {1: 0.7}, "test/dice")  # one seed, no per-scan records
    assert one.diff == pytest.approx(0.2) and not one.distinguishable and one.lo != one.lo


def test_seeds_needed():
    from cac_lightning.evaluation.paired import seeds_needed

    assert seeds_needed(0.1, 0.1) == 4  # (1.96 * 0.1 / 0.1)^2 = 3.84
    assert seeds_needed(0.5, 0.1) == 2
    assert seeds_needed(0.0, 0.1) == float("inf")


def test_compare_paired_table_and_wandb(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    root = tmp_path / "multirun"
    i = 0
    for seed in (1, 2, 3):
        _scan_run(root, i, "unet", seed, 0.5)
        _scan_run(root, i + 1, "unetplusplus", seed, 0.5)  # the same predictions: no difference
        i += 2
    out = tmp_path / "res" / "results.md"
    assert main([str(root), "--out", str(out), "--n-boot", "200"]) == 0
    text = out.read_text()
    assert (
        "| CAC error (MAE) | +0.000 | [+0.000, +0.000] | scans+seeds | 3 | not distinguishable |"
        in text
    )
    assert "| Dice | +0.200 | [+0.200, +0.200] | seeds | 3 | U-Net++ better |" in text
    assert "| Zero-CAC FP rate | +0.000 |" in text
    printed = capsys.readouterr().out
    assert "not distinguishable" in printed and "W&B: table compare/paired_differences" in printed
    assert "group ablation_test" in printed
    assert list((tmp_path / "res" / "wandb").glob("offline-run-*/run-*.wandb"))


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
