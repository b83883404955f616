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


def _asymmetric_series(folder):
    """5 slices of 32 x 40 px at 40 HU with calcium on slices 0, 1 and 3, each elsewhere."""
    import numpy as np

    from cac_lightning.io import write_dicom_series
    from cac_lightning.io.volume import Geometry

    hu = np.full((5, 32, 40), 40, np.int16)
    hu[0, 4:8, 30:36] = 420
    hu[1, 20:23, 3:9] = 250
    hu[3, 10:14, 10:12] = 700
    hu[3, 25:27, 30:38] = 150
    g = Geometry(shape=hu.shape, pixel_spacing=(0.5, 0.5), slice_spacing=3.0, slice_thickness=3.0)
    return write_dicom_series(hu, g, folder, patient_id="SYN0021")


def test_cli_seg_frames_are_each_source_slices_calcium(tmp_path, lad_ckpt):
    """An always-LAD model: each SEG frame of LAD is HU >= 130 of the very slice the frame
    references (read from that file), every other segment's frames are empty."""
    import numpy as np

    series = _asymmetric_series(tmp_path / "s")
    out = tmp_path / "out"
    args = [str(series), "--ckpt", str(lad_ckpt), "--out", str(out), "--device", "cpu"]
    assert main([*args, "--seg"]) == 0
    (seg_path,) = out.glob("*_seg.dcm")
    seg = pydicom.dcmread(seg_path)
    sources = {}
    for f in series.iterdir():
        ds = pydicom.dcmread(f)
        hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        sources[str(ds.SOPInstanceUID)] = (ds, hu)
    frames = seg.pixel_array.reshape(int(seg.NumberOfFrames), seg.Rows, seg.Columns)
    lad_pixels = 0
    referenced = set()
    for item, frame in zip(seg.PerFrameFunctionalGroupsSequence, frames, strict=True):
        number = int(item.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        uid = str(item.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID)
        src, hu = sources[uid]
        position = [float(v) for v in item.PlanePositionSequence[0].ImagePositionPatient]
        assert position == [float(v) for v in src.ImagePositionPatient]
        expected = (hu >= 130) if number == 2 else np.zeros_like(hu, bool)
        assert np.array_equal(frame.astype(bool), expected), (number, int(src.InstanceNumber))
        lad_pixels += int(frame.sum()) if number == 2 else 0
        referenced.add(uid)
    assert referenced == set(sources)
    assert lad_pixels == 24 + 18 + 8 + 16
