"""Item 10: DICOM SEG from a real CT file (pydicom's CT_small.dcm): validation, attributes."""

from __future__ import annotations

import logging

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from cac_lightning.errors import InputError
from cac_lightning.io import read_volume
from cac_lightning.io.seg import COPIED_KEYWORDS, write_seg

SERIES_UID = "1.2.826.0.1.3680043.8.498.1"


def _series(folder, n=3, **change):
    """``n`` slices made from pydicom's real CT_small.dcm, with ``change`` applied to each."""
    folder.mkdir()
    src = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    z0 = float(src.ImagePositionPatient[2])
    for i in range(n):
        ds = src.copy()
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.SeriesInstanceUID = SERIES_UID
        ds.InstanceNumber = i + 1
        ds.ImagePositionPatient = [*src.ImagePositionPatient[:2], z0 + 5.0 * i]
        ds.PatientAge = "042Y"  # a Patient-module attribute the SEG must not carry
        ds.StudyDescription = "private note"
        for kw, value in change.items():
            setattr(ds, kw, value)
        ds.save_as(folder / f"IM{i:03d}.dcm", enforce_file_format=True)
    return folder


def _labels(vol):
    lab = np.zeros(vol.hu.shape, np.uint8)
    lab[1, 10:14, 10:14] = 2
    return lab


def test_seg_copies_documented_attributes_only(tmp_path):
    vol = read_volume(_series(tmp_path / "s"))
    src = pydicom.dcmread(vol.extra["files"][0])
    path = write_seg(tmp_path / "a_seg.dcm", vol, _labels(vol))
    seg = pydicom.dcmread(path)
    assert seg.Modality == "SEG" and len(seg.SegmentSequence) == 4
    assert seg.StudyInstanceUID == src.StudyInstanceUID
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == SERIES_UID
    assert seg.PatientID == src.PatientID and str(seg.PatientName) == str(src.PatientName)
    assert "PatientAge" not in seg and "StudyDescription" not in seg
    copied_from_patient = {e.keyword for e in seg if e.tag.group == 0x0010}
    assert copied_from_patient <= set(COPIED_KEYWORDS) | {"PatientIdentityRemoved"}


def test_seg_deidentified_variant(tmp_path):
    vol = read_volume(_series(tmp_path / "s"))
    src = pydicom.dcmread(vol.extra["files"][0])
    path = write_seg(tmp_path / "a_seg.dcm", vol, _labels(vol), deidentify=True)
    seg = pydicom.dcmread(path)
    for kw in COPIED_KEYWORDS:
        assert str(seg.get(kw, "") or "") == "", kw
    assert seg.PatientIdentityRemoved == "YES"
    assert seg.StudyInstanceUID == src.StudyInstanceUID  # still references its source
    raw = path.read_bytes()
    assert str(src.PatientName).encode() not in raw and str(src.PatientID).encode() not in raw


def test_malformed_digit_uids_replaced_by_derived_ones(tmp_path, caplog):
    from cac_lightning.io.seg import UID_RE, derived_uid

    bad = "6.0724.1"  # illegal root and a leading zero, as COCA's anonymiser writes
    vol = read_volume(_series(tmp_path / "s", StudyInstanceUID=bad, StudyDate="00010101"))
    with caplog.at_level(logging.WARNING):
        seg = pydicom.dcmread(write_seg(tmp_path / "a_seg.dcm", vol, _labels(vol)))
    assert seg.StudyInstanceUID == derived_uid(bad) != bad
    assert UID_RE.fullmatch(derived_uid(bad)) and derived_uid(bad) == derived_uid(bad)
    assert derived_uid(bad) != derived_uid("6.0724.2")
    assert "StudyInstanceUID not valid DICOM UIDs" in caplog.text
    assert seg.StudyDate == ""  # a placeholder date before 1900 is not a study date


def test_invalid_uid_refused(tmp_path):
    vol = read_volume(_series(tmp_path / "s", StudyInstanceUID="a/b"))
    with pytest.raises(InputError, match="StudyInstanceUID is not a valid DICOM UID"):
        write_seg(tmp_path / "a_seg.dcm", vol, _labels(vol))
    assert not (tmp_path / "a_seg.dcm").exists()


def test_overlong_values_fixed_with_warning(tmp_path, caplog):
    long_id = "P" * 309
    vol = read_volume(_series(tmp_path / "s", PatientID=long_id, StudyDate="2020-01-01"))
    with caplog.at_level(logging.WARNING):
        path = write_seg(tmp_path / "a_seg.dcm", vol, _labels(vol))
    seg = pydicom.dcmread(path)
    assert seg.PatientID == long_id[:64] and seg.StudyDate == ""
    text = caplog.text
    assert "PatientID is not valid LO" in text and "StudyDate is not valid DA" in text
    assert long_id not in text  # the value itself is never logged
    # What was written is valid DICOM for these VRs.
    for kw in ("PatientID", "StudyID", "AccessionNumber"):
        assert len(str(seg.get(kw, ""))) <= COPIED_KEYWORDS[kw][1]
