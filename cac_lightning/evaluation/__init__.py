"""Evaluation: per-scan records, agreement statistics, the paper's Tables 3-7, the report.

Pure numpy/scipy at import time; matplotlib is imported only when figures are drawn.
"""

from __future__ import annotations

from cac_lightning.evaluation.records import ScanRecord, evaluate_scans, scan_record
from cac_lightning.evaluation.report import json_safe, markdown_report, write_report
from cac_lightning.evaluation.stats import (
    BlandAltman,
    ICCResult,
    KappaResult,
    bland_altman,
    cohen_kappa,
    confusion_matrix,
    icc_a1,
    icc_a1_ratings,
    kappa_from_table,
)
from cac_lightning.evaluation.tables import build_tables, flat_metrics, tables_by_split

__all__ = [
    "BlandAltman",
    "ICCResult",
    "KappaResult",
    "ScanRecord",
    "bland_altman",
    "build_tables",
    "cohen_kappa",
    "confusion_matrix",
    "evaluate_scans",
    "flat_metrics",
    "icc_a1",
    "icc_a1_ratings",
    "json_safe",
    "kappa_from_table",
    "markdown_report",
    "scan_record",
    "tables_by_split",
    "write_report",
]
