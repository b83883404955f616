"""Score nnU-Net's predicted label maps with our scorer: an nnU-Net run as one arm of ours.

``nnUNetv2_predict`` writes ``PRED_DIR/<case>.nii.gz`` per case on the grid of the case's input
image, which :mod:`cac_lightning.nnunet.export` wrote on the scan's own grid. Each prediction is
read back against the manifest scan's grid (:func:`~cac_lightning.io.read_label_map`: another
grid or values outside 0..4 are refused), then goes down the one scan-level path our own networks
take after their Predictor: :func:`~cac_lightning.evaluation.records.scan_record` (reference and
prediction scored on native voxels by :func:`~cac_lightning.scoring.score_scan` with the scan's
own threshold, so calcium below it is dropped, as the Predictor's HU gate drops it) ->
:func:`~cac_lightning.evaluation.tables.metrics_by_split` -> ``metrics.json`` in
:func:`~cac_lightning.evaluation.summary.write_summary`'s schema, with the run's ``arm`` and
``seed`` on top so ``cac-compare`` takes it as an arm.

Before scoring, a prediction is kept inside the scan's heart region as our Predictor keeps its
own (:func:`~cac_lightning.heart.find_heart`, the Predictor's default method; a scan where none
is found keeps its calcium anywhere, with a warning, as in our evaluation), so both arms get the
same post-processing; ``heart="off"`` scores nnU-Net's label maps exactly as it wrote them.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cac_lightning.errors import InputError
from cac_lightning.evaluation.records import ScanRecord, scan_record
from cac_lightning.io.manifest import SPLITS, ManifestRow, read_manifest
from cac_lightning.nnunet.layout import FILE_ENDING, TEST_SPLITS

__all__ = [
    "default_heart",
    "keep_in_heart",
    "prediction_ending",
    "score_predictions",
    "select_rows",
    "write_run",
]

log = logging.getLogger(__name__)

_LISTED = 10  # missing cases named in the error line


def default_heart() -> str:
    """The heart method our Predictor uses by default (``Predictor.default_heart``)."""
    from cac_lightning.inference.predictor import Predictor

    return Predictor.default_heart


def keep_in_heart(labels, volume, method: str):
    """``labels`` with everything outside ``volume``'s heart region set to 0 (``method`` of
    :data:`~cac_lightning.heart.HEART_METHODS`; ``off`` or no region found: unchanged)."""
    from cac_lightning.heart import DEFAULT_MARGIN_MM, NoHeartError, find_heart

    spacing = tuple(float(s) for s in volume.geometry.spacing_zyx)
    try:
        region = find_heart(volume.hu, spacing, method=method, margin_mm=DEFAULT_MARGIN_MM)
    except NoHeartError as err:
        log.warning("%s: %s; calcium is kept anywhere", volume.scan_id, err)
        return labels
    if region is None:
        return labels
    return np.where(region.mask, labels, 0).astype(labels.dtype, copy=False)


def prediction_ending(pred_dir: Path) -> str:
    """The file ending of nnU-Net's predictions: the ``file_ending`` of the ``dataset.json``
    that ``nnUNetv2_predict`` copies into its output folder, else ``.nii.gz``."""
    meta = pred_dir / "dataset.json"
    if meta.is_file():
        try:
            return str(json.loads(meta.read_text()).get("file_ending") or FILE_ENDING)
        except (OSError, ValueError, AttributeError):
            raise InputError(f"{meta} is not nnU-Net's dataset.json") from None
    return FILE_ENDING


def select_rows(
    rows: Sequence[ManifestRow], splits: Sequence[str] | None, where: Path
) -> list[ManifestRow]:
    """The manifest rows of ``splits`` (None: every test split the manifest has).

    Raises:
        InputError: an unknown split, a named split without scans, no test scans at all, or a
            chosen scan without a reference label map.
    """
    if splits is None:
        splits = [s for s in TEST_SPLITS if any(r.split == s for r in rows)]
        if not splits:
            raise InputError(f"{where}: no {' or '.join(TEST_SPLITS)} scans to score")
    for s in splits:
        if s not in SPLITS:
            raise InputError(f"unknown split {s!r}; choose from {', '.join(SPLITS)}")
        if not any(r.split == s for r in rows):
            raise InputError(f"{where}: no scans in split {s!r}")
    chosen = [r for r in rows if r.split in set(splits)]
    unlabelled = [r.scan_id for r in chosen if r.label is None]
    if unlabelled:
        raise InputError(f"{where}: scans without a reference label map: {', '.join(unlabelled)}")
    return chosen


def score_predictions(
    pred_dir: str | os.PathLike,
    data_dir: str | os.PathLike,
    splits: Sequence[str] | None = None,
    scoring: Any = None,
    *,
    heart: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[ScanRecord]:
    """Per-scan records of nnU-Net's predictions against the manifest's references.

    Args:
        pred_dir: ``nnUNetv2_predict``'s output folder (``<case>.nii.gz`` per case).
        data_dir: the dataset folder (``manifest.csv``) that was exported.
        splits: our splits to score (None: ``test`` and ``test_zero``, those present).
        scoring: scoring settings (``ScoringConfig``, a mapping of its fields, or None:
            defaults, as our own runs use).
        heart: keep predictions inside the heart region found by this method
            (:data:`~cac_lightning.heart.HEART_METHODS`; None: the Predictor's default; ``off``:
            score the label maps as written).
        progress: called with one line per scored scan.

    Returns:
        One :class:`~cac_lightning.evaluation.records.ScanRecord` per scan, in manifest order.

    Raises:
        InputError: no prediction folder, no manifest, a bad split, predictions missing for
            scans of the splits (all named, before any is read), or a prediction that is not a
            label map on its scan's grid.
    """
    from cac_lightning.heart.region import DEFAULT_MARGIN_MM, check_heart_settings
    from cac_lightning.io import read_label_map, read_volume

    heart = default_heart() if heart is None else heart
    check_heart_settings(heart, DEFAULT_MARGIN_MM)
    pred_dir, data_dir = Path(pred_dir), Path(data_dir)
    if not pred_dir.is_dir():
        raise InputError(f"prediction folder {pred_dir} does not exist")
    rows = select_rows(read_manifest(data_dir), splits, data_dir)
    ending = prediction_ending(pred_dir)
    missing = [r.scan_id for r in rows if not (pred_dir / f"{r.scan_id}{ending}").is_file()]
    if missing:
        named = ", ".join(missing[:_LISTED]) + (" ..." if len(missing) > _LISTED else "")
        raise InputError(
            f"{pred_dir}: no {ending} prediction for {len(missing)} of {len(rows)} scans: {named}"
        )
    records = []
    for row in rows:
        vol = read_volume(row.image)
        ref = read_label_map(row.label, vol.geometry)
        pred = read_label_map(pred_dir / f"{row.scan_id}{ending}", vol.geometry)
        vol.scan_id = row.scan_id
        pred = keep_in_heart(pred, vol, heart)
        rec = scan_record(
            row.scan_id,
            row.split,
            vol.hu,
            ref,
            pred,
            vol.geometry,
            scoring,
            kvp=vol.kvp,
            mass_factor=vol.mass_factor,
        )
        records.append(rec)
        if progress is not None:
            total = rec.pred["total"]["agatston"]
            progress(f"{row.scan_id} ({row.split}): Agatston {total:.1f}")
    return records


def write_run(
    run_dir: str | os.PathLike,
    records: Sequence[ScanRecord],
    arm: str,
    seed: int = 0,
    source: dict | None = None,
) -> dict:
    """Write ``run_dir/metrics.json`` (and ``records.jsonl``) of an imported run.

    Args:
        run_dir: a new or empty folder.
        records: the scans' records (:func:`score_predictions`).
        arm: the arm's name in ``cac-compare`` (e.g. ``nnunet_2d``).
        seed: the seed ``cac-compare`` pairs the run under.
        source: where the predictions came from, stored as ``source``.

    Returns:
        The summary written (``write_summary``'s, plus ``arm``, ``seed``, ``source``), with
        ``path`` the written ``metrics.json``.

    Raises:
        InputError: ``run_dir`` exists and is not an empty folder, no records, or an empty arm.
    """
    from cac_lightning.evaluation.report import json_safe
    from cac_lightning.evaluation.summary import write_summary
    from cac_lightning.evaluation.tables import metrics_by_split
    from cac_lightning.io.atomic import atomic_dir

    run_dir = Path(run_dir)
    if not str(arm).strip() or any(c in str(arm) for c in "\n\r"):
        raise InputError(f"arm must be a non-empty one-line name, got {arm!r}")
    if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
        raise InputError(f"run folder {run_dir} already exists and is not empty")
    records = list(records)
    if not records:
        raise InputError("no scan records to write")
    scans: dict[str, list[dict]] = {}
    for r in records:
        scans.setdefault(r.split, []).append(r.agatston_summary())
    extra = {"arm": str(arm), "seed": int(seed), "source": dict(source or {})}
    with atomic_dir(run_dir) as tmp:
        summary = write_summary(
            tmp / "metrics.json", metrics_by_split(records), scans=scans, extra=extra
        )
        (tmp / "records.jsonl").write_text(
            "".join(json.dumps(json_safe(r.to_dict()), allow_nan=False) + "\n" for r in records)
        )
    summary["path"] = str(run_dir / "metrics.json")
    return summary
