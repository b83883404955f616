"""Where a DICOM SEG's pixels land: each frame is its source slice's labels, and says so.

The label volume is asymmetric (every slice different, slices not mirror images of each
other, the series' files named in reverse slice order), so a SEG written with its slices
reversed, shifted, or with a frame referencing another slice fails here.
"""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from cac_lightning.io import read_volume
from cac_lightning.io.seg import write_seg
from cac_lightning.vessels import VESSELS

N_SLICES = 4


def _series(folder, n=N_SLICES):
    """``n`` slices of pydicom's CT_small.dcm, 2.5 mm apart; file ``IM000`` is the top slice."""
    folder.mkdir()
    src = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    x0, y0, z0 = (float(v) for v in src.ImagePositionPatient)
    series_uid = generate_uid()
    for i in range(n):
        ds = src.copy()
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.SeriesInstanceUID = series_uid
        ds.InstanceNumber = i + 1
        ds.ImagePositionPatient = [x0, y0, z0 + 2.5 * i]
        ds.save_as(folder / f"IM{n - 1 - i:03d}.dcm", enforce_file_format=True)
    return folder


def _asymmetric_labels(shape):
    """Labels whose every slice differs, each vessel on some slices only (slice 2 empty)."""
    lab = np.zeros(shape, np.uint8)
    lab[0, 10:14, 20:26] = 2  # LAD, wider than tall
    lab[0, 40:42, 40:41] = 4  # RCA
    lab[1, 30:33, 5:7] = 1  # LM
    lab[3, 60:70, 60:62] = 3  # CX
    lab[3, 5:6, 100:110] = 2  # LAD again, elsewhere
    return lab


def _frames(seg):
    """``(segment number, referenced SOPInstanceUID, ImagePositionPatient, pixels)`` per frame."""
    pixels = seg.pixel_array.reshape(int(seg.NumberOfFrames), seg.Rows, seg.Columns)
    out = []
    for item, frame in zip(seg.PerFrameFunctionalGroupsSequence, pixels, strict=True):
        number = int(item.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        (derivation,) = item.DerivationImageSequence
        (source,) = derivation.SourceImageSequence
        position = [float(v) for v in item.PlanePositionSequence[0].ImagePositionPatient]
        out.append((number, str(source.ReferencedSOPInstanceUID), position, frame))
    return out


def test_seg_frames_are_the_label_volume_slice_by_slice(tmp_path):
    vol = read_volume(_series(tmp_path / "s"))
    labels = _asymmetric_labels(vol.hu.shape)
    assert not np.array_equal(labels, labels[::-1])  # a reversed volume would differ
    path = write_seg(tmp_path / "a_seg.dcm", vol, labels)
    seg = pydicom.dcmread(path)
    sources = [pydicom.dcmread(f, stop_before_pixels=True) for f in vol.extra["files"]]
    slice_of = {str(ds.SOPInstanceUID): z for z, ds in enumerate(sources)}
    assert len(slice_of) == N_SLICES

    frames = _frames(seg)
    seen = set()
    for number, sop_uid, position, frame in frames:
        z = slice_of[sop_uid]  # every frame references one of the series' slices
        # ... and its own: the frame sits where that source slice sits
        assert position == pytest.approx([float(v) for v in sources[z].ImagePositionPatient])
        expected = labels[z] == number
        assert np.array_equal(frame.astype(bool), expected), (VESSELS[number - 1], z)
        seen.add((number, z))
    # every (segment, slice) is present (empty frames kept), so nothing was silently dropped
    assert seen == {(s, z) for s in range(1, len(VESSELS) + 1) for z in range(N_SLICES)}
    assert sum(int(f.sum()) for *_, f in frames) == int((labels > 0).sum())
