"""Balanced sampling of calcium-positive and negative slices, DDP-aware.

Hong et al. 2022 (section 2.4) balance positive (any calcium) and negative
axial slices 1:1 by oversampling with the Imbalanced Dataset Sampler (their
ref [21]), whose epoch is as many draws as the training set has slices, drawn
with replacement. :class:`BalancedSliceSampler` has the same epoch by default
(``num_samples`` = number of slices) and makes the ratio exact per epoch: it
draws ``round(pos_fraction * n)`` positive and the rest negative slices, each
class as consecutive shuffled passes over its slices (sampling with replacement
across passes, so every slice of a class is drawn floor(q / n_c) or
ceil(q / n_c) times), then shuffles the draw. A smaller ``num_samples`` is an
explicit option (the CPU recipes use it to keep an epoch short).

Hard negatives: with ``hard`` flags and ``hard_fraction`` > 0 that share of the negative draw
comes from the flagged negative slices and the rest from the other negatives, so the model
meets non-coronary dense structures (bone, calcified cartilage, aortic and valve calcium,
wires, clips) more often than their share of slices. :func:`hard_negative_slices` flags the
negative slices with the largest area of candidate pixels (>= the scan's calcium threshold)
that carry no calcium label, computed from the cached arrays (so on the training field of view
when the cache is cut to one). With ``hard_fraction`` 0 (the default) the draw is exactly the
plain balanced draw.

Bright negatives: with ``bright`` flags and ``bright_fraction`` > 0 that share of the negative
draw comes first from the flagged slices, the hard share then from the other hard slices.
:func:`bright_negative_slices` flags the negative slices whose densest unlabelled candidate
pixel is among the brightest: metal (stents, wires, clips) and the densest bone, small in area,
so the area rule rarely flags them (a stented scan of the demo cohort: 4-6 slices, none flagged
by area).

Bright positives: with ``bright_positive`` flags and ``bright_positive_fraction`` > 0 that share
of the positive draw comes from the flagged positive slices, the rest from the other positives.
:func:`bright_positive_slices` flags the positive slices whose densest labelled calcium pixel is
among the brightest: dense plaque, which the bright negatives (metal of the same density) would
otherwise teach the network to call background.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Sampler

from cac_lightning.errors import InputError

__all__ = [
    "BalancedSliceSampler",
    "bright_negative_slices",
    "bright_positive_slices",
    "dense_negative_area",
    "dense_negative_peak",
    "labelled_peak",
    "hard_negative_slices",
]

log = logging.getLogger(__name__)


def _quota(rng: np.random.Generator, pool: np.ndarray, n: int) -> np.ndarray:
    """``n`` draws from ``pool``: whole shuffled passes, then a shuffled partial one."""
    if n == 0:
        return np.empty(0, dtype=np.int64)
    reps = math.ceil(n / pool.size)
    return np.concatenate([rng.permutation(pool) for _ in range(reps)])[:n]


def dense_negative_area(
    hu: np.ndarray, labels: np.ndarray, threshold_hu: float, pixel_area_mm2: float
) -> np.ndarray:
    """Per slice, the area (mm^2) of pixels >= ``threshold_hu`` with label 0.

    Args:
        hu: (z, y, x) HU (a memmap is read slice block by slice block).
        labels: (z, y, x) calcium labels, 0 = none.
        threshold_hu: the scan's calcium threshold.
        pixel_area_mm2: in-plane pixel area of the arrays.

    Returns:
        (z,) float64 areas in mm^2.
    """
    out = np.empty(hu.shape[0], dtype=np.float64)
    step = 16
    for z in range(0, hu.shape[0], step):
        cand = (np.asarray(hu[z : z + step]) >= threshold_hu) & (
            np.asarray(labels[z : z + step]) == 0
        )
        out[z : z + step] = cand.reshape(cand.shape[0], -1).sum(axis=1)
    return out * float(pixel_area_mm2)


def dense_negative_peak(hu: np.ndarray, labels: np.ndarray, threshold_hu: float) -> np.ndarray:
    """Per slice, the highest HU among pixels >= ``threshold_hu`` (> 0) with label 0, else 0.

    Args:
        hu: (z, y, x) HU (a memmap is read slice block by slice block).
        labels: (z, y, x) calcium labels, 0 = none.
        threshold_hu: the scan's calcium threshold.

    Returns:
        (z,) float64 peaks; 0 on a slice without such a pixel.
    """
    return _slice_peaks(hu, labels, lambda block, lab: (block >= threshold_hu) & (lab == 0))


def _slice_peaks(hu: np.ndarray, labels: np.ndarray, where) -> np.ndarray:
    """Per slice, the highest HU among the pixels ``where(hu_block, label_block)``, else 0."""
    out = np.empty(hu.shape[0], dtype=np.float64)
    step = 16
    for z in range(0, hu.shape[0], step):
        block = np.asarray(hu[z : z + step], dtype=np.float64)
        block = np.where(where(block, np.asarray(labels[z : z + step])), block, 0.0)
        out[z : z + step] = block.reshape(block.shape[0], -1).max(axis=1, initial=0.0)
    return out


def labelled_peak(hu: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per slice, the highest HU among labelled (calcium) pixels, else 0.

    Args:
        hu: (z, y, x) HU (a memmap is read slice block by slice block).
        labels: (z, y, x) calcium labels, 0 = none.

    Returns:
        (z,) float64 peaks; 0 on a slice without a labelled pixel.
    """
    return _slice_peaks(hu, labels, lambda block, lab: lab > 0)


