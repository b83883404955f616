"""DICOM Structured Report of a scan's calcium scores: a TID 1500 Measurement Report.

One measurement group per vessel (LM, LAD, CX, RCA; the artery is the finding site) and
one for the total (finding site: coronary artery), each holding the Agatston score,
calcium volume (mm³), calcium mass (mg) and lesion count. The total group also holds the
Agatston threshold (HU), the tube voltage (kV, when the scan states it), the CAC-DRS
string (:func:`cac_lightning.scoring.risk.cac_drs_report`) and the risk category. Every
group names the algorithm (``cac-lightning``, its version) with the checkpoint's hash
(:func:`checkpoint_sha256`) among the algorithm parameters.

Codes, checked against the tables pydicom ships (``pydicom.sr.codedict.codes``):

======================  ==========================================================
concept                 code
======================  ==========================================================
procedure reported      SCT 426005005 Cardiac CT for calcium scoring
finding type            SCT 29483008 Calcified atheromatous plaque
finding sites           SCT 3227004 LM, 59438005 LAD, 57396003 CX, 13647002 RCA,
                        41801008 Coronary artery (total)
Agatston score          SCT 450360000 Coronary artery calcium score (CID 6142),
                        method DCM 112055 Agatston scoring method (CID 6140)
volume                  DCM 122660 Calcium Volume, method DCM 112056 (CID 6140)
mass                    DCM 122661 Calcium Mass, method DCM 112057 (CID 6140)
lesion count            SCT 246206008 Number of lesions
threshold               DCM 122657 Agatston Score Threshold
tube voltage            DCM 113733 KVP
CAC-DRS, risk category  no standard code: private scheme ``99CACL`` (:data:`PRIVATE_SCHEME`,
                        declared in the Coding Scheme Identification Sequence)
======================  ==========================================================

References: the source series' images (the report's image library and its evidence)
and, when a SEG of the same run is given, each vessel group references its SEG segment
(TID 1411, volumetric ROI). Patient and study attributes follow :mod:`cac_lightning.io.seg`
(the same nine copied, or none with ``deidentify=True``).
"""

from __future__ import annotations

import functools
import hashlib
import warnings
from collections.abc import Sequence
from pathlib import Path

from cac_lightning import __version__
from cac_lightning.io.atomic import atomic_path
from cac_lightning.io.seg import quietly
from cac_lightning.vessels import VESSELS
from cac_lightning.volume import Volume

__all__ = ["PRIVATE_SCHEME", "SR_CODES", "checkpoint_sha256", "write_sr"]

PRIVATE_SCHEME = "99CACL"
"""Coding scheme designator of cac-lightning's private codes (CAC-DRS, risk category)."""

HASH_CHARS = 16

# (value, scheme, meaning) of every concept the report uses; see the module docstring.
SR_CODES: dict[str, tuple[str, str, str]] = {
    "procedure": ("426005005", "SCT", "Cardiac CT for calcium scoring"),
    "finding_type": ("29483008", "SCT", "Calcified atheromatous plaque"),
    "LM": ("3227004", "SCT", "Left Main Coronary Artery"),
    "LAD": ("59438005", "SCT", "Anterior Descending Branch of Left Coronary Artery"),
    "CX": ("57396003", "SCT", "Circumflex Coronary Artery"),
    "RCA": ("13647002", "SCT", "Right Coronary Artery"),
    "total": ("41801008", "SCT", "Coronary artery"),
    "agatston": ("450360000", "SCT", "Coronary artery calcium score"),
    "agatston_method": ("112055", "DCM", "Agatston scoring method"),
    "volume": ("122660", "DCM", "Calcium Volume"),
    "volume_method": ("112056", "DCM", "Volume scoring method"),
    "mass": ("122661", "DCM", "Calcium Mass"),
    "mass_method": ("112057", "DCM", "Mass scoring method"),
    "lesions": ("246206008", "SCT", "Number of lesions"),
    "threshold": ("122657", "DCM", "Agatston Score Threshold"),
    "kvp": ("113733", "DCM", "KVP"),
    "cac_drs": ("CACDRS", PRIVATE_SCHEME, "CAC-DRS"),
    "risk_category": ("RISKCAT", PRIVATE_SCHEME, "Calcium score risk category"),
}
UNITS = {
    "agatston": ("1", "UCUM", "no units"),
    "volume": ("mm3", "UCUM", "cubic millimeter"),
    "mass": ("mg", "UCUM", "milligram"),
    "lesions": ("1", "UCUM", "no units"),
    "threshold": ("[hnsf'U]", "UCUM", "Hounsfield unit"),
    "kvp": ("kV", "UCUM", "kilovolt"),
}
# report["scores"][vessel] key of each measurement, and its method.
MEASURED = (
    ("agatston", "agatston", "agatston_method"),
    ("volume", "volume_mm3", "volume_method"),
    ("mass", "mass_mg", "mass_method"),
    ("lesions", "lesions", None),
)


