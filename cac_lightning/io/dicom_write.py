"""Write a HU volume as a CT Image Storage DICOM series (one file per slice).

Files use explicit VR little endian, unsigned 16-bit stored values with
RescaleIntercept -1024 and RescaleSlope 1, so :func:`read_dicom_series` gives
back the same int16 array and geometry. Patient fields hold only the given
synthetic id (no birth date, sex or names).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
from pydicom import dcmwrite
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    CTImageStorage,
    ExplicitVRLittleEndian,
    generate_uid,
)
from pydicom.valuerep import DSfloat

from cac_lightning.errors import InputError
from cac_lightning.io.atomic import atomic_dir
from cac_lightning.volume import Geometry

__all__ = ["RESCALE_INTERCEPT", "write_dicom_series"]

log = logging.getLogger(__name__)

RESCALE_INTERCEPT = -1024  # stored = HU + 1024 fits uint16 for HU in [-1024, 64511]
MASS_FACTOR_TAG = 0x00189352  # CalciumScoringMassFactorDevice, FL, VM 3


def _ds(values: np.ndarray | list[float]) -> list[DSfloat]:
    """Decimal strings of at most 16 characters."""
    return [DSfloat(float(v), auto_format=True) for v in values]


def _axes(geometry: Geometry) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    d = np.asarray(geometry.direction, dtype=np.float64).reshape(3, 3)
    row, col, normal = d[:, 0], d[:, 1], d[:, 2]
    if not np.allclose(d.T @ d, np.eye(3), atol=1e-6):
        raise InputError(f"geometry.direction is not orthonormal: {geometry.direction}")
    if not np.allclose(normal, np.cross(row, col), atol=1e-6):
        raise InputError("geometry.direction must be right-handed (slice axis = row x column)")
    return row, col, normal


def _base_dataset(
    geometry: Geometry,
    row: np.ndarray,
    col: np.ndarray,
    *,
    patient_id: str,
    study_uid: str,
    series_uid: str,
    kvp: float,
    mass_factor: float | None,
    description: str,
) -> Dataset:
    """The attributes shared by every slice."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = "CAC_LIGHTNING"
    ds = Dataset()
    ds.file_meta = meta
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID = CTImageStorage
    ds.StudyDate = ""
    ds.StudyTime = ""
    ds.AccessionNumber = ""
    ds.Modality = "CT"
    ds.Manufacturer = "cac-lightning"
    ds.ReferringPhysicianName = ""
    ds.SeriesDescription = description
    ds.PatientName = patient_id
    ds.PatientID = patient_id
    ds.KVP = DSfloat(kvp, auto_format=True)
    ds.SliceThickness = DSfloat(
        geometry.slice_thickness or geometry.slice_spacing, auto_format=True
    )
    ds.SpacingBetweenSlices = DSfloat(geometry.slice_spacing, auto_format=True)
    ds.PatientPosition = "HFS"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.StudyID = ""
    ds.SeriesNumber = 1
    ds.AcquisitionNumber = 1
    ds.ImageOrientationPatient = _ds([*row, *col])
    ds.FrameOfReferenceUID = generate_uid(entropy_srcs=[study_uid, "frame-of-reference"])
    ds.PositionReferenceIndicator = ""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = (int(v) for v in geometry.shape[1:])
    ds.PixelSpacing = _ds(geometry.pixel_spacing)
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.WindowCenter = DSfloat(40)
    ds.WindowWidth = DSfloat(400)
    ds.RescaleIntercept = DSfloat(RESCALE_INTERCEPT)
    ds.RescaleSlope = DSfloat(1)
    ds.RescaleType = "HU"
    if mass_factor is not None:
        ds.add_new(MASS_FACTOR_TAG, "FL", [float(mass_factor)] * 3)
    return ds


def _stored_values(hu: np.ndarray) -> np.ndarray:
    """HU (z, y, x) -> little-endian uint16 stored values, clipping HU below -1024."""
    if not (np.issubdtype(hu.dtype, np.integer) or np.issubdtype(hu.dtype, np.floating)):
        raise InputError(f"hu must be a numeric array, got dtype {hu.dtype}")
    hu = np.rint(hu) if np.issubdtype(hu.dtype, np.floating) else hu
    low = int(np.count_nonzero(hu < RESCALE_INTERCEPT))
    if low:
        log.warning("%d voxel(s) below -1024 HU written as -1024 HU", low)
    high = 65535 + RESCALE_INTERCEPT
    stored = np.clip(hu, RESCALE_INTERCEPT, high).astype(np.int32) - RESCALE_INTERCEPT
    return stored.astype("<u2")


def write_dicom_series(
    hu: np.ndarray,
    geometry: Geometry,
    out_dir: str | os.PathLike,
    *,
    patient_id: str,
    study_uid: str | None = None,
    series_uid: str | None = None,
    kvp: float = 120.0,
    mass_factor: float | None = None,
    description: str = "",
) -> Path:
    """Write ``hu`` as a CT series into the new folder ``out_dir`` (atomically).

    Args:
        hu: HU array (z, y, x); values below -1024 HU are written as -1024.
        geometry: its voxel grid; the direction must be right-handed.
        out_dir: a folder that does not exist yet (or is empty).
        patient_id: a synthetic id, written as PatientID and PatientName.
        study_uid / series_uid: UIDs to use; new random ones when None. The
            frame-of-reference and SOP instance UIDs derive from them, so the
            output is deterministic when both are given.
        kvp: tube voltage (0018,0060). Default 120.
        mass_factor: (0018,9352) CalciumScoringMassFactorDevice, written 3 times.
        description: SeriesDescription.

    Returns:
        ``out_dir``, holding ``IM-0001.dcm`` ... in slice order.
    """
    hu = np.asarray(hu)
    if hu.ndim != 3 or tuple(hu.shape) != tuple(geometry.shape):
        raise InputError(f"hu shape {hu.shape} does not match geometry shape {geometry.shape}")
    out_dir = Path(out_dir)
    if out_dir.exists():
        if not out_dir.is_dir() or any(out_dir.iterdir()):
            raise InputError(f"{out_dir} already exists and is not an empty folder")
        out_dir.rmdir()
    row, col, normal = _axes(geometry)
    stored = _stored_values(hu)
    study_uid = str(study_uid or generate_uid())
    series_uid = str(series_uid or generate_uid())
    ds = _base_dataset(
        geometry, row, col, patient_id=patient_id, study_uid=study_uid, series_uid=series_uid,
        kvp=kvp, mass_factor=mass_factor, description=description,
    )  # fmt: skip
    origin = np.asarray(geometry.origin, dtype=np.float64)
    with atomic_dir(out_dir) as tmp:
        for i in range(hu.shape[0]):
            position = origin + i * geometry.slice_spacing * normal
            uid = generate_uid(entropy_srcs=[series_uid, str(i)])
            ds.SOPInstanceUID = uid
            ds.file_meta.MediaStorageSOPInstanceUID = uid
            ds.InstanceNumber = i + 1
            ds.ImagePositionPatient = _ds(position)
            ds.SliceLocation = DSfloat(float(position @ normal), auto_format=True)
            ds.PixelData = stored[i].tobytes()
            dcmwrite(tmp / f"IM-{i + 1:04d}.dcm", ds, enforce_file_format=True)
    return out_dir