def bright_positive_slices(scans: Sequence, quantile: float = 0.05) -> np.ndarray:
    """Flag the positive slices holding the densest labelled calcium.

    A positive slice is "bright" when its :func:`labelled_peak` is in the top ``quantile`` of
    all positive slices of ``scans``.

    Args:
        scans: cached scans (``hu``, ``labels``, ``positive``), in the order of the dataset's
            slices.
        quantile: share of the positive slices flagged, in (0, 1].

    Returns:
        (total slices,) bool, False on every negative slice.
    """
    peaks = [labelled_peak(s.hu, s.labels) for s in scans]
    positive = [np.asarray(s.positive, dtype=bool) for s in scans]
    return _top_flags(peaks, positive, quantile, "bright-positive")


def _negative_flags(
    scans: Sequence, thresholds: Sequence[float], quantile: float, measure
) -> np.ndarray:
    """Negative slices whose ``measure(scan, threshold)`` is in the top ``quantile``."""
    values = [measure(scan, float(thr)) for scan, thr in zip(scans, thresholds, strict=True)]
    negative = [~np.asarray(scan.positive, dtype=bool) for scan in scans]
    return _top_flags(values, negative, quantile, "hard-negative")


def _top_flags(values: list, members: list, quantile: float, what: str) -> np.ndarray:
    """Per slice: a member (of the pooled ``members`` masks) whose value (> 0) is in the top
    ``quantile`` of the members' values."""
    if not 0.0 < quantile <= 1.0:
        raise ValueError(f"{what} quantile must be in (0, 1], got {quantile}")
    value = np.concatenate(values) if values else np.zeros(0)
    member = np.concatenate(members) if members else np.zeros(0, dtype=bool)
    found = member & (value > 0)
    if not found.any():
        return np.zeros(value.size, dtype=bool)
    cut = float(np.quantile(value[member], 1.0 - quantile))
    return found & (value >= cut)


