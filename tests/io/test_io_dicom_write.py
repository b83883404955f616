"""Writing CT series: exact round trip, file attributes, atomicity, SimpleITK agreement."""

from __future__ import annotations

import filecmp
import logging

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

import cac_lightning.io.dicom_write as dicom_write
from cac_lightning.errors import InputError
from cac_lightning.io import Geometry, read_volume, write_dicom_series


def _rot_z(deg: float) -> np.ndarray:
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


IDENTITY = np.eye(3)
DIRECTIONS = {
    "identity": np.eye(3),
    "flip_xy": np.diag([-1.0, -1.0, 1.0]),
    "feet_first": np.array([[1.0, 0, 0], [0, -1, 0], [0, 0, -1]]),  # slice axis -z
    "rot_10": _rot_z(10.0),
}


def _geometry(direction=IDENTITY, shape=(5, 12, 16), thickness=None) -> Geometry:
    return Geometry(
        shape=shape,
        pixel_spacing=(0.7, 0.6),
        slice_spacing=2.5,
        origin=(-10.5, 20.25, -100.0),
        direction=tuple(np.asarray(direction).ravel()),
        slice_thickness=thickness,
    )


def _hu(shape, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(-1024, 3000, size=shape).astype(np.int16)


def test_round_trip_is_exact(tmp_path):
    geom = _geometry()
    hu = _hu(geom.shape)
    hu[0, 0, :3] = (-1024, 0, 3000)
    out = write_dicom_series(
        hu, geom, tmp_path / "syn-0001", patient_id="SYN-0001", kvp=100.0, mass_factor=0.79
    )
    assert out == tmp_path / "syn-0001"
    assert sorted(p.name for p in out.iterdir()) == [f"IM-{i:04d}.dcm" for i in range(1, 6)]
    vol = read_volume(out)
    np.testing.assert_array_equal(vol.hu, hu)
    assert vol.hu.dtype == np.int16
    assert vol.geometry.same_grid(geom, tol_mm=1e-6)
    assert vol.geometry.slice_thickness == pytest.approx(2.5)
    assert vol.kvp == 100.0
    assert vol.mass_factor == pytest.approx(0.79)
    assert vol.scan_id == "syn-0001"


def test_file_attributes(tmp_path):
    geom = _geometry(thickness=3.0)
    hu = _hu(geom.shape)
    out = write_dicom_series(
        hu, geom, tmp_path / "s", patient_id="SYN-7", study_uid="1.2.3", series_uid="1.2.3.4",
        description="synthetic",
    )  # fmt: skip
    ds = pydicom.dcmread(out / "IM-0002.dcm")
    assert ds.preamble == b"\0" * 128
    assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert ds.SOPClassUID == CTImageStorage and ds.Modality == "CT"
    assert (ds.StudyInstanceUID, ds.SeriesInstanceUID) == ("1.2.3", "1.2.3.4")
    assert ds.FrameOfReferenceUID and ds.InstanceNumber == 2
    assert str(ds.PatientID) == "SYN-7" and str(ds.PatientName) == "SYN-7"
    assert "PatientBirthDate" not in ds and "PatientSex" not in ds
    assert (ds.RescaleIntercept, ds.RescaleSlope) == (-1024, 1)
    assert (ds.BitsAllocated, ds.BitsStored, ds.PixelRepresentation) == (16, 16, 0)
    assert ds.pixel_array.dtype == np.uint16
    np.testing.assert_array_equal(ds.pixel_array.astype(np.int32), hu[1].astype(np.int32) + 1024)
    assert float(ds.SliceThickness) == 3.0 and float(ds.SpacingBetweenSlices) == 2.5
    assert [float(v) for v in ds.ImagePositionPatient] == [-10.5, 20.25, -97.5]
    assert [float(v) for v in ds.PixelSpacing] == [0.7, 0.6]
    assert float(ds.KVP) == 120.0 and ds.SeriesDescription == "synthetic"
    assert (0x0018, 0x9352) not in ds


def test_deterministic_with_given_uids(tmp_path):
    geom = _geometry()
    hu = _hu(geom.shape)
    kw = {"patient_id": "P", "study_uid": "1.2.3", "series_uid": "1.2.3.5"}
    a = write_dicom_series(hu, geom, tmp_path / "a", **kw)
    b = write_dicom_series(hu, geom, tmp_path / "b", **kw)
    names = [p.name for p in sorted(a.iterdir())]
    match, mismatch, errors = filecmp.cmpfiles(a, b, names, shallow=False)
    assert match == names and not mismatch and not errors
    uids = {pydicom.dcmread(p).SOPInstanceUID for p in a.iterdir()}
    assert len(uids) == 5


def test_refuses_non_empty_folder_and_accepts_empty(tmp_path):
    geom = _geometry()
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "keep.txt").write_text("mine")
    with pytest.raises(InputError, match="already exists and is not an empty folder"):
        write_dicom_series(_hu(geom.shape), geom, taken, patient_id="P")
    assert [p.name for p in taken.iterdir()] == ["keep.txt"]
    (tmp_path / "empty").mkdir()
    out = write_dicom_series(_hu(geom.shape), geom, tmp_path / "empty", patient_id="P")
    assert len(list(out.iterdir())) == 5


