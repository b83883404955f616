"""Write a manifest dataset as an nnU-Net v2 raw dataset, with our split as fold 0.

``export_dataset(DATA_DIR, OUT, 7)`` writes ``OUT/nnUNet_raw/Dataset007_CAC/`` (``dataset.json``,
``imagesTr``, ``labelsTr``, ``imagesTs``) and ``OUT/nnUNet_preprocessed/Dataset007_CAC/
splits_final.json`` (:mod:`cac_lightning.nnunet.layout`):

- ``train`` and ``val`` scans go to ``imagesTr``/``labelsTr``; ``splits_final.json`` holds one
  fold, ``{"train": [our train ids], "val": [our val ids]}``, so ``nnUNetv2_train DATASET 2d 0``
  trains and validates on our split.
- ``test`` and ``test_zero`` scans go to ``imagesTs`` (images only: their references stay in the
  manifest, where ``cac-import-nnunet`` reads them).
- Channel ``_0000`` is the CT in HU (int16) on the scan's own grid (spacing, origin and
  direction kept); ``_0001`` is the HU >= threshold mask (uint8 0/1) at the scan's own threshold
  (:func:`~cac_lightning.scoring.config.threshold_for_kvp` of its kVp), computed by the network
  input's own rule (:func:`~cac_lightning.models.inputs.make_input`).
- Case ids are the manifest's scan ids, never a patient field.

Both folders are written to temporary siblings and renamed into place at the end, so an
interrupted export leaves no half-written dataset; an existing dataset of the same id is refused,
never overwritten.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cac_lightning.errors import InputError
from cac_lightning.io.atomic import atomic_dir
from cac_lightning.io.manifest import ManifestRow, read_manifest
from cac_lightning.nnunet.layout import (
    CHANNEL_NAMES,
    CT_NORMALISATIONS,
    FILE_ENDING,
    PREPROCESSED,
    RAW,
    SPLITS_FILE,
    TEST_SPLITS,
    channel_names,
    check_case_id,
    dataset_folder,
    dataset_labels,
    existing_datasets,
    image_file,
)

__all__ = ["ExportResult", "export_dataset", "threshold_mask"]

log = logging.getLogger(__name__)

_MASK_CHUNK = 16  # slices per make_input call (bounds the float32 copy of a 512² scan)


@dataclass
class ExportResult:
    """What :func:`export_dataset` wrote.

    Attributes:
        raw: the raw dataset folder (``.../nnUNet_raw/DatasetNNN_NAME``).
        splits_file: ``.../nnUNet_preprocessed/DatasetNNN_NAME/splits_final.json``.
        cases: case ids by our split (``train``, ``val``, ``test``, ``test_zero``).
    """

    raw: Path
    splits_file: Path
    cases: dict[str, list[str]] = field(default_factory=dict)

    @property
    def dataset(self) -> str:
        """``DatasetNNN_NAME``."""
        return self.raw.name

    def summary(self) -> str:
        """One line: the dataset, its case counts and where it is."""
        counts = ", ".join(f"{len(v)} {k}" for k, v in self.cases.items() if v)
        return f"{self.dataset}: {counts} -> {self.raw} (fold 0 in {self.splits_file})"


def threshold_mask(hu: np.ndarray, threshold_hu: float) -> np.ndarray:
    """The network's second input channel for a whole scan, as uint8 0/1.

    Args:
        hu: (z, y, x) HU.
        threshold_hu: the scan's calcium threshold.

    Returns:
        (z, y, x) uint8: 1 where :func:`~cac_lightning.models.inputs.make_input` sets its mask
        channel (HU >= threshold), else 0.
    """
    from cac_lightning.models.inputs import candidates, make_input

    out = np.empty(np.shape(hu), dtype=np.uint8)
    for start in range(0, out.shape[0], _MASK_CHUNK):
        chunk = np.asarray(hu[start : start + _MASK_CHUNK])
        x = make_input(chunk, threshold_hu=threshold_hu)
        out[start : start + len(chunk)] = candidates(x).numpy()
    return out


def _check_rows(rows: list[ManifestRow], where: Path) -> dict[str, list[ManifestRow]]:
    """Rows by destination (``train``, ``val`` and each test split), checked for nnU-Net."""
    seen: set[str] = set()
    for r in rows:
        check_case_id(r.scan_id)
        if r.scan_id in seen:
            raise InputError(f"{where}: scan id {r.scan_id!r} appears twice")
        seen.add(r.scan_id)
    by_split = {s: [r for r in rows if r.split == s] for s in ("train", "val", *TEST_SPLITS)}
    if not by_split["train"] or not by_split["val"]:
        raise InputError(
            f"{where}: nnU-Net's fold 0 needs train and val scans; the manifest has "
            f"{len(by_split['train'])} train and {len(by_split['val'])} val"
        )
    unlabelled = [r.scan_id for s in ("train", "val") for r in by_split[s] if r.label is None]
    if unlabelled:
        raise InputError(f"{where}: train/val scans without a label map: {', '.join(unlabelled)}")
    return by_split


def _write_case(row: ManifestRow, images: Path, labels: Path | None, ct_dtype=np.int16) -> float:
    """Write one case's two channels (and its label map); return its threshold (HU)."""
    from cac_lightning.io import read_label_map, read_volume, write_image, write_label_map
    from cac_lightning.scoring.config import threshold_for_kvp

    vol = read_volume(row.image)
    threshold = float(threshold_for_kvp(vol.kvp))
    write_image(
        np.asarray(vol.hu, dtype=ct_dtype), vol.geometry, images / image_file(row.scan_id, 0)
    )
    mask = threshold_mask(vol.hu, threshold)
    write_image(mask, vol.geometry, images / image_file(row.scan_id, 1))
    if labels is not None:
        ref = read_label_map(row.label, vol.geometry)
        write_label_map(ref, vol.geometry, labels / f"{row.scan_id}{FILE_ENDING}")
    return threshold


