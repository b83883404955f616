"""``cac-score --ckpt`` and the heart region: refused scans, outputs, non-gated scans."""

from __future__ import annotations

import json

import numpy as np
import pytest


@pytest.fixture(scope="module")
def phantom_series(tmp_path_factory):
    from cac_lightning.io import write_dicom_series
    from cac_lightning.sources.synthetic.phantom import make_scan

    scan = make_scan(5, 0, size=128)
    folder = tmp_path_factory.mktemp("phantom") / "series"
    write_dicom_series(scan.hu, scan.geometry, folder, patient_id="SYN0000")
    return folder, scan


def test_no_heart_is_one_line_exit_2_and_nothing_written(
    tmp_path, make_small_series, lad_ckpt, capsys
):
    from cac_lightning.cli.score import main

    series = make_small_series(tmp_path / "toy", seed=1)
    out = tmp_path / "out"
    assert main([str(series), "--ckpt", str(lad_ckpt), "--out", str(out), "--save-labels"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert [line for line in err if "error" in line][0].endswith(
        "no heart found: no lungs in the scan (is it a chest CT?)"
    )
    assert not any(p.suffix in (".json", ".gz") for p in out.rglob("*"))


def test_region_is_in_json_label_file_seg_and_gates_bone(tmp_path, phantom_series, lad_ckpt):
    import pydicom
    import SimpleITK as sitk

    from cac_lightning.cli.score import main

    folder, scan = phantom_series
    out, off = tmp_path / "out", tmp_path / "off"
    args = [str(folder), "--ckpt", str(lad_ckpt), "--device", "cpu", "--save-labels"]
    assert main([*args, "--out", str(out), "--seg", "--overlays", "--heart", "geometry"]) == 0
    assert main([*args, "--out", str(off), "--heart", "off"]) == 0
    report = json.loads(next(out.glob("*.json")).read_text())
    region = report["heart_region"]
    assert region["method"] == "geometry" and 300 < region["volume_ml"] < 6000
    assert json.loads(next(off.glob("*.json")).read_text())["heart_region"] is None
    heart = sitk.GetArrayFromImage(sitk.ReadImage(str(next(out.glob("*_heart.nii.gz")))))
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(next(out.glob("*_labels.nii.gz")))))
    everywhere = sitk.GetArrayFromImage(sitk.ReadImage(str(next(off.glob("*_labels.nii.gz")))))
    assert abs(heart.sum() * np.prod(scan.geometry.spacing_zyx) / 1000 - region["volume_ml"]) < 1
    assert not (labels[heart == 0] > 0).any() and (everywhere[heart == 0] > 0).sum() > 100
    assert np.array_equal(labels > 0, (everywhere > 0) & (heart > 0))
    assert (labels[scan.labels > 0] > 0).all()  # the always-LAD net keeps every true lesion
    seg = pydicom.dcmread(next(out.glob("*_seg.dcm")))
    names = [s.SegmentLabel for s in seg.SegmentSequence]
    assert names[-1] == "Heart region" and len(names) == 5
    assert (out / next(out.glob("*_overlays")).name / "summary.png").is_file()


def test_non_gated_scan_is_recognised_and_warned(tmp_path, lad_ckpt, capsys):
    """A whole-chest field of view with 5 mm slices and no cardiac tags: non-gated."""
    from cac_lightning.cli.score import main
    from cac_lightning.io import write_dicom_series
    from cac_lightning.sources.synthetic.phantom import SynthOptions, make_scan

    scan = make_scan(5, 1, size=96, options=SynthOptions(fov_mm=(330.0, 330.0)))
    folder = tmp_path / "wide"
    write_dicom_series(scan.hu, scan.geometry, folder, patient_id="SYN0001")
    out = tmp_path / "out"
    args = [str(folder), "--ckpt", str(lad_ckpt), "--out", str(out), "--heart", "geometry"]
    assert main(args) == 0
    report = json.loads(next(out.glob("*.json")).read_text())
    assert report["acquisition"] == "non-gated"
    lines = [x for x in capsys.readouterr().err.splitlines() if "non-gated chest CT" in x]
    assert len(lines) == 1 and "run lower" in lines[0]
    assert any("non-gated" in w for w in report["warnings"])
