"""Read one axial CT series from a DICOM folder into a HU :class:`Volume`.

Headers are read first (``stop_before_pixels``) to group the files by series
and validate the geometry cheaply; only the chosen series' pixels are decoded.
Slices are sorted by their position along the slice normal
``n = row x column`` (from ImageOrientationPatient), so the direction's third
column is ``n``, exactly as ``SimpleITK.ImageSeriesReader`` reports it.
"""

from __future__ import annotations

import contextlib
import dataclasses
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
    frame: int | None = None  # the frame of a multi-frame file this header stands for

    @property
    def name(self) -> str:
        """The file name, with the frame number for a frame of a multi-frame file."""
        return self.path.name if self.frame is None else f"{self.path.name} frame {self.frame + 1}"


def sanitize_id(name: str) -> str:
    """A file-name-safe id: characters outside ``[A-Za-z0-9._-]`` become ``_``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "scan"


@contextlib.contextmanager
def quiet_pydicom() -> Iterator[None]:
    """Silence pydicom's value-validation warnings and their log lines (e.g. on anonymised UIDs).

    Also a decorator: ``@quiet_pydicom()``.
    """
    logger = logging.getLogger("pydicom")  # pydicom also logs each warning
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=UserWarning, module=r"pydicom(\.|$)")
            yield
    finally:
        logger.setLevel(level)


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
        raise InputError(f"{h.name}: missing or invalid {keyword}")
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
            f"duplicate slice position {s[i]:.2f} mm: {hs[i].name} and {hs[i + 1].name}"
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


def _read_pixels(h: _Header) -> np.ndarray:
    """All stored pixel values of ``h``'s file: (rows, cols), or (frames, rows, cols)."""
    try:
        ds = pydicom.dcmread(h.path, force=h.forced)
        if h.forced:
            _set_syntax(ds)
        return ds.pixel_array
    except Exception as err:
        reason = _reason(err)
        if isinstance(err, EOFError) or any(t in reason.lower() for t in _TRUNCATED):
            reason = f"truncated DICOM file: {reason}"
        raise InputError(f"{h.path.name}: cannot decode the pixel data ({reason})") from None


@quiet_pydicom()
def _decode(hs: list[_Header], shape: tuple[int, int, int]) -> np.ndarray:
    """HU (z, y, x) of ``hs`` in their order; a multi-frame file is decoded once.

    Rescale slope and intercept come from each header (a frame's header carries its own,
    from the functional groups).
    """
    _check_decoders(hs)
    hu = np.empty(shape, dtype=np.int16)
    cache: dict[Path, np.ndarray] = {}
    for i, h in enumerate(hs):
        if h.frame is None:
            px = _read_pixels(h)
        else:
            if h.path not in cache:
                cache[h.path] = _read_pixels(h)  # a file's frames are decoded together
            all_px = cache[h.path]
            if all_px.ndim == 2:
                all_px = all_px[None]
            if h.frame >= all_px.shape[0]:
                raise InputError(f"{h.path.name}: holds {all_px.shape[0]} frames, not more")
            px = all_px[h.frame]
        if px.shape != shape[1:]:
            raise InputError(f"{h.name}: pixel array {px.shape} is not {shape[1:]}")
        slope = float(h.ds.get("RescaleSlope", 1.0) or 1.0)
        intercept = float(h.ds.get("RescaleIntercept", 0.0) or 0.0)
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


_FG_SHARED = "SharedFunctionalGroupsSequence"
_FG_PER_FRAME = "PerFrameFunctionalGroupsSequence"
_FRAME_TAGS = {  # functional group macro -> the attributes this reader takes from it
    "PlanePositionSequence": ("ImagePositionPatient",),
    "PlaneOrientationSequence": ("ImageOrientationPatient",),
    "PixelMeasuresSequence": ("PixelSpacing", "SliceThickness"),
    "PixelValueTransformationSequence": ("RescaleSlope", "RescaleIntercept"),
}


def _n_frames(ds: Dataset) -> int:
    try:
        return int(ds.get("NumberOfFrames", 1) or 1)
    except (TypeError, ValueError):
        return 1


def _group_items(ds: Dataset, keyword: str) -> list[Dataset]:
    """The items of a functional-group sequence (empty when absent)."""
    seq = ds.get(keyword)
    return list(seq) if seq else []


