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
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Sampler

from cac_lightning.errors import InputError

__all__ = ["BalancedSliceSampler", "dense_negative_area", "hard_negative_slices"]

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
    if not 0.0 < quantile <= 1.0:
        raise ValueError(f"hard-negative quantile must be in (0, 1], got {quantile}")
    areas, negative = [], []
    for scan, thr in zip(scans, thresholds, strict=True):
        py, px = scan.geometry.pixel_spacing
        areas.append(dense_negative_area(scan.hu, scan.labels, float(thr), float(py * px)))
        negative.append(~np.asarray(scan.positive, dtype=bool))
    area = np.concatenate(areas) if areas else np.zeros(0)
    neg = np.concatenate(negative) if negative else np.zeros(0, dtype=bool)
    if not neg.any():
        return np.zeros(area.size, dtype=bool)
    cut = float(np.quantile(area[neg], 1.0 - quantile))
    return neg & (area >= cut) & (area > 0)


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
        self.hard_fraction = float(hard_fraction)
        self.hard_idx = self.easy_idx = np.empty(0, dtype=np.int64)
        if self.hard_fraction > 0:
            if hard is None:
                raise ValueError("hard_fraction > 0 needs the hard-negative flags (hard)")
            flags = np.asarray(hard, dtype=bool).reshape(-1)
            if flags.size != pos.size:
                raise ValueError(f"hard has {flags.size} flags for {pos.size} slices")
            self.hard_idx = np.flatnonzero(flags & ~pos)
            self.easy_idx = np.flatnonzero(~flags & ~pos)
            if self.hard_idx.size == 0 or (self.easy_idx.size == 0 and hard_fraction < 1):
                log.warning(
                    "%d hard and %d other negative slices: hard_fraction %.2f ignored",
                    self.hard_idx.size, self.easy_idx.size, hard_fraction,
                )  # fmt: skip
                self.hard_fraction = 0.0
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
        pos = _quota(rng, self.pos_idx, n_pos)  # first: the plain draw's order of draws
        if self.hard_fraction > 0:
            n_hard = int(math.floor(n_neg * self.hard_fraction + 0.5))
            neg = np.concatenate(
                [_quota(rng, self.hard_idx, n_hard), _quota(rng, self.easy_idx, n_neg - n_hard)]
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