def export_dataset(
    data_dir: str | os.PathLike,
    out: str | os.PathLike,
    dataset_id: int,
    name: str = "CAC",
    *,
    ct_normalisation: str = CT_NORMALISATIONS[0],
    progress: Callable[[str], None] | None = None,
) -> ExportResult:
    """Write the manifest dataset ``data_dir`` as nnU-Net v2 dataset ``dataset_id`` under ``out``.

    Args:
        data_dir: a dataset folder holding ``manifest.csv`` (``cac-synth``, ``cac-import-coca``).
        out: the folder to hold ``nnUNet_raw`` and ``nnUNet_preprocessed`` (created if needed;
            other datasets in it are left alone).
        dataset_id: nnU-Net dataset id, 1..999.
        name: dataset name (``DatasetNNN_NAME``).
        ct_normalisation: nnU-Net's normalisation scheme for the CT channel
            (:data:`~cac_lightning.nnunet.layout.CT_NORMALISATIONS`; why ``zscore`` is the
            default: :mod:`cac_lightning.nnunet.layout`).
        progress: called with one line per written case.

    Returns:
        :class:`ExportResult`.

    Raises:
        InputError: no manifest, a bad id or name, a dataset of this id already under ``out``,
            no train or val scans, a train/val scan without labels, or an unreadable scan.
            Nothing is written then.
    """
    data_dir, out = Path(data_dir), Path(out)
    folder = dataset_folder(dataset_id, name)
    channels = channel_names(ct_normalisation)
    rows = read_manifest(data_dir)
    by_split = _check_rows(rows, data_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out} exists and is not a folder")
    clash = existing_datasets(out, dataset_id)
    if clash:
        raise InputError(
            f"{clash[0]} already exists (dataset id {dataset_id}); "
            "choose another --dataset-id or OUT, nothing was written"
        )
    raw, pre = out / RAW / folder, out / PREPROCESSED / folder
    cases = {s: [r.scan_id for r in by_split[s]] for s in by_split}
    thresholds: dict[str, float] = {}
    pre_written = False
    made = [d for d in (out, out / RAW, out / PREPROCESSED) if not d.exists()]
    try:
        with atomic_dir(raw) as tmp_raw:
            dirs = {d: tmp_raw / d for d in ("imagesTr", "labelsTr", "imagesTs")}
            for d in dirs.values():
                d.mkdir()
            for split, split_rows in by_split.items():
                test = split in TEST_SPLITS
                for row in split_rows:
                    images = dirs["imagesTs" if test else "imagesTr"]
                    labels = None if test else dirs["labelsTr"]
                    thresholds[row.scan_id] = _write_case(row, images, labels)
                    if progress is not None:
                        progress(f"{row.scan_id}: {split} -> {images.name}")
            meta = {
                "channel_names": channels,
                "labels": dataset_labels(),
                "numTraining": len(cases["train"]) + len(cases["val"]),
                "file_ending": FILE_ENDING,
                "overwrite_image_reader_writer": "SimpleITKIO",
                "name": name,
                "description": (
                    f"cac-lightning export of {data_dir.name}: channel 0 {CHANNEL_NAMES[0]} (HU), "
                    f"channel 1 {CHANNEL_NAMES[1]} (HU >= the scan's calcium threshold)"
                ),
                "cac_lightning": {"splits": cases, "threshold_hu": thresholds},
            }
            (tmp_raw / "dataset.json").write_text(json.dumps(meta, indent=2) + "\n")
            with atomic_dir(pre) as tmp_pre:
                folds = [{"train": cases["train"], "val": cases["val"]}]
                (tmp_pre / SPLITS_FILE).write_text(json.dumps(folds, indent=2) + "\n")
            pre_written = True
    except BaseException:
        if pre_written and not raw.exists():
            shutil.rmtree(pre, ignore_errors=True)
        for d in reversed(made):  # the folders this export created, when left empty
            if d.is_dir() and not any(d.iterdir()):
                d.rmdir()
        raise
    log.info("exported %s to %s", folder, raw)
    return ExportResult(raw=raw, splits_file=pre / SPLITS_FILE, cases=cases)