def checkpoint_sha256(paths: Sequence[str | Path]) -> str:
    """First 16 hex characters of the checkpoint's SHA-256 (read once per process).

    One file: the file's own hash (``sha256sum best.ckpt | cut -c1-16``). Several (an
    ensemble): the hash of their hex digests joined by newlines, in the order given.
    """
    return _digest(tuple(str(p) for p in paths))


@functools.lru_cache(maxsize=8)
def _digest(paths: tuple[str, ...]) -> str:
    hexes = []
    for p in paths:
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        hexes.append(h.hexdigest())
    if len(hexes) == 1:
        return hexes[0][:HASH_CHARS]
    return hashlib.sha256("\n".join(hexes).encode()).hexdigest()[:HASH_CHARS]


def _code(key: str, table: dict = SR_CODES):
    import highdicom as hd

    value, scheme, meaning = table[key]
    return hd.sr.CodedConcept(value=value, scheme_designator=scheme, meaning=meaning)


def _private(value: str, meaning: str):
    import highdicom as hd

    return hd.sr.CodedConcept(value=value, scheme_designator=PRIVATE_SCHEME, meaning=meaning)


def _measurements(hd, scores: dict) -> list:
    out = []
    for name, key, method in MEASURED:
        out.append(
            hd.sr.Measurement(
                name=_code(name),
                value=float(scores[key]),
                unit=_code(name, UNITS),
                method=None if method is None else _code(method),
            )
        )
    return out


