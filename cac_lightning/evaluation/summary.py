"""The end-of-run summary that ``cac-train`` prints and writes to ``metrics.json``."""

from __future__ import annotations

import json
from pathlib import Path

from cac_lightning.evaluation.report import json_safe
from cac_lightning.io.atomic import atomic_write_text
from cac_lightning.vessels import VESSELS

__all__ = ["meets_bar", "summary_table", "write_summary"]


def meets_bar(metrics: dict, bar: dict[str, float]) -> bool:
    """Whether every figure of ``bar`` (a run's ``quality_bar``, e.g. the demo's in
    ``conf/experiment/demo.yaml``) is present in ``metrics`` and at least its value."""
    return all(metrics.get(k) is not None and float(metrics[k]) >= v for k, v in bar.items())


HEADLINE = (
    ("test/icc_agatston_total", "Agatston ICC, total"),
    *((f"test/icc_agatston_{v}", f"Agatston ICC, {v}") for v in VESSELS),
    ("test/kappa_linear", "Risk kappa (linear)"),
    ("test/kappa", "Risk kappa (unweighted)"),
    ("test/agatston_mae", "Agatston MAE, total"),
    *((f"test/agatston_mae_{v}", f"Agatston MAE, {v}") for v in VESSELS),
    ("test/dice", "Dice (calcium voxels, per scan)"),
    ("test_zero/zero_cac_flagged_rate", "Zero-calcium flagged rate"),
    ("calibration/lesion_floor", "Lesion-confidence floor"),
)


def write_summary(
    path: str | Path,
    metrics: dict[str, float],
    evaluator=None,
    best_ckpt: str = "",
    bar: dict[str, float] | None = None,
    *,
    scans: dict[str, list[dict]] | None = None,
    extra: dict | None = None,
) -> dict:
    """Write metrics (and per-scan results) to ``path`` as JSON; with a quality ``bar``, also
    the bar and whether the run meets it (``meets_bar``).

    Args:
        path: the ``metrics.json`` to write (atomically).
        metrics: flat metrics (``test/agatston_mae``, ...).
        evaluator: the scan-level callback; its ``results`` become ``scans``.
        best_ckpt: the checkpoint the metrics are of.
        bar: the run's quality bar.
        scans: ``{split: [ScanRecord.agatston_summary(), ...]}`` when there is no evaluator.
        extra: more top-level keys (e.g. ``arm`` and ``seed`` of an imported run).
    """
    if scans is None:
        scans = getattr(evaluator, "results", {}) if evaluator is not None else {}
    summary = {
        **dict(extra or {}),
        "headline": {k: metrics.get(k) for k, _ in HEADLINE},
        **({"bar": dict(bar), "meets_bar": meets_bar(metrics, bar)} if bar else {}),
        "metrics": dict(sorted(metrics.items())),
        "best_checkpoint": best_ckpt or None,
        "scans": scans,
    }
    summary = json_safe(summary)
    atomic_write_text(path, json.dumps(summary, indent=2) + "\n")
    summary["path"] = str(path)
    return summary


def label_of(key: str) -> str:
    """The headline label of a metric key."""
    return dict(HEADLINE).get(key, key)


def summary_table(summary: dict) -> str:
    """A plain-text table of the headline figures."""
    lines = ["", f"{'metric':<28} {'value':>10}", "-" * 39]
    for key, label in HEADLINE:
        v = summary["headline"].get(key)
        lines.append(f"{label:<28} {'n/a' if v is None else f'{v:10.3f}':>10}")
    if summary.get("bar"):
        bar = ", ".join(f"{label_of(k)} >= {v:.2f}" for k, v in summary["bar"].items())
        lines.append(f"quality bar ({bar}): {'met' if summary['meets_bar'] else 'missed'}")
    if summary.get("path"):
        lines.append(f"written to {summary['path']}")
    return "\n".join(lines)
