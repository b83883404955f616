"""The Lightning DataModule: manifest -> scan cache -> balanced slice loaders.

``prepare_data`` (rank 0 only) has the synthetic cohort generated when asked
(``synthetic`` set) and the manifest is missing, then preprocesses every scan
into the cache. The generator is not imported here: ``make_cohort`` is a callable the
data config injects (:func:`cac_lightning.sources.synthetic.prepare_cohort`), so ``data/``
never imports ``sources/`` (docs/architecture.md). A manifest dataset (``synthetic`` None:
COCA, a user's own) never generates anything: a missing manifest is one line naming the
``cac-import-coca`` command, and nothing is written into ``data_dir``.
``setup`` reads the manifest, checks that splits are patient-level and opens
the cache entries as memmaps. With ``target_spacing_mm`` / ``fov_mm`` the cache holds every
scan resampled to that in-plane spacing and cut to that physical field of view
(:mod:`cac_lightning.data.resample`), so the network's resolution is set in millimetres, not by
the sources' matrix; :meth:`CACDataModule.geometry_summary` records it for the checkpoint.
Loaders:

- train: :class:`BalancedSliceSampler` (positive:negative = ``pos_fraction``,
  a new draw each epoch of as many slices as the training split has, with
  replacement, unless ``samples_per_epoch`` says otherwise), augmented if
  configured, optionally cropped;
- val: a fixed balanced draw (same every epoch), no augmentation, whole slices,
  so the validation loss is comparable to the training loss (the paper's
  stopping rule compares the two focal losses, Hong et al. 2022, 2.4);
- test: every slice of the ``test_splits`` scans, in order.

:meth:`CACDataModule.scans` gives the cached scans of a split on the training grid (the slice
datasets); :meth:`CACDataModule.native_scans` gives them on their native grid, as read from the
manifest's image and label map, for scan-level Agatston evaluation (validation, ``cac-eval``,
the lesion-confidence floor): every figure that chooses a checkpoint or a threshold is scored on
the voxels ``cac-score`` scores (the Predictor puts each scan on the training grid itself).
They are cached too (an entry without a grid, memory-mapped), so each is read from its source
once, and only for the splits evaluated scan by scan.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
from torch.utils.data import DataLoader

from cac_lightning.data.cache import CachedScan, cache_scans
from cac_lightning.data.datasets import SliceDataset
from cac_lightning.data.samplers import (
    BalancedSliceSampler,
    bright_negative_slices,
    bright_positive_slices,
    hard_negative_slices,
)
from cac_lightning.data.transforms import DEFAULT_THRESHOLD_HU, DEFAULT_WINDOW, AugmentConfig
from cac_lightning.errors import InputError
from cac_lightning.io.manifest import SPLITS, ManifestRow, read_manifest

__all__ = ["CACDataModule", "check_patient_splits"]

log = logging.getLogger(__name__)


def _plain(value: Any) -> Any:
    """OmegaConf / nested containers -> plain dicts, lists and scalars."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return [_plain(v) for v in value]
    return value


def _positive_or_none(name: str, value: Any) -> float | None:
    if value is None:
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InputError(f"data.{name} must be a number of mm or null, got {value!r}") from None
    if not v > 0 or not np.isfinite(v):
        raise InputError(f"data.{name} must be > 0 mm or null, got {value}")
    return v


def check_patient_splits(rows: Sequence[ManifestRow]) -> None:
    """Raise :class:`InputError` if a patient or scan id appears in two splits / twice."""
    splits: dict[str, set[str]] = {}
    seen: set[str] = set()
    for r in rows:
        if r.scan_id in seen:
            raise InputError(f"scan id {r.scan_id} appears twice in the manifest")
        seen.add(r.scan_id)
        splits.setdefault(r.patient_id, set()).add(r.split)
    for patient, s in splits.items():
        if len(s) > 1:
            raise InputError(
                f"patient {patient} appears in splits {sorted(s)}: splits must be patient-level"
            )


