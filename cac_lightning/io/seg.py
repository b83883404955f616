"""DICOM Segmentation (SEG) objects of predicted calcium, one segment per vessel, and the
heart region the calcium was looked for in (a fifth segment, when given).

What a SEG carries from its source series (it must reference that series to be usable):

* always: StudyInstanceUID, the source SeriesInstanceUID and SOPInstanceUIDs (in the
  Referenced Series Sequence), FrameOfReferenceUID, and the image geometry;
* by default also the patient/study attributes a viewer needs to file it with the scan:
  PatientName, PatientID, PatientBirthDate, PatientSex, StudyDate, StudyTime, StudyID,
  AccessionNumber, ReferringPhysicianName (:data:`COPIED_KEYWORDS`). Nothing else of the
  source's Patient and Study modules is copied.
* ``deidentify=True`` (``cac-score --seg-deidentified``): those nine are left empty and the
  SEG says ``PatientIdentityRemoved = YES``; only the UIDs above remain.

Values are validated first: a missing UID, one over 64 characters or one with characters
other than digits and dots is refused with one line, since the SEG could not reference its
source. A UID of digits and dots that is still not a valid DICOM UID (a root other than 0, 1
or 2, or a component with a leading zero, as some anonymisers write: the public COCA scans'
UIDs look like ``6.2689...`` and ``2.0724...``) would make the object unreadable to strict
readers (dcmtk's ``dsrdump`` refuses such an SR); it is replaced by a valid UID derived from
it (:func:`derived_uid`: ``2.25.<hash>``, the same for the same source UID, so the SEG and
the SR still agree), with one warning saying the object will not link to those files in a
PACS. A text
value longer
than its DICOM value representation allows is truncated, and a malformed date or time is
left empty, each with a warning naming the attribute (never the value).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
import warnings
from pathlib import Path

import numpy as np

from cac_lightning.errors import InputError
from cac_lightning.io.atomic import atomic_path
from cac_lightning.vessels import VESSELS
from cac_lightning.volume import Volume

__all__ = [
    "COPIED_KEYWORDS",
    "HEART_SEGMENT",
    "UID_KEYWORDS",
    "check_uid",
    "derived_uid",
    "mark_deidentified",
    "quietly",
    "read_sources",
    "write_seg",
]

HEART_SEGMENT = "Heart region"
"""Label of the SEG segment holding the heart region (segment number 5)."""

log = logging.getLogger(__name__)

# Patient/study attributes the SEG copies (type 2: present, possibly empty), with their
# value representation's maximum length.
COPIED_KEYWORDS = {
    "PatientName": ("PN", 64),
    "PatientID": ("LO", 64),
    "PatientBirthDate": ("DA", 8),
    "PatientSex": ("CS", 16),
    "StudyDate": ("DA", 8),
    "StudyTime": ("TM", 14),
    "StudyID": ("SH", 16),
    "AccessionNumber": ("SH", 16),
    "ReferringPhysicianName": ("PN", 64),
}
UID_KEYWORDS = (
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "SOPInstanceUID",
    "SOPClassUID",
    "FrameOfReferenceUID",
)
# Image attributes the SEG needs from each source (geometry and pixel description).
IMAGE_KEYWORDS = (
    "SpecificCharacterSet",
    "Modality",
    "Rows",
    "Columns",
    "PixelSpacing",
    "ImagePositionPatient",
    "ImageOrientationPatient",
    "SliceThickness",
    "SpacingBetweenSlices",
    "PositionReferenceIndicator",
    "InstanceNumber",
    "SamplesPerPixel",
    "PhotometricInterpretation",
    "BitsAllocated",
    "BitsStored",
    "HighBit",
    "PixelRepresentation",
)
UID_RE = re.compile(r"([01]\.([0-9]|[1-3][0-9])|2\.(0|[1-9][0-9]*))(\.(0|[1-9][0-9]*))*")
"""A valid DICOM UID (PS3.5 9.1): an ISO OID (root 0 or 1 with a second arc up to 39, or
root 2), no leading zeros."""
DOTTED_DIGITS = re.compile(r"[0-9]+(\.[0-9]+)*")
DA_RE = re.compile(r"\d{8}")
TM_RE = re.compile(r"\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?")
# SNOMED CT anatomic regions of the segments.
VESSEL_CODES = {
    "LM": "LeftMainCoronaryArtery",
    "LAD": "AnteriorDescendingBranchOfLeftCoronaryArtery",
    "CX": "CircumflexCoronaryArtery",
    "RCA": "RightCoronaryArtery",
}


def quietly(func):
    """Decorator: run a DICOM writer with pydicom's per-value warnings silenced (one warning of
    ours per malformed source UID says it instead, see :func:`check_uid`)."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        from cac_lightning.io.dicom import quiet_pydicom

        with quiet_pydicom():
            return func(*args, **kwargs)

    return wrapper