def test_failure_leaves_nothing_behind(tmp_path, monkeypatch):
    calls = []

    def failing(path, ds, **kw):
        calls.append(path)
        if len(calls) == 3:
            raise OSError("disk full")
        return pydicom.dcmwrite(path, ds, **kw)

    monkeypatch.setattr(dicom_write, "dcmwrite", failing)
    geom = _geometry()
    with pytest.raises(OSError, match="disk full"):
        write_dicom_series(_hu(geom.shape), geom, tmp_path / "s", patient_id="P")
    assert list(tmp_path.iterdir()) == []


def test_values_below_air_are_clipped_with_warning(tmp_path, caplog):
    geom = _geometry()
    hu = np.zeros(geom.shape, np.int16)
    hu[0, 0, 0], hu[1, 1, 1] = -2000, -1025
    with caplog.at_level(logging.WARNING, logger="cac_lightning.io.dicom_write"):
        out = write_dicom_series(hu, geom, tmp_path / "s", patient_id="P")
    assert "2 voxel(s) below -1024 HU" in caplog.text
    vol = read_volume(out)
    assert vol.hu[0, 0, 0] == -1024 and vol.hu[1, 1, 1] == -1024 and vol.hu[2].max() == 0


@pytest.mark.parametrize(
    ("geom", "match"),
    [
        (_geometry(shape=(4, 12, 16)), "does not match geometry shape"),
        (_geometry(direction=np.diag([1.0, 1.0, -1.0])), "right-handed"),
        (_geometry(direction=np.diag([2.0, 1.0, 2.0])), "not orthonormal"),
    ],
)
def test_bad_geometry(tmp_path, geom, match):
    with pytest.raises(InputError, match=match):
        write_dicom_series(_hu((5, 12, 16)), geom, tmp_path / "s", patient_id="P")
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("name", sorted(DIRECTIONS))
def test_geometry_agrees_with_simpleitk(tmp_path, name):
    geom = _geometry(DIRECTIONS[name])
    hu = _hu(geom.shape, seed=1)
    out = write_dicom_series(hu, geom, tmp_path / "s", patient_id="P")
    vol = read_volume(out)
    np.testing.assert_array_equal(vol.hu, hu)
    assert vol.geometry.same_grid(geom, tol_mm=1e-6)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(out)))
    img = reader.Execute()
    np.testing.assert_allclose(img.GetOrigin(), vol.geometry.origin, atol=1e-6)
    np.testing.assert_allclose(img.GetSpacing(), vol.geometry.spacing_xyz, atol=1e-6)
    np.testing.assert_allclose(img.GetDirection(), vol.geometry.direction, atol=1e-6)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(img), hu)
