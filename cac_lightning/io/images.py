"""Volumes and label maps in NIfTI / MHA / MHD / NRRD files (through SimpleITK).

Every grid is brought to one convention: arrays (z, y, x) and a right-handed
direction whose third column is ``row x column``. A left-handed file (common
in NIfTI) is flipped along z on reading, for volumes and label maps alike,
so a label map lines up with its volume however each was stored.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from cac_lightning.errors import InputError
from cac_lightning.io.atomic import atomic_path
from cac_lightning.io.dicom import AXIAL_MIN_COS, is_dicom_file, read_dicom_series, sanitize_id
from cac_lightning.vessels import NUM_CLASSES
from cac_lightning.volume import Geometry, Volume

__all__ = [
    "IMAGE_SUFFIXES",
    "LABEL_SUFFIXES",
    "MAX_VOXELS",
    "read_image_volume",
    "read_label_map",
    "read_volume",
    "write_image",
    "write_label_map",
]

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".nii.gz", ".nii", ".mha", ".mhd", ".nrrd", ".nhdr")
LABEL_SUFFIXES = (".nii.gz", ".nii", ".mha", ".nrrd")  # single-file formats, written atomically
SPACING_TOL_MM = 1e-3
ORIGIN_TOL_MM = 1e-2
DIRECTION_TOL = 1e-4
# Largest grid read (512 x 512 x 2048 voxels, 1 GiB as int16): headers claiming more are refused
# before decompression.
MAX_VOXELS = 512 * 512 * 2048


def _suffix(path: Path, allowed: tuple[str, ...]) -> str | None:
    name = path.name.lower()
    return next((s for s in allowed if name.endswith(s)), None)


def _stem(path: Path) -> str:
    suffix = _suffix(path, IMAGE_SUFFIXES)
    return path.name[: -len(suffix)] if suffix else path.stem


def _header(path: Path, what: str):
    """A SimpleITK reader of ``path`` with only its header read, checked before any pixel.

    Raises:
        InputError: unreadable header, not a 3-D single-channel image, or more voxels
            than :data:`MAX_VOXELS` (a tiny compressed file may claim a huge grid).
    """
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as err:
        lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
        raise InputError(f"cannot read {what} {path}: {lines[-1] if lines else err}") from None
    dim, comps = reader.GetDimension(), reader.GetNumberOfComponents()
    if dim != 3 or comps != 1:
        raise InputError(
            f"{what} {path} must be a 3-D single-channel image, got {dim}-D "
            f"with {comps} component(s)"
        )
    size = reader.GetSize()
    n = int(np.prod(size, dtype=np.int64))
    if n > MAX_VOXELS or min(size) < 1:
        raise InputError(
            f"{what} {path}: its header claims {' x '.join(map(str, size))} = {n} voxels; "
            f"a CT volume here has 1..{MAX_VOXELS}"
        )
    return reader


def _read(reader, path: Path, what: str):
    """The image of a header-checked reader (pixels decompressed here)."""
    try:
        return reader.Execute()
    except RuntimeError as err:
        lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
        raise InputError(f"cannot read {what} {path}: {lines[-1] if lines else err}") from None


def _grid(size, spacing, origin, direction) -> tuple[Geometry, bool]:
    """Canonical (right-handed) geometry of a SimpleITK grid and whether z must be flipped."""
    d = np.asarray(direction, dtype=np.float64).reshape(3, 3) + 0.0  # no -0 in messages
    origin = np.asarray(origin, dtype=np.float64)
    sx, sy, sz = spacing
    nx, ny, nz = (int(v) for v in size)
    flip = bool(np.linalg.det(d) < 0)
    if flip:  # left-handed: flip z so the slice axis is row x column
        origin = origin + d[:, 2] * sz * (nz - 1)
        d[:, 2] = -d[:, 2]
    geom = Geometry(
        shape=(nz, ny, nx),
        pixel_spacing=(float(sy), float(sx)),
        slice_spacing=float(sz),
        origin=tuple(float(v) for v in origin),
        direction=tuple(float(v) for v in d.ravel()),
    )
    return geom, flip


def _header_grid(reader) -> Geometry:
    return _grid(reader.GetSize(), reader.GetSpacing(), reader.GetOrigin(), reader.GetDirection())[
        0
    ]


def _canonical(img) -> tuple[np.ndarray, Geometry]:
    """Array (z, y, x) and geometry of a SimpleITK image, made right-handed."""
    import SimpleITK as sitk

    arr = sitk.GetArrayFromImage(img)
    geom, flip = _grid(img.GetSize(), img.GetSpacing(), img.GetOrigin(), img.GetDirection())
    if flip:
        arr = np.ascontiguousarray(arr[::-1])
    return arr, geom


def read_image_volume(path: str | os.PathLike) -> Volume:
    """Read a NIfTI/MHA/MHD/NRRD CT volume; values are rounded and cast to int16 HU."""
    path = Path(path)
    arr, geom = _canonical(_read(_header(path, "volume"), path, "volume"))
    normal_z = abs(geom.direction[8])
    if normal_z < AXIAL_MIN_COS:
        angle = np.degrees(np.arccos(min(1.0, normal_z)))
        raise InputError(f"{path}: not axial (slice axis {angle:.1f} deg from the patient z axis)")
    if np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)):
            raise InputError(f"{path}: volume holds NaN or infinite values")
        arr = np.rint(arr)
    info = np.iinfo(np.int16)
    clipped = int(np.count_nonzero((arr < info.min) | (arr > info.max)))
    if clipped:
        log.warning("%s: %d voxel(s) outside the int16 range were clipped", path.name, clipped)
    hu = np.clip(arr, info.min, info.max).astype(np.int16)
    return Volume(hu=hu, geometry=geom, scan_id=sanitize_id(_stem(path)), source=str(path))


def read_volume(path: str | os.PathLike, series_uid: str | None = None) -> Volume:
    """Read a CT volume from a DICOM folder or a NIfTI/MHA/MHD/NRRD file.

    Args:
        path: a folder holding one DICOM series, or an image file.
        series_uid: which series to read when a DICOM folder holds several.

    Returns:
        The :class:`Volume`: ``hu`` int16 (z, y, x), slices ascending along the
        slice normal; ``scan_id`` is the folder or file name, sanitised.

    Raises:
        InputError: the path is missing, unsupported or not a readable CT volume.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path} does not exist")
    if path.is_dir():
        return read_dicom_series(path, series_uid=series_uid)
    if _suffix(path, IMAGE_SUFFIXES) is None:
        if is_dicom_file(path):
            raise InputError(f"{path} is a single DICOM file: give the folder holding its series")
        raise InputError(
            f"{path}: unsupported input; give a DICOM folder or a {'/'.join(IMAGE_SUFFIXES)} file"
        )
    if series_uid is not None:
        raise InputError("a series UID applies to DICOM folders only")
    return read_image_volume(path)