def bright_negative_slices(
    scans: Sequence, thresholds: Sequence[float], quantile: float = 0.05
) -> np.ndarray:
    """Flag the negative slices holding the densest unlabelled candidate pixels.

    A negative slice is "bright" when its :func:`dense_negative_peak` is in the top
    ``quantile`` of all negative slices of ``scans``: metal (stents, sternal wires, clips) and
    the densest bone, which are too small in area for :func:`hard_negative_slices`.

    Args:
        scans: cached scans (``hu``, ``labels``, ``positive``), in the order of the dataset's
            slices.
        thresholds: each scan's calcium threshold (HU).
        quantile: share of the negative slices flagged, in (0, 1].

    Returns:
        (total slices,) bool, False on every positive slice.
    """
    return _negative_flags(
        scans, thresholds, quantile, lambda s, thr: dense_negative_peak(s.hu, s.labels, thr)
    )


def hard_negative_slices(
    scans: Sequence, thresholds: Sequence[float], quantile: float = 0.25
) -> np.ndarray:
    """Flag the negative slices richest in non-coronary dense structures.

    A negative slice (no calcium label) is "hard" when its :func:`dense_negative_area` is in
    the top ``quantile`` of all negative slices of ``scans`` (and above zero). Areas are in
    mm^2, so scans of different pixel sizes compare fairly.

    Args:
        scans: cached scans (``hu``, ``labels``, ``geometry.pixel_spacing``, ``positive``), in
            the order of the dataset's slices.
        thresholds: each scan's calcium threshold (HU).
        quantile: share of the negative slices flagged, in (0, 1].

    Returns:
        (total slices,) bool, False on every positive slice.
    """

    def area(scan, thr: float) -> np.ndarray:
        py, px = scan.geometry.pixel_spacing
        return dense_negative_area(scan.hu, scan.labels, thr, float(py * px))

    return _negative_flags(scans, thresholds, quantile, area)


def _dist_defaults(num_replicas: int | None, rank: int | None) -> tuple[int, int]:
    ready = torch.distributed.is_available() and torch.distributed.is_initialized()
    if num_replicas is None:
        num_replicas = torch.distributed.get_world_size() if ready else 1
    if rank is None:
        rank = torch.distributed.get_rank() if ready else 0
    if num_replicas < 1 or not 0 <= rank < num_replicas:
        raise ValueError(f"invalid rank {rank} for num_replicas {num_replicas}")
    return int(num_replicas), int(rank)


