"""Fixtures for the I/O tests: small series built from the real files pydicom ships."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

SeriesMaker = Callable[..., Path]


@pytest.fixture
def make_series(pydicom_test_files: Path) -> SeriesMaker:
    """Factory: copies of a pydicom test file at the given slice positions.

    ``make_series(folder, zs, src="CT_small.dcm", edit=None, names=None)`` writes
    one file per z (mm) with ImagePositionPatient (x0, y0, z), a new
    SOPInstanceUID, InstanceNumber, and ``edit(ds, i)`` applied last.
    """

    def make(
        folder: Path,
        zs: Sequence[float],
        src: str = "CT_small.dcm",
        edit: Callable[[pydicom.Dataset, int], None] | None = None,
        names: Sequence[str] | None = None,
    ) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        series_uid = generate_uid()
        for i, z in enumerate(zs):
            ds = pydicom.dcmread(pydicom_test_files / src)
            x0, y0 = (float(v) for v in ds.ImagePositionPatient[:2])
            ds.ImagePositionPatient = [x0, y0, float(z)]
            ds.SeriesInstanceUID = series_uid
            ds.SOPInstanceUID = generate_uid()
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            ds.InstanceNumber = i + 1
            if edit is not None:
                edit(ds, i)
            name = names[i] if names is not None else f"slice{i:03d}.dcm"
            ds.save_as(folder / name)
        return folder

    return make


@pytest.fixture
def ct_small_pixels(pydicom_test_files: Path) -> np.ndarray:
    """Stored values (128, 128) int16 of CT_small.dcm (RescaleIntercept -1024, slope 1)."""
    return pydicom.dcmread(pydicom_test_files / "CT_small.dcm").pixel_array