@quietly
def write_sr(
    path: Path,
    vol: Volume,
    report: dict,
    deidentify: bool = False,
    seg_path: Path | None = None,
    notes: list[str] | None = None,
) -> Path:
    """Write the scan's scores as a DICOM Comprehensive 3D SR (TID 1500).

    Args:
        path: the ``.dcm`` file to write (atomically).
        vol: a scan read from DICOM (``vol.extra["files"]``: its files in slice order).
        report: the scan's report as ``cac-score`` builds it (``scores``,
            ``cac_drs_report``, ``risk_category``, ``threshold_hu``, ``kvp``, ``settings``
            and ``model`` with ``checkpoint_sha256``).
        deidentify: leave every patient/study attribute empty (see :mod:`cac_lightning.io.seg`).
        seg_path: the SEG written for this scan in the same run (:func:`write_seg`); each
            vessel group then references its segment.
        notes: a list that receives the warnings of writing it (replaced UIDs), once each.

    Raises:
        InputError: not a DICOM input, or an invalid source UID.
    """
    import highdicom as hd
    import pydicom
    from pydicom.dataset import Dataset
    from pydicom.uid import generate_uid

    from cac_lightning.io.dicom import quiet_pydicom
    from cac_lightning.io.seg import mark_deidentified, read_sources

    sources = read_sources(vol, deidentify, "--sr", notes)
    evidence = list(sources)
    seg = None
    if seg_path is not None:
        with quiet_pydicom():
            seg = pydicom.dcmread(seg_path, stop_before_pixels=True)
        evidence.append(seg)
    model = report.get("model") or {}
    params = [
        f"checkpoint sha256 {model.get('checkpoint_sha256', 'unknown')}",
        f"network {model.get('net', 'unknown')}",
        f"Agatston mode {report['settings'].get('mode', 'per-slice')}",
        f"threshold {report['threshold_hu']:g} HU" if report.get("threshold_hu") else "",
    ]
    algorithm = hd.sr.AlgorithmIdentification(
        name="cac-lightning", version=__version__, parameters=[p for p in params if p]
    )
    groups = []
    series_uid = sources[0].SeriesInstanceUID
    for number, vessel in enumerate(VESSELS, start=1):
        common = {
            "tracking_identifier": hd.sr.TrackingIdentifier(
                uid=hd.UID(), identifier=f"{vessel} calcium"
            ),
            "finding_type": _code("finding_type"),
            "finding_sites": [hd.sr.FindingSite(anatomic_location=_code(vessel))],
            "algorithm_id": algorithm,
            "measurements": _measurements(hd, report["scores"][vessel]),
        }
        if seg is None:
            groups.append(hd.sr.MeasurementsAndQualitativeEvaluations(**common))
        else:
            segment = hd.sr.ReferencedSegment(
                sop_class_uid=seg.SOPClassUID,
                sop_instance_uid=seg.SOPInstanceUID,
                segment_number=number,
                source_series=hd.sr.SourceSeriesForSegmentation(series_uid),
            )
            groups.append(
                hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
                    referenced_segment=segment, **common
                )
            )
    total = _measurements(hd, report["scores"]["total"])
    threshold = report.get("threshold_hu", report["settings"].get("threshold_hu"))
    extra = [("threshold", threshold), ("kvp", report.get("kvp"))]
    for name, value in extra:
        if value is not None:
            total.append(
                hd.sr.Measurement(name=_code(name), value=float(value), unit=_code(name, UNITS))
            )
    drs = report["cac_drs_report"]
    risk = report["risk_category"]
    groups.append(
        hd.sr.MeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier="total calcium"),
            finding_type=_code("finding_type"),
            finding_sites=[hd.sr.FindingSite(anatomic_location=_code("total"))],
            algorithm_id=algorithm,
            measurements=total,
            qualitative_evaluations=[
                hd.sr.QualitativeEvaluation(
                    _code("cac_drs"), _private(drs.removeprefix("CAC-DRS ").replace("/", "-"), drs)
                ),
                hd.sr.QualitativeEvaluation(_code("risk_category"), _private(risk, risk)),
            ],
        )
    )
    observer = hd.sr.ObserverContext(
        observer_type=hd.sr.CodedConcept("121007", "DCM", "Device"),
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=generate_uid(entropy_srcs=["cac-lightning"]),
            name="cac-lightning",
            manufacturer_name="cac-lightning",
            model_name=__version__,
        ),
    )
    content = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=_code("procedure"),
        imaging_measurements=groups,
        referenced_images=sources,
    )
    with quiet_pydicom(), warnings.catch_warnings():
        # highdicom's person-name warning would print the patient's name
        warnings.filterwarnings("ignore", message=".*intended person name", category=UserWarning)
        sr = hd.sr.Comprehensive3DSR(
            evidence=evidence,
            content=content[0],
            series_instance_uid=hd.UID(),
            series_number=9902,
            sop_instance_uid=hd.UID(),
            instance_number=1,
            manufacturer="cac-lightning",
            is_complete=True,
            series_description="CAC scores (LM, LAD, CX, RCA, total)",
        )
    scheme = Dataset()
    scheme.CodingSchemeDesignator = PRIVATE_SCHEME
    scheme.CodingSchemeName = "cac-lightning private codes"
    scheme.CodingSchemeResponsibleOrganization = "cac-lightning"
    sr.CodingSchemeIdentificationSequence = [scheme]
    if deidentify:
        mark_deidentified(sr)
    with atomic_path(path) as tmp, quiet_pydicom():
        sr.save_as(tmp)
    return path
