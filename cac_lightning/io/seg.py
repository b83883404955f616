"""DICOM Segmentation (SEG) objects of predicted calcium, one segment per vessel."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from cac_lightning.errors import InputError
from cac_lightning.io.atomic import atomic_path
from cac_lightning.io.volume import Volume
from cac_lightning.vessels import VESSELS

__all__ = ["write_seg"]

log = logging.getLogger(__name__)

TYPE2_KEYWORDS = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "StudyID",
    "AccessionNumber",
    "ReferringPhysicianName",
)
# SNOMED CT anatomic regions of the segments.
VESSEL_CODES = {
    "LM": "LeftMainCoronaryArtery",
    "LAD": "AnteriorDescendingBranchOfLeftCoronaryArtery",
    "CX": "CircumflexCoronaryArtery",
    "RCA": "RightCoronaryArtery",
}


def write_seg(path: Path, vol: Volume, labels: np.ndarray) -> Path:
    """Write a DICOM Segmentation (one segment per vessel) referencing the source series.

    Needs a DICOM input (``vol.extra["files"]``, the series' files in slice order).
    """
    import highdicom as hd
    import pydicom
    from pydicom.sr.codedict import codes

    files = vol.extra.get("files")
    if not files:
        raise InputError(f"{vol.scan_id}: --seg needs a DICOM series input")
    from cac_lightning.io.dicom import quiet_pydicom

    with quiet_pydicom():
        sources = [pydicom.dcmread(f) for f in files]
    for ds in sources:  # type-2 attributes highdicom copies must be present (possibly empty)
        for kw in TYPE2_KEYWORDS:
            if kw not in ds:
                setattr(ds, kw, "")
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
    with quiet_pydicom():
        seg = _segmentation(hd, sources, labels, descriptions)
    with atomic_path(path) as tmp, quiet_pydicom():
        seg.save_as(tmp)
    return path


def _segmentation(hd, sources, labels: np.ndarray, descriptions):
    return hd.seg.Segmentation(
        source_images=sources,
        pixel_array=labels.astype(np.uint8),
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