def _flat(ds: Dataset) -> Dataset:
    """``ds``'s top level plus what the shared functional groups hold one level down.

    A multi-frame (Enhanced or Legacy Converted Enhanced) CT keeps KVP, gating, slice
    thickness, contrast and similar attributes in the shared functional groups (Legacy
    Converted in ``UnassignedSharedConvertedAttributesSequence``); this brings them up so the
    rest of the reader looks them up as for a single-frame file. Top-level values win.
    """
    shared = _group_items(ds, _FG_SHARED)
    if not shared:
        return ds
    flat = Dataset()
    for elem in ds:
        if elem.keyword not in (_FG_SHARED, _FG_PER_FRAME):
            flat.add(elem)
    for macro in shared[0]:
        if macro.VR != "SQ" or not macro.value:
            continue
        for elem in macro.value[0]:
            if elem.tag not in flat:
                flat.add(elem)
    return flat


def _frame_headers(h: _Header) -> list[_Header]:
    """One header per frame of a multi-frame file: position, orientation, spacing, rescale.

    Each frame's values come from its per-frame functional groups, else the shared ones,
    else the top level of the file.
    """
    n = _n_frames(h.ds)
    per_frame = _group_items(h.ds, _FG_PER_FRAME)
    shared = _group_items(h.ds, _FG_SHARED)
    if len(per_frame) != n:
        raise InputError(
            f"{h.path.name}: {n} frames but {len(per_frame)} per-frame functional groups"
        )
    frames = []
    for i, item in enumerate(per_frame):
        ds = Dataset()
        ds.file_meta = h.ds.get("file_meta", None) or pydicom.dataset.FileMetaDataset()
        ds.Rows, ds.Columns = h.ds.Rows, h.ds.get("Columns", 0)
        for macro, keywords in _FRAME_TAGS.items():
            sources = [g[macro][0] for g in (item, *shared[:1]) if g.get(macro)]
            for kw in keywords:
                value = next((src.get(kw) for src in sources if kw in src), h.ds.get(kw))
                if value is not None:
                    setattr(ds, kw, value)
        frames.append(_Header(h.path, ds, h.forced, frame=i))
    return frames


def _is_localizer(h: _Header) -> bool:
    image_type = h.ds.get("ImageType") or []
    if isinstance(image_type, str):
        image_type = image_type.split("\\")
    return any(str(v).strip().upper() == "LOCALIZER" for v in image_type)


def _is_axial(h: _Header) -> bool:
    try:
        iop = np.array([float(v) for v in h.ds.ImageOrientationPatient], dtype=np.float64)
        normal = np.cross(iop[:3], iop[3:])
        return abs(normal[2]) / np.linalg.norm(normal) >= AXIAL_MIN_COS
    except (AttributeError, TypeError, ValueError):
        return True  # no orientation: let the geometry checks say what is wrong


def _drop_localizers(folder: Path, groups: dict[str, list[_Header]]) -> dict[str, list[_Header]]:
    """Remove localizer/scout images: ImageType LOCALIZER, or a lone non-axial image.

    A series that holds a single single-frame non-axial image is dropped, and so is a single
    non-axial image among a series' axial ones; a whole non-axial series stays (and is
    refused by the geometry checks with its reason).
    """
    kept: dict[str, list[_Header]] = {}
    dropped: list[str] = []
    n_series = len(groups)
    for uid, hs in groups.items():
        keep = [h for h in hs if not _is_localizer(h)]
        single = [h for h in keep if _n_frames(h.ds) == 1]
        off_axis = [h for h in single if not _is_axial(h)]
        if len(off_axis) == 1 and (len(keep) > 1 or n_series > 1):
            keep.remove(off_axis[0])
        dropped += [h.path.name for h in hs if h not in keep]
        if keep:
            kept[uid] = keep
    if dropped:
        log.warning(
            "skipping %d localizer/scout image(s) in %s: %s",
            len(dropped),
            folder,
            ", ".join(dropped[:5]),
        )
    if not kept:
        raise InputError(f"{folder} holds only localizer/scout images, no CT series to score")
    return kept


CAC_THICKNESS_MM = (2.5, 3.0)
"""Slice thickness (mm, inclusive) of a calcium-scoring reconstruction."""


