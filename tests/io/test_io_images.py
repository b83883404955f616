"""Volumes and label maps in NIfTI / MHA / NRRD files."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import SimpleITK as sitk

from cac_lightning.errors import InputError
from cac_lightning.io import Geometry, read_label_map, read_volume, write_label_map

GEOM = Geometry(
    shape=(4, 6, 8),
    pixel_spacing=(0.5, 0.4),
    slice_spacing=3.0,
    origin=(-90.25, -317.25, -285.25),
    direction=(0.0, -1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0),  # rows rotated 90 deg in plane
)


def _labels(shape=GEOM.shape, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 5, size=shape).astype(np.uint8)


def _sitk_image(arr: np.ndarray, geom: Geometry) -> sitk.Image:
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing(geom.spacing_xyz)
    img.SetOrigin(geom.origin)
    img.SetDirection(geom.direction)
    return img


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".mha", ".nrrd"])
def test_label_map_round_trip(tmp_path, suffix):
    labels = _labels()
    path = write_label_map(labels, GEOM, tmp_path / f"seg{suffix}")
    assert path.name == f"seg{suffix}"
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary left
    img = sitk.ReadImage(str(path))
    np.testing.assert_allclose(img.GetSpacing(), GEOM.spacing_xyz, atol=1e-6)
    np.testing.assert_allclose(img.GetOrigin(), GEOM.origin, atol=1e-4)
    np.testing.assert_allclose(img.GetDirection(), GEOM.direction, atol=1e-6)
    back = read_label_map(path, GEOM)
    assert back.dtype == np.uint8
    np.testing.assert_array_equal(back, labels)


@pytest.mark.parametrize(
    ("changed", "match"),
    [
        ({"shape": (5, 6, 8)}, r"shape \(z, y, x\) \(5, 6, 8\) vs image \(4, 6, 8\)"),
        ({"slice_spacing": 2.5}, r"spacing \(z, y, x\) mm \(2.5, 0.5, 0.4\) vs image \(3, 0.5"),
        ({"origin": (-90.25, -317.25, -280.0)}, r"origin .*-280\) vs image .*-285.25\)"),
        ({"direction": (1.0, 0, 0, 0, 1, 0, 0, 0, 1)}, r"direction \(1, 0, 0.*vs image \(0, -1"),
    ],
)
def test_label_grid_mismatch_names_property_and_values(tmp_path, changed, match):
    other = Geometry(**{**GEOM.__dict__, **changed})
    path = write_label_map(_labels(other.shape), other, tmp_path / "seg.nii.gz")
    with pytest.raises(InputError, match="does not match the image grid: " + match):
        read_label_map(path, GEOM)


def test_label_values_checked(tmp_path):
    bad = _labels().astype(np.int16)
    bad[0, 0, 0], bad[1, 1, 1] = 7, -1
    sitk.WriteImage(_sitk_image(bad, GEOM), str(tmp_path / "bad.mha"))
    with pytest.raises(InputError, match="values must be 0..4 .*found -1, 7"):
        read_label_map(tmp_path / "bad.mha", GEOM)
    frac = _labels().astype(np.float32)
    sitk.WriteImage(_sitk_image(frac, GEOM), str(tmp_path / "whole.mha"))
    np.testing.assert_array_equal(read_label_map(tmp_path / "whole.mha", GEOM), _labels())
    frac[0, 0, 0] = 1.5
    sitk.WriteImage(_sitk_image(frac, GEOM), str(tmp_path / "frac.mha"))
    with pytest.raises(InputError, match="whole numbers"):
        read_label_map(tmp_path / "frac.mha", GEOM)
    with pytest.raises(InputError, match="label values must be 0..4"):
        write_label_map(bad, GEOM, tmp_path / "out.nii.gz")


def test_label_map_bad_paths(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        read_label_map(tmp_path / "none.nii.gz", GEOM)
    (tmp_path / "seg.png").write_bytes(b"x")
    with pytest.raises(InputError, match="expected a"):
        read_label_map(tmp_path / "seg.png", GEOM)
    (tmp_path / "broken.nii.gz").write_bytes(b"not a nifti")
    with pytest.raises(InputError, match="cannot read label map"):
        read_label_map(tmp_path / "broken.nii.gz", GEOM)
    with pytest.raises(InputError, match="written as"):
        write_label_map(_labels(), GEOM, tmp_path / "seg.png")
    with pytest.raises(InputError, match="does not match grid"):
        write_label_map(_labels((3, 6, 8)), GEOM, tmp_path / "seg.nii.gz")
    sitk.WriteImage(sitk.Image(4, 4, sitk.sitkUInt8), str(tmp_path / "flat.mha"))
    with pytest.raises(InputError, match="3-D single-channel"):
        read_label_map(tmp_path / "flat.mha", GEOM)


def test_read_volume_from_image_file(tmp_path, caplog):
    arr = np.random.default_rng(0).normal(0, 300, GEOM.shape).astype(np.float32)
    arr[0, 0, 0], arr[0, 0, 1] = 40000.0, 12.5
    sitk.WriteImage(_sitk_image(arr, GEOM), str(tmp_path / "ct 01.nii.gz"))
    with caplog.at_level(logging.WARNING, logger="cac_lightning.io.images"):
        vol = read_volume(tmp_path / "ct 01.nii.gz")
    assert "1 voxel(s) outside the int16 range" in caplog.text
    assert vol.hu.dtype == np.int16 and vol.scan_id == "ct_01"
    expected = np.clip(np.rint(arr), -32768, 32767)
    np.testing.assert_array_equal(vol.hu, expected)
    assert vol.hu[0, 0, 1] == 12  # round half to even
    assert vol.geometry.same_grid(GEOM)
    with pytest.raises(InputError, match="DICOM folders only"):
        read_volume(tmp_path / "ct 01.nii.gz", series_uid="1.2")


def test_left_handed_file_is_flipped_for_volume_and_labels(tmp_path):
    # NIfTI-style left-handed grid: slice index runs along -z
    left = Geometry(
        shape=(4, 6, 8), pixel_spacing=(0.5, 0.4), slice_spacing=3.0,
        origin=(0.0, 0.0, 9.0), direction=(1.0, 0, 0, 0, 1, 0, 0, 0, -1),
    )  # fmt: skip
    hu = np.arange(4, dtype=np.int16)[:, None, None] * np.ones((1, 6, 8), np.int16)
    sitk.WriteImage(_sitk_image(hu, left), str(tmp_path / "ct.mha"))
    labels = np.zeros(left.shape, np.uint8)
    labels[0, 2, 3] = 4  # on the slice with z = 9 mm
    sitk.WriteImage(_sitk_image(labels, left), str(tmp_path / "seg.nii.gz"))
    vol = read_volume(tmp_path / "ct.mha")
    assert vol.geometry.direction == pytest.approx((1, 0, 0, 0, 1, 0, 0, 0, 1))
    assert vol.geometry.origin == pytest.approx((0.0, 0.0, 0.0))
    assert vol.hu[:, 0, 0].tolist() == [3, 2, 1, 0]  # ascending z now
    seg = read_label_map(tmp_path / "seg.nii.gz", vol.geometry)
    assert list(zip(*np.nonzero(seg), strict=True)) == [(3, 2, 3)]
    assert vol.geometry.index_to_mm(np.array([3, 2, 3]))[2] == pytest.approx(9.0)


def test_non_axial_image_volume(tmp_path):
    sag = Geometry(
        shape=(4, 6, 8), pixel_spacing=(1.0, 1.0), slice_spacing=1.0,
        direction=(0.0, 0, 1, 1, 0, 0, 0, 1, 0),
    )  # fmt: skip
    sitk.WriteImage(_sitk_image(np.zeros(sag.shape, np.int16), sag), str(tmp_path / "sag.mha"))
    with pytest.raises(InputError, match="not axial .*90.0 deg"):
        read_volume(tmp_path / "sag.mha")
