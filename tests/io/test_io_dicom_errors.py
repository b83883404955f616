"""Bad DICOM input gives one clear InputError (never a traceback from a library)."""

from __future__ import annotations

import math
import shutil

import pytest
from pydicom.pixels import get_decoder
from pydicom.uid import JPEG2000Lossless, JPEGLSLossless

from cac_lightning.errors import InputError
from cac_lightning.io import read_volume


def _raises(path, match: str, **kwargs) -> str:
    with pytest.raises(InputError, match=match) as info:
        read_volume(path, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_missing_path(tmp_path):
    _raises(tmp_path / "nope", "does not exist")


def test_empty_folder_and_folder_of_folders(tmp_path):
    (tmp_path / "empty").mkdir()
    _raises(tmp_path / "empty", "is empty: give the folder of one CT series")
    (tmp_path / "empty" / "series1").mkdir()
    _raises(tmp_path / "empty", r"holds only folders \(series1\)")


def test_folder_without_dicom(tmp_path, pydicom_test_files):
    folder = tmp_path / "junk"
    folder.mkdir()
    (folder / "notes.txt").write_text("hello")
    shutil.copy(pydicom_test_files / "no_meta.dcm", folder)
    msg = _raises(folder, "no DICOM images")
    assert "notes.txt (not DICOM)" in msg


def test_non_ct_modality(tmp_path, make_series):
    folder = make_series(tmp_path / "mr", [0, 5, 10], src="MR_small.dcm")
    _raises(folder, "is MR, not CT")


PIXEL_DATA_TAG = b"\xe0\x7f\x10\x00"  # (7FE0,0010) little endian


@pytest.mark.parametrize(
    ("keep", "match"),
    [
        (1000, "header ends before the image"),
        (3000, "header ends before the image"),
        (None, "cannot decode the pixel data .truncated DICOM file: .*no .Pixel Data"),
        (-1000, "truncated DICOM file: The number of bytes of pixel data is less than expected"),
    ],
)
def test_truncated_files(tmp_path, make_series, keep, match):
    folder = make_series(tmp_path / "s", [0, 5, 10])
    path = folder / "slice001.dcm"
    raw = path.read_bytes()
    path.write_bytes(raw[: raw.rfind(PIXEL_DATA_TAG) if keep is None else keep])
    _raises(folder, f"slice001.dcm: .*{match}")


def test_truncated_pixel_data_mr_truncated(tmp_path, pydicom_test_files):
    # MR_truncated.dcm: real file whose pixel data ends early; made CT at 3 positions by
    # patching same-length byte strings, so every header check passes first.
    raw = (pydicom_test_files / "MR_truncated.dcm").read_bytes()
    raw = raw.replace(b"CS\x02\x00MR", b"CS\x02\x00CT", 1)
    folder = tmp_path / "trunc"
    folder.mkdir()
    for z in ("3", "6", "9"):
        patched = raw.replace(b"\\6.6406", b"\\" + z.encode() + b".6406", 1)
        assert patched != raw or z == "6"
        (folder / f"im{z}.dcm").write_bytes(patched)
    _raises(folder, "im3.dcm: cannot decode the pixel data .truncated DICOM file")


def test_fewer_than_three_slices(tmp_path, make_series):
    _raises(make_series(tmp_path / "s", [0, 5]), "has 2 slice.s.; need >= 3")


def test_several_series_lists_them(tmp_path, make_series):
    folder = tmp_path / "mixed"
    make_series(folder, [0, 5, 10], names=["a1", "a2", "a3"])

    def other(ds, i):
        ds.SeriesInstanceUID = "1.2.3.4"
        ds.SeriesDescription = "Calcium Score 3.0"

    make_series(folder, [0, 1, 2, 3], edit=other, names=["b1", "b2", "b3", "b4"])
    msg = _raises(folder, "holds 2 series; pick one with --series-uid")
    assert "1.2.3.4 (CT, 'Calcium Score 3.0', 4 files)" in msg
    assert "3 files" in msg
    _raises(folder, "series 9.9 is not in", series_uid="9.9")


def test_missing_slices(tmp_path, make_series):
    msg = _raises(make_series(tmp_path / "s", [0, 5, 10, 20, 25]), "missing slices")
    assert "gap of 10.00 mm" in msg and "about 1 slice(s) missing" in msg


def test_duplicate_positions(tmp_path, make_series):
    _raises(make_series(tmp_path / "s", [0, 5, 5, 10]), "duplicate slice position 5.00 mm")


@pytest.mark.parametrize(("iop", "angle"), [([0, 1, 0, 0, 0, -1], 90.0), (None, 20.0)])
def test_non_axial(tmp_path, make_series, iop, angle):
    if iop is None:  # oblique: columns tilted 20 deg towards z
        a = math.radians(angle)
        iop = [1, 0, 0, 0, math.cos(a), math.sin(a)]

    def edit(ds, i):
        ds.ImageOrientationPatient = [round(v, 6) for v in iop]

    _raises(make_series(tmp_path / "s", [0, 5, 10], edit=edit), f"not an axial.*{angle:.1f} deg")


def test_gantry_tilt(tmp_path, make_series):
    step_y = 5.0 * math.tan(math.radians(15))

    def edit(ds, i):
        ds.ImagePositionPatient = [0.0, round(i * step_y, 4), 5.0 * i]

    _raises(make_series(tmp_path / "s", [0, 5, 10], edit=edit), "gantry tilt.* 15.0 deg")


@pytest.mark.parametrize(
    ("keyword", "value", "match"),
    [
        ("Rows", 64, "inconsistent Rows x Columns.*128, 128. in 2 files"),
        ("PixelSpacing", [0.5, 0.5], r"inconsistent PixelSpacing.*0\.5, 0\.5. in 1 files"),
    ],
)
def test_inconsistent_slices(tmp_path, make_series, keyword, value, match):
    def edit(ds, i):
        if i == 1:
            setattr(ds, keyword, value)

    _raises(make_series(tmp_path / "s", [0, 5, 10], edit=edit), match)


@pytest.mark.parametrize(
    ("src", "syntax", "package"),
    [
        ("MR_small_jp2klossless.dcm", JPEG2000Lossless, "install pylibjpeg-openjpeg"),
        ("MR_small_jpeg_ls_lossless.dcm", JPEGLSLossless, "install pylibjpeg-libjpeg"),
    ],
)
def test_missing_decoder_names_package(tmp_path, make_series, monkeypatch, src, syntax, package):
    def as_ct(ds, i):
        ds.Modality = "CT"

    folder = make_series(tmp_path / "s", [0, 5, 10], src=src, edit=as_ct)
    monkeypatch.setattr(get_decoder(syntax), "_available", {})  # no plugin installed
    msg = _raises(folder, "no installed decoder handles")
    assert package in msg and "3 file(s)" in msg


def test_single_dicom_file_and_unknown_suffix(tmp_path, make_series):
    folder = make_series(tmp_path / "s", [0, 5, 10])
    _raises(folder / "slice000.dcm", "single DICOM file: give the folder")
    (tmp_path / "x.png").write_bytes(b"\x89PNG")
    _raises(tmp_path / "x.png", "unsupported input")
