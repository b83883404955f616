"""Inference outputs beside the scores: overlay PNGs and DICOM Segmentation objects."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from cac_lightning.errors import InputError
from cac_lightning.evaluation.overlay import VESSEL_COLORS, render_overlay
from cac_lightning.evaluation.plots import new_figure, save_png
from cac_lightning.io.atomic import atomic_path
from cac_lightning.io.volume import Volume
from cac_lightning.vessels import VESSELS

__all__ = ["write_overlays", "write_seg"]

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


def _figure(width_px: int, height_px: int):
    return new_figure(width_px / 100, height_px / 100, layout=None)


def _legend(ax, scores: dict | None = None) -> None:
    from matplotlib.patches import Patch

    handles = []
    for v in VESSELS:
        label = v if scores is None else f"{v}: {scores[v]['agatston']:.1f}"
        handles.append(Patch(color=np.asarray(VESSEL_COLORS[v]) / 255, label=label))
    ax.legend(handles=handles, loc="lower right", fontsize=8, framealpha=0.8)


def _save(fig, path: Path) -> None:
    save_png(fig, path, tight=False)


def write_overlays(out_dir: Path, vol: Volume, labels: np.ndarray, report: dict) -> list[Path]:
    """One PNG per calcified slice and a summary PNG (calcium projected over the scan).

    Args:
        out_dir: folder for the PNGs (created).
        vol: the scan.
        labels: (z, y, x) predicted calcium labels.
        report: the scan's report (:func:`cac_lightning.io.results.scan_report`).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    h, w = labels.shape[1:]
    for z in np.flatnonzero((labels > 0).any(axis=(1, 2))):
        fig = _figure(640, 640 * h // w + 40)
        ax = fig.add_axes((0, 0, 1, 0.94))
        ax.imshow(render_overlay(vol.hu[z], labels[z]))
        ax.set_axis_off()
        fig.suptitle(f"{vol.scan_id}  slice {z}", fontsize=10)
        _legend(ax)
        path = out_dir / f"slice_{int(z):03d}.png"
        _save(fig, path)
        written.append(path)
    # Summary: maximum-intensity projection of the scan with all calcium projected on top.
    mip = vol.hu.max(axis=0)
    proj = np.zeros((h, w), np.uint8)
    for value in range(1, len(VESSELS) + 1):
        proj[(labels == value).any(axis=0)] = value
    fig = _figure(720, 720 * h // w + 60)
    ax = fig.add_axes((0, 0, 1, 0.92))
    ax.imshow(render_overlay(mip, proj, window=(-250.0, 1200.0)))
    ax.set_axis_off()
    total = report["scores"]["total"]["agatston"]
    fig.suptitle(
        f"{vol.scan_id}: Agatston {total:.1f} ({report['risk_category']}, {report['cac_drs']})",
        fontsize=11,
    )
    _legend(ax, report["scores"])
    path = out_dir / "summary.png"
    _save(fig, path)
    written.append(path)
    return written


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