def _scoring_traits(hs: list[_Header]) -> dict[str, bool | None]:
    """Tags of a series that say whether it is a calcium-scoring scan (None: unknown)."""
    ds = _flat(hs[0].ds)
    thickness = _first_float(ds.get("SliceThickness"))
    contrast = ds.get("ContrastBolusAgent")
    n_slices = sum(_n_frames(h.ds) for h in hs)
    return {
        "ct": str(ds.get("Modality", "") or "") == "CT",
        "slices": n_slices >= MIN_SLICES,
        "thickness": None
        if thickness is None
        else CAC_THICKNESS_MM[0] <= thickness <= CAC_THICKNESS_MM[1],
        "non_contrast": not str(contrast or "").strip(),
        "gated": ecg_gating(ds),
    }


def _choose(folder: Path, groups: dict[str, list[_Header]], uid: str | None) -> list[_Header]:
    """The series to read: ``uid``, the only one, or the one calcium-scoring series by its tags.

    Several series: a candidate is CT, has >= 3 slices, no ContrastBolusAgent, a
    SliceThickness within :data:`CAC_THICKNESS_MM` and is not marked non-gated; among several
    candidates the ECG-gated ones are preferred. One left is read (its UID logged), else an
    error lists the series and asks for ``--series-uid``.
    """
    listing = "; ".join(str(_info(u, hs)) for u, hs in groups.items())
    if uid is not None:
        if uid not in groups:
            raise InputError(f"series {uid} is not in {folder}; it holds: {listing}")
        return groups[uid]
    if len(groups) == 1:
        return next(iter(groups.values()))
    traits = {u: _scoring_traits(hs) for u, hs in groups.items()}
    candidates = [
        u
        for u, t in traits.items()
        if t["ct"]
        and t["slices"]
        and t["non_contrast"]
        and t["thickness"]
        and t["gated"] is not False
    ]
    gated = [u for u in candidates if traits[u]["gated"]]
    if len(gated) >= 1:
        candidates = gated
    if len(candidates) == 1:
        chosen = candidates[0]
        log.info(
            "%s holds %d series; reading %s, the one gated non-contrast %g-%g mm series "
            "(pick another with --series-uid)",
            folder,
            len(groups),
            chosen,
            *CAC_THICKNESS_MM,
        )
        return groups[chosen]
    why = (
        f"{len(candidates)} of them look like a calcium-scoring series"
        if candidates
        else "none looks like a calcium-scoring series (gated, non-contrast, "
        f"{CAC_THICKNESS_MM[0]:g}-{CAC_THICKNESS_MM[1]:g} mm)"
    )
    raise InputError(
        f"{folder} holds {len(groups)} series; pick one with --series-uid ({why}): {listing}"
    )


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
    groups = _drop_localizers(folder, _group(_scan(folder)))
    hs = _choose(folder, groups, series_uid)
    ds0 = _flat(hs[0].ds)
    modality = str(ds0.get("Modality", "") or "unknown")
    if modality != "CT":
        uid = ds0.get("SeriesInstanceUID", "")
        raise InputError(f"series {uid} in {folder} is {modality}, not CT")
    for h in hs:
        if int(h.ds.get("SamplesPerPixel", 1)) != 1:
            raise InputError(f"{h.path.name}: colour images are not supported")
    n_files = len(hs)
    hs = [f for h in hs for f in (_frame_headers(h) if _n_frames(h.ds) > 1 else [h])]
    if len(hs) < MIN_SLICES:
        raise InputError(f"the series in {folder} has {len(hs)} slice(s); need >= {MIN_SLICES}")
    geometry, hs = _geometry(hs)
    if geometry.slice_thickness is None:
        thickness = _first_float(ds0.get("SliceThickness"))
        if thickness is not None:
            geometry = dataclasses.replace(geometry, slice_thickness=thickness)
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
            "n_files": n_files,
            "files": list(dict.fromkeys(str(h.path) for h in hs)),
            "manufacturer": str(ds0.get("Manufacturer", "") or ""),
            "ecg_gated": ecg_gating(ds0),
            # patient data for the MESA references only: never logged, never in a report
            "patient_age": str(ds0.get("PatientAge", "") or "") or None,
            "patient_sex": str(ds0.get("PatientSex", "") or "") or None,
        },
    )