def _check_grid(found: Geometry, expected: Geometry, path: Path) -> None:
    """Raise naming the first property of the label grid that differs from the image's."""
    checks = [
        ("shape (z, y, x)", found.shape, expected.shape, 0.0),
        ("spacing (z, y, x) mm", found.spacing_zyx, expected.spacing_zyx, SPACING_TOL_MM),
        ("origin (x, y, z) mm", found.origin, expected.origin, ORIGIN_TOL_MM),
        ("direction", found.direction, expected.direction, DIRECTION_TOL),
    ]
    for name, a, b, tol in checks:
        if np.shape(a) != np.shape(b) or not np.allclose(a, b, rtol=0.0, atol=tol):
            fmt = ", ".join
            raise InputError(
                f"label map {path} does not match the image grid: {name} "
                f"({fmt(f'{v:.6g}' for v in a)}) vs image ({fmt(f'{v:.6g}' for v in b)})"
            )


def _as_labels(arr: np.ndarray, where: str) -> np.ndarray:
    """Integer labels 0..4 as uint8, or InputError."""
    if arr.dtype == bool:
        return arr.astype(np.uint8)
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise InputError(f"{where}: labels must be numbers, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.floating) and not np.array_equal(arr, np.rint(arr)):
        raise InputError(f"{where}: labels must be whole numbers 0..{NUM_CLASSES - 1}")
    if arr.size and (arr.min() < 0 or arr.max() > NUM_CLASSES - 1):
        bad = np.unique(arr[(arr < 0) | (arr > NUM_CLASSES - 1)])[:5]
        raise InputError(
            f"{where}: label values must be 0..{NUM_CLASSES - 1} "
            f"(0 background, 1 LM, 2 LAD, 3 CX, 4 RCA); found {', '.join(f'{v:g}' for v in bad)}"
        )
    return arr.astype(np.uint8)


def read_label_map(path: str | os.PathLike, geometry: Geometry) -> np.ndarray:
    """Read a label map and check that it lies on ``geometry``'s grid.

    Args:
        path: a NIfTI/MHA/MHD/NRRD label image.
        geometry: the grid of the image it labels.

    Returns:
        uint8 array (z, y, x) with values 0..4 (see :mod:`cac_lightning.vessels`).

    Raises:
        InputError: missing or unreadable file, other grid (the message names the
            property and both values) or values outside 0..4.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"label map {path} does not exist")
    if _suffix(path, IMAGE_SUFFIXES) is None:
        raise InputError(f"label map {path}: expected a {'/'.join(IMAGE_SUFFIXES)} file")
    reader = _header(path, "label map")
    _check_grid(_header_grid(reader), geometry, path)  # before any pixel is decompressed
    arr, found = _canonical(_read(reader, path, "label map"))
    _check_grid(found, geometry, path)
    return _as_labels(arr, f"label map {path}")


def write_label_map(labels: np.ndarray, geometry: Geometry, path: str | os.PathLike) -> Path:
    """Write a label map (z, y, x) on ``geometry``'s grid, atomically.

    The format follows the suffix: ``.nii.gz``, ``.nii``, ``.mha`` or ``.nrrd``
    (compressed where the format allows).

    Returns:
        ``path``.
    """
    path = Path(path)
    if _suffix(path, LABEL_SUFFIXES) is None:
        raise InputError(f"{path}: label maps are written as {'/'.join(LABEL_SUFFIXES)}")
    labels = np.asarray(labels)
    if tuple(labels.shape) != tuple(geometry.shape):
        raise InputError(f"labels shape {labels.shape} does not match grid {geometry.shape}")
    return write_image(_as_labels(labels, "labels"), geometry, path)


def write_image(array: np.ndarray, geometry: Geometry, path: str | os.PathLike) -> Path:
    """Write a (z, y, x) array on ``geometry``'s grid, in its own dtype, atomically.

    The format follows the suffix: ``.nii.gz``, ``.nii``, ``.mha`` or ``.nrrd`` (compressed where
    the format allows). A volume written here and read with :func:`read_image_volume` lies on the
    same grid (spacing, origin and direction kept).

    Args:
        array: (z, y, x) numbers, e.g. int16 HU or a uint8 mask.
        geometry: the grid the array lies on.
        path: the file to write.

    Returns:
        ``path``.

    Raises:
        InputError: an unsupported suffix or an array whose shape is not the grid's.
    """
    import SimpleITK as sitk

    path = Path(path)
    if _suffix(path, LABEL_SUFFIXES) is None:
        raise InputError(f"{path}: images are written as {'/'.join(LABEL_SUFFIXES)}")
    array = np.ascontiguousarray(array)
    if tuple(array.shape) != tuple(geometry.shape):
        raise InputError(f"array shape {array.shape} does not match grid {geometry.shape}")
    img = sitk.GetImageFromArray(array)
    img.SetSpacing(geometry.spacing_xyz)
    img.SetOrigin(tuple(geometry.origin))
    img.SetDirection(tuple(geometry.direction))
    with atomic_path(path) as tmp:
        sitk.WriteImage(img, str(tmp), useCompression=True)
    return path
