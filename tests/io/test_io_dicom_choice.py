"""Which series a folder's DICOM files give, and multi-frame CT read frame by frame."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pydicom
import pytest

from cac_lightning.errors import InputError
from cac_lightning.io.dicom import read_dicom_series
from cac_lightning.volume import Geometry

COCA_SAMPLE = Path("/work/shared/data/coca-sample/Gated_release_final/patient/0")


def _tags(uid: str, thickness: float, *, gated: bool = True, contrast: str = ""):
    def edit(ds, i):
        ds.SeriesInstanceUID = uid
        ds.SliceThickness = thickness
        if gated:
            ds.TriggerTime = 350
        if contrast:
            ds.ContrastBolusAgent = contrast
        elif "ContrastBolusAgent" in ds:  # CT_small.dcm is a contrast scan
            del ds.ContrastBolusAgent

    return edit


def test_localizer_is_skipped_with_a_warning(tmp_path, make_series, caplog):
    folder = make_series(tmp_path / "s", [0, 5, 10])

    def scout(ds, i):
        ds.SeriesInstanceUID = "1.2.3.9"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]

    make_series(folder, [0], edit=scout, names=["scout.dcm"])
    with caplog.at_level(logging.WARNING, logger="cac_lightning.io.dicom"):
        vol = read_dicom_series(folder)
    assert vol.geometry.shape[0] == 3
    assert "scout.dcm" in caplog.text and "localizer" in caplog.text


def test_single_non_axial_image_in_the_series_is_skipped(tmp_path, make_series):
    folder = make_series(tmp_path / "s", [0, 5, 10])

    def sagittal(ds, i):
        ds.SeriesInstanceUID = pydicom.dcmread(next(folder.iterdir())).SeriesInstanceUID
        ds.ImageOrientationPatient = [0, 1, 0, 0, 0, -1]

    make_series(folder, [50], edit=sagittal, names=["topogram.dcm"])
    assert read_dicom_series(folder).geometry.shape[0] == 3


def test_only_localizers_is_refused(tmp_path, make_series):
    folder = make_series(
        tmp_path / "s", [0, 5], edit=lambda ds, i: setattr(ds, "ImageType", ["LOCALIZER"])
    )
    with pytest.raises(InputError, match="only localizer/scout images"):
        read_dicom_series(folder)


def test_calcium_scoring_series_is_chosen_and_logged(tmp_path, make_series, caplog):
    folder = tmp_path / "study"
    make_series(folder, [0, 3, 6], edit=_tags("1.2.3.1", 3.0), names=["a1", "a2", "a3"])
    thin = _tags("1.2.3.2", 0.625)
    make_series(folder, [0, 1, 2, 3], edit=thin, names=["b1", "b2", "b3", "b4"])
    cta = _tags("1.2.3.3", 3.0, contrast="IOHEXOL")
    make_series(folder, [0, 3, 6, 9], edit=cta, names=["c1", "c2", "c3", "c4"])
    with caplog.at_level(logging.INFO, logger="cac_lightning.io.dicom"):
        vol = read_dicom_series(folder)
    assert vol.series_uid == "1.2.3.1"
    assert "reading 1.2.3.1" in caplog.text
    assert read_dicom_series(folder, series_uid="1.2.3.3").series_uid == "1.2.3.3"


def test_gated_series_preferred_over_non_gated(tmp_path, make_series):
    folder = tmp_path / "study"
    make_series(folder, [0, 3, 6], edit=_tags("1.2.3.1", 2.5), names=["a1", "a2", "a3"])

    def ungated(ds, i):
        _tags("1.2.3.2", 3.0, gated=False)(ds, i)
        ds.CardiacSynchronizationTechnique = "NONE"

    make_series(folder, [0, 3, 6], edit=ungated, names=["b1", "b2", "b3"])
    assert read_dicom_series(folder).series_uid == "1.2.3.1"


def test_ambiguous_choice_is_an_error(tmp_path, make_series):
    folder = tmp_path / "study"
    make_series(folder, [0, 3, 6], edit=_tags("1.2.3.1", 3.0), names=["a1", "a2", "a3"])
    make_series(folder, [0, 3, 6], edit=_tags("1.2.3.2", 3.0), names=["b1", "b2", "b3"])
    with pytest.raises(InputError, match=r"holds 2 series; pick one with --series-uid \(2 of"):
        read_dicom_series(folder)


def _legacy_multiframe(single: Path, out: Path) -> Path:
    hd = pytest.importorskip("highdicom")
    with pydicom.config.disable_value_validation():
        sources = [pydicom.dcmread(p) for p in sorted(single.iterdir())]
    mf = hd.legacy.LegacyConvertedEnhancedCTImage(
        sources,
        series_instance_uid=hd.UID(),
        series_number=99,
        sop_instance_uid=hd.UID(),
        instance_number=1,
    )
    out.mkdir()
    mf.save_as(out / "multiframe.dcm")
    return out


def _assert_same_scan(single: Path, multi: Path) -> None:
    from cac_lightning.io.results import scan_report

    a, b = read_dicom_series(single), read_dicom_series(multi)
    assert b.extra["n_files"] == 1 and a.extra["n_files"] == a.geometry.shape[0]
    assert np.array_equal(a.hu, b.hu)
    assert a.geometry == b.geometry
    assert (a.kvp, a.mass_factor) == (b.kvp, b.mass_factor)
    labels = np.zeros(a.hu.shape, np.uint8)
    labels[a.hu >= 130] = 2
    ra, rb = scan_report(a, labels), scan_report(b, labels)
    assert ra["scores"] == rb["scores"]
    assert ra["scores"]["total"]["agatston"] > 0


def test_legacy_converted_multiframe_reads_like_the_single_frame_series(tmp_path):
    from cac_lightning.io import write_dicom_series

    rng = np.random.default_rng(3)
    hu = rng.integers(-1024, 1200, (5, 12, 14)).astype(np.int16)
    geom = Geometry(
        shape=(5, 12, 14),
        pixel_spacing=(0.6, 0.7),
        slice_spacing=3.0,
        origin=(-4.0, 2.0, -30.0),
        slice_thickness=3.0,
    )
    single = write_dicom_series(
        hu, geom, tmp_path / "single", patient_id="SYNTH^A", mass_factor=0.8
    )
    multi = _legacy_multiframe(single, tmp_path / "multi")
    _assert_same_scan(single, multi)
    assert np.array_equal(read_dicom_series(multi).hu, hu)


@pytest.mark.skipif(not COCA_SAMPLE.is_dir(), reason="COCA sample not on this machine")
def test_coca_scan_as_legacy_converted_multiframe(tmp_path):
    single = next(p for p in sorted(COCA_SAMPLE.iterdir()) if p.is_dir())
    multi = _legacy_multiframe(single, tmp_path / "multi")
    _assert_same_scan(single, multi)
