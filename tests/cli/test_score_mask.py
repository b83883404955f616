"""`cac-score --mask`: scores, output files, one-line errors with no partial outputs."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from cac_lightning.cli.score import main
from cac_lightning.io import read_volume, write_dicom_series, write_label_map
from cac_lightning.volume import Geometry


@pytest.fixture
def scan(tmp_path):
    hu = np.full((5, 32, 32), -50, np.int16)
    hu[2, 10:14, 10:14] = 450  # 16 px of 0.25 mm² = 4 mm², weight 4 -> 16
    hu[3, 20:22, 20:22] = 250  # 4 px = 1 mm², weight 2 -> 2
    hu[1, 5, 5] = 500  # 0.25 mm²: noise, dropped
    g = Geometry(
        shape=(5, 32, 32),
        pixel_spacing=(0.5, 0.5),
        slice_spacing=3.0,
        origin=(-8.0, -8.0, 10.0),
        slice_thickness=3.0,
    )
    folder = write_dicom_series(hu, g, tmp_path / "scan1", patient_id="SYN0001")
    lab = np.zeros(hu.shape, np.uint8)
    lab[2, 9:15, 9:15] = 2
    lab[3, 19:23, 19:23] = 4
    lab[1, 4:7, 4:7] = 1
    vol = read_volume(folder)
    mask = write_label_map(lab, vol.geometry, tmp_path / "labels.nii.gz")
    return folder, mask


def test_scores_and_files(scan, tmp_path, capsys):
    folder, mask = scan
    out = tmp_path / "out"
    assert main([str(folder), "--mask", str(mask), "--out", str(out)]) == 0
    (json_path,) = out.glob("scan1-*.json")
    rep = json.loads(json_path.read_text())
    s = rep["scores"]
    assert s["LAD"]["agatston"] == pytest.approx(16.0)
    assert s["RCA"]["agatston"] == pytest.approx(2.0)
    assert s["LM"]["agatston"] == 0 and s["LM"]["lesions"] == 0
    assert s["total"]["agatston"] == pytest.approx(18.0)
    assert s["LAD"]["volume_mm3"] == pytest.approx(16 * 0.25 * 3.0)
    assert rep["risk_category"] == "C3" and rep["cac_drs"] == "A1"
    assert rep["slice_spacing_mm"] == pytest.approx(3.0)
    assert rep["pixel_spacing_mm"] == [0.5, 0.5] and rep["kvp"] == 120
    for key in ("slice_thickness_mm", "lesions", "n_vessels"):
        assert key in rep
    text = json.dumps(rep)
    assert "SYN0001" not in text  # no patient ID in outputs
    # --min-area 0 keeps the 0.25 mm² component: LM = 0.25 * 4
    assert main([str(folder), "--mask", str(mask), "--out", str(out), "--min-area", "0"]) == 0
    rows = list(csv.DictReader((out / "scores.csv").open()))
    assert len(rows) == 1  # the scan's row is replaced, not duplicated
    assert float(rows[0]["LM_agatston"]) == pytest.approx(1.0)
    assert "Agatston 19.0" in capsys.readouterr().out


def test_lesion3d_mode(scan, tmp_path):
    folder, mask = scan
    out = tmp_path / "o3"
    assert main([str(folder), "--mask", str(mask), "--out", str(out), "--mode", "lesion3d"]) == 0
    (json_path,) = out.glob("scan1-*.json")
    assert json.loads(json_path.read_text())["settings"]["mode"] == "lesion3d"


@pytest.mark.parametrize(
    "case", ["missing", "mismatch", "not_labels", "bad_min_area", "two", "floor_without_ckpt"]
)
def test_bad_input_one_line_no_output(scan, tmp_path, capsys, case):
    folder, mask = scan
    out = tmp_path / "out"
    args = [str(folder), "--mask", str(mask), "--out", str(out)]
    if case == "missing":
        args[0] = str(tmp_path / "nope")
    elif case == "mismatch":
        vol = read_volume(folder)
        other = Geometry(
            shape=vol.geometry.shape,
            pixel_spacing=(0.6, 0.6),
            slice_spacing=3.0,
            origin=vol.geometry.origin,
            direction=vol.geometry.direction,
        )
        args[2] = str(
            write_label_map(np.zeros(vol.hu.shape, np.uint8), other, tmp_path / "other.nii.gz")
        )
    elif case == "not_labels":
        bad = tmp_path / "bad.nii.gz"
        bad.write_text("not an image")
        args[2] = str(bad)
    elif case == "bad_min_area":
        args += ["--min-area", "-1"]
    elif case == "two":
        args.insert(1, str(folder))
    elif case == "floor_without_ckpt":
        args += ["--lesion-floor", "0.5"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("cac-score: error:")
    assert "Traceback" not in err[0]
    assert not out.exists() or not any(out.iterdir())
