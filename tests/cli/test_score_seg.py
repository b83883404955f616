"""Item 10: `cac-score --seg --seg-deidentified`."""

from __future__ import annotations

import pydicom

from cac_lightning.cli.score import main


def test_cli_seg_deidentified_flag(tmp_path, lad_ckpt, make_small_series, capsys):
    folder = make_small_series(tmp_path / "s", 7)
    out = tmp_path / "out"
    args = [str(folder), "--ckpt", str(lad_ckpt), "--out", str(out), "--device", "cpu"]
    assert main([*args, "--seg", "--seg-deidentified"]) == 0
    (seg_path,) = out.glob("*_seg.dcm")
    seg = pydicom.dcmread(seg_path)
    assert seg.PatientIdentityRemoved == "YES" and str(seg.PatientID) == ""
    assert b"SYN0007" not in seg_path.read_bytes()
    assert main([*args, "--seg-deidentified"]) == 2
    assert "--seg-deidentified goes with --seg" in capsys.readouterr().err
