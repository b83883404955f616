"""Read one axial CT series from a DICOM folder into a HU :class:`Volume`.

Headers are read first (``stop_before_pixels``) to group the files by series
and validate the geometry cheaply; only the chosen series' pixels are decoded.
Slices are sorted by their position along the slice normal
``n = row x column`` (from ImageOrientationPatient), so the direction's third
column is ``n``, exactly as ``SimpleITK.ImageSeriesReader`` reports it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.uid import UID, ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from cac_lightning.errors import InputError
from cac_lightning.volume import Geometry, Volume

__all__ = [
    "SeriesInfo",
    "ecg_gating",
    "is_dicom_file",
    "list_series",
    "read_dicom_series",
    "sanitize_id",
]

log = logging.getLogger(__name__)

MIN_SLICES = 3
GAP_FACTOR = 1.5  # a step > 1.5x the median spacing means missing slices
AXIAL_MIN_COS = 0.99  # |normal . z| below this (about 8.1 deg) is not axial
TILT_MAX_DEG = 0.5  # position step vs slice normal: above this is gantry tilt
DUPLICATE_MM = 1e-2
MASS_FACTOR_TAG = (0x0018, 0x9352)  # CalciumScoringMassFactorDevice, FL, VM 3
_TRUNCATED = ("less than expected", "no pixel data", "end of file")  # pydicom messages
_DECODERS = (  # transfer syntax UID prefix -> packages with a pydicom decoder for it
    ("1.2.840.10008.1.2.4.9", "pylibjpeg-openjpeg (or python-gdcm)"),  # JPEG 2000
    ("1.2.840.10008.1.2.4.20", "pylibjpeg-openjpeg (or python-gdcm)"),  # HTJ2K
    ("1.2.840.10008.1.2.4.8", "pylibjpeg-libjpeg (or pyjpegls, python-gdcm)"),  # JPEG-LS
    ("1.2.840.10008.1.2.4.", "pylibjpeg-libjpeg (or python-gdcm)"),  # JPEG
    ("1.2.840.10008.1.2.5", "pylibjpeg-rle"),  # RLE
)


@dataclass(frozen=True)
class SeriesInfo:
    """One series found in a folder (no patient data)."""

    series_uid: str
    modality: str
    n_files: int
    description: str = ""

    def __str__(self) -> str:
        desc = f", {self.description!r}" if self.description else ""
        return f"{self.series_uid} ({self.modality}{desc}, {self.n_files} files)"


@dataclass
class _Header:
    path: Path
    ds: Dataset
    forced: bool  # read without the DICOM preamble/file meta


def sanitize_id(name: str) -> str:
    """A file-name-safe id: characters outside ``[A-Za-z0-9._-]`` become ``_``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "scan"


