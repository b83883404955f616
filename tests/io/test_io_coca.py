"""The real COCA sample scans: values and geometry agree with SimpleITK's DICOM reader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from cac_lightning.io import list_series, read_label_map, read_volume, write_label_map


def _series_folder(coca_root: Path, pid: str) -> Path:
    (folder,) = (coca_root / "Gated_release_final" / "patient" / pid).iterdir()
    return folder


def _both(coca_root: Path, pid: str):
    """(our Volume, SimpleITK's series image) for one COCA patient."""
    folder = _series_folder(coca_root, pid)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    return read_volume(folder), reader.Execute()


@pytest.fixture(scope="module")
def coca0(coca_root):
    return _both(coca_root, "0")


def test_coca_metadata(coca0):
    vol, _ = coca0
    assert vol.hu.shape == (57, 512, 512) and vol.hu.dtype == np.int16
    g = vol.geometry
    assert g.pixel_spacing == (0.474609375, 0.474609375)
    assert g.slice_spacing == pytest.approx(3.0) and g.slice_thickness == pytest.approx(3.0)
    assert vol.kvp == 120.0
    assert vol.mass_factor == pytest.approx(0.743, abs=1e-6)  # first of (0018,9352)
    assert vol.scan_id == "Pro_Gated_CS_3.0_I30f_3_70"
    assert vol.hu.min() >= -1024


@pytest.mark.parametrize("pid", ["0", "1", "2"])
def test_coca_matches_simpleitk_voxel_for_voxel(coca_root, coca0, tmp_path, pid):
    vol, img = coca0 if pid == "0" else _both(coca_root, pid)
    np.testing.assert_array_equal(vol.hu, sitk.GetArrayFromImage(img))
    np.testing.assert_allclose(vol.geometry.origin, img.GetOrigin(), atol=1e-6)
    np.testing.assert_allclose(vol.geometry.spacing_xyz, img.GetSpacing(), atol=1e-6)
    np.testing.assert_allclose(vol.geometry.direction, img.GetDirection(), atol=1e-6)
    labels = np.zeros(vol.hu.shape, np.uint8)
    labels[10, 200, 300] = 2
    last = (511, 511, vol.hu.shape[0] - 1)
    path = write_label_map(labels, vol.geometry, tmp_path / "seg.nii.gz")
    seg = sitk.ReadImage(str(path))
    np.testing.assert_allclose(seg.GetOrigin(), img.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(seg.GetSpacing(), img.GetSpacing(), atol=1e-6)
    np.testing.assert_allclose(seg.GetDirection(), img.GetDirection(), atol=1e-6)
    for ijk in [(0, 0, 0), last, (300, 200, 10)]:
        point = img.TransformIndexToPhysicalPoint(ijk)
        np.testing.assert_allclose(seg.TransformIndexToPhysicalPoint(ijk), point, atol=1e-3)
    assert sitk.GetArrayViewFromImage(seg)[10, 200, 300] == 2
    np.testing.assert_array_equal(read_label_map(path, vol.geometry), labels)


@pytest.mark.parametrize("pid", ["0", "1", "2"])
def test_coca_folders_hold_one_ct_series(coca_root, pid):
    (info,) = list_series(_series_folder(coca_root, pid))
    assert info.modality == "CT" and info.n_files > 30