def derived_uid(uid: str) -> str:
    """A valid UID standing for the malformed ``uid``: ``2.25.`` and 128 bits of its SHA-256
    (the UUID-derived root of PS3.5 B.2), the same for the same ``uid``."""
    return "2.25." + str(int.from_bytes(hashlib.sha256(uid.encode()).digest()[:16], "big"))


def check_uid(keyword: str, value: object, where: str, replaced: set[str] | None = None) -> str:
    """The UID to reference for source attribute ``keyword``.

    Valid: ``value`` itself. Digits and dots but malformed (and not the SOP class):
    :func:`derived_uid`, with ``keyword`` added to ``replaced``. Otherwise (missing, over 64
    characters, other characters): :class:`InputError` naming ``keyword``.
    """
    uid = str(value or "").strip()
    if uid and len(uid) <= 64 and UID_RE.fullmatch(uid):
        return uid
    if uid and len(uid) <= 64 and DOTTED_DIGITS.fullmatch(uid) and keyword != "SOPClassUID":
        if replaced is not None:
            replaced.add(keyword)
        return derived_uid(uid)
    why = "missing" if not uid else f"not a valid DICOM UID ({len(uid)} characters)"
    raise InputError(f"{where}: source {keyword} is {why}; cannot write a SEG referencing it")


def _valid_date(text: str) -> bool:
    """YYYYMMDD, a calendar date from 1900 on (earlier: an anonymiser's placeholder such as
    00010101, which strict validators reject)."""
    import datetime

    if not DA_RE.fullmatch(text):
        return False
    try:
        return datetime.date(int(text[:4]), int(text[4:6]), int(text[6:])).year >= 1900
    except ValueError:
        return False


def _clean_text(
    keyword: str, value: object, where: str, warned: set[str], notes: list[str] | None = None
) -> str:
    """A value that fits its VR: too long -> truncated, malformed date/time -> empty (said
    once per keyword in the log and in ``notes``)."""
    vr, max_len = COPIED_KEYWORDS[keyword]
    text = str(value if value is not None else "")
    text = "".join(ch for ch in text if ch.isprintable())
    fixed = text
    if vr == "DA" and text and not _valid_date(text):
        fixed = ""
    elif vr == "TM" and text and not TM_RE.fullmatch(text):
        fixed = ""
    elif vr == "PN":
        fixed = "=".join(group[:max_len] for group in text.split("=")[:3])
    elif len(text) > max_len:
        fixed = text[:max_len]
    if vr in ("LO", "SH", "CS"):
        fixed = fixed.replace("\\", " ").strip()
    if fixed != str(value if value is not None else "") and keyword not in warned:
        warned.add(keyword)
        how = "empty" if not fixed else f"shortened to {len(fixed)} characters"
        log.warning("%s: source %s is not valid %s; written %s", where, keyword, vr, how)
        if notes is not None:
            notes.append(f"source {keyword} is not valid {vr}; written {how} in the SEG/SR")
    return fixed


def _source_copies(sources, where: str, deidentify: bool, notes: list[str] | None = None):
    """Reduced copies of the source datasets: what a derived object may carry, validated;
    the warning about replaced UIDs is logged and appended to ``notes``."""
    from pydicom.dataset import Dataset

    warned: set[str] = set()
    study = {str(ds.get("StudyInstanceUID", "")) for ds in sources}
    if len(study) != 1:
        raise InputError(f"{where}: the series' files belong to {len(study)} studies")
    out = []
    found: list[str] = []
    replaced: set[str] = set()
    for ds in sources:
        new = Dataset()
        new.file_meta = ds.file_meta
        for kw in UID_KEYWORDS:
            setattr(new, kw, check_uid(kw, ds.get(kw), where, replaced))
        for kw in IMAGE_KEYWORDS:
            if kw in ds:
                new[kw] = ds[kw]
        for kw in COPIED_KEYWORDS:
            text = "" if deidentify else _clean_text(kw, ds.get(kw), where, warned, found)
            setattr(new, kw, text)
        out.append(new)
    if replaced:
        note = (
            f"source {', '.join(kw for kw in UID_KEYWORDS if kw in replaced)} not valid DICOM "
            "UIDs (an anonymiser's?); the SEG/SR reference valid UIDs derived from them "
            "(2.25.<hash>), so they will not link to these files in a PACS"
        )
        log.warning("%s: %s", where, note)
        found.append(note)
    if notes is not None:
        notes.extend(n for n in found if n not in notes)
    return out


