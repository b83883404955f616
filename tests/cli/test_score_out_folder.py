"""Item 6: `--out` equal to or inside a DICOM input folder is refused (unless DICOM-free)."""

from __future__ import annotations

import shutil

import pytest

from cac_lightning.cli.score import main


@pytest.fixture
def series_and_mask(tmp_path, make_small_series):
    from cac_lightning.io import read_volume, write_label_map

    folder = make_small_series(tmp_path / "series", 1)
    vol = read_volume(folder)
    mask = write_label_map((vol.hu > 130).astype("uint8"), vol.geometry, tmp_path / "m.nii.gz")
    return folder, mask


def test_out_equal_to_input_is_refused(series_and_mask, capsys):
    folder, mask = series_and_mask
    before = sorted(p.name for p in folder.iterdir())
    assert main([str(folder), "--mask", str(mask), "--out", str(folder)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is the input folder" in err[0]
    assert sorted(p.name for p in folder.iterdir()) == before


def test_out_equal_to_input_refused_for_seg(series_and_mask, lad_ckpt, capsys):
    folder, _ = series_and_mask
    before = sorted(p.name for p in folder.iterdir())
    args = [str(folder), "--ckpt", str(lad_ckpt), "--out", f"{folder}/.", "--seg"]
    assert main([*args, "--device", "cpu"]) == 2
    assert "is the input folder" in capsys.readouterr().err
    assert sorted(p.name for p in folder.iterdir()) == before


def test_dicom_free_subfolder_is_allowed_and_series_still_reads(series_and_mask, lad_ckpt):
    folder, _ = series_and_mask
    out = folder / "results"
    args = [str(folder), "--ckpt", str(lad_ckpt), "--out", str(out), "--seg", "--device", "cpu"]
    assert main(args) == 0
    assert len(list(out.glob("*_seg.dcm"))) == 1
    assert main(args) == 0  # the SEG in the subfolder does not join the series


def test_subfolder_holding_dicom_is_refused(series_and_mask, capsys):
    from pydicom.data import get_testdata_file

    folder, mask = series_and_mask
    out = folder / "other"
    out.mkdir()
    shutil.copy(get_testdata_file("CT_small.dcm"), out / "CT_small.dcm")  # a real DICOM file
    assert main([str(folder), "--mask", str(mask), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds DICOM files (CT_small.dcm)" in err[0]
    assert sorted(p.name for p in out.iterdir()) == ["CT_small.dcm"]