class BalancedSliceSampler(Sampler):
    """Draw positive and negative slices in a fixed ratio each epoch.

    Args:
        positive: (N,) bool, True for slices with any calcium label.
        num_samples: size of one epoch's draw over all ranks; default the number
            of slices (the paper's epoch). Rounded up to a multiple of
            ``num_replicas``.
        pos_fraction: share of positive slices in the draw; default 0.5 (1:1).
        seed: base seed; the draw depends only on (seed, epoch, num_samples).
        num_replicas: DDP world size; default from ``torch.distributed`` when
            initialised, else 1.
        rank: this process's rank; default likewise.
        reshuffle: False keeps the epoch-0 draw for ever (``set_epoch`` is then a
            no-op): a fixed validation draw.
        with_seeds: yield ``(index, item_seed)`` pairs instead of ``index``, so an
            augmenting dataset gets a distinct, reproducible seed per draw (an
            oversampled slice is augmented differently each time).
        allow_missing_class: when one class has no slices, draw only from the
            other (with a warning) instead of raising :class:`InputError`.
        hard: (N,) bool, True for hard-negative slices (e.g. from
            :func:`hard_negative_slices`); flags on positive slices are ignored.
        hard_fraction: share of the negative draw taken from the hard negatives, the rest
            from the other negatives; default 0 (plain draw). With no hard (or no other)
            negative slice, all negatives are drawn alike (with a warning).
        bright: (N,) bool bright-negative flags (:func:`bright_negative_slices`).
        bright_fraction: share of the negative draw taken first from them; default 0.
        bright_positive: (N,) bool bright-positive flags (:func:`bright_positive_slices`);
            flags on negative slices are ignored.
        bright_positive_fraction: share of the positive draw taken from them, the rest from
            the other positives; default 0 (the plain positive draw, exactly).

    Each rank takes every ``num_replicas``-th element of the shared draw, so the
    ranks' shares are disjoint, of equal length and together the whole draw.
    Lightning calls :meth:`set_epoch` on a dataloader's sampler every epoch.
    """

    def __init__(
        self,
        positive: Sequence[bool] | np.ndarray,
        num_samples: int | None = None,
        pos_fraction: float = 0.5,
        seed: int = 0,
        num_replicas: int | None = None,
        rank: int | None = None,
        reshuffle: bool = True,
        with_seeds: bool = False,
        allow_missing_class: bool = False,
        hard: Sequence[bool] | np.ndarray | None = None,
        hard_fraction: float = 0.0,
        bright: Sequence[bool] | np.ndarray | None = None,
        bright_fraction: float = 0.0,
        bright_positive: Sequence[bool] | np.ndarray | None = None,
        bright_positive_fraction: float = 0.0,
    ) -> None:
        pos = np.asarray(positive, dtype=bool).reshape(-1)
        if pos.size == 0:
            raise InputError("no slices to sample from")
        if not 0.0 <= pos_fraction <= 1.0:
            raise ValueError(f"pos_fraction must be in [0, 1], got {pos_fraction}")
        self.pos_idx = np.flatnonzero(pos)
        self.neg_idx = np.flatnonzero(~pos)
        self.pos_fraction = float(pos_fraction)
        no_pos = self.pos_idx.size == 0 and pos_fraction > 0
        if no_pos or (self.neg_idx.size == 0 and pos_fraction < 1):
            kind = "positive (calcium)" if no_pos else "negative (calcium-free)"
            if not allow_missing_class:
                raise InputError(
                    f"no {kind} slices among {pos.size} to balance with pos_fraction "
                    f"{pos_fraction}: check the label maps of this split"
                )
            log.warning("no %s slices among %d: sampling the other class only", kind, pos.size)
            self.pos_fraction = 0.0 if no_pos else 1.0
        if not 0.0 <= hard_fraction <= 1.0:
            raise ValueError(f"hard_fraction must be in [0, 1], got {hard_fraction}")
        if not 0.0 <= bright_fraction <= 1.0 - hard_fraction:
            raise ValueError(
                f"bright_fraction must be in [0, 1 - hard_fraction], got {bright_fraction}"
            )
        self.hard_fraction = float(hard_fraction)
        self.bright_fraction = float(bright_fraction)
        empty = np.empty(0, dtype=np.int64)
        self.bright_idx, self.hard_idx, self.easy_idx = empty, empty, self.neg_idx
        taken = np.zeros(pos.size, dtype=bool)
        if self.bright_fraction > 0:
            flags = self._flags(bright, pos, "bright")
            self.bright_idx = np.flatnonzero(flags & ~pos)
            if self.bright_idx.size == 0 or self.bright_idx.size == self.neg_idx.size:
                log.warning(
                    "%d bright of %d negative slices: bright_fraction %.2f ignored",
                    self.bright_idx.size, self.neg_idx.size, bright_fraction,
                )  # fmt: skip
                self.bright_fraction = 0.0
            else:
                taken[self.bright_idx] = True
        if self.hard_fraction > 0:
            flags = self._flags(hard, pos, "hard")
            self.hard_idx = np.flatnonzero(flags & ~pos & ~taken)
            rest = np.flatnonzero(~flags & ~pos & ~taken)
            if self.hard_idx.size == 0 or (
                rest.size == 0 and self.hard_fraction + self.bright_fraction < 1
            ):
                log.warning(
                    "%d hard and %d other negative slices: hard_fraction %.2f ignored",
                    self.hard_idx.size, rest.size, hard_fraction,
                )  # fmt: skip
                self.hard_fraction = 0.0
                self.hard_idx = empty
            else:
                taken[self.hard_idx] = True
        self.easy_idx = np.flatnonzero(~pos & ~taken)
        if not 0.0 <= bright_positive_fraction <= 1.0:
            raise ValueError(
                f"bright_positive_fraction must be in [0, 1], got {bright_positive_fraction}"
            )
        self.bright_positive_fraction = float(bright_positive_fraction)
        self.bright_pos_idx, self.other_pos_idx = empty, self.pos_idx
        if self.bright_positive_fraction > 0:
            flags = self._flags(bright_positive, pos, "bright_positive")
            self.bright_pos_idx = np.flatnonzero(flags & pos)
            self.other_pos_idx = np.flatnonzero(~flags & pos)
            if self.bright_pos_idx.size == 0 or self.other_pos_idx.size == 0:
                log.warning(
                    "%d bright of %d positive slices: bright_positive_fraction %.2f ignored",
                    self.bright_pos_idx.size, self.pos_idx.size, bright_positive_fraction,
                )  # fmt: skip
                self.bright_positive_fraction = 0.0
                self.bright_pos_idx, self.other_pos_idx = empty, self.pos_idx
        if num_samples is None:
            num_samples = int(pos.size)
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        self.num_replicas, self.rank = _dist_defaults(num_replicas, rank)
        self.total = math.ceil(num_samples / self.num_replicas) * self.num_replicas
        self.seed = int(seed)
        self.reshuffle = bool(reshuffle)
        self.with_seeds = bool(with_seeds)
        self.epoch = 0

    @staticmethod
    def _flags(flags, pos: np.ndarray, name: str) -> np.ndarray:
        if flags is None:
            raise ValueError(f"{name}_fraction > 0 needs the {name} slice flags ({name}=)")
        out = np.asarray(flags, dtype=bool).reshape(-1)
        if out.size != pos.size:
            raise ValueError(f"{name} has {out.size} flags for {pos.size} slices")
        return out

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose draw :meth:`__iter__` yields (ignored if not reshuffling)."""
        if self.reshuffle:
            self.epoch = int(epoch)

    def draw(self, epoch: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The whole epoch's draw over all ranks.

        Returns:
            (indices (total,) int64, item seeds (total,) int64).
        """
        epoch = self.epoch if epoch is None else epoch
        rng = np.random.default_rng([self.seed, epoch])
        n_pos = int(math.floor(self.total * self.pos_fraction + 0.5))
        n_neg = self.total - n_pos
        if self.bright_positive_fraction > 0:
            n_bp = int(math.floor(n_pos * self.bright_positive_fraction + 0.5))
            pos = np.concatenate(
                [
                    _quota(rng, self.bright_pos_idx, n_bp),
                    _quota(rng, self.other_pos_idx, n_pos - n_bp),
                ]
            )
        else:
            pos = _quota(rng, self.pos_idx, n_pos)  # first: the plain draw's order of draws
        if self.hard_fraction > 0 or self.bright_fraction > 0:
            n_bright = int(math.floor(n_neg * self.bright_fraction + 0.5))
            n_hard = int(math.floor(n_neg * self.hard_fraction + 0.5))
            neg = np.concatenate(
                [
                    _quota(rng, self.bright_idx, n_bright),
                    _quota(rng, self.hard_idx, n_hard),
                    _quota(rng, self.easy_idx, n_neg - n_bright - n_hard),
                ]
            )
        else:
            neg = _quota(rng, self.neg_idx, n_neg)
        idx = np.concatenate([pos, neg])
        idx = idx[rng.permutation(idx.size)]
        seeds = rng.integers(0, 2**62, size=idx.size, dtype=np.int64)
        return idx, seeds

    def __iter__(self) -> Iterator[int | tuple[int, int]]:
        idx, seeds = self.draw()
        idx, seeds = idx[self.rank :: self.num_replicas], seeds[self.rank :: self.num_replicas]
        if self.with_seeds:
            return iter(list(zip(idx.tolist(), seeds.tolist(), strict=True)))
        return iter(idx.tolist())

    def __len__(self) -> int:
        return self.total // self.num_replicas
