"""What a run shows about its scans: per-scan rows, risk confusion, Bland-Altman, data summary.

Built from the per-scan records (:class:`cac_lightning.evaluation.records.ScanRecord`) of the
one scan-level path, so the W&B tables and the run folder's CSV/PNG say exactly what the
metrics say. Nothing here imports W&B or torch: :mod:`cac_lightning.callbacks.dashboard`
sends these to W&B, :func:`write_dashboard` writes them to a folder. Rows carry scan ids
(manifest pseudonyms), never DICOM patient fields.
"""

from __future__ import annotations

import csv
import io
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from cac_lightning.evaluation.records import NOT_DETECTED, ScanRecord
from cac_lightning.evaluation.stats import confusion_matrix
from cac_lightning.evaluation.tables import score_pairs
from cac_lightning.io.atomic import atomic_write_text
from cac_lightning.scoring.lesions import SCORE_METRICS
from cac_lightning.scoring.risk import RISK_CATEGORIES
from cac_lightning.vessels import VESSELS_AND_TOTAL

__all__ = [
    "SCAN_COLUMNS",
    "data_summary",
    "flatten_config",
    "git_commit",
    "lesion_counts",
    "risk_confusion",
    "scan_rows",
    "write_dashboard",
]

SCAN_COLUMNS: tuple[str, ...] = (
    "scan_id",
    "split",
    *(f"ref_agatston_{k}" for k in VESSELS_AND_TOTAL),
    *(f"pred_agatston_{k}" for k in VESSELS_AND_TOTAL),
    "ref_risk",
    "pred_risk",
    "abs_error_total",
    "lesions_found",
    "lesions_missed",
    "lesions_false",
    "warnings",
)
"""Columns of the per-scan table (W&B ``<split>/scans`` and ``scans_<split>.csv``)."""


def lesion_counts(rec: ScanRecord) -> tuple[int, int, int]:
    """(found, missed, false) lesions of one record (Table 5's rows for one scan)."""
    missed = sum(1 for _, pred in rec.lesions if pred == NOT_DETECTED)
    return len(rec.lesions) - missed, missed, int(sum(rec.not_cac.values()))


def _agatston(scores: Mapping, key: str) -> float:
    try:
        return round(float(scores[key]["agatston"]), 2)
    except (KeyError, TypeError, ValueError):
        return float("nan")


def scan_rows(
    records: Sequence[ScanRecord], warnings: Mapping[str, Sequence[str]] | None = None
) -> list[list]:
    """One row per record, in :data:`SCAN_COLUMNS` order.

    Args:
        records: the scans.
        warnings: extra ``{scan_id: [warning, ...]}`` besides each record's own
            ``warnings`` (domain-shift notes); all are joined by "; ".
    """
    warnings = warnings or {}
    rows = []
    for r in records:
        found, missed, false = lesion_counts(r)
        ref = [_agatston(r.ref, k) for k in VESSELS_AND_TOTAL]
        pred = [_agatston(r.pred, k) for k in VESSELS_AND_TOTAL]
        rows.append(
            [
                r.scan_id,
                r.split,
                *ref,
                *pred,
                r.ref_risk,
                r.pred_risk,
                round(abs(pred[-1] - ref[-1]), 2),
                found,
                missed,
                false,
                "; ".join([*r.warnings, *warnings.get(r.scan_id, ())]),
            ]
        )
    return rows


def risk_confusion(records: Sequence[ScanRecord]) -> np.ndarray:
    """(5, 5) risk-category counts, rows reference C1..C5, columns predicted."""
    return confusion_matrix(
        [r.ref_risk for r in records], [r.pred_risk for r in records], RISK_CATEGORIES
    )


def _csv(columns: Sequence[str], rows: Sequence[Sequence]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    return buf.getvalue()


def write_dashboard(
    out_dir: str | Path,
    records: Sequence[ScanRecord],
    warnings: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, Path]:
    """The dashboard as files: per split ``scans_<split>.csv``, ``risk_confusion_<split>.png``
    and ``bland_altman_<split>.png`` (Agatston, volume, mass of the total).

    Returns:
        ``{name: path}`` of what was written.
    """
    from cac_lightning.evaluation.plots import bland_altman_png, risk_confusion_png

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for split in dict.fromkeys(r.split for r in records):
        recs = [r for r in records if r.split == split]
        path = out / f"scans_{split}.csv"
        atomic_write_text(path, _csv(SCAN_COLUMNS, scan_rows(recs, warnings)))
        written[f"scans_{split}"] = path
        # plots.risk_confusion_png takes rows = predicted (the paper's layout)
        written[f"risk_confusion_{split}"] = risk_confusion_png(
            out / f"risk_confusion_{split}.png",
            risk_confusion(recs).T,
            RISK_CATEGORIES,
            title=f"{split}: risk category",
        )
        pairs = {m: score_pairs(recs, "total", m) for m in SCORE_METRICS}
        written[f"bland_altman_{split}"] = bland_altman_png(
            out / f"bland_altman_{split}.png", pairs, title=f"{split}: total"
        )
    return written


def _range(values: Sequence[float]) -> list[float] | None:
    v = [float(x) for x in values if x is not None and np.isfinite(x)]
    return [round(min(v), 3), round(max(v), 3)] if v else None


def data_summary(scans_by_split: Mapping[str, Sequence], name: str = "") -> dict:
    """What the model saw: scans per split, pixel spacing / FOV / slice thickness ranges, kVp.

    Args:
        scans_by_split: ``{split: [scan, ...]}``; a scan has ``geometry``
            (:class:`cac_lightning.volume.Geometry`) and ``kvp``.
        name: the dataset's name (e.g. the data config's name).
    """
    out: dict = {"dataset": name, "n_scans": {}}
    pix, fov, thick, kvp = [], [], [], set()
    for split, scans in scans_by_split.items():
        out["n_scans"][split] = len(scans)
        for s in scans:
            g = s.geometry
            sy, sx = (float(v) for v in g.pixel_spacing)
            _, ny, nx = g.shape
            pix.append(sx)
            fov.append(max(ny * sy, nx * sx))
            thick.append(float(g.slice_thickness or g.slice_spacing))
            if s.kvp:
                kvp.add(int(round(float(s.kvp))))
    out["pixel_spacing_mm"] = _range(pix)
    out["fov_mm"] = _range(fov)
    out["slice_thickness_mm"] = _range(thick)
    out["kvp"] = sorted(kvp)
    return out


def flatten_config(cfg: Mapping, prefix: str = "", sep: str = ".") -> dict:
    """``{"model": {"net": {"name": "unet"}}}`` -> ``{"model.net.name": "unet"}``.

    Lists of plain values stay lists; lists of mappings are indexed (``a.0.b``).
    """
    flat: dict = {}
    for key, value in cfg.items():
        name = f"{prefix}{sep}{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            flat.update(flatten_config(value, name, sep))
        elif isinstance(value, (list, tuple)) and any(isinstance(v, Mapping) for v in value):
            for i, v in enumerate(value):
                if isinstance(v, Mapping):
                    flat.update(flatten_config(v, f"{name}{sep}{i}", sep))
                else:
                    flat[f"{name}{sep}{i}"] = v
        else:
            flat[name] = value
    return flat


def git_commit(path: str | Path | None = None) -> str | None:
    """The source tree's commit (``-dirty`` appended when modified), or None outside git."""
    where = Path(path) if path else Path(__file__).resolve().parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=5
        )
        if sha.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=where,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return sha.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
