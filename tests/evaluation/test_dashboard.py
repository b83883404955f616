"""Dashboard rows, files, metadata helpers and the offline W&B run reader."""

from __future__ import annotations

import csv
import os
from types import SimpleNamespace

import numpy as np
import pytest

from cac_lightning.errors import InputError
from cac_lightning.evaluation.dashboard import (
    SCAN_COLUMNS,
    data_summary,
    flatten_config,
    lesion_counts,
    risk_confusion,
    scan_rows,
    write_dashboard,
)
from cac_lightning.evaluation.panels import calcium_crop, overlay_panel, worst_slice
from cac_lightning.evaluation.wandb_file import find_run_files, read_run
from cac_lightning.volume import Geometry


def test_scan_rows_and_lesion_counts(make_record):
    rec = make_record(
        "s1",
        120.0,
        90.0,
        lesions=[("LAD", "LAD"), ("LAD", "not detected"), ("RCA", "CX")],
        not_cac={"LM": 1, "LAD": 0, "CX": 2, "RCA": 0},
    )
    assert lesion_counts(rec) == (2, 1, 3)
    (row,) = scan_rows([rec], {"s1": ["kVp 100 outside training range", "thin slices"]})
    d = dict(zip(SCAN_COLUMNS, row, strict=True))
    assert d["ref_agatston_total"] == 120.0 and d["pred_agatston_LAD"] == 90.0
    assert (d["ref_risk"], d["pred_risk"]) == ("C4", "C3")
    assert d["abs_error_total"] == 30.0
    assert (d["lesions_found"], d["lesions_missed"], d["lesions_false"]) == (2, 1, 3)
    assert d["warnings"] == "kVp 100 outside training range; thin slices"


def test_risk_confusion_rows_are_reference(make_record):
    recs = [make_record("a", 0, 0), make_record("b", 50, 500), make_record("c", 50, 50)]
    m = risk_confusion(recs)
    assert m.shape == (5, 5) and m.sum() == 3
    assert m[0, 0] == 1 and m[2, 4] == 1 and m[2, 2] == 1


def test_write_dashboard_files(tmp_path, make_record):
    recs = [make_record(f"s{i}", 10.0 * i, 10.0 * i + i, split="test") for i in range(5)]
    recs.append(make_record("z0", 0.0, 3.0, split="test_zero"))
    files = write_dashboard(tmp_path, recs)
    assert set(files) == {
        f"{kind}_{split}"
        for kind in ("scans", "risk_confusion", "bland_altman")
        for split in ("test", "test_zero")
    }
    rows = list(csv.DictReader(files["scans_test"].open()))
    assert [r["scan_id"] for r in rows] == [f"s{i}" for i in range(5)]
    assert float(rows[4]["pred_agatston_total"]) == 44.0
    assert files["bland_altman_test"].read_bytes()[:4] == b"\x89PNG"


def test_flatten_config():
    flat = flatten_config({"model": {"net": {"name": "unet", "channels": [4, 8]}}, "seed": 1})
    assert flat == {"model.net.name": "unet", "model.net.channels": [4, 8], "seed": 1}
    assert flatten_config({"cb": [{"a": 1}, 2]}) == {"cb.0.a": 1, "cb.1": 2}


def test_data_summary_ranges():
    def scan(px, n, thick, kvp):
        g = Geometry((40, n, n), (px, px), 3.0, slice_thickness=thick)
        return SimpleNamespace(geometry=g, kvp=kvp)

    s = data_summary(
        {
            "train": [scan(0.4, 512, 3.0, 120), scan(0.8, 256, None, 100)],
            "val": [scan(0.5, 512, 2.5, 120)],
        },
        name="coca",
    )
    assert s["n_scans"] == {"train": 2, "val": 1}
    assert s["pixel_spacing_mm"] == [0.4, 0.8]
    assert s["fov_mm"] == [204.8, 256.0]
    assert s["slice_thickness_mm"] == [2.5, 3.0]
    assert s["kvp"] == [100, 120]


def test_worst_slice_and_crop():
    ref = np.zeros((4, 64, 64), np.uint8)
    pred = ref.copy()
    ref[1, 10:12, 10:12] = 2
    pred[1, 10:12, 10:12] = 2
    ref[3, 30:34, 30:34] = 1  # missed on slice 3
    assert worst_slice(ref, pred) == 3
    assert worst_slice(ref, ref) == 3  # most reference calcium
    ys, xs = calcium_crop(ref[3] > 0, (0.5, 0.5), size_mm=10.0)
    assert (ys.stop - ys.start, xs.stop - xs.start) == (20, 20)  # 10 mm at 0.5 mm
    assert ys.start <= 30 and ys.stop >= 34
    img = overlay_panel(np.zeros((64, 64)), ref[3], pred[3], (0.5, 0.5), title="s1 slice 3")
    assert img.ndim == 3 and img.shape[2] == 3 and img.dtype == np.uint8


def test_read_offline_run(tmp_path, monkeypatch):
    wandb = pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    run = wandb.init(project="t", dir=str(tmp_path), config={"model": {"net": "unet"}})
    run.log({"val/agatston_mae": 3.5})
    run.log({"test/scans": wandb.Table(columns=["scan_id", "v"], data=[["a", 1], ["b", 2]])})
    run.summary["val/agatston_mae_best"] = 2.0
    run.finish()
    (path,) = find_run_files(tmp_path)
    r = read_run(path, wait_s=60)
    assert r.config["model"] == {"net": "unet"}
    assert r.logged("val/agatston_mae") == [3.5]
    assert r.logged("test/scans/nrows") == [2]
    assert r.summary["val/agatston_mae_best"] == 2.0
    bad = tmp_path / "run-x.wandb"
    bad.write_bytes(b"not a run")
    with pytest.raises(InputError, match="not a W&B run file"):
        read_run(bad)
    assert os.environ["WANDB_MODE"] == "offline"