@contextlib.contextmanager
def quiet_pydicom() -> Iterator[None]:
    """Silence pydicom's value-validation warnings (e.g. on anonymised UIDs).

    Also a decorator: ``@quiet_pydicom()``.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning, module=r"pydicom(\.|$)")
        yield


def _reason(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0].split(" - ")[0] if text else type(err).__name__


@quiet_pydicom()
def _read_header(path: Path) -> _Header | None:
    """The header of ``path`` (pixels not read), or None when it is not DICOM."""
    try:
        return _Header(path, pydicom.dcmread(path, stop_before_pixels=True), False)
    except InvalidDicomError:
        pass  # no preamble: may still be a bare data set, tried below
    except OSError as err:
        raise InputError(f"cannot read {path}: {_reason(err)}") from None
    except Exception as err:  # any parser failure of a file that claims to be DICOM
        raise InputError(f"{path.name}: truncated or corrupt DICOM file ({_reason(err)})") from None
    with path.open("rb") as f:
        head = f.read(2)
    if head not in (b"\x02\x00", b"\x08\x00"):  # a bare data set starts with group 2 or 8
        return None
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
    except Exception:
        return None
    return _Header(path, ds, True) if "SOPClassUID" in ds else None


def is_dicom_file(path: str | os.PathLike) -> bool:
    """True when ``path`` parses as a DICOM file."""
    try:
        return _read_header(Path(path)) is not None
    except InputError:
        return True


def _scan(folder: Path) -> list[_Header]:
    """Headers of the image files in ``folder``; other files are skipped with a warning."""
    if not folder.exists():
        raise InputError(f"{folder} does not exist")
    if not folder.is_dir():
        raise InputError(f"{folder} is not a folder")
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    if not files:
        subs = sorted(p.name for p in folder.iterdir() if p.is_dir())
        where = f"holds only folders ({', '.join(subs[:3])})" if subs else "is empty"
        raise InputError(f"{folder} {where}: give the folder of one CT series' DICOM files")
    images: list[_Header] = []
    skipped: list[str] = []
    for path in files:
        h = _read_header(path)
        if h is None:
            skipped.append(f"{path.name} (not DICOM)")
            continue
        meta_sop = h.ds.file_meta.get("MediaStorageSOPClassUID", "")
        sop = UID(str(h.ds.get("SOPClassUID") or meta_sop))
        if "Rows" in h.ds:
            images.append(h)
        elif not sop or "Image Storage" in sop.name:
            raise InputError(f"{path.name}: truncated DICOM file (header ends before the image)")
        else:
            skipped.append(f"{path.name} ({sop.name or sop})")
    if not images:
        raise InputError(f"no DICOM images in {folder} (found only: {', '.join(skipped[:5])})")
    if skipped:
        log.warning("ignoring %d file(s) in %s: %s", len(skipped), folder, ", ".join(skipped[:5]))
    return images


def _group(headers: list[_Header]) -> dict[str, list[_Header]]:
    groups: dict[str, list[_Header]] = {}
    for h in headers:
        groups.setdefault(str(h.ds.get("SeriesInstanceUID", "")), []).append(h)
    return groups


def _info(uid: str, hs: list[_Header]) -> SeriesInfo:
    ds = hs[0].ds
    desc = str(ds.get("SeriesDescription", "") or "")
    return SeriesInfo(uid or "(none)", str(ds.get("Modality", "") or "?"), len(hs), desc)


@quiet_pydicom()
def list_series(folder: str | os.PathLike) -> list[SeriesInfo]:
    """The image series in ``folder``, largest first."""
    groups = _group(_scan(Path(folder)))
    infos = [_info(uid, hs) for uid, hs in groups.items()]
    return sorted(infos, key=lambda s: (-s.n_files, s.series_uid))


def _vector(h: _Header, keyword: str, n: int) -> np.ndarray:
    value = h.ds.get(keyword)
    try:
        vec = np.array([float(v) for v in value], dtype=np.float64)
    except (TypeError, ValueError):
        vec = np.zeros(0)
    if vec.shape != (n,) or not np.all(np.isfinite(vec)):
        raise InputError(f"{h.path.name}: missing or invalid {keyword}")
    return vec


def _consistent(what: str, values: list) -> None:
    """Raise when the per-file ``values`` (rounded to 1e-4) are not all the same."""
    counts = Counter(tuple(round(v, 4) for v in np.asarray(x).tolist()) for x in values)
    if len(counts) > 1:
        shown = "; ".join(f"{v} in {n} files" for v, n in counts.most_common(4))
        raise InputError(f"inconsistent {what} in the series: {shown}")


def _geometry(hs: list[_Header]) -> tuple[Geometry, list[_Header]]:
    """Validate the slice geometry; return it with the headers in slice order."""
    dims = [(int(h.ds.Rows), int(h.ds.get("Columns", 0))) for h in hs]
    _consistent("Rows x Columns", dims)
    spacings = [_vector(h, "PixelSpacing", 2) for h in hs]
    _consistent("PixelSpacing (mm)", spacings)
    iops = [_vector(h, "ImageOrientationPatient", 6) for h in hs]
    _consistent("ImageOrientationPatient", iops)
    row, col = iops[0][:3], iops[0][3:]
    row, col = row / np.linalg.norm(row), col / np.linalg.norm(col)
    if abs(row @ col) > 1e-3:
        raise InputError(f"{hs[0].path.name}: ImageOrientationPatient is not orthogonal")
    normal = np.cross(row, col)
    if abs(normal[2]) < AXIAL_MIN_COS:
        angle = np.degrees(np.arccos(min(1.0, abs(normal[2]))))
        raise InputError(
            f"not an axial series: the slice normal is {angle:.1f} deg from the patient z axis "
            f"(at most {np.degrees(np.arccos(AXIAL_MIN_COS)):.1f} deg is accepted)"
        )
    pos = np.stack([_vector(h, "ImagePositionPatient", 3) for h in hs])
    order = np.argsort(pos @ normal, kind="stable")
    pos, hs = pos[order], [hs[i] for i in order]
    s = pos @ normal
    steps = np.diff(s)
    dup = np.flatnonzero(steps < DUPLICATE_MM)
    if dup.size:
        i = dup[0]
        raise InputError(
            f"duplicate slice position {s[i]:.2f} mm: {hs[i].path.name} and {hs[i + 1].path.name}"
        )
    travel = pos[-1] - pos[0]
    tilt = np.degrees(np.arccos(min(1.0, abs(travel @ normal) / np.linalg.norm(travel))))
    if tilt > TILT_MAX_DEG:
        raise InputError(
            f"tilted series (gantry tilt): slice positions move {tilt:.1f} deg off the slice "
            "normal; resample it to an orthogonal grid first"
        )
    step = float(np.median(steps))
    gaps = np.flatnonzero(steps > GAP_FACTOR * step)
    if gaps.size:
        i = gaps[0]
        raise InputError(
            f"missing slices: a gap of {steps[i]:.2f} mm after the slice at {s[i]:.2f} mm "
            f"(slice spacing {step:.2f} mm, about {round(steps[i] / step) - 1} slice(s) missing)"
        )
    if np.max(np.abs(steps - step)) > 0.05 * step:
        log.warning("uneven slice spacing: steps from %.3f to %.3f mm", steps.min(), steps.max())
    thickness = hs[0].ds.get("SliceThickness")
    geom = Geometry(
        shape=(len(hs), *dims[0]),
        pixel_spacing=(float(spacings[0][0]), float(spacings[0][1])),
        slice_spacing=step,
        origin=tuple(float(v) for v in pos[0]),
        direction=tuple(float(v) for v in np.stack([row, col, normal], axis=1).ravel()),
        slice_thickness=float(thickness) if thickness not in (None, "") else None,
    )
    return geom, hs


def _install_hint(uid: UID) -> str:
    return next((pkg for prefix, pkg in _DECODERS if uid.startswith(prefix)), "python-gdcm")


def _check_decoders(hs: list[_Header]) -> None:
    """Fail early, naming the package to install, when pixels cannot be decoded."""
    from pydicom.pixels import get_decoder

    syntaxes = Counter(UID(str(getattr(h.ds.file_meta, "TransferSyntaxUID", ""))) for h in hs)
    for uid, n in syntaxes.items():
        if not uid or not uid.is_compressed:
            continue
        try:
            available = get_decoder(uid).is_available
        except NotImplementedError:
            raise InputError(f"{n} file(s) use an unsupported transfer syntax {uid}") from None
        if not available:
            raise InputError(
                f"{n} file(s) are compressed as {uid.name} and no installed decoder handles "
                f"it: install {_install_hint(uid)}"
            )


def _to_hu(px: np.ndarray, slope: float, intercept: float) -> np.ndarray:
    """Stored values (y, x) -> int16 HU, rounded and clipped to the int16 range."""
    if slope == 1.0 and float(intercept).is_integer():
        hu = px.astype(np.int32) + int(intercept)
    else:
        hu = np.rint(px.astype(np.float64) * slope + intercept)
    return np.clip(hu, -32768, 32767).astype(np.int16)


def _set_syntax(ds: Dataset) -> None:
    """Give a data set read without file meta the transfer syntax it was read with."""
    if "TransferSyntaxUID" not in ds.file_meta:
        implicit, little = ds.original_encoding
        syntax = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
        ds.file_meta.TransferSyntaxUID = syntax if little else ExplicitVRBigEndian


@quiet_pydicom()
def _decode(hs: list[_Header], shape: tuple[int, int, int]) -> np.ndarray:
    _check_decoders(hs)
    hu = np.empty(shape, dtype=np.int16)
    for i, h in enumerate(hs):
        try:
            ds = pydicom.dcmread(h.path, force=h.forced)
            if h.forced:
                _set_syntax(ds)
            px = ds.pixel_array
        except Exception as err:
            reason = _reason(err)
            if isinstance(err, EOFError) or any(t in reason.lower() for t in _TRUNCATED):
                reason = f"truncated DICOM file: {reason}"
            raise InputError(f"{h.path.name}: cannot decode the pixel data ({reason})") from None
        if px.shape != shape[1:]:
            raise InputError(f"{h.path.name}: pixel array {px.shape} is not {shape[1:]}")
        slope = float(ds.get("RescaleSlope", 1.0) or 1.0)
        intercept = float(ds.get("RescaleIntercept", 0.0) or 0.0)
        hu[i] = _to_hu(px, slope, intercept)
    return hu


def ecg_gating(ds) -> bool | None:
    """Whether a CT header says the scan was ECG-gated: True when it carries a trigger time,
    a cardiac phase or a synchronisation technique other than NONE; False when that technique
    is NONE; None (unknown) when none of these tags is present (common after anonymisation)."""
    technique = str(ds.get("CardiacSynchronizationTechnique", "") or "").strip().upper()
    if technique == "NONE":
        return False
    if technique or any(
        ds.get(kw) not in (None, "") for kw in ("TriggerTime", "NominalPercentageOfCardiacPhase")
    ):
        return True
    return None


def _first_float(value: object) -> float | None:
    """A number from a (possibly multi-valued) element value; None when absent."""
    if isinstance(value, (MultiValue, list, tuple)):
        value = value[0] if len(value) else None
    try:
        return None if value in (None, "") else float(value)
    except (TypeError, ValueError):
        return None


def _choose(folder: Path, groups: dict[str, list[_Header]], uid: str | None) -> list[_Header]:
    listing = "; ".join(str(_info(u, hs)) for u, hs in groups.items())
    if uid is None:
        if len(groups) > 1:
            raise InputError(
                f"{folder} holds {len(groups)} series; pick one with --series-uid: {listing}"
            )
        return next(iter(groups.values()))
    if uid not in groups:
        raise InputError(f"series {uid} is not in {folder}; it holds: {listing}")
    return groups[uid]


@quiet_pydicom()
def read_dicom_series(folder: str | os.PathLike, series_uid: str | None = None) -> Volume:
    """Read one axial CT series from ``folder`` (file names and order do not matter).

    Args:
        folder: folder holding the series' files (not nested).
        series_uid: the SeriesInstanceUID to read when the folder holds several.

    Returns:
        A :class:`Volume` with ``hu`` int16 (z, y, x), slices ascending along the
        slice normal, HU = stored * RescaleSlope + RescaleIntercept clipped to int16.

    Raises:
        InputError: the folder does not hold one readable, complete axial CT series.
    """
    folder = Path(folder)
    hs = _choose(folder, _group(_scan(folder)), series_uid)
    ds0 = hs[0].ds
    modality = str(ds0.get("Modality", "") or "unknown")
    if modality != "CT":
        uid = ds0.get("SeriesInstanceUID", "")
        raise InputError(f"series {uid} in {folder} is {modality}, not CT")
    if len(hs) < MIN_SLICES:
        raise InputError(f"the series in {folder} has {len(hs)} slice(s); need >= {MIN_SLICES}")
    for h in hs:
        if int(h.ds.get("NumberOfFrames", 1) or 1) > 1 or int(h.ds.get("SamplesPerPixel", 1)) != 1:
            raise InputError(f"{h.path.name}: multi-frame or colour images are not supported")
    geometry, hs = _geometry(hs)
    hu = _decode(hs, geometry.shape)
    mass = ds0.get(MASS_FACTOR_TAG)
    return Volume(
        hu=hu,
        geometry=geometry,
        kvp=_first_float(ds0.get("KVP")),
        mass_factor=_first_float(mass.value) if mass is not None else None,
        study_uid=str(ds0.get("StudyInstanceUID", "")) or None,
        series_uid=str(ds0.get("SeriesInstanceUID", "")) or None,
        scan_id=sanitize_id(folder.resolve().name),
        source=str(folder),
        extra={
            "n_files": len(hs),
            "files": [str(h.path) for h in hs],
            "manufacturer": str(ds0.get("Manufacturer", "") or ""),
            "ecg_gated": ecg_gating(ds0),
        },
    )
