"""Per-scan score reports: the JSON and CSV that ``cac-score`` writes.

The report holds geometry, scores and lesions only: no patient name, ID,
birth date or DICOM UID ever reaches it.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from cac_lightning.errors import InputError
from cac_lightning.vessels import VESSELS_AND_TOTAL
from cac_lightning.volume import Volume

__all__ = ["CSV_COLUMNS", "scan_report", "upsert_csv_text"]

SCORE_FIELDS = ("agatston", "volume_mm3", "mass_mg", "lesions")
CSV_COLUMNS = [
    "scan_id",
    "risk_category",
    "cac_drs",
    "n_vessels",
    "cac_drs_report",
    "kvp",
    "slice_spacing_mm",
    *[f"{v}_{k}" for v in VESSELS_AND_TOTAL for k in SCORE_FIELDS],
    "mesa_percentile",
]


def scan_report(vol: Volume, labels: np.ndarray, config=None) -> dict:
    """Score ``labels`` on ``vol`` and assemble the JSON-ready report.

    Args:
        vol: the CT volume (HU int16 (z, y, x)) and its geometry.
        labels: uint8 (z, y, x) label map, 0 bg, 1 LM, 2 LAD, 3 CX, 4 RCA.
        config: a :class:`cac_lightning.scoring.ScoringConfig` (default settings when None).
    """
    from cac_lightning.scoring import score_scan

    g = vol.geometry
    scores = score_scan(vol.hu, labels, g, config, kvp=vol.kvp, mass_factor=vol.mass_factor)
    return {
        "scan_id": vol.scan_id,
        "shape_zyx": list(g.shape),
        "pixel_spacing_mm": [round(float(s), 6) for s in g.pixel_spacing],
        "slice_spacing_mm": round(float(g.slice_spacing), 6),
        "slice_thickness_mm": None if g.slice_thickness is None else float(g.slice_thickness),
        "kvp": vol.kvp,
        **scores.to_dict(),
    }


def _csv_row(report: dict) -> dict:
    row = {k: report.get(k) for k in CSV_COLUMNS[:6]}
    row["slice_spacing_mm"] = report["slice_spacing_mm"]
    for v in VESSELS_AND_TOTAL:
        for k in SCORE_FIELDS:
            row[f"{v}_{k}"] = report["scores"][v][k]
    row["mesa_percentile"] = (report.get("mesa") or {}).get("percentile")
    return row


def upsert_csv_text(csv_path: Path, report: dict) -> str:
    """The text of ``scores.csv`` with ``report``'s row added or replaced (same ``scan_id``).

    Callers hold the output folder's lock (:class:`cac_lightning.io.scan_outputs.ScanOutputs`).
    """
    rows = []
    if csv_path.is_file():
        with csv_path.open(newline="") as f:
            reader = csv.DictReader(f)
            if list(reader.fieldnames or []) != CSV_COLUMNS:
                raise InputError(f"{csv_path} was not written by this cac-score; use another --out")
            rows = [r for r in reader if r.get("scan_id") != report["scan_id"]]
    rows.append(_csv_row(report))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()
