"""Choose a checkpoint's lesion-confidence floor on validation scans.

Each scan is predicted once on its native grid, through the same
:meth:`~cac_lightning.inference.Predictor.predict` as ``cac-score`` (without a floor, keeping the
foreground probability), and scored on native voxels; every floor
of :data:`~cac_lightning.inference.confidence.FLOOR_GRID` is then applied to those labels and
scored through the same per-scan records and tables as validation
(:func:`~cac_lightning.evaluation.records.scan_record`,
:func:`~cac_lightning.evaluation.tables.metrics_by_split`). The floor with the smallest
``<split>/agatston_mae`` wins (:func:`~cac_lightning.inference.confidence.choose_floor`);
:func:`write_floor` records it in a checkpoint file.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cac_lightning.evaluation.records import scan_record
from cac_lightning.evaluation.tables import metrics_by_split
from cac_lightning.inference.confidence import FLOOR_GRID, apply_floor, choose_floor, floor_record

if TYPE_CHECKING:
    from cac_lightning.inference import Predictor

__all__ = ["calibrate_floor", "write_floor"]

log = logging.getLogger(__name__)


def calibrate_floor(
    predictor: Predictor,
    scans: Iterable[Any],
    split: str = "val",
    grid: Sequence[float] = FLOOR_GRID,
) -> dict:
    """The ``lesion_confidence`` record for ``predictor`` from ``scans``.

    Args:
        predictor: the model, e.g. ``Predictor.from_checkpoint(best)``; its own floor is ignored.
        scans: scans on their native grid with ``scan_id``, ``hu``, ``labels``, ``geometry``,
            ``kvp``, ``mass_factor`` (a DataModule's ``native_scans(split)``).
        split: the split's name (recorded; it names the metric).
        grid: floors to try (0 = none).

    Returns:
        :func:`~cac_lightning.inference.confidence.floor_record`: the chosen ``floor``, the
        split, the number of scans and the Agatston MAE of every floor tried.
    """
    from cac_lightning.scoring import score_scan

    floors = sorted({float(f) for f in grid} | {0.0})
    records: dict[float, list] = {f: [] for f in floors}
    cfg = predictor.scoring_config()
    n = 0
    for scan in scans:
        kvp, mass = getattr(scan, "kvp", None), getattr(scan, "mass_factor", None)
        threshold = predictor.threshold_for(scan, cfg)
        labels, foreground = predictor.predict(
            scan, threshold_hu=threshold, floor=0.0, return_foreground=True
        )
        hu = np.asarray(scan.hu)
        ref = score_scan(hu, np.asarray(scan.labels), scan.geometry, cfg, kvp=kvp, mass_factor=mass)
        for floor in floors:
            kept = apply_floor(labels, foreground, floor)
            records[floor].append(
                scan_record(
                    scan.scan_id,
                    split,
                    hu,
                    ref,
                    kept,
                    scan.geometry,
                    cfg,
                    kvp=kvp,
                    mass_factor=mass,
                )
            )
        n += 1
    key = f"{split}/agatston_mae"
    errors = {
        f: float(metrics_by_split(r).get(key, float("nan"))) if r else float("nan")
        for f, r in records.items()
    }
    floor = choose_floor(errors)
    log.info(
        "lesion-confidence floor %.2g chosen on %d %s scans (Agatston MAE by floor: %s)",
        floor,
        n,
        split,
        ", ".join(f"{f:g}: {e:.1f}" for f, e in errors.items()),
    )
    return floor_record(floor, errors, split, n)


def write_floor(src: str | Path, record: dict, dest: str | Path | None = None) -> None:
    """Write checkpoint ``src`` with ``record`` as its ``lesion_confidence`` to ``dest``
    (default: ``src`` itself), atomically, in the current checkpoint schema
    (:func:`cac_lightning.models.checkpoint.set_lesion_floor`)."""
    from cac_lightning.models.checkpoint import set_lesion_floor

    set_lesion_floor(src, record, dest)
