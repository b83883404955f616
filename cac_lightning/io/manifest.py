"""The dataset manifest: one CSV row per scan, the contract between dataset sources and training.

``sources/`` writes it (synthetic cohort, COCA import) and ``data/`` reads it; it lives here in
``io/``, below both, so neither imports the other (docs/architecture.md).

Layout (``DIR/manifest.csv``): ``scan_id, patient_id, image, label, split`` and
reference scores ``ref_<VESSEL>_<score>`` for each name in
:data:`cac_lightning.vessels.VESSELS_AND_TOTAL` (the vessels and ``total``) and each score in
:data:`cac_lightning.scoring.lesions.SCORE_METRICS` (``agatston``, ``volume_mm3``,
``mass_mg``). ``image`` and ``label`` are paths relative to the
manifest's folder (absolute paths are kept as they are). ``patient_id`` is a
pseudonym (synthetic or dataset-local), never a DICOM PatientID. Splits:
``train``, ``val``, ``test``, ``test_zero`` (zero-calcium test set).
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass, field
from pathlib import Path

from cac_lightning.errors import InputError
from cac_lightning.io.atomic import atomic_write_text
from cac_lightning.scoring.lesions import SCORE_METRICS
from cac_lightning.vessels import VESSELS_AND_TOTAL

__all__ = ["COLUMNS", "SPLITS", "ManifestRow", "read_manifest", "write_manifest"]

SPLITS = ("train", "val", "test", "test_zero")
REF_COLUMNS = [f"ref_{v}_{k}" for v in VESSELS_AND_TOTAL for k in SCORE_METRICS]
COLUMNS = ["scan_id", "patient_id", "image", "label", "split", *REF_COLUMNS]


@dataclass
class ManifestRow:
    """One scan of a dataset. ``image``/``label`` are absolute once read."""

    scan_id: str
    patient_id: str
    image: Path
    label: Path | None
    split: str
    ref: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def ref_agatston(self) -> float:
        return float(self.ref.get("total", {}).get("agatston", float("nan")))


def _resolve(root: Path, value: str) -> Path:
    p = Path(value)
    return p if p.is_absolute() else (root / p)


def read_manifest(path: str | os.PathLike) -> list[ManifestRow]:
    """Read ``manifest.csv`` (or the folder holding it)."""
    path = Path(path)
    if path.is_dir():
        path = path / "manifest.csv"
    if not path.is_file():
        raise InputError(f"no manifest at {path}")
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = {"scan_id", "image", "split"} - set(reader.fieldnames or [])
        if missing:
            raise InputError(f"{path}: manifest lacks column(s) {sorted(missing)}")
        rows = []
        for rec in reader:
            ref: dict[str, dict[str, float]] = {}
            for v in VESSELS_AND_TOTAL:
                for k in SCORE_METRICS:
                    val = rec.get(f"ref_{v}_{k}")
                    if val not in (None, ""):
                        ref.setdefault(v, {})[k] = float(val)
            split = rec["split"]
            if split not in SPLITS:
                raise InputError(f"{path}: scan {rec['scan_id']}: unknown split {split!r}")
            rows.append(
                ManifestRow(
                    scan_id=rec["scan_id"],
                    patient_id=rec.get("patient_id") or rec["scan_id"],
                    image=_resolve(path.parent, rec["image"]),
                    label=_resolve(path.parent, rec["label"]) if rec.get("label") else None,
                    split=split,
                    ref=ref,
                )
            )
    return rows


def _rel(root: Path, p: Path | None) -> str:
    if p is None:
        return ""
    try:
        return str(Path(p).resolve().relative_to(root.resolve()))
    except ValueError:
        return str(Path(p).resolve())


def write_manifest(path: str | os.PathLike, rows: list[ManifestRow]) -> Path:
    """Write rows atomically to ``path`` (a CSV file or a folder)."""
    path = Path(path)
    if path.suffix != ".csv":
        path = path / "manifest.csv"
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        rec = {
            "scan_id": r.scan_id,
            "patient_id": r.patient_id,
            "image": _rel(path.parent, r.image),
            "label": _rel(path.parent, r.label),
            "split": r.split,
        }
        for v in VESSELS_AND_TOTAL:
            for k in SCORE_METRICS:
                val = r.ref.get(v, {}).get(k)
                rec[f"ref_{v}_{k}"] = "" if val is None else repr(float(val))
        writer.writerow(rec)
    atomic_write_text(path, buf.getvalue())
    return path
