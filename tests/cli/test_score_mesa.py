"""`cac-score --mask` with the MESA options: header covariates, flags, covariates CSV."""

from __future__ import annotations

import csv
import json
import logging

import numpy as np
import pydicom
import pytest

from cac_lightning.cli.score import main
from cac_lightning.io import read_volume, write_dicom_series, write_label_map
from cac_lightning.scoring.mesa import PERCENTILE_UNAVAILABLE, Covariates, chd_risk_10y
from cac_lightning.volume import Geometry


@pytest.fixture
def scan(tmp_path):
    hu = np.full((4, 24, 24), -50, np.int16)
    hu[2, 8:12, 8:12] = 450  # 4 mm², weight 4 -> Agatston 16
    g = Geometry((4, 24, 24), (0.5, 0.5), 3.0, (-6.0, -6.0, 0.0), slice_thickness=3.0)
    folder = write_dicom_series(hu, g, tmp_path / "scan1", patient_id="SYN0002")
    for f in folder.iterdir():  # the header covariates a real scan carries
        ds = pydicom.dcmread(f)
        ds.PatientAge, ds.PatientSex = "062Y", "F"
        ds.save_as(f)
    lab = np.zeros(hu.shape, np.uint8)
    lab[2, 7:13, 7:13] = 2
    mask = write_label_map(lab, read_volume(folder).geometry, tmp_path / "labels.nii.gz")
    return folder, mask


def _run(scan, out, *extra) -> dict:
    folder, mask = scan
    assert main([str(folder), "--mask", str(mask), "--out", str(out), *extra]) == 0
    (path,) = out.glob("scan1-*.json")
    return json.loads(path.read_text())


def test_no_mesa_block_unless_asked(scan, tmp_path):
    assert "mesa" not in _run(scan, tmp_path / "out")


def test_header_age_and_sex_with_ethnicity_flag(scan, tmp_path, caplog):
    with caplog.at_level(logging.DEBUG):
        rep = _run(scan, tmp_path / "out", "--ethnicity", "white")
    m = rep["mesa"]
    assert m["inputs_source"] == {"age": "dicom", "sex": "dicom", "ethnicity": "flag"}
    assert m["percentile"] is None and m["reason"] == PERCENTILE_UNAVAILABLE
    assert m["risk_10y_chd"] is None and "risk factor(s) missing" in m["risk_reason"]
    assert "062Y" not in caplog.text and "062" not in json.dumps(rep)
    rows = list(csv.DictReader((tmp_path / "out" / "scores.csv").open()))
    assert "mesa_percentile" in rows[0] and rows[0]["mesa_percentile"] == ""


def test_flags_override_the_header_and_out_of_range_age_gives_no_percentile(scan, tmp_path):
    m = _run(scan, tmp_path / "out", "--age", "30", "--ethnicity", "chinese")["mesa"]
    assert m["inputs_source"]["age"] == "flag" and m["inputs_source"]["sex"] == "dicom"
    assert m["percentile"] is None and "outside the MESA reference range 45-84" in m["reason"]


def test_covariates_csv_gives_the_chd_risk(scan, tmp_path):
    folder, _ = scan
    table = tmp_path / "cov.csv"
    table.write_text(
        "path,age,sex,ethnicity,diabetes,smoker,total_chol,hdl,sbp,lipid_med,bp_med,"
        f"family_history\n{folder},70,M,hispanic,0,0,190,50,130,0,1,0\n"
    )
    m = _run(scan, tmp_path / "out", "--covariates", str(table))["mesa"]
    assert m["inputs_source"]["sex"] == "csv" and m["inputs_source"]["age"] == "csv"
    cov = Covariates(70, "M", "hispanic", 0, 0, 190, 50, 130, 0, 1, 0)
    assert m["risk_10y_chd"] == round(chd_risk_10y(16.0, cov), 2)
    assert 3.06 < m["risk_10y_chd"] < 10  # CAC 16 raises the published 3.06 % (CAC 0)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--sex", "X"], "--sex: sex must be M or F"),
        (["--ethnicity", "martian"], "--ethnicity: ethnicity must be one of"),
        (["--age", "old"], "--age: age must be a number"),
    ],
)
def test_bad_flags_are_one_line_and_exit_2(scan, tmp_path, capsys, flags, message):
    folder, mask = scan
    code = main([str(folder), "--mask", str(mask), "--out", str(tmp_path / "o"), *flags])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").glob("*.json"))