class CACDataModule(pl.LightningDataModule):
    """Slices of the scans of a manifest, cached and balanced.

    Args:
        data_dir: dataset folder (holds ``manifest.csv``; the synthetic cohort is
            generated here).
        manifest: manifest CSV; default ``<data_dir>/manifest.csv``.
        synthetic: keyword arguments of
            :func:`cac_lightning.sources.synthetic.generate_cohort` (n_scans, seed,
            size, ...); when given and the manifest is missing, ``make_cohort`` generates
            the cohort into ``data_dir`` (reused afterwards).
        make_cohort: what makes and checks a synthetic cohort, called as
            ``make_cohort(data_dir, generate=..., **synthetic)``: ``generate=False`` by
            :meth:`check_source` (refuse a cohort of another generator version),
            ``generate=True`` by :meth:`prepare_data` when the manifest is missing. The data
            config passes :func:`cac_lightning.sources.synthetic.prepare_cohort`; without it
            a missing manifest is an error. Not a hyper-parameter (not saved).
        cache_dir: scan cache; default ``<data_dir>/.cache``.
        batch_size: slices per batch; default 4 (the paper's).
        num_workers / pin_memory / persistent_workers: DataLoader options.
        pos_fraction: share of calcium-positive slices per epoch; default 0.5.
        hard_negative_fraction: share of the training epoch's negative slices drawn from the
            hard negatives (:func:`~cac_lightning.data.samplers.hard_negative_slices`: the
            negative slices with the most unlabelled >= threshold area); default 0 (plain
            balanced draw). Validation draws are never changed.
        hard_negative_quantile: share of the training negatives flagged hard; default 0.25.
        bright_negative_fraction: share of the training epoch's negative slices drawn first
            from the bright negatives (:func:`~cac_lightning.data.samplers.bright_negative_slices`:
            the negative slices with the densest unlabelled >= threshold pixel, e.g. stents and
            wires); default 0.
        bright_negative_quantile: share of the training negatives flagged bright; default 0.05.
        bright_positive_fraction: share of the training epoch's positive slices drawn from the
            bright positives (:func:`~cac_lightning.data.samplers.bright_positive_slices`: the
            positive slices with the densest labelled calcium); default 0.
        bright_positive_quantile: share of the training positives flagged bright; default 0.05.
        samples_per_epoch: training slices per epoch (all ranks); default (None)
            the number of training slices, the paper's epoch. A smaller number is
            an explicit choice (CPU recipes).
        window: HU window of the image channel; default (-1024, 2048).
        threshold_hu: mask channel threshold when ``per_scan_threshold`` is False;
            default 130 HU.
        per_scan_threshold: build each scan's mask channel with its own
            threshold, ``threshold_for_kvp(kvp)`` (default True; 130 HU at 120 kVp).
        augment: :class:`AugmentConfig` options (p, rotate_deg, scale, hu_shift,
            hu_scale, noise_sd) for training; ``None`` = no augmentation (the
            paper reports none). Never applied to val / test.
        seed: seed of the training draws, augmentation and the fixed val draw.
        crop: square random crop for training (e.g. 256 of 512); ``None`` = whole
            slices. Val / test always use whole slices.
        test_splits: splits whose slices form the test loader; default ("test",).
        target_spacing_mm: in-plane pixel spacing (mm) every scan is resampled to once, when
            cached (HU linear, labels nearest and gated at the scan's threshold); ``None`` =
            native spacing (the paper's recipe).
        fov_mm: side (mm) of the square field of view cut around the body centre of every
            scan (all splits) after resampling; ``None`` = whole slices.
        validate_on: the split that validation (loss, whole-scan Agatston, checkpoint choice)
            reads; default ``"val"``. ``"train"`` is for fine-tuning on so few scans that none
            can be spared (leave-one-out on the COCA sample): the checkpoint is then chosen on
            the training scans. Test splits are refused.
        context_slices: neighbour slices on each side in every item's input (2.5D,
            :func:`~cac_lightning.models.inputs.make_input`); default 0, the paper's 2-channel
            slice. The model's ``input.context`` must say the same (cac_seg.yaml interpolates it).
    """

    def __init__(
        self,
        data_dir: str,
        manifest: str | None = None,
        synthetic: dict | None = None,
        make_cohort: Callable[..., Any] | None = None,
        cache_dir: str | None = None,
        batch_size: int = 4,
        num_workers: int = 0,
        pin_memory: bool = False,
        persistent_workers: bool = False,
        pos_fraction: float = 0.5,
        hard_negative_fraction: float = 0.0,
        hard_negative_quantile: float = 0.25,
        bright_negative_fraction: float = 0.0,
        bright_negative_quantile: float = 0.05,
        bright_positive_fraction: float = 0.0,
        bright_positive_quantile: float = 0.05,
        samples_per_epoch: int | None = None,
        window: tuple[float, float] = DEFAULT_WINDOW,
        threshold_hu: float = DEFAULT_THRESHOLD_HU,
        per_scan_threshold: bool = True,
        augment: dict | None = None,
        seed: int = 0,
        crop: int | None = None,
        test_splits: Sequence[str] = ("test",),
        target_spacing_mm: float | None = None,
        fov_mm: float | None = None,
        validate_on: str = "val",
        context_slices: int = 0,
    ) -> None:
        super().__init__()
        # Plain values only, so checkpoints load weights-only (cac-eval rebuilds the DataModule
        # from them: models/checkpoint.py, ``data``).
        self.save_hyperparameters(
            {
                k: _plain(v)
                for k, v in dict(
                    data_dir=str(data_dir),
                    manifest=manifest,
                    synthetic=synthetic,
                    cache_dir=cache_dir,
                    batch_size=batch_size,
                    num_workers=num_workers,
                    pin_memory=pin_memory,
                    persistent_workers=persistent_workers,
                    pos_fraction=pos_fraction,
                    hard_negative_fraction=hard_negative_fraction,
                    hard_negative_quantile=hard_negative_quantile,
                    bright_negative_fraction=bright_negative_fraction,
                    bright_negative_quantile=bright_negative_quantile,
                    bright_positive_fraction=bright_positive_fraction,
                    bright_positive_quantile=bright_positive_quantile,
                    samples_per_epoch=samples_per_epoch,
                    window=window,
                    threshold_hu=threshold_hu,
                    per_scan_threshold=per_scan_threshold,
                    augment=augment,
                    seed=seed,
                    crop=crop,
                    test_splits=test_splits,
                    target_spacing_mm=target_spacing_mm,
                    fov_mm=fov_mm,
                    validate_on=validate_on,
                    context_slices=context_slices,
                ).items()
            }
        )
        self.data_dir = Path(data_dir)
        self.manifest_path = Path(manifest) if manifest else self.data_dir / "manifest.csv"
        self.synthetic = _plain(synthetic) if synthetic is not None else None
        self.make_cohort = make_cohort
        self.cache_dir = Path(cache_dir) if cache_dir else self.data_dir / ".cache"
        self.batch_size = int(batch_size)
        self.num_workers = int(num_workers)
        self.pin_memory = bool(pin_memory)
        self.persistent_workers = bool(persistent_workers)
        self.pos_fraction = float(pos_fraction)
        self.hard_negative_fraction = float(hard_negative_fraction)
        self.hard_negative_quantile = float(hard_negative_quantile)
        self.bright_negative_fraction = float(bright_negative_fraction)
        self.bright_negative_quantile = float(bright_negative_quantile)
        self.bright_positive_fraction = float(bright_positive_fraction)
        self.bright_positive_quantile = float(bright_positive_quantile)
        if not 0.0 <= self.hard_negative_fraction <= 1.0:
            raise InputError(
                f"hard_negative_fraction must be in [0, 1], got {hard_negative_fraction}"
            )
        if not 0.0 <= self.bright_negative_fraction <= 1.0 - self.hard_negative_fraction:
            raise InputError(
                "bright_negative_fraction must be in [0, 1 - hard_negative_fraction], got "
                f"{bright_negative_fraction}"
            )
        if not 0.0 <= self.bright_positive_fraction <= 1.0:
            raise InputError(
                f"bright_positive_fraction must be in [0, 1], got {bright_positive_fraction}"
            )
        for name in (
            "hard_negative_quantile",
            "bright_negative_quantile",
            "bright_positive_quantile",
        ):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise InputError(f"{name} must be in (0, 1], got {getattr(self, name)}")
        self.samples_per_epoch = int(samples_per_epoch) if samples_per_epoch else None
        window = _plain(window)
        self.window = (float(window[0]), float(window[1]))
        self.threshold_hu = float(threshold_hu)
        self.per_scan_threshold = bool(per_scan_threshold)
        self.augment = AugmentConfig.from_dict(_plain(augment) if augment is not None else None)
        self.seed = int(seed)
        self.crop = int(crop) if crop else None
        self.test_splits = tuple(str(s) for s in _plain(test_splits))
        unknown = set(self.test_splits) - set(SPLITS)
        if unknown:
            raise InputError(f"unknown test split(s) {sorted(unknown)}; valid: {list(SPLITS)}")
        self.target_spacing_mm = _positive_or_none("target_spacing_mm", target_spacing_mm)
        self.fov_mm = _positive_or_none("fov_mm", fov_mm)
        if validate_on not in ("val", "train"):
            raise InputError(f"validate_on must be 'val' or 'train', got {validate_on!r}")
        self.validate_on = str(validate_on)
        if (
            isinstance(context_slices, bool)
            or not isinstance(context_slices, int)
            or context_slices < 0
        ):
            raise InputError(f"context_slices must be a whole number >= 0, got {context_slices!r}")
        self.context_slices = int(context_slices)
        if self.batch_size < 1:
            raise InputError(f"batch_size must be >= 1, got {batch_size}")
        self._scans: dict[str, list[CachedScan]] | None = None
        self._native: dict[str, list[CachedScan]] = {}

    # -- preparation -------------------------------------------------------------------
    def _rows(self) -> list[ManifestRow]:
        if not self.manifest_path.is_file():
            raise InputError(
                f"no manifest at {self.manifest_path}: import the COCA scans with "
                f"`cac-import-coca COCA_ROOT --out {self.manifest_path.parent}` "
                "(or make a synthetic cohort with cac-synth, or use data=synthetic)"
            )
        rows = read_manifest(self.manifest_path)
        if not rows:
            raise InputError(f"{self.manifest_path}: the manifest lists no scans")
        check_patient_splits(rows)
        return rows

    def check_source(self) -> None:
        """Fail fast (before a trainer is built): a manifest dataset needs its manifest, and a
        synthetic cohort on disk must come from this generator version (``make_cohort`` checks).

        Raises:
            InputError: no manifest and nothing to make one (``synthetic`` or ``make_cohort``
                None; one line naming the ``cac-import-coca`` command); a cohort of another
                generator version (one line: delete it or choose another ``data_dir``).
                Nothing is written.
        """
        if self.synthetic is None or self.make_cohort is None:
            self._rows()
            return
        self.make_cohort(self.data_dir, generate=False, **self.synthetic)

    def prepare_data(self) -> None:
        """Have the synthetic cohort made if asked and missing, then fill the cache (the training
        grid, and the native entries of the evaluated splits)."""
        if self.synthetic is not None and self.make_cohort is not None:
            generate = not self.manifest_path.is_file()
            self.make_cohort(self.data_dir, generate=generate, **self.synthetic)
        rows = self._rows()
        cache_scans(rows, self.cache_dir, self.target_spacing_mm, self.fov_mm)
        if self.target_spacing_mm is not None or self.fov_mm is not None:
            evaluated = {s for s in SPLITS if s != "train"} | {self.validate_on}
            cache_scans([r for r in rows if r.split in evaluated], self.cache_dir)

    def setup(self, stage: str | None = None) -> None:
        """Read the manifest and open the cache entries (building any missing one)."""
        if self._scans is not None:
            return
        scans = cache_scans(self._rows(), self.cache_dir, self.target_spacing_mm, self.fov_mm)
        by_split: dict[str, list[CachedScan]] = {s: [] for s in SPLITS}
        for scan in scans:
            by_split[scan.split].append(scan)
        for split, items in by_split.items():
            sizes = sorted({tuple(s.hu.shape[1:]) for s in items})
            if len(sizes) > 1 and (self.batch_size > 1 or split == "train"):
                raise InputError(
                    f"split {split} mixes slice sizes {sizes}: resample the scans to one "
                    "in-plane size or use batch_size 1"
                )
            if split == "train" and self.crop and sizes and self.crop > min(sizes[0]):
                raise InputError(f"crop {self.crop} is larger than the slices {sizes[0]}")
        if self.validate_on != "val":
            by_split["val"] = list(by_split[self.validate_on])
        self._scans = by_split

    def scans(self, split: str) -> list[CachedScan]:
        """The cached scans of ``split`` (``train``, ``val``, ``test``, ``test_zero``)."""
        if split not in SPLITS:
            raise InputError(f"unknown split {split!r}; valid: {list(SPLITS)}")
        if self._scans is None:
            self.setup()
        return list(self._scans[split])

    def input_threshold(self) -> str | float:
        """Where the mask channel's threshold comes from, for ``model.hparams.input``:
        ``"scan"`` (each scan's own, ``per_scan_threshold``) or the one fixed ``threshold_hu``."""
        return "scan" if self.per_scan_threshold else self.threshold_hu

    def native_scans(self, split: str) -> list[CachedScan]:
        """The scans of ``split`` on their native grid (the manifest's image and label map, not
        resampled or cropped), for scan-level evaluation through the Predictor.

        The same scans, in the same order, as :meth:`scans`; without a training grid (native
        spacing, whole slices) they are the very same entries.
        """
        scans = self.scans(split)
        if self.target_spacing_mm is None and self.fov_mm is None:
            return scans
        if split not in self._native:
            source = self.validate_on if split == "val" else split
            by_id = {r.scan_id: r for r in self._rows() if r.split == source}
            rows = [by_id[s.scan_id] for s in scans]
            self._native[split] = cache_scans(rows, self.cache_dir)
        return list(self._native[split])

    def geometry_summary(self) -> dict:
        """What the network is trained on, for ``model.hparams.data_geometry``
        (:class:`~cac_lightning.models.checkpoint.DataGeometry`).

        Keys (interfaces §1): ``spacing_mm`` (the training in-plane spacing; at native spacing
        the median native spacing of the training scans), ``fov_mm`` (the field of view side or
        None), ``pixel_spacing_mm`` / ``slice_thickness_mm`` / ``fov_range_mm`` ([min, max] of
        the native training scans; slice thickness falls back to slice spacing) and ``kvp``
        (sorted whole kVp values seen; scans without kVp add nothing). Plain floats and lists.
        """
        scans = self.scans("train")
        if not scans:
            raise InputError(f"no training scans in {self.manifest_path}")
        native = [s.native_geometry or s.geometry for s in scans]
        px = [float(np.mean(g.pixel_spacing)) for g in native]
        thick = [
            float(g.slice_thickness if g.slice_thickness is not None else g.slice_spacing)
            for g in native
        ]
        fov = [
            float(max(g.shape[1] * g.pixel_spacing[0], g.shape[2] * g.pixel_spacing[1]))
            for g in native
        ]

        def span(v: list[float]) -> list[float]:
            return [round(min(v), 4), round(max(v), 4)]

        spacing = self.target_spacing_mm
        return {
            "spacing_mm": float(spacing) if spacing is not None else float(np.median(px)),
            "fov_mm": self.fov_mm,
            "pixel_spacing_mm": span(px),
            "slice_thickness_mm": span(thick),
            "fov_range_mm": span(fov),
            "kvp": sorted({int(round(s.kvp)) for s in scans if s.kvp is not None}),
        }

    # -- loaders -----------------------------------------------------------------------
    def _dataset(self, splits: Sequence[str], train: bool = False) -> SliceDataset:
        scans = [s for split in splits for s in self.scans(split)]
        if not scans:
            raise InputError(
                f"no scans in split(s) {list(splits)} of {self.manifest_path}: "
                "cac-import-coca puts 70/10/20% of the calcium-positive scans in "
                "train/val/test (at least one each from 3 such scans on); "
                "import more scans or edit the split column"
            )
        return SliceDataset(
            scans,
            self.window,
            None if self.per_scan_threshold else self.threshold_hu,
            augment=self.augment if train else None,
            crop=self.crop if train else None,
            seed=self.seed,
            context=self.context_slices,
        )

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """uint8 targets (cheap to load and transfer) -> int64 for the loss, on the device."""
        if isinstance(batch, dict) and "target" in batch:
            batch = {**batch, "target": batch["target"].long()}
        return batch

    def _loader(self, dataset: SliceDataset, sampler=None) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=sampler,
            shuffle=False,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.persistent_workers and self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        ds = self._dataset(["train"], train=True)
        hard = bright = None
        if self.hard_negative_fraction > 0:
            hard = hard_negative_slices(ds.scans, ds.thresholds, self.hard_negative_quantile)
            log.info("hard-negative training slices: %d of %d", int(hard.sum()), hard.size)
        if self.bright_negative_fraction > 0:
            bright = bright_negative_slices(ds.scans, ds.thresholds, self.bright_negative_quantile)
            log.info("bright-negative training slices: %d of %d", int(bright.sum()), bright.size)
        bright_pos = None
        if self.bright_positive_fraction > 0:
            bright_pos = bright_positive_slices(ds.scans, self.bright_positive_quantile)
            log.info(
                "bright-positive training slices: %d of %d",
                int(bright_pos.sum()),
                ds.positive.sum(),
            )
        sampler = BalancedSliceSampler(
            ds.positive,
            num_samples=self.samples_per_epoch,
            pos_fraction=self.pos_fraction,
            seed=self.seed,
            with_seeds=True,
            hard=hard,
            hard_fraction=self.hard_negative_fraction,
            bright=bright,
            bright_fraction=self.bright_negative_fraction,
            bright_positive=bright_pos,
            bright_positive_fraction=self.bright_positive_fraction,
        )
        return self._loader(ds, sampler)

    def val_dataloader(self) -> DataLoader:
        ds = self._dataset(["val"])
        sampler = BalancedSliceSampler(
            ds.positive,
            pos_fraction=self.pos_fraction,
            seed=self.seed + 1,
            reshuffle=False,
            allow_missing_class=True,
        )
        return self._loader(ds, sampler)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self._dataset(self.test_splits))
