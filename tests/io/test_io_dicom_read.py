"""Reading DICOM series: values, ordering, geometry, metadata and ignored files."""

from __future__ import annotations

import logging
import shutil

import numpy as np
import pydicom
import pytest
from pydicom.dataset import FileMetaDataset

from cac_lightning.io import list_series, read_volume
from cac_lightning.io.dicom import sanitize_id

CT_SMALL_XY = (-158.135803, -179.035797)  # ImagePositionPatient (x, y) of CT_small.dcm


def _marked(zs_rank: list[int]):
    """edit(): add 100 * rank to the stored values so slice order can be checked."""

    def edit(ds: pydicom.Dataset, i: int) -> None:
        ds.PixelData = (ds.pixel_array + 100 * zs_rank[i]).astype(np.int16).tobytes()

    return edit


def test_reads_shuffled_series_in_slice_order(tmp_path, make_series, ct_small_pixels):
    zs = [-65.7, -75.7, -70.7]  # written out of order, with odd file names
    names = ["zz.IMA", "a", "m.dcm"]
    folder = make_series(tmp_path / "my scan #1", zs, edit=_marked([2, 0, 1]), names=names)
    vol = read_volume(folder)
    assert vol.hu.dtype == np.int16 and vol.hu.shape == (3, 128, 128)
    for k in range(3):  # HU = stored - 1024, rank k sorted ascending in z
        expected = ct_small_pixels.astype(np.int32) + 100 * k - 1024
        np.testing.assert_array_equal(vol.hu[k], expected)
    g = vol.geometry
    assert g.shape == (3, 128, 128)
    assert g.pixel_spacing == pytest.approx((0.661468, 0.661468))
    assert g.slice_spacing == pytest.approx(5.0)
    assert g.slice_thickness == pytest.approx(5.0)
    assert g.origin == pytest.approx((*CT_SMALL_XY, -75.7))
    assert g.direction == pytest.approx((1, 0, 0, 0, 1, 0, 0, 0, 1))
    assert vol.kvp == 120.0 and vol.mass_factor is None
    assert vol.scan_id == "my_scan_1"
    assert vol.series_uid == pydicom.dcmread(folder / "a").SeriesInstanceUID


def test_descending_normal_sorts_along_row_cross_column(tmp_path, make_series):
    # rows run -y: normal = (1,0,0) x (0,-1,0) = (0,0,-1), so the highest z comes first
    def edit(ds, i):
        ds.ImageOrientationPatient = [1, 0, 0, 0, -1, 0]

    vol = read_volume(make_series(tmp_path / "s", [0.0, 3.0, 6.0], edit=edit))
    assert vol.geometry.origin[2] == pytest.approx(6.0)
    assert vol.geometry.direction == pytest.approx((1, 0, 0, 0, -1, 0, 0, 0, -1))
    assert vol.geometry.slice_spacing == pytest.approx(3.0)


def test_mass_factor_first_value_and_kvp(tmp_path, make_series):
    def edit(ds, i):
        ds.add_new(0x00189352, "FL", [0.75, 0.78, 0.81])
        ds.KVP = "100"

    vol = read_volume(make_series(tmp_path / "s", [0, 5, 10], edit=edit))
    assert vol.mass_factor == pytest.approx(0.75)
    assert vol.kvp == 100.0


def test_rescale_rounds_and_clips(tmp_path, make_series, ct_small_pixels):
    def edit(ds, i):
        ds.RescaleSlope = [2, 2, 1000][i]
        ds.RescaleIntercept = -1000.25

    vol = read_volume(make_series(tmp_path / "s", [0, 5, 10], edit=edit))
    px = ct_small_pixels.astype(np.float64)
    np.testing.assert_array_equal(vol.hu[0], np.rint(px * 2 - 1000.25))
    np.testing.assert_array_equal(vol.hu[2], np.clip(np.rint(px * 1000 - 1000.25), -32768, 32767))
    assert vol.hu[2].max() == 32767


def test_bare_dataset_without_file_meta_is_read(tmp_path, make_series, ct_small_pixels):
    folder = make_series(tmp_path / "s", [0, 5, 10])
    ds = pydicom.dcmread(folder / "slice001.dcm")
    ds.file_meta, ds.preamble = FileMetaDataset(), None
    ds.save_as(folder / "slice001.dcm", enforce_file_format=False, implicit_vr=True)
    assert (folder / "slice001.dcm").read_bytes()[:2] == b"\x08\x00"  # no preamble, no meta
    vol = read_volume(folder)
    np.testing.assert_array_equal(vol.hu[1], ct_small_pixels.astype(np.int32) - 1024)


def test_non_dicom_files_are_ignored(tmp_path, make_series, pydicom_test_files, caplog):
    folder = make_series(tmp_path / "s", [0, 5, 10])
    (folder / "README.txt").write_text("scanner export\n")
    shutil.copy(pydicom_test_files / "no_meta.dcm", folder)  # unparseable without meta
    shutil.copy(pydicom_test_files / "dicomdirtests" / "DICOMDIR", folder)
    (folder / ".DS_Store").write_bytes(b"\0\1")
    with caplog.at_level(logging.WARNING, logger="cac_lightning.io.dicom"):
        vol = read_volume(folder)
    assert vol.hu.shape == (3, 128, 128)
    text = caplog.text
    assert "ignoring 3 file(s)" in text
    assert "README.txt (not DICOM)" in text and "no_meta.dcm (not DICOM)" in text
    assert "DICOMDIR (Media Storage Directory Storage)" in text


def test_list_series_and_pick_one(tmp_path, make_series):
    folder = tmp_path / "mixed"
    make_series(folder, [0, 5, 10], names=["a1", "a2", "a3"])

    def other(ds, i):
        ds.SeriesDescription = "thin"
        ds.SeriesInstanceUID = "1.2.3.4"

    make_series(folder, [0, 1, 2, 3], edit=other, names=["b1", "b2", "b3", "b4"])
    infos = list_series(folder)
    assert [(s.series_uid, s.modality, s.n_files, s.description) for s in infos][0] == (
        "1.2.3.4",
        "CT",
        4,
        "thin",
    )
    assert [s.n_files for s in infos] == [4, 3]
    vol = read_volume(folder, series_uid="1.2.3.4")
    assert vol.geometry.shape[0] == 4 and vol.geometry.slice_spacing == pytest.approx(1.0)


@pytest.mark.parametrize(
    "src",
    ["MR_small_jp2klossless.dcm", "MR_small_jpeg_ls_lossless.dcm", "MR_small_RLE.dcm"],
)
def test_compressed_slices_are_decoded(tmp_path, make_series, pydicom_test_files, src):
    def as_ct(ds, i):
        ds.Modality = "CT"

    folder = make_series(tmp_path / "s", [0, 5, 10], src=src, edit=as_ct)
    assert pydicom.dcmread(folder / "slice000.dcm").file_meta.TransferSyntaxUID.is_compressed
    vol = read_volume(folder)
    expected = pydicom.dcmread(pydicom_test_files / "MR_small.dcm").pixel_array  # lossless
    for k in range(3):
        np.testing.assert_array_equal(vol.hu[k], expected)


def test_sanitize_id():
    assert sanitize_id("Pro_Gated_CS_3.0_I30f_3_70%") == "Pro_Gated_CS_3.0_I30f_3_70"
    assert sanitize_id("a b/c") == "a_b_c"
    assert sanitize_id("%%") == "scan"