def read_sources(
    vol: Volume, deidentify: bool, option: str, notes: list[str] | None = None
) -> list:
    """The scan's source headers reduced to what a derived object (SEG, SR) may carry.

    Args:
        vol: a scan read from DICOM (``vol.extra["files"]``: its files in slice order).
        deidentify: leave every patient/study attribute empty (see the module docstring).
        option: the command-line option asking for the object, for the error message.
        notes: a list that receives this step's warnings (replaced UIDs), once each.

    Raises:
        InputError: not a DICOM input, or a missing or over-long source UID.
    """
    import pydicom

    from cac_lightning.io.dicom import quiet_pydicom

    files = vol.extra.get("files")
    if not files:
        raise InputError(f"{vol.scan_id}: {option} needs a DICOM series input")
    with quiet_pydicom():
        sources = [pydicom.dcmread(f, stop_before_pixels=True) for f in files]
        return _source_copies(sources, vol.scan_id, deidentify, notes)


def mark_deidentified(ds) -> None:
    """Say on a derived object that its patient/study attributes were left empty."""
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = "cac-lightning: patient and study attributes left empty"


@quietly
def write_seg(
    path: Path,
    vol: Volume,
    labels: np.ndarray,
    deidentify: bool = False,
    region: np.ndarray | None = None,
    notes: list[str] | None = None,
) -> Path:
    """Write a DICOM Segmentation (one segment per vessel) referencing the source series.

    Args:
        path: the ``.dcm`` file to write (atomically).
        vol: a scan read from DICOM (``vol.extra["files"]``: its files in slice order).
        labels: (z, y, x) uint8 labels on the scan's grid.
        deidentify: leave every patient/study attribute empty (see the module docstring).
        region: (z, y, x) bool heart region, written as segment 5 ("Heart region"; it
            overlaps the calcium segments, so segments are stored as separate binary frames).
        notes: a list that receives the warnings of writing it (replaced UIDs), once each.

    Raises:
        InputError: not a DICOM input, or an invalid source UID.
    """
    import highdicom as hd
    from pydicom.sr.codedict import codes

    from cac_lightning.io.dicom import quiet_pydicom

    sources = read_sources(vol, deidentify, "--seg", notes)
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=i,
            segment_label=f"{v} calcium",
            segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
            segmented_property_type=codes.SCT.CalcifiedAtheromatousPlaque,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=hd.AlgorithmIdentificationSequence(
                name="cac-lightning", version="0.1.0", family=codes.DCM.ArtificialIntelligence
            ),
            anatomic_regions=[getattr(codes.SCT, VESSEL_CODES[v])],
        )
        for i, v in enumerate(VESSELS, start=1)
    ]
    pixels = labels.astype(np.uint8)
    if region is not None:
        descriptions.append(
            hd.seg.SegmentDescription(
                segment_number=len(VESSELS) + 1,
                segment_label=HEART_SEGMENT,
                segmented_property_category=codes.SCT.AnatomicalStructure,
                segmented_property_type=codes.SCT.Heart,
                algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
                algorithm_identification=hd.AlgorithmIdentificationSequence(
                    name="cac-lightning", version="0.1.0", family=codes.DCM.ArtificialIntelligence
                ),
            )
        )
        planes = [pixels == i for i in range(1, len(VESSELS) + 1)] + [np.asarray(region, bool)]
        pixels = np.stack(planes, axis=-1)
    with quiet_pydicom(), warnings.catch_warnings():
        # highdicom's person-name warning would print the patient's name
        warnings.filterwarnings("ignore", message=".*intended person name", category=UserWarning)
        seg = _segmentation(hd, sources, pixels, descriptions)
    if deidentify:
        mark_deidentified(seg)
    with atomic_path(path) as tmp, quiet_pydicom():
        seg.save_as(tmp)
    return path


def _segmentation(hd, sources, pixels: np.ndarray, descriptions):
    return hd.seg.Segmentation(
        source_images=sources,
        pixel_array=pixels,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=hd.UID(),
        series_number=9901,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="cac-lightning",
        manufacturer_model_name="cac-lightning",
        software_versions="0.1.0",
        device_serial_number="0",
        series_description="CAC segmentation (LM, LAD, CX, RCA)",
        omit_empty_frames=False,
    )
