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
    assert main([str(root), "--out", str(out)]) == 0
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
